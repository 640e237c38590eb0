"""ASL model configuration (transformers house style: one config class per model type)."""

from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING


def imagenet_mobilenet_v2_config(**kwargs) -> PreTrainedConfig:
    """MobileNetV2 backbone config matching torchvision's ImageNet ``mobilenet_v2`` checkpoint.

    ``tf_padding=False`` gives PyTorch's symmetric padding and ``layer_norm_eps=1e-5`` is
    ``nn.BatchNorm2d``'s default: both must match the checkpoint or its features drift.
    """
    values = {"tf_padding": False, "layer_norm_eps": 1e-5, "hidden_act": "relu6", "classifier_dropout_prob": 0.2}
    values.update(kwargs)
    return CONFIG_MAPPING["mobilenet_v2"](**values)


class ASLConfig(PreTrainedConfig):
    r"""
    Configuration of an [`ASLModel`]: a CNN backbone, GeM pooling, a linear projection and a BN neck, whose
    un-normalised output's L2 norm measures how much image content the descriptor holds.

    Args:
        backbone_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of the vision backbone, built with `AutoModel.from_config` (its feature map before pooling is
            used). A dict needs a `model_type` (e.g. `"resnet"`, `"mobilenet_v2"`). Defaults to MobileNetV2 set up
            like torchvision's ImageNet checkpoint, the one with offline weights
            (`hf_asl.pretrained_mobilenet`).
        descriptor_dim (`int`, *optional*, defaults to 256):
            Size of the descriptor.
        gem_p (`float`, *optional*, defaults to 3.0):
            Initial exponent of GeM pooling (learned during training).
        gem_eps (`float`, *optional*, defaults to 1e-6):
            Activations are clamped to this before the power, keeping GeM's gradient finite.
        backbone_batchnorm_momentum (`float`, *optional*, defaults to 0.1):
            Momentum set on every `BatchNorm2d` of the backbone. transformers' MobileNetV2 uses 0.997 (a
            TensorFlow decay copied as a PyTorch momentum), which would make the running statistics those of
            the last batch alone when fine-tuning. `None` keeps the backbone's own value.
        image_size (`int`, *optional*, defaults to 256):
            Side of the square input the image processor resizes to (the paper trains at 256x256).
        metric_losses (`list[str]`, *optional*, defaults to `["cosface", "infonce"]`):
            Metric losses on descriptor directions, summed: `"cosface"` (instance classification with a cosine
            margin) and/or `"infonce"` (contrastive over PK batches; takes hard negatives).
        cosface_scale (`float`, *optional*, defaults to 30.0):
            Logit scale `s` of the CosFace head.
        cosface_margin (`float`, *optional*, defaults to 0.35):
            Cosine margin `m` of the CosFace head.
        label_smoothing (`float`, *optional*, defaults to 0.1):
            Label smoothing of the CosFace cross-entropy (the paper's baseline uses label smoothing).
        infonce_temperature (`float`, *optional*, defaults to 0.05):
            Temperature of the InfoNCE loss.
        norm_ratio_weight (`float`, *optional*, defaults to 1.0):
            Weight of the norm-ratio loss against the metric loss. The metric losses only see directions and
            the norm-ratio loss only norms, so at the descriptor their gradients are orthogonal and do not fight;
            the weight mostly sets how fast the norm learns, and 1.0 keeps both terms of the same order at the
            start (the norm-ratio loss is about 1 when norms are still unordered).
        content_tolerance (`float`, *optional*, defaults to 0.05):
            Two views enter the norm-ratio loss only when their content fractions differ by more than this,
            so edits that keep (almost) all content impose no ordering.
        score_threshold (`float`, *optional*, defaults to 1.0):
            Norm-ratio threshold of the direction-aware scoring: a pair (q, r) with `|q| / |r|` above it cannot
            be a copy (the paper's value is 1; calibrate it on training copies with
            `hf_asl.scoring.calibrate_ratio_threshold`).
        soft_score_temperature (`float`, *optional*, defaults to 0.05):
            Width of the smooth penalty of the soft ASL score around the threshold.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of the projection.
    """

    model_type = "asl"
    sub_configs: ClassVar[dict] = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config=None,
        descriptor_dim=256,
        gem_p=3.0,
        gem_eps=1e-6,
        backbone_batchnorm_momentum=0.1,
        image_size=256,
        metric_losses=("cosface", "infonce"),
        cosface_scale=30.0,
        cosface_margin=0.35,
        label_smoothing=0.1,
        infonce_temperature=0.05,
        norm_ratio_weight=1.0,
        content_tolerance=0.05,
        score_threshold=1.0,
        soft_score_temperature=0.05,
        initializer_range=0.02,
        **kwargs,
    ):
        if backbone_config is None:
            backbone_config = imagenet_mobilenet_v2_config()
        elif isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            model_type = backbone_config.pop("model_type", None)
            if model_type is None:
                raise ValueError("backbone_config needs a 'model_type' (e.g. 'resnet' or 'mobilenet_v2')")
            backbone_config = CONFIG_MAPPING[model_type](**backbone_config)
        elif not isinstance(backbone_config, PreTrainedConfig):
            raise TypeError(f"backbone_config must be a dict or a PreTrainedConfig, got {type(backbone_config)}")
        unknown = set(metric_losses) - {"cosface", "infonce"}
        if not metric_losses or unknown:
            raise ValueError(f"metric_losses must be a non-empty subset of ['cosface', 'infonce'], got {metric_losses}")

        self.backbone_config = backbone_config
        self.descriptor_dim = int(descriptor_dim)
        self.gem_p = float(gem_p)
        self.gem_eps = float(gem_eps)
        self.backbone_batchnorm_momentum = backbone_batchnorm_momentum
        self.image_size = int(image_size)
        self.metric_losses = list(metric_losses)
        self.cosface_scale = float(cosface_scale)
        self.cosface_margin = float(cosface_margin)
        self.label_smoothing = float(label_smoothing)
        self.infonce_temperature = float(infonce_temperature)
        self.norm_ratio_weight = float(norm_ratio_weight)
        self.content_tolerance = float(content_tolerance)
        self.score_threshold = float(score_threshold)
        self.soft_score_temperature = float(soft_score_temperature)
        self.initializer_range = float(initializer_range)
        super().__init__(**kwargs)


__all__ = ["ASLConfig", "imagenet_mobilenet_v2_config"]
