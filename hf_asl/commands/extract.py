"""`hf-asl extract MODEL IMAGES OUT`: descriptors + norms + ids as resumable safetensors shards.

IMAGES is a folder of images, a tar, or with --config a `datasets` location (an NDEC /
mini-NDEC release root, an exported parquet folder or a Hub dataset repo). Rerunning the same
command after an interruption resumes at the first missing shard. With several processes
(``accelerate launch -m hf_asl extract ...`` or ``torchrun --nproc_per_node N -m hf_asl extract
...``) each takes its own shards; the main process merges them into OUT/descriptors.safetensors.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract descriptors and norms of a folder, tar or datasets config (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model folder or Hub id (loaded with from_pretrained)")
    parser.add_argument("images", help="folder of images, a tar, or a datasets location with --config")
    parser.add_argument("out", help="output folder (extract.json, shards/, descriptors.safetensors)")
    data = parser.add_argument_group("datasets source")
    data.add_argument("--config", help="image config to read (queries, references, train)")
    data.add_argument("--split", help="split (default: the config's only split)")
    data.add_argument("--cache-dir", help="datasets cache folder (default: the datasets default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader decoding workers (default 2)")
    parser.add_argument("--shard-size", type=int, default=1024, help="images per resumable shard (default 1024)")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="leave out undecodable images (listed in OUT/skipped_corrupt.txt) instead of failing")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a non-ASL Hub model to run its own code")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..accelerators import make_accelerator
    from ..extract import MERGED_FILE, SKIPPED_FILE, extract_descriptors, merge_extraction
    from ..image_sources import open_image_source
    from ..model_loading import load_model_and_processor

    accelerator = make_accelerator(args.cpu)
    if args.no_progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    model, processor = load_model_and_processor(args.model, trust_remote_code=args.trust_remote_code)
    # The main process prepares a datasets cache first; the others then read it instead of racing.
    with accelerator.main_process_first():
        source = open_image_source(
            args.images, config=args.config, split=args.split, cache_dir=args.cache_dir, skip_corrupt=args.skip_corrupt
        )
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
    prefix = f"[process {accelerator.process_index}] " if accelerator.num_processes > 1 else ""
    print(f"{prefix}{report.images_extracted} images in {report.shards_done} new shard(s); "
          f"{report.shards_found_done} of {report.num_shards} shard(s) were already done")
    if not accelerator.is_main_process:
        return 0
    extraction = merge_extraction(args.out)
    merged = extraction.descriptors
    print(f"{len(merged)} descriptors (dim {merged.dim}, with norms) -> {args.out}/{MERGED_FILE}")
    if extraction.skipped_corrupt:
        shown = ", ".join(sorted(extraction.skipped_corrupt)[:10])
        more = " ..." if len(extraction.skipped_corrupt) > 10 else ""
        print(f"skipped {len(extraction.skipped_corrupt)} corrupt image(s): {shown}{more} "
              f"(all listed in {args.out}/{SKIPPED_FILE})")
    return 0
