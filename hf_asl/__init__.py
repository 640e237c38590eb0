"""hf-asl: practical image copy detection (ICD) with Asymmetrical-Similarity Learning.

Importing the package registers the ASL model with transformers' Auto classes, so
``AutoModel.from_pretrained(folder)`` loads a saved ASL model without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModel

from .configuration_asl import ASLConfig
from .losses import ASLLoss, CosFaceLoss, InfoNCELoss, NormRatioLoss, build_asl_loss
from .metrics import metric_module_path
from .modeling_asl import ASLModel, ASLModelOutput
from .pretrained_mobilenet import asl_model_from_imagenet_mobilenet_v2, load_imagenet_mobilenet_v2
from .processing import build_image_processor
from .version import __version__

AutoConfig.register(ASLConfig.model_type, ASLConfig, exist_ok=True)
AutoModel.register(ASLConfig, ASLModel, exist_ok=True)
# save_pretrained then writes configuration_asl.py / modeling_asl.py and an `auto_map`.
ASLConfig.register_for_auto_class("AutoConfig")
ASLModel.register_for_auto_class("AutoModel")

__all__ = [
    "ASLConfig",
    "ASLLoss",
    "ASLModel",
    "ASLModelOutput",
    "CosFaceLoss",
    "InfoNCELoss",
    "NormRatioLoss",
    "__version__",
    "asl_model_from_imagenet_mobilenet_v2",
    "build_asl_loss",
    "build_image_processor",
    "load_imagenet_mobilenet_v2",
    "metric_module_path",
]
