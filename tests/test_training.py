"""ASL training with accelerate on the small mini-NDEC: loss goes down, resume is exact, the saved
folder loads with the Auto classes, two torchrun processes train one model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_asl.errors import InputError
from hf_asl.training import (
    RANDOM_BACKBONE,
    StepBatches,
    TrainingConfig,
    TrainingModule,
    build_model,
    load_training_data,
    train_asl,
)

REPO = Path(__file__).resolve().parents[1]
TINY_RESNET = {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}


def _tiny(data_dir: Path, out: Path, **overrides) -> TrainingConfig:
    cfg = TrainingConfig(
        data_dir=data_dir, output_dir=out, steps=4, p=4, k=3, image_size=32, learning_rate=1e-2,
        backbone_learning_rate=1e-2, backbone=RANDOM_BACKBONE, backbone_config=TINY_RESNET, descriptor_dim=16,
        freeze_backbone_blocks=1, negatives_per_batch=2, checkpoint_every=2, log_with="none", data_workers=0,
        calibration_identities=8, progress=False,
    )
    return replace(cfg, **overrides)


@pytest.fixture(scope="module")
def uninterrupted(mini_ndec_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingConfig:
    cfg = _tiny(mini_ndec_dir, tmp_path_factory.mktemp("uninterrupted"))
    train_asl(cfg)
    return cfg


def _module(cfg: TrainingConfig, n_classes: int) -> TrainingModule:
    from accelerate.utils import set_seed

    from hf_asl.losses import build_asl_loss

    set_seed(cfg.seed)
    model = build_model(cfg)
    return TrainingModule(model, build_asl_loss(model.config, n_classes=n_classes), frozen_blocks=cfg.freeze_backbone_blocks)


def test_two_steps_lower_the_loss_on_a_fixed_batch(uninterrupted: TrainingConfig):
    from hf_asl.pk_sampler import PKSampler
    from hf_asl.processing import build_image_processor

    cfg = uninterrupted
    data = load_training_data(cfg)
    sampler = PKSampler(data.originals, cfg.p, cfg.k, negative_pairs=data.negative_pairs,
                        negatives_per_batch=cfg.negatives_per_batch, seed=cfg.seed)
    batch = StepBatches(sampler, build_image_processor(cfg.image_size))[0]
    before = _module(cfg, sampler.num_classes).train()
    after = _module(cfg, sampler.num_classes).train()
    # The step-2 checkpoint holds model and loss weights after two optimizer steps.
    after.load_state_dict(load_file(Path(cfg.output_dir) / "checkpoints" / "step_000002" / "model.safetensors"))
    with torch.no_grad():
        loss_before, loss_after = before(**batch)["loss"].item(), after(**batch)["loss"].item()
    assert loss_after < loss_before


def test_resume_after_interrupt_gives_the_same_weights(uninterrupted: TrainingConfig, tmp_path: Path):
    interrupted = replace(uninterrupted, output_dir=tmp_path / "resumed", checkpoint_every=0)
    train_asl(replace(interrupted, stop_after=2))
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    assert [p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()] == ["step_000002"]
    with pytest.raises(InputError, match="--resume"):
        train_asl(interrupted)
    train_asl(replace(interrupted, resume=True))

    expected = load_file(Path(uninterrupted.output_dir) / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name
    summaries = [json.loads((Path(d) / "training_summary.json").read_text()) for d in (uninterrupted.output_dir, tmp_path / "resumed")]
    assert summaries[0]["losses"] == summaries[1]["losses"] and len(summaries[1]["losses"]) == 4
    assert summaries[1]["resumed_from_step"] == 2


def test_saved_folder_loads_with_auto_classes(uninterrupted: TrainingConfig):
    from transformers import AutoImageProcessor, AutoModel

    out = Path(uninterrupted.output_dir)
    summary = json.loads((out / "training_summary.json").read_text())
    model = AutoModel.from_pretrained(out)
    processor = AutoImageProcessor.from_pretrained(out)
    assert type(model).__name__ == "ASLModel" and not list(out.glob("*.bin"))
    assert model.config.image_size == 32 and processor.size == {"height": 32, "width": 32}
    assert model.config.score_threshold == pytest.approx(summary["calibration"]["threshold"])
    assert model.config.score_threshold_calibration["keep"] == 0.99
    assert summary["steps"] == 4 and len(summary["step_seconds"]) == 4
    assert 0.0 <= summary["norm_ordering_after"]["all"] <= 1.0 and summary["norm_ordering_after"]["n_pairs"] > 0
    with torch.no_grad():
        output = model(torch.zeros(2, 3, 32, 32))
    assert output.descriptor.shape == (2, 16) and output.norm.shape == (2,)


def test_cli_defaults_are_the_training_config_defaults(tmp_path: Path):
    from hf_asl.cli import build_parser
    from hf_asl.commands.train import config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert config_from_args(args) == TrainingConfig(data_dir="d", output_dir="o")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_torchrun_processes_train_and_save_once(mini_ndec_dir: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    command = [
        "torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "scripts" / "train.py"),
        "--data", str(mini_ndec_dir), "--out", str(out), "--steps", "2", "--p", "2", "--k", "2", "--image-size", "32",
        "--negatives-per-batch", "1", "--checkpoint-every", "1", "--data-workers", "0", "--log-with", "none", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["processes"] == 2 and summary["global_batch"] == 2 * (2 * 2 + 2 * 1 * 2)
    # One model, saved once; every process wrote its own RNG state into the checkpoints.
    assert done.stdout.count("model saved to") == 1
    assert sorted(p.name for p in (out / "checkpoints" / "step_000001").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
    assert (out / "model.safetensors").is_file()

