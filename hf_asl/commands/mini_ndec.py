"""`hf-asl mini-ndec build OUT`: generate the offline mini-NDEC benchmark from installed photos."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mini-ndec",
        help="build the offline mini-NDEC benchmark (real photos, NDEC layout)",
        description=__doc__,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="write a mini-NDEC build into a new or empty folder",
        description="Write references, queries (copies and NDEC-style hard negatives), ground truth, "
        "a training split and hard-negative pairs in the layout of the NDEC release. The same seed "
        "and hf-asl version give byte-identical files.",
    )
    build.add_argument("out", help="output folder (must be new or empty, see --overwrite)")
    build.add_argument("--size", choices=("small", "default"), default="default", help="preset size")
    build.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    build.add_argument("--references", type=int, help="number of references (overrides the preset)")
    build.add_argument("--queries", type=int, help="number of queries (overrides the preset)")
    build.add_argument("--overwrite", action="store_true", help="replace a previous mini-NDEC build in OUT")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    build.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..mini_ndec import build_mini_ndec

    manifest = build_mini_ndec(
        args.out,
        size=args.size,
        seed=args.seed,
        references=args.references,
        queries=args.queries,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    sizes = manifest["sizes"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in sizes["queries_by_kind"].items())
    print(f"mini-NDEC written to {args.out}: {sizes['references']} references, {sizes['queries']} queries "
          f"({kinds}), {sizes['train_images']} training images with {sizes['train_views']} views, "
          f"{sizes['negative_pairs']} hard-negative pairs")
    return 0
