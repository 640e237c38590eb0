"""`hf-asl demo`: the main job on the embedded offline benchmark (mini-NDEC), report in --out."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build mini-NDEC, train ASL + symmetric baseline, search, score, evaluate, report",
        description=__doc__,
    )
    parser.add_argument("--out", default="demo_out", help="report folder (default: demo_out)")
    parser.add_argument("--size", choices=("small", "default"), default="default", help="mini-NDEC size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100, help="training steps per model")
    parser.add_argument("--image-size", type=int, default=128, help="training and extraction resolution")
    parser.add_argument("--batch-size", type=int, default=64, help="extraction batch size")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a mini-NDEC build and trained models already in --out")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..demo import DemoConfig, run_demo

    result = run_demo(DemoConfig(
        out=Path(args.out), size=args.size, seed=args.seed, steps=args.steps, image_size=args.image_size,
        batch_size=args.batch_size, reuse=args.reuse, progress=not args.no_progress,
    ))
    print()
    print(f"{'method':28s} {'µAP':>7s} {'R@P90':>7s} {'recall@1':>9s}")
    for method in result.methods:
        m = method.metrics
        r90 = "n/a" if m.recall_at_p90 is None else f"{m.recall_at_p90:.3f}"
        print(f"{method.name:28s} {m.micro_ap:7.3f} {r90:>7s} {m.recall_at_rank1:9.3f}")
    total = sum(result.stage_seconds.values())
    print(f"\nwall time {total:.0f} s ({', '.join(f'{k} {v:.0f}s' for k, v in result.stage_seconds.items())})")
    print(f"report: {result.report}   model: {result.out / 'models' / 'asl'}")
    return 0
