"""The image processor saved with every ASL model: what training and inference feed the network."""

from transformers import ViTImageProcessorPil
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


def build_image_processor(image_size: int = 256) -> ViTImageProcessorPil:
    """PIL-backend processor: RGB, square ``image_size`` resize, rescale to [0, 1], ImageNet mean/std.

    The whole image is squashed to the square with no centre crop: a crop would cut away content
    and the descriptor norm is meant to measure exactly that. Saved with ``save_pretrained`` it
    reloads with ``AutoImageProcessor.from_pretrained`` (PIL backend unless torchvision is
    installed, in which case transformers picks its torchvision twin of the same settings).
    """
    return ViTImageProcessorPil(
        do_convert_rgb=True,
        do_resize=True,
        size={"height": int(image_size), "width": int(image_size)},
        resample=PILImageResampling.BILINEAR,
        do_rescale=True,
        do_normalize=True,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )


__all__ = ["build_image_processor"]
