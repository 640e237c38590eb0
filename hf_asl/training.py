"""ASL training with `accelerate`: PK batches of online copy edits, metric + norm-ratio loss.

The same code runs on CPU, one GPU and many processes (``accelerate launch`` or ``torchrun``):
each process trains on its own identities (the PK sampler is sharded by process), gradients are
averaged by DDP. Every ``checkpoint_every`` steps ``accelerator.save_state`` writes model,
optimizer, scheduler, RNG and sampler state into ``OUT/checkpoints/step_XXXXXX``; ``resume``
continues from the latest one exactly where it stopped. At the end the model, its image
processor and its config (with the norm-ratio threshold calibrated on training copies) are
saved with ``save_pretrained``, next to ``training_summary.json``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .configuration_asl import ASLConfig
from .edits import apply_chain, random_crop
from .errors import InputError
from .losses import build_asl_loss
from .modeling_asl import ASLModel
from .norm_ordering import OrderedViewPairs, held_out_view_pairs, norm_ordering
from .pk_sampler import CROP_AREA_RANGE, NegativePair, PKSampler
from .processing import build_image_processor

# --backbone value for the offline torchvision ImageNet MobileNetV2 start (no hub access needed).
OFFLINE_MOBILENET_V2 = "imagenet-mobilenet-v2"
# --backbone value for a randomly initialised backbone built from `backbone_config` (tests).
RANDOM_BACKBONE = "random"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "training_summary.json"
_CHECKPOINT_NAME = re.compile(r"^step_(\d{6,})$")
# Up to this many training originals are decoded once and kept in memory; beyond, each view
# decodes its original on demand (in the data workers), as 100k NDEC images would not fit.
DECODE_ONCE_LIMIT = 5000
# Calibration copies keep at least this share of the original, as mini-NDEC's test copies do.
MIN_COPY_CONTENT = 0.15


@dataclass
class TrainingConfig:
    """Everything one training run depends on (the CLI flags of ``hf-asl train``).

    The defaults are the demo recipe, sized so that two trainings take about four minutes on a
    2-core CPU (about 1 s per step): MobileNetV2 from ImageNet at 128 px, P=16 x K=4 views plus
    4 hard-negative pairs (80 images a step), 100 steps. The stem and the first eight
    inverted-residual blocks (everything before the 96-channel stage) stay frozen: at full
    resolution they cost most of the backward pass and hold generic filters. Every backbone
    BatchNorm stays in eval mode (ImageNet statistics), as batches per process can be small.
    """

    data_dir: str | Path
    output_dir: str | Path
    steps: int = 100
    p: int = 16
    k: int = 4
    image_size: int = 128
    learning_rate: float = 1e-3
    backbone_learning_rate: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 5
    # None: the ASLConfig default documented by the model (1.0); 0 gives the symmetric baseline.
    norm_ratio_weight: float | None = None
    metric_losses: tuple[str, ...] = ("cosface", "infonce")
    negatives_per_batch: int = 4
    backbone: str = OFFLINE_MOBILENET_V2
    backbone_config: dict | None = None
    descriptor_dim: int = 256
    freeze_backbone_blocks: int = 9
    backbone_bn_eval: bool = True
    mixed_precision: str = "no"
    grad_accum: int = 1
    checkpoint_every: int = 0
    resume: bool = False
    stop_after: int | None = None
    log_with: str = "auto"
    seed: int = 0
    held_out_fraction: float = 0.1
    calibration_keep: float = 0.99
    calibration_identities: int = 200
    data_workers: int | None = None
    dataset_cache_dir: str | None = None
    progress: bool = True
    extra_config: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise InputError on settings that cannot train."""
        checks = [
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (self.stop_after is None or self.stop_after >= 1, f"stop_after must be >= 1, got {self.stop_after}"),
            (0.0 <= self.held_out_fraction < 1.0, f"held_out_fraction must be in [0, 1), got {self.held_out_fraction}"),
            (self.norm_ratio_weight is None or self.norm_ratio_weight >= 0, "norm_ratio_weight must be >= 0"),
            (self.mixed_precision in ("no", "fp16", "bf16"), f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}"),
            (self.log_with in ("auto", "tensorboard", "none"), f"log_with must be auto, tensorboard or none, got {self.log_with!r}"),
            (self.data_workers is None or self.data_workers >= 0, f"data_workers must be >= 0, got {self.data_workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)


# ---- data ----------------------------------------------------------------------------------------


def _decode(data: bytes, max_side: int) -> Image.Image:
    """Decode and shrink to ``max_side``; JPEG draft mode decodes big photos at a fraction of the cost."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (max_side, max_side))
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


class DecodedImages(Sequence):
    """Images of a `datasets` image column, decoded and shrunk so their longer side is ``max_side``.

    Small sets are decoded once up front; large ones on access, from the memory-mapped Arrow
    table, so 100k training images never sit decoded in memory.
    """

    def __init__(self, dataset, column: str, max_side: int, *, progress: bool = False, decode_once_limit: int = DECODE_ONCE_LIMIT):
        import datasets

        self.dataset = dataset.cast_column(column, datasets.Image(decode=False))
        self.column, self.max_side = column, max_side
        self.cache: list[Image.Image] | None = None
        if len(self.dataset) <= decode_once_limit:
            from tqdm.auto import tqdm

            self.cache = [self._load(i) for i in tqdm(range(len(self.dataset)), desc="decode training images", disable=not progress)]

    def _load(self, index: int) -> Image.Image:
        return _decode(self.dataset[index][self.column]["bytes"], self.max_side)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.cache[index] if self.cache is not None else self._load(index)


@dataclass
class TrainingData:
    """Training identities (decoded originals) and hard-negative pairs, with the held-out part split off."""

    train_ids: list[str]
    originals: Sequence[Image.Image]
    negative_pairs: list[NegativePair]
    held_out_ids: list[str]
    held_out_originals: list[Image.Image]
    held_out_negative_pairs: list[NegativePair]


class _Subset(Sequence):
    def __init__(self, images: Sequence[Image.Image], indices: Sequence[int]):
        self.images, self.indices = images, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.images[self.indices[index]]


def _negative_pairs(dataset, max_side: int) -> list[NegativePair]:
    """Decoded hard-negative pairs; the builder names the wider image "a" or "b" (None: neither)."""
    import datasets

    dataset = dataset.cast_column("image_a", datasets.Image(decode=False)).cast_column("image_b", datasets.Image(decode=False))
    return [
        NegativePair(
            image_a=_decode(row["image_a"]["bytes"], max_side),
            image_b=_decode(row["image_b"]["bytes"], max_side),
            kind=row["kind"] or "",
            wider={"a": 0, "b": 1}.get(row["wider"]),
        )
        for row in dataset
    ]


def load_training_data(cfg: TrainingConfig, *, progress: bool = False) -> TrainingData:
    """Read the ``train`` (and, when used, ``negative_pairs``) configs through the NDEC builder and
    hold out ``held_out_fraction`` of the identities and pairs (seeded) for the norm-ordering check."""
    from .ndec import load_ndec

    # Originals keep twice the training side so that small crops are not blown up from a few pixels.
    max_side = 2 * cfg.image_size
    train = load_ndec("train", data_dir=str(cfg.data_dir), cache_dir=cfg.dataset_cache_dir)
    if len(train) == 0:
        raise InputError("no training images", path=cfg.data_dir)
    ids = list(train["image_id"])
    images = DecodedImages(train, "image", max_side, progress=progress)
    pairs: list[NegativePair] = []
    if cfg.negatives_per_batch > 0:
        pairs = _negative_pairs(load_ndec("negative_pairs", data_dir=str(cfg.data_dir), cache_dir=cfg.dataset_cache_dir), max_side)
    rng = np.random.default_rng([cfg.seed, 3])
    order = rng.permutation(len(ids))
    n_held = round(cfg.held_out_fraction * len(ids))
    held, kept = sorted(order[:n_held]), sorted(order[n_held:])
    pair_order = rng.permutation(len(pairs))
    n_held_pairs = round(cfg.held_out_fraction * len(pairs))
    return TrainingData(
        train_ids=[ids[i] for i in kept],
        originals=_Subset(images, kept),
        negative_pairs=[pairs[i] for i in sorted(pair_order[n_held_pairs:])],
        held_out_ids=[ids[i] for i in held],
        held_out_originals=[images[i] for i in held],
        held_out_negative_pairs=[pairs[i] for i in sorted(pair_order[:n_held_pairs])],
    )


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is micro-step ``i``'s batch, processed: a pure function of the step, so data
    workers can prefetch ahead and a resumed run sees the very same batches."""

    def __init__(self, sampler: PKSampler, processor):
        self.sampler, self.processor = sampler, processor

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        batch = self.sampler.batch(step)
        pixels = self.processor(batch.images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": batch.labels, "content": batch.content, "ordered_pairs": batch.ordered_pairs}


# ---- model ---------------------------------------------------------------------------------------


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's blocks in input-to-output order: its stem, then each entry of its block
    lists (MobileNetV2 ``layer``, ResNet ``encoder.stages``), then any further layer with weights."""
    blocks: list[nn.Module] = []
    for child in backbone.children():
        if isinstance(child, nn.ModuleList):
            blocks.extend(child)
        elif any(isinstance(grandchild, nn.ModuleList) for grandchild in child.children()):
            for grandchild in child.children():
                blocks.extend(grandchild if isinstance(grandchild, nn.ModuleList) else [grandchild])
        elif any(True for _ in child.parameters()):
            blocks.append(child)
    return blocks


def build_model(cfg: TrainingConfig) -> ASLModel:
    """The ASL model to train: offline ImageNet MobileNetV2, a random backbone, or a pretrained
    transformers backbone (a Hub id such as ``microsoft/resnet-50`` or a local folder)."""
    kwargs = dict(cfg.extra_config)
    kwargs.update(image_size=cfg.image_size, descriptor_dim=cfg.descriptor_dim, metric_losses=list(cfg.metric_losses))
    if cfg.norm_ratio_weight is not None:
        kwargs["norm_ratio_weight"] = cfg.norm_ratio_weight
    if cfg.backbone == OFFLINE_MOBILENET_V2:
        from .pretrained_mobilenet import asl_model_from_imagenet_mobilenet_v2

        return asl_model_from_imagenet_mobilenet_v2(ASLConfig(**kwargs))
    if cfg.backbone == RANDOM_BACKBONE:
        return ASLModel(ASLConfig(backbone_config=cfg.backbone_config, **kwargs))
    try:
        return ASLModel.from_pretrained_backbone(cfg.backbone, **kwargs)
    except OSError as err:
        raise InputError(f"cannot load backbone {cfg.backbone!r} (a Hub id needs network access): {err}") from err


class TrainingModule(nn.Module):
    """Model and loss as one module, so one DDP wrapper averages the gradients of both (the
    CosFace class centres are parameters too) and one ``save_state`` checkpoints both."""

    def __init__(self, model: ASLModel, loss: nn.Module, *, frozen_blocks: int = 0, backbone_bn_eval: bool = True):
        super().__init__()
        self.model, self.loss = model, loss
        blocks = backbone_blocks(model.backbone)
        if frozen_blocks > len(blocks):
            raise InputError(f"cannot freeze {frozen_blocks} blocks: the backbone has {len(blocks)}")
        self._frozen = blocks[:frozen_blocks]
        for block in self._frozen:
            block.requires_grad_(False)
        self._eval_norms = [
            m for m in (model.backbone.modules() if backbone_bn_eval else (b for f in self._frozen for b in f.modules()))
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]

    def train(self, mode: bool = True) -> TrainingModule:
        super().train(mode)
        # Frozen or eval-mode BatchNorms keep their (ImageNet) running statistics.
        for norm in self._eval_norms:
            norm.eval()
        return self

    def forward(self, pixel_values, labels, content, ordered_pairs) -> dict[str, torch.Tensor]:
        out = self.model(pixel_values)
        return self.loss(out.descriptor, out.norm, labels, content, ordered_pairs=ordered_pairs)


def parameter_groups(module: TrainingModule, cfg: TrainingConfig) -> list[dict]:
    """Trainable backbone weights at ``backbone_learning_rate``; head and loss weights at ``learning_rate``.
    No weight decay on norms, biases and GeM's exponent."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.startswith("model.backbone.") else "head"
        groups.setdefault((part, param.ndim > 1), []).append(param)
    lr = {"backbone": cfg.backbone_learning_rate, "head": cfg.learning_rate}
    return [
        {"params": params, "lr": lr[part], "weight_decay": cfg.weight_decay if decay else 0.0}
        for (part, decay), params in sorted(groups.items())
    ]


# ---- checkpoints ---------------------------------------------------------------------------------


def checkpoint_path(output_dir: Path, step: int) -> Path:
    return output_dir / CHECKPOINT_DIR / f"step_{step:06d}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The finished checkpoint with the highest step (partial ones never carry the final name)."""
    root = output_dir / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT_NAME.match(p.name)) and p.is_dir()] if root.is_dir() else []
    return max(found)[1] if found else None


def save_checkpoint(accelerator, output_dir: Path, step: int) -> Path:
    """``save_state`` into a temporary folder renamed when every process is done, so a run killed
    mid-save leaves the previous checkpoint as the latest."""
    final = checkpoint_path(output_dir, step)
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    accelerator.wait_for_everyone()
    return final


class LossHistory:
    """Per-step losses, each component averaged over processes; checkpointed so that a resumed
    run's summary covers every step."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def total(self) -> list[float]:
        return [record["loss"] for record in self.steps]

    def mean(self, part: slice) -> dict[str, float]:
        """Mean of each component over ``steps[part]``."""
        chosen = self.steps[part]
        return {name: float(np.mean([r[name] for r in chosen])) for name in chosen[0]} if chosen else {}

    def state_dict(self) -> dict:
        return {"steps": [dict(record) for record in self.steps]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = [dict(record) for record in state["steps"]]


# ---- calibration ---------------------------------------------------------------------------------


def training_copy_pairs(originals: Sequence[Image.Image], *, n_identities: int, seed: int) -> tuple[list[Image.Image], np.ndarray]:
    """``(images, pairs)`` for up to ``n_identities`` originals: the original plus two copies made
    the way benchmark copies are (a random chain of every registered edit, pasting onto other
    originals included), the second after a first crop; ``pairs`` are (copy, original) rows.
    Copies keeping less than ``MIN_COPY_CONTENT`` of the original are redrawn."""
    rng = np.random.default_rng([seed, 4])
    chosen = sorted(rng.choice(len(originals), size=min(n_identities, len(originals)), replace=False))
    images: list[Image.Image] = []
    pairs: list[tuple[int, int]] = []
    for index in chosen:
        original = originals[int(index)]
        start = len(images)
        images.append(original)
        for first_crop in (False, True):
            for _ in range(20):
                image, fraction = original, 1.0
                if first_crop:
                    image, _, fraction = random_crop(original, rng, area_range=CROP_AREA_RANGE)
                copy = apply_chain(image, rng, backgrounds=originals)
                if fraction * copy.content_fraction >= MIN_COPY_CONTENT:
                    break
            pairs.append((len(images), start))
            images.append(copy.image)
    return images, np.asarray(pairs, dtype=np.int64)


def calibrate_threshold(model, processor, originals: Sequence[Image.Image], *, n_identities: int, keep: float, seed: int) -> dict:
    """Norm-ratio threshold keeping ``keep`` of training copies (‖copy‖ / ‖original‖), and what it drops."""
    from .norm_ordering import compute_norms
    from .scoring import calibrate_ratio_threshold, dropped_share

    images, pairs = training_copy_pairs(originals, n_identities=n_identities, seed=seed)
    norms = compute_norms(model, processor, images)
    ratios = norms[pairs[:, 0]] / norms[pairs[:, 1]]
    threshold = calibrate_ratio_threshold(ratios, keep=keep)
    return {
        "threshold": threshold,
        "keep": keep,
        "n_copy_pairs": len(ratios),
        "dropped_share": dropped_share(ratios, threshold),
        "dropped_share_at_1": dropped_share(ratios, 1.0),
        "ratio_median": float(np.median(ratios)),
    }


# ---- the loop ------------------------------------------------------------------------------------


def training_step(accelerator, module: nn.Module, optimizer, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One micro-step: forward, backward and, when gradients sync, the optimizer step. Returns the loss parts."""
    batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}
    with accelerator.accumulate(module):
        parts = module(**batch)
        accelerator.backward(parts["loss"])
        optimizer.step()
        optimizer.zero_grad()
    return parts


def default_data_workers(num_processes: int = 1) -> int:
    """Data workers per process: none with two CPUs or fewer per process, where a worker would
    preempt torch's own threads (measured slower than making views in the loop), else up to 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cpus // max(1, num_processes)
    return 0 if per_process <= 2 else min(4, per_process // 2)


def _tracker_config(cfg: TrainingConfig) -> dict:
    """Hyper-parameters as trackers accept them (scalars and strings only)."""
    values = {}
    for key, value in asdict(cfg).items():
        values[key] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)
    return values


def _log_with(choice: str) -> str | None:
    if choice == "none":
        return None
    import importlib.util

    installed = importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None
    if choice == "tensorboard" and not installed:
        raise InputError("--log-with tensorboard needs the tensorboard package (pip install tensorboard)")
    return "tensorboard" if installed else None


def train_asl(cfg: TrainingConfig) -> Path:
    """Train an ASL model as ``cfg`` says; returns the output folder.

    The folder then holds the ``save_pretrained`` model (safetensors), its image processor and
    config (``score_threshold`` calibrated on training copies, details in
    ``score_threshold_calibration``), ``training_summary.json`` and, when enabled, the
    checkpoints and tensorboard logs. With ``stop_after`` the run checkpoints and returns after
    that many steps of this session, to be continued with ``resume``.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from .accelerators import make_accelerator

    cfg.validate()
    output_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=_log_with(cfg.log_with),
        project_dir=str(output_dir),
        # The schedule counts optimizer steps of the global batch: step it ourselves, once per step.
        step_scheduler_with_optimizer=False,
    )
    main = accelerator.is_main_process
    progress = cfg.progress and accelerator.is_local_main_process
    resume_from = latest_checkpoint(output_dir)
    if resume_from is not None and not cfg.resume:
        raise InputError("holds checkpoints of an earlier run: pass --resume to continue it, or choose another output folder", path=output_dir)
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)

    with accelerator.main_process_first():
        data = load_training_data(cfg, progress=progress)
    sampler = PKSampler(
        data.originals, cfg.p, cfg.k,
        negative_pairs=data.negative_pairs, negatives_per_batch=cfg.negatives_per_batch,
        seed=cfg.seed, num_processes=accelerator.num_processes, process_index=accelerator.process_index,
    )
    processor = build_image_processor(cfg.image_size)
    with accelerator.main_process_first():  # a Hub backbone downloads once
        model = build_model(cfg)
    loss = build_asl_loss(model.config, n_classes=sampler.num_classes)
    module = TrainingModule(model, loss, frozen_blocks=cfg.freeze_backbone_blocks, backbone_bn_eval=cfg.backbone_bn_eval)

    held_out = held_out_view_pairs(data.held_out_originals, data.held_out_negative_pairs, tolerance=model.config.content_tolerance, seed=cfg.seed)
    ordering_before = _ordering(model, processor, held_out) if main else None

    optimizer = torch.optim.AdamW(parameter_groups(module, cfg))
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps // 2), cfg.steps)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    history = LossHistory()
    accelerator.register_for_checkpointing(sampler, history)

    if cfg.resume and resume_from is not None:
        accelerator.load_state(str(resume_from))
        accelerator.wait_for_everyone()
        if main:
            print(f"resumed from {resume_from} at step {sampler.step // cfg.grad_accum}")
    start = sampler.step // cfg.grad_accum
    end = cfg.steps if cfg.stop_after is None else min(cfg.steps, start + cfg.stop_after)
    accelerator.init_trackers("logs", config=_tracker_config(cfg))

    module.train()
    workers = default_data_workers(accelerator.num_processes) if cfg.data_workers is None else cfg.data_workers
    micro_steps = range(start * cfg.grad_accum, end * cfg.grad_accum)
    loader = torch.utils.data.DataLoader(
        StepBatches(sampler, processor),
        batch_size=None,
        sampler=micro_steps,
        num_workers=workers,
        pin_memory=accelerator.device.type == "cuda",
        # The loader's own generator: creating it must not draw from the global RNG a checkpoint restores.
        generator=torch.Generator().manual_seed(cfg.seed),
        prefetch_factor=2 if workers else None,
    )
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not progress)
    step, step_losses, step_seconds = start, [], []
    started = last = time.perf_counter()
    for micro_step, batch in zip(micro_steps, loader):
        parts = training_step(accelerator, module, optimizer, batch)
        sampler.step = micro_step + 1
        step_losses.append(torch.stack([parts[name].detach().float() for name in sorted(parts)]))
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        step += 1
        now = time.perf_counter()
        step_seconds.append(now - last)
        last = now
        means = accelerator.reduce(torch.stack(step_losses).mean(0), reduction="mean").tolist()
        step_losses = []
        logged = dict(zip(sorted(parts), means))
        history.steps.append(logged)
        accelerator.log({**logged, "lr": scheduler.get_last_lr()[-1]}, step=step)
        bar.update(1)
        bar.set_postfix(loss=f"{logged['loss']:.3f}", norm_ratio=f"{logged['norm_ratio']:.3f}")
        # A stopped run always checkpoints, or --resume would have nothing to continue from.
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == end < cfg.steps:
            save_checkpoint(accelerator, output_dir, step)
    bar.close()
    elapsed = time.perf_counter() - started
    accelerator.wait_for_everyone()

    if end < cfg.steps:
        accelerator.end_training()
        if main:
            print(f"stopped after step {end} of {cfg.steps}; continue with --resume")
        return output_dir

    if main:
        trained = accelerator.unwrap_model(module).model
        ordering_after = _ordering(trained, processor, held_out)
        calibration = calibrate_threshold(
            trained, processor, data.originals, n_identities=cfg.calibration_identities, keep=cfg.calibration_keep, seed=cfg.seed
        )
        trained.config.score_threshold = calibration["threshold"]
        trained.config.score_threshold_calibration = calibration
        trained.save_pretrained(output_dir, safe_serialization=True)
        processor.save_pretrained(output_dir)
        summary = {
            "steps": cfg.steps,
            "steps_this_run": end - start,
            "resumed_from_step": start or None,
            "processes": accelerator.num_processes,
            "global_batch": sampler.rows_per_batch * accelerator.num_processes * cfg.grad_accum,
            "loss_first": history.steps[0]["loss"] if history.steps else None,
            "loss_last": history.steps[-1]["loss"] if history.steps else None,
            "losses_first5_mean": history.mean(slice(0, 5)),
            "losses_last5_mean": history.mean(slice(-5, None)),
            "losses": history.total(),
            "seconds_per_step": elapsed / max(1, end - start),
            "step_seconds": step_seconds,
            "calibration": calibration,
            "norm_ordering_before": ordering_before,
            "norm_ordering_after": ordering_after,
            "training_identities": len(data.train_ids),
            "training_negative_pairs": len(data.negative_pairs),
            "held_out_identities": data.held_out_ids,
            "config": json.loads(json.dumps(asdict(cfg), default=str)),
        }
        (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def _ordering(model, processor, held_out: OrderedViewPairs) -> dict | None:
    return norm_ordering(model, processor, held_out) if len(held_out) else None


__all__ = [
    "MIN_COPY_CONTENT",
    "OFFLINE_MOBILENET_V2",
    "RANDOM_BACKBONE",
    "DecodedImages",
    "StepBatches",
    "TrainingConfig",
    "TrainingData",
    "TrainingModule",
    "backbone_blocks",
    "build_model",
    "calibrate_threshold",
    "default_data_workers",
    "latest_checkpoint",
    "load_training_data",
    "parameter_groups",
    "train_asl",
    "training_copy_pairs",
    "training_step",
]
