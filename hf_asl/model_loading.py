"""Load a descriptor model and its image processor from a folder or a Hub id."""

from __future__ import annotations

from .errors import InputError


def load_model_and_processor(name_or_path: str, *, trust_remote_code: bool = False):
    """``(model, processor)``, the model in eval mode.

    Importing hf_asl registers the ``asl`` model type, so a saved ASL model (folder or Hub repo)
    loads without running downloaded code; ``trust_remote_code`` is only needed for other models
    that ship their own code. A model or processor that cannot be found or read raises an
    :class:`InputError` naming it.
    """
    from transformers import AutoImageProcessor, AutoModel

    import hf_asl  # noqa: F401  (registers the asl model type with the Auto classes)

    try:
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code).eval()
        processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        # transformers reports a missing folder, an unknown or unreachable Hub id, a repo without an
        # image processor, or code it will not run without trust_remote_code with these types.
        raise InputError(f"cannot load the model and its image processor: {err}", path=name_or_path) from None
    return model, processor


def model_score_settings(name_or_path: str) -> dict[str, float]:
    """The direction-aware scoring settings saved with an ASL model: ``score_threshold`` (the
    norm-ratio threshold, calibrated on training copies by ``hf-asl train``) and
    ``soft_score_temperature``. Models without them give an empty dict."""
    from transformers import AutoConfig

    import hf_asl  # noqa: F401

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the model config: {err}", path=name_or_path) from None
    return {
        key: float(getattr(config, key))
        for key in ("score_threshold", "soft_score_temperature")
        if getattr(config, key, None) is not None
    }
