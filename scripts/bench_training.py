"""Benchmark ASL training: step time against a bare torch loop, and whether the norm learns content.

1. Same model, loss and pre-made batches, timed step by step in alternation so that load from
   other processes hits both alike: a bare torch loop (forward, backward, optimizer step) against
   the accelerate step `train_asl` runs (`training_step`: prepared model and optimizer,
   `accumulate`, `accelerator.backward`). Goal: overhead <= 10%.
2. The online data cost: seconds to make one batch of edited views and process it.
3. `train_asl` with the same recipe for --steps steps: its median step (data included) and,
   from its summary, the share of held-out (wider, narrower) view pairs whose norms are ordered
   correctly before and after training, the losses and the calibrated threshold.

    python scripts/bench_training.py                 # builds the default mini-NDEC in a temp dir
    python scripts/bench_training.py --data DIR --steps 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from hf_asl.losses import build_asl_loss
from hf_asl.pk_sampler import PKSampler
from hf_asl.processing import build_image_processor
from hf_asl.training import (
    StepBatches,
    TrainingConfig,
    TrainingModule,
    build_model,
    load_training_data,
    parameter_groups,
    train_asl,
    training_step,
)


def _seconds(step, batch) -> float:
    start = time.perf_counter()
    step(batch)
    return time.perf_counter() - start


def loop_seconds(cfg: TrainingConfig, rounds: int, steps_per_round: int) -> tuple[float, float, float, float]:
    """Medians of (bare step, accelerate step, accelerate / bare, making one batch), in seconds.

    Bare and accelerate steps alternate batch by batch, so load from other processes on a
    shared machine hits both alike; the ratio is taken pair by pair.
    """
    from accelerate import Accelerator

    data = load_training_data(cfg)
    sampler = PKSampler(data.originals, cfg.p, cfg.k, negative_pairs=data.negative_pairs,
                        negatives_per_batch=cfg.negatives_per_batch, seed=cfg.seed)
    maker = StepBatches(sampler, build_image_processor(cfg.image_size))
    making = [_seconds(lambda step: maker[step], step) for step in range(steps_per_round)]
    batches = [maker[step] for step in range(steps_per_round)]

    def module_and_optimizer():
        torch.manual_seed(cfg.seed)
        model = build_model(cfg)
        module = TrainingModule(model, build_asl_loss(model.config, n_classes=sampler.num_classes),
                                frozen_blocks=cfg.freeze_backbone_blocks, backbone_bn_eval=cfg.backbone_bn_eval)
        return module.train(), torch.optim.AdamW(parameter_groups(module, cfg))

    bare_module, bare_optimizer = module_and_optimizer()

    def bare_step(batch):
        bare_module(**batch)["loss"].backward()
        bare_optimizer.step()
        bare_optimizer.zero_grad()

    accelerator = Accelerator(cpu=not torch.accelerator.is_available(), mixed_precision=cfg.mixed_precision)
    module, optimizer = accelerator.prepare(*module_and_optimizer())
    module.train()

    def accelerate_step(batch):
        training_step(accelerator, module, optimizer, batch)

    bare_step(batches[0])  # warm-up: first calls allocate and pick kernels
    accelerate_step(batches[0])
    bare, accelerated = [], []
    for _ in range(rounds):
        for batch in batches:
            bare.append(_seconds(bare_step, batch))
            accelerated.append(_seconds(accelerate_step, batch))
    ratios = [a / b for a, b in zip(accelerated, bare)]
    return statistics.median(bare), statistics.median(accelerated), statistics.median(ratios), statistics.median(making)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="mini-NDEC or NDEC folder (default: build the default mini-NDEC)")
    parser.add_argument("--steps", type=int, help="training steps (default: the demo recipe's)")
    parser.add_argument("--p", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--freeze-blocks", type=int)
    parser.add_argument("--data-workers", type=int)
    parser.add_argument("--norm-ratio-weight", type=float)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--steps-per-round", type=int, default=5)
    parser.add_argument("--skip-steps", type=int, default=3, help="first training steps left out of the timing")
    parser.add_argument("--out", help="keep the trained model here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data
        if data_dir is None:
            from hf_asl.mini_ndec import build_mini_ndec

            data_dir = str(Path(tmp) / "mini_ndec")
            started = time.perf_counter()
            build_mini_ndec(data_dir, size="default", seed=0)
            print(f"built the default mini-NDEC in {time.perf_counter() - started:.0f} s")
        cfg = TrainingConfig(data_dir=data_dir, output_dir=args.out or str(Path(tmp) / "model"), log_with="none")
        overrides = {"steps": args.steps, "p": args.p, "k": args.k, "image_size": args.image_size,
                     "freeze_backbone_blocks": args.freeze_blocks, "data_workers": args.data_workers,
                     "norm_ratio_weight": args.norm_ratio_weight}
        cfg = replace(cfg, **{key: value for key, value in overrides.items() if value is not None})

        bare, accelerated, ratio, making = loop_seconds(cfg, args.rounds, args.steps_per_round)
        started = time.perf_counter()
        train_asl(cfg)
        wall = time.perf_counter() - started
        summary = json.loads((Path(cfg.output_dir) / "training_summary.json").read_text())
        trained = statistics.median(summary["step_seconds"][args.skip_steps:] or summary["step_seconds"])

        print(f"recipe: P={cfg.p} K={cfg.k} + {cfg.negatives_per_batch} negative pairs, {cfg.image_size} px, "
              f"{cfg.freeze_backbone_blocks} frozen blocks, {summary['global_batch']} images/step, {cfg.steps} steps")
        print(f"bare torch loop        {bare:.3f} s/step")
        print(f"accelerate step        {accelerated:.3f} s/step   overhead {ratio - 1:+.1%} (median of paired steps, same batches)")
        print(f"making one batch       {making:.3f} s (edited views + image processor)")
        print(f"train_asl (median)     {trained:.3f} s/step   vs bare {trained / bare - 1:+.1%} (online views included)")
        print(f"train_asl wall         {wall:.1f} s ({summary['seconds_per_step']:.3f} s/step over the loop)")
        first, last = summary["losses_first5_mean"], summary["losses_last5_mean"]
        print("loss, first/last 5    " + ", ".join(f"{name} {first[name]:.3f} -> {last[name]:.3f}" for name in first))
        before, after = summary["norm_ordering_before"], summary["norm_ordering_after"]
        for key in ("all", "views", "wider_view"):
            if before and key in before:
                n = before["n_pairs"] if key == "all" else before[f"n_{key}"]
                print(f"norm ordering {key:<9}{before[key]:.3f} -> {after[key]:.3f}  ({n} held-out pairs)")
        calibration = summary["calibration"]
        print(f"threshold              {calibration['threshold']:.3f} keeps {calibration['keep']:.0%} of "
              f"{calibration['n_copy_pairs']} training copies (threshold 1 would drop {calibration['dropped_share_at_1']:.1%})")


if __name__ == "__main__":
    main()
