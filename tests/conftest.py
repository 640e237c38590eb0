"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny batches: with 2 threads on a busy 2-core machine OpenMP spinning made forwards ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_tiny_asl_model(out: Path, seed: int = 0, image_size: int = 32, **config) -> Path:
    """A tiny random MobileNetV2 ASL model (+ processor) whose descriptors differ from image to image."""
    import torch
    from transformers import MobileNetV2Config

    from hf_asl import ASLConfig, ASLModel, build_image_processor

    backbone = MobileNetV2Config(depth_multiplier=0.25, finegrained_output=False, tf_padding=False, min_depth=4)
    torch.manual_seed(seed)
    model = ASLModel(ASLConfig(backbone_config=backbone, descriptor_dim=8, image_size=image_size, **config))
    with torch.no_grad():
        # The default init (std 0.02) shrinks activations to the GeM clamp: every image would look alike.
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
        for _ in range(3):  # train mode: moves the BN statistics away from their init
            model(torch.randn(8, 3, image_size, image_size))
    model.eval().save_pretrained(out)
    build_image_processor(image_size).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mini_ndec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mini-NDEC build (seed 0), made once per test session."""
    from hf_asl.mini_ndec import build_mini_ndec

    out = tmp_path_factory.mktemp("mini_ndec")
    build_mini_ndec(out, size="small", seed=0, progress=False)
    return out
