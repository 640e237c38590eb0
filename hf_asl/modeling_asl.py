"""ASL descriptor model: CNN backbone, GeM pooling, projection and BN neck; the norm measures content.

Self-contained on purpose: `save_pretrained` copies this file (and the config file it imports
relatively) next to the weights, so a process without hf-asl installed can load the model with
``trust_remote_code=True``. Do not import other hf_asl modules here.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_asl import ASLConfig


@dataclass
class ASLModelOutput(ModelOutput):
    """
    Output of [`ASLModel`].

    Args:
        descriptor (`torch.FloatTensor` of shape `(batch_size, descriptor_dim)`):
            L2-normalised descriptor: its direction says what the image shows; compare by cosine. First field, so
            the `image-feature-extraction` pipeline returns it.
        norm (`torch.FloatTensor` of shape `(batch_size,)`):
            L2 norm of `embedding`: how much content the image holds. Store it with the descriptor.
        embedding (`torch.FloatTensor` of shape `(batch_size, descriptor_dim)`):
            Un-normalised BN-neck output, `descriptor * norm`.
    """

    descriptor: torch.FloatTensor | None = None
    norm: torch.FloatTensor | None = None
    embedding: torch.FloatTensor | None = None


class GeMPooling(nn.Module):
    """Generalised-mean pooling over the spatial dimensions, with a learned exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # x**p overflows half precision for large activations: pool in float32.
        p = self.p.float()
        pooled = features.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1))
        return pooled.pow(1.0 / p)


def _feature_channels(backbone: nn.Module, backbone_config) -> int:
    """Channels of the backbone's last feature map."""
    hidden_sizes = getattr(backbone_config, "hidden_sizes", None)
    if hidden_sizes:
        return int(hidden_sizes[-1])
    # CNNs without `hidden_sizes` (MobileNetV2) end in a convolution: the last one registered sets the width.
    convolutions = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError(f"cannot tell the feature width of backbone {type(backbone).__name__}")
    return convolutions[-1].out_channels


class ASLPreTrainedModel(PreTrainedModel):
    config: ASLConfig
    config_class = ASLConfig
    base_model_prefix = "asl"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False
    _no_split_modules: ClassVar[list[str]] = []

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, GeMPooling):
            init.constant_(module.p, self.config.gem_p)


class ASLModel(ASLPreTrainedModel):
    """ASL descriptor model; `forward(pixel_values)` returns an [`ASLModelOutput`]."""

    def __init__(self, config: ASLConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        if config.backbone_batchnorm_momentum is not None:
            for module in self.backbone.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = config.backbone_batchnorm_momentum
        self.pooling = GeMPooling(config.gem_p, config.gem_eps)
        self.projection = nn.Linear(_feature_channels(self.backbone, config.backbone_config), config.descriptor_dim)
        self.neck = nn.BatchNorm1d(config.descriptor_dim)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs) -> ASLModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Images prepared by the image processor saved with the model.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        feature_map = self.backbone(pixel_values, return_dict=True).last_hidden_state
        embedding = self.neck(self.projection(self.pooling(feature_map).to(self.projection.weight.dtype)))
        norm = torch.linalg.vector_norm(embedding, dim=-1)
        descriptor = embedding / norm.clamp(min=torch.finfo(embedding.dtype).tiny).unsqueeze(-1)
        if not return_dict:
            return descriptor, norm, embedding
        return ASLModelOutput(descriptor=descriptor, norm=norm, embedding=embedding)

    @classmethod
    def from_pretrained_backbone(cls, backbone_name_or_path: str, **config_kwargs) -> "ASLModel":
        """ASL model whose backbone starts from a pretrained transformers checkpoint (e.g.
        ``"microsoft/resnet-50"`` with network access, or a local folder); the head starts fresh.

        ``config_kwargs`` go to [`ASLConfig`] (``descriptor_dim``, ``norm_ratio_weight``, ...).
        """
        backbone = AutoModel.from_pretrained(backbone_name_or_path)
        backbone_config = backbone.config.to_dict()
        # The checkpoint's classification labels and architectures mean nothing for a descriptor backbone.
        for key in ("id2label", "label2id", "architectures", "_name_or_path", "transformers_version"):
            backbone_config.pop(key, None)
        model = cls(ASLConfig(backbone_config=backbone_config, **config_kwargs))
        model.backbone.load_state_dict(backbone.state_dict(), strict=True)
        return model


__all__ = ["ASLModel", "ASLModelOutput", "ASLPreTrainedModel", "GeMPooling"]
