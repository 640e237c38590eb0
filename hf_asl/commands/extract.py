"""`hf-asl extract MODEL IMAGES OUT`: descriptors + norms + ids as resumable safetensors shards.

Runs as is on one machine, or as ``accelerate launch -m hf_asl extract ...`` with each process
taking its own shards; the main process then merges them into ``OUT/descriptors.safetensors``.
"""

from __future__ import annotations

import argparse

MERGED_FILE = "descriptors.safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract ASL descriptors and norms of a folder, tar or datasets config",
        description=__doc__,
    )
    parser.add_argument("model", help="model folder or Hub id (loaded with from_pretrained)")
    parser.add_argument("images", help="folder of images, a tar, or a datasets location with --config")
    parser.add_argument("out", help="output folder (shards/, extract.json, descriptors.safetensors)")
    parser.add_argument("--config", help="datasets config to read (e.g. queries, references)")
    parser.add_argument("--split", help="datasets split (default: test)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader decode workers")
    parser.add_argument("--shard-size", type=int, default=1024, help="images per resumable shard")
    parser.add_argument("--skip-corrupt", action="store_true", help="skip undecodable images (listed)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from accelerate import Accelerator

    from ..descriptors import save_descriptors
    from ..extract import extract_descriptors, load_extracted
    from ..image_sources import open_image_source
    from ..model_loading import load_model_and_processor

    accelerator = Accelerator()
    model, processor = load_model_and_processor(args.model)
    source = open_image_source(args.images, config=args.config, split=args.split)
    report = extract_descriptors(
        model,
        processor,
        source,
        args.out,
        model_name=args.model,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        skip_corrupt=args.skip_corrupt,
        accelerator=accelerator,
        progress=not args.no_progress,
    )
    if report.skipped_corrupt:
        print(f"[rank {accelerator.process_index}] skipped {len(report.skipped_corrupt)} corrupt "
              f"image(s): {', '.join(report.skipped_corrupt[:10])}")
    if accelerator.is_main_process:
        merged = load_extracted(args.out)
        save_descriptors(Path(args.out) / MERGED_FILE, merged)
        print(f"{len(merged.ids)} descriptors (dim {merged.vectors.shape[1]}) -> "
              f"{Path(args.out) / MERGED_FILE}")
    return 0
