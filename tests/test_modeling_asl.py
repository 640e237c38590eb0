"""ASL model: config, forward, Auto registration, save/load (local and remote code), pipeline, processor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    MobileNetV2Config,
    ResNetConfig,
    ResNetModel,
    pipeline,
)

import hf_asl
from hf_asl import ASLConfig, ASLModel, build_image_processor
from hf_asl.modeling_asl import GeMPooling

IMAGE_SIZE = 32
DIM = 8


def tiny_resnet_config(**kwargs) -> ASLConfig:
    backbone = ResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], embedding_size=8, layer_type="basic")
    return ASLConfig(backbone_config=backbone, descriptor_dim=DIM, image_size=IMAGE_SIZE, **kwargs)


def photo(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, ASLModel]:
    """A trained-looking tiny model (non-trivial BN-neck statistics) saved with its processor."""
    torch.manual_seed(0)
    model = ASLModel(tiny_resnet_config())
    with torch.no_grad():
        model(torch.randn(6, 3, IMAGE_SIZE, IMAGE_SIZE))  # train mode: moves the BN running statistics
        model.pooling.p.fill_(3.7)  # a learned p must survive loading, not be re-initialised to gem_p
    model.eval()
    out = tmp_path_factory.mktemp("asl_model")
    model.save_pretrained(out)
    build_image_processor(IMAGE_SIZE).save_pretrained(out)
    return out, model


def test_output_fields_norm_and_tuple_form():
    torch.manual_seed(0)
    model = ASLModel(tiny_resnet_config()).eval()
    x = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    out = model(x)
    assert list(out.keys()) == ["descriptor", "norm", "embedding"]
    assert out.descriptor.shape == (3, DIM) and out.norm.shape == (3,) and out.embedding.shape == (3, DIM)
    torch.testing.assert_close(out.descriptor.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out.norm, out.embedding.norm(dim=1))
    torch.testing.assert_close(out.descriptor * out.norm[:, None], out.embedding)
    as_tuple = model(x, return_dict=False)
    assert len(as_tuple) == 3
    torch.testing.assert_close(as_tuple[1], out.norm)
    # The image-feature-extraction pipeline returns element 0: it must be the descriptor.
    torch.testing.assert_close(out[0], out.descriptor)


def test_config_round_trip_and_validation(tmp_path):
    config = tiny_resnet_config(norm_ratio_weight=0.5, metric_losses=["infonce"])
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "asl" and written["backbone_config"]["model_type"] == "resnet"
    loaded = ASLConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.backbone_config, ResNetConfig)
    assert loaded.backbone_config.hidden_sizes == [8, 16]
    assert (loaded.norm_ratio_weight, loaded.metric_losses, loaded.descriptor_dim) == (0.5, ["infonce"], DIM)
    assert ASLConfig(backbone_config={"model_type": "resnet", "depths": [1, 1, 1, 1]}).backbone_config.depths == [
        1, 1, 1, 1]
    with pytest.raises(ValueError, match="model_type"):
        ASLConfig(backbone_config={"depths": [1]})
    with pytest.raises(ValueError, match="metric_losses"):
        ASLConfig(metric_losses=["triplet"])


def test_default_config_is_torchvision_mobilenet_v2():
    config = ASLConfig()
    backbone = config.backbone_config
    assert isinstance(backbone, MobileNetV2Config)
    assert (backbone.tf_padding, backbone.layer_norm_eps, config.image_size, config.score_threshold) == (
        False, 1e-5, 256, 1.0)


def test_mobilenet_backbone_width_and_batchnorm_momentum():
    backbone = MobileNetV2Config(depth_multiplier=0.35, tf_padding=False)
    model = ASLModel(ASLConfig(backbone_config=backbone, descriptor_dim=DIM)).eval()
    assert model.projection.in_features == 1280  # finegrained_output keeps the last conv at 1280
    assert model(torch.randn(2, 3, 64, 64)).descriptor.shape == (2, DIM)
    momenta = {m.momentum for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
    kept = ASLModel(ASLConfig(backbone_config=backbone, descriptor_dim=DIM, backbone_batchnorm_momentum=None))
    assert {m.momentum for m in kept.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.997}


def test_gem_pooling_limits_and_learnable_p():
    features = torch.rand(2, 4, 3, 5) + 0.1
    torch.testing.assert_close(GeMPooling(p=1.0)(features), features.mean(dim=(2, 3)))
    torch.testing.assert_close(GeMPooling(p=200.0)(features), features.amax(dim=(2, 3)), rtol=0.02, atol=0)
    gem = GeMPooling(p=3.0)
    gem(features).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0


def test_registration_on_import():
    assert AutoConfig.for_model("asl").__class__ is ASLConfig
    assert type(AutoModel.from_config(tiny_resnet_config())) is ASLModel
    assert ASLConfig._auto_class == "AutoConfig" and ASLModel._auto_class == "AutoModel"
    assert hf_asl.ASLModel is ASLModel


def test_save_pretrained_writes_code_safetensors_and_auto_map(saved):
    out, _ = saved
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "configuration_asl.py", "modeling_asl.py",
            "preprocessor_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    auto_map = json.loads((out / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_asl.ASLConfig", "AutoModel": "modeling_asl.ASLModel"}
    # The copied code must stand alone: no import of the hf_asl package.
    code = (out / "modeling_asl.py").read_text() + (out / "configuration_asl.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+hf_asl", code, flags=re.MULTILINE)
    assert "from .configuration_asl import ASLConfig" in code


def test_auto_model_from_pretrained_with_package_imported(saved):
    out, model = saved
    loaded = AutoModel.from_pretrained(out)
    assert type(loaded) is ASLModel and not loaded.training
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).embedding, model(x).embedding)
    assert loaded.pooling.p.item() == pytest.approx(3.7)


def test_processor_round_trip_without_crop(saved, tmp_path):
    out, _ = saved
    processor = build_image_processor(IMAGE_SIZE)
    loaded = AutoImageProcessor.from_pretrained(out)
    wide = np.zeros((20, 80, 3), dtype=np.uint8)
    wide[:, :8] = 255  # a white stripe at the left edge: a centre crop would cut it away
    images = [Image.fromarray(wide), photo(1).convert("L"), photo(2)]
    expected = processor(images=images, return_tensors="pt").pixel_values
    got = loaded(images=images, return_tensors="pt").pixel_values
    assert got.shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    white = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(got[0, :, IMAGE_SIZE // 2, 0], white, rtol=0, atol=1e-5)


def test_pipeline_returns_descriptor(saved):
    out, model = saved
    extractor = pipeline("image-feature-extraction", model=str(out), trust_remote_code=True)
    image = photo(3)
    features = extractor(image, return_tensors=True)
    assert features.shape == (1, DIM)
    pixels = build_image_processor(IMAGE_SIZE)(images=image, return_tensors="pt").pixel_values
    with torch.no_grad():
        torch.testing.assert_close(features, model(pixels).descriptor)


def test_from_pretrained_backbone_local_folder(tmp_path):
    backbone_config = ResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], embedding_size=8, layer_type="basic",
                                   num_labels=1000)
    backbone = ResNetModel(backbone_config)
    backbone.save_pretrained(tmp_path)
    model = ASLModel.from_pretrained_backbone(str(tmp_path), descriptor_dim=DIM)
    assert model.config.descriptor_dim == DIM and isinstance(model.config.backbone_config, ResNetConfig)
    assert model.config.backbone_config.hidden_sizes == [8, 16]
    assert len(model.config.backbone_config.id2label) == 2  # the checkpoint's 1000 labels are not carried over
    for name, tensor in backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[name], tensor)


REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys

    class HideHfAsl:
        # Whatever way hf-asl is installed (editable finder, site-packages, PYTHONPATH), refuse it.
        def find_spec(self, name, path=None, target=None):
            if name == "hf_asl" or name.startswith("hf_asl."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, HideHfAsl())
    try:
        import hf_asl  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        sys.exit("hf_asl is importable: the remote-code check would prove nothing")

    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModel, pipeline

    folder, inputs, expected = sys.argv[1], sys.argv[2], sys.argv[3]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    assert not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(np.load(inputs)))
    np.testing.assert_allclose(out.embedding.numpy(), np.load(expected), rtol=1e-5, atol=1e-6)
    extractor = pipeline("image-feature-extraction", model=folder, trust_remote_code=True)
    features = extractor(Image.new("RGB", (40, 30), (200, 30, 60)), return_tensors=True)
    print("OK", tuple(features.shape))
    """
)


def test_fresh_process_loads_with_remote_code_only(saved, tmp_path):
    out, model = saved
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        expected = model(x).embedding.numpy()
    np.save(tmp_path / "inputs.npy", x.numpy())
    np.save(tmp_path / "expected.npy", expected)
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, str(script), str(out), str(tmp_path / "inputs.npy"), str(tmp_path / "expected.npy")],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK (1, {DIM})" in result.stdout
