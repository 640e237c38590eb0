"""`hf-asl train`: train an ASL model on mini-NDEC or NDEC with `accelerate`.

Runs as is on CPU or one GPU; for several processes start it through `accelerate launch
scripts/train.py ...` (or `torchrun --nproc_per_node N scripts/train.py ...`). The output folder
gets the model, its image processor and config (`from_pretrained`-ready, with the norm-ratio
threshold calibrated on training copies) and training_summary.json; `--checkpoint-every` adds
resumable checkpoints under OUT/checkpoints/ and `--resume` continues from the latest one.
`--norm-ratio-weight 0` trains the symmetric baseline with the same recipe.
"""

from __future__ import annotations

import argparse

# Defaults are TrainingConfig's (the demo recipe); tests/test_training.py checks they agree.
_DEFAULTS = {
    "steps": 100, "p": 16, "k": 4, "image_size": 128, "learning_rate": 1e-3, "backbone_learning_rate": 2e-4,
    "negatives_per_batch": 4, "freeze_backbone_blocks": 9, "mixed_precision": "no", "grad_accum": 1,
    "checkpoint_every": 0, "log_with": "auto", "seed": 0, "data_workers": None, "backbone": "imagenet-mobilenet-v2",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an ASL model (accelerate: CPU, GPU or several processes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = _DEFAULTS
    parser.add_argument("--data", required=True, help="NDEC release or mini-NDEC folder (read through the datasets builder)")
    parser.add_argument("--out", required=True, help="output folder: model, processor, checkpoints, training_summary.json")
    parser.add_argument("--steps", type=int, default=d["steps"], help="optimizer steps (default %(default)s)")
    parser.add_argument("--p", type=int, default=d["p"], help="identities per batch and process (default %(default)s)")
    parser.add_argument("--k", type=int, default=d["k"], help="views per identity: one wide view, K-1 crops (default %(default)s)")
    parser.add_argument("--image-size", type=int, default=d["image_size"], help="square input side in pixels (default %(default)s)")
    parser.add_argument("--lr", type=float, default=d["learning_rate"], help="learning rate of head and loss (default %(default)s)")
    parser.add_argument("--backbone-lr", type=float, default=d["backbone_learning_rate"], help="learning rate of the backbone (default %(default)s)")
    parser.add_argument(
        "--norm-ratio-weight", type=float, default=None,
        help="weight of the norm-ratio loss (default: the model config's, 1.0); 0 = symmetric baseline",
    )
    parser.add_argument("--negatives-per-batch", type=int, default=d["negatives_per_batch"], help="hard-negative pairs per batch (default %(default)s)")
    parser.add_argument(
        "--backbone", default=d["backbone"],
        help="'imagenet-mobilenet-v2' (offline ImageNet weights, default) or a transformers backbone id/folder, "
        "e.g. microsoft/resnet-50 (needs network)",
    )
    parser.add_argument("--freeze-blocks", type=int, default=d["freeze_backbone_blocks"], help="early backbone blocks kept frozen, stem included (default %(default)s)")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=d["mixed_precision"])
    parser.add_argument("--grad-accum", type=int, default=d["grad_accum"], help="micro-batches per optimizer step (default %(default)s)")
    parser.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"], help="save a resumable checkpoint every N steps (0: never)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--stop-after", type=int, help="checkpoint and stop after N steps of this run (time-limited jobs); continue with --resume")
    parser.add_argument("--log-with", choices=("auto", "tensorboard", "none"), default=d["log_with"], help="tracker (auto: tensorboard when installed)")
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--data-workers", type=int, default=d["data_workers"], help="processes making the edited views ahead of the model (default: none with <= 2 CPUs per process, else up to 4)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The TrainingConfig the parsed flags describe."""
    from ..training import TrainingConfig

    return TrainingConfig(
        data_dir=args.data, output_dir=args.out, steps=args.steps, p=args.p, k=args.k, image_size=args.image_size,
        learning_rate=args.lr, backbone_learning_rate=args.backbone_lr, norm_ratio_weight=args.norm_ratio_weight,
        negatives_per_batch=args.negatives_per_batch, backbone=args.backbone, freeze_backbone_blocks=args.freeze_blocks,
        mixed_precision=args.mixed_precision, grad_accum=args.grad_accum, checkpoint_every=args.checkpoint_every,
        resume=args.resume, stop_after=args.stop_after, log_with=args.log_with, seed=args.seed,
        data_workers=args.data_workers, progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    import json

    from ..training import SUMMARY_FILE, train_asl

    out = train_asl(config_from_args(args))
    summary_path = out / SUMMARY_FILE
    if summary_path.is_file() and _is_main_process():
        summary = json.loads(summary_path.read_text())
        before, after = summary["norm_ordering_before"], summary["norm_ordering_after"]
        print(f"model saved to {out} ({summary['seconds_per_step']:.2f} s/step)")
        print(f"loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}")
        if before and after:
            print(f"held-out norm ordering {before['all']:.3f} -> {after['all']:.3f} ({before['n_pairs']} pairs)")
        calibration = summary["calibration"]
        print(
            f"norm-ratio threshold {calibration['threshold']:.3f} (drops {calibration['dropped_share']:.1%} of training copies;"
            f" a threshold of 1 would drop {calibration['dropped_share_at_1']:.1%})"
        )
    return 0


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
