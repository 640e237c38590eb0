"""`hf-asl ndec export SRC OUT` / `hf-asl ndec push OUT REPO_ID`: NDEC as Hub-ready parquet.

``export`` turns an NDEC release (or a mini-NDEC build) into ``OUT/<config>/<split>-*.parquet``
shards with embedded image bytes and a dataset card, so that ``load_dataset(OUT, config)`` works
locally and, once pushed, from the Hub. ``push`` uploads such a folder as a dataset repo.
"""

from __future__ import annotations

import argparse

# Source overrides shared with hf_asl.ndec.NDECConfig: (flag, config field, help).
_SOURCE_FLAGS = (
    ("--queries", "queries", "query images: folder or tar (default: SRC/query_images_h5.tar or folder)"),
    ("--references", "references", "reference images: folder or tar (default: SRC/references)"),
    ("--ground-truth", "ground_truth", "ground truth CSV (default: SRC/public_ground_truth_h5.csv)"),
    ("--kinds", "kinds", "query kinds CSV (default: SRC/kinds.csv when present)"),
    ("--train", "train", "training images: folder or tar (default: SRC/train)"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ndec", help="export NDEC / mini-NDEC to Hub parquet, push it", description=__doc__)
    actions = parser.add_subparsers(dest="ndec_command", required=True, metavar="ACTION")

    export = actions.add_parser("export", help="write parquet shards and a dataset card")
    export.add_argument("src", help="NDEC release root or mini-NDEC build folder")
    export.add_argument("out", help="output folder (<config>/<split>-*.parquet, README.md)")
    export.add_argument("--configs", nargs="+", metavar="CONFIG", help="configs to export (default: all present in SRC)")
    export.add_argument("--max-shard-size", default="500MB", help="largest parquet shard (default 500MB)")
    export.add_argument("--skip-corrupt", action="store_true", help="drop unreadable images instead of failing")
    for flag, _, help_text in _SOURCE_FLAGS:
        export.add_argument(flag, help=help_text)
    export.add_argument(
        "--negative-pairs",
        nargs="+",
        metavar="PART",
        help="hard-negative pairs: folder, tar, first part (negative_pair.tar.aa) or all parts",
    )
    export.add_argument("--repo-id", help="Hub repo named in the card's code samples")
    export.add_argument(
        "--benchmark", action="store_true",
        help="also write eval.yaml, declaring the folder a Hub benchmark for .eval_results entries",
    )
    export.add_argument("--no-progress", action="store_true")
    export.set_defaults(func=run)

    push = actions.add_parser("push", help="upload an exported folder as a Hub dataset repo")
    push.add_argument("out", help="folder written by `hf-asl ndec export`")
    push.add_argument("repo_id", help="dataset repo, e.g. user/ndec")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ndec_command == "export":
        return _export(args)
    return _push(args)


def _export(args: argparse.Namespace) -> int:
    from ..ndec_export import export_ndec, write_card

    sources = {field: getattr(args, field) for _, field, _ in _SOURCE_FLAGS}
    pairs = args.negative_pairs
    sources["negative_pairs"] = pairs[0] if pairs and len(pairs) == 1 else pairs
    exported = export_ndec(
        args.src,
        args.out,
        configs=args.configs,
        max_shard_size=args.max_shard_size,
        skip_corrupt=args.skip_corrupt,
        progress=not args.no_progress,
        **sources,
    )
    if args.repo_id:
        write_card(args.out, repo_id=args.repo_id)
    for result in exported:
        print(f"{result.config}/{result.split}: {result.num_examples} rows in {len(result.files)} shard(s)")
    print(f"card: {args.out}/README.md")
    if args.benchmark:
        # Opt-in: the Hub validates eval.yaml at push time and lists benchmarks by allow-list.
        from ..submission import write_benchmark_eval_yaml

        print(f"benchmark: {write_benchmark_eval_yaml(args.out)}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..hub import push_folder
    from ..ndec_export import write_card

    out = Path(args.out)
    if not (out / "README.md").is_file() or not any(out.glob("*/*.parquet")):
        raise InputError("not an exported NDEC folder (run `hf-asl ndec export` first)", path=out)
    # The card's code samples name the repo the data is pushed to.
    write_card(out, repo_id=args.repo_id)
    url = push_folder(out, args.repo_id, repo_type="dataset", private=args.private,
                      commit_message="Upload NDEC parquet export with hf-asl")
    print(url)
    return 0
