"""Load an ASL model and its image processor from a folder or a Hub id."""

from __future__ import annotations


def load_model_and_processor(name_or_path: str):
    """``(model, processor)`` in eval mode.

    Importing hf_asl registers the ``asl`` model type, so a saved ASL folder loads without
    remote code; ``trust_remote_code`` lets a Hub repo that ships its own code load as well.
    """
    from transformers import AutoImageProcessor, AutoModel

    import hf_asl  # noqa: F401  (registers the asl model type with the Auto classes)

    model = AutoModel.from_pretrained(name_or_path, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=True)
    return model, processor
