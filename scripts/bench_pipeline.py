"""Benchmark: `extract_descriptors` throughput against the bare model forward (goal >= 0.85x).

Model: ASL on the offline ImageNet MobileNetV2 (`asl_model_from_imagenet_mobilenet_v2`), eval
mode, at each ``--sizes`` input side. Images: ``--images`` JPEGs (random crops of
scikit-image's photos, 300-500 px) in a folder, the same files for every measurement.

Two comparisons, each alternating the two sides for ``--repeats`` rounds (best time counts),
in one process with the same torch threads and batch size:

1. decoding included on both sides (the like-for-like figure): the bare side reads each file,
   decodes it with PIL, runs the image processor, stacks a batch and calls the model, in a
   plain loop; the pipeline is ``extract_descriptors(num_workers=0)`` on the same folder, i.e.
   the same work plus its own: DataLoader, weights digest, shard files, merge.
2. the bare forward on pre-decoded batches (decoding excluded) against the pipeline with one
   decoding worker (``--workers``): what the pipeline costs when decoding runs beside the
   forward, as it does on a GPU machine. The worker uses a CPU the forward does not, so this
   ratio depends on a spare core being free.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hf_asl import ASLConfig, asl_model_from_imagenet_mobilenet_v2, build_image_processor
from hf_asl.extract import extract_descriptors, merge_extraction
from hf_asl.image_sources import FolderSource

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def write_images(folder: Path, count: int, seed: int) -> None:
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(300, 501))
        side = min(side, *photo.size)
        x = int(rng.integers(0, photo.width - side + 1))
        y = int(rng.integers(0, photo.height - side + 1))
        aspect = rng.uniform(0.75, 1.0)
        crop = photo.crop((x, y, x + side, y + int(side * aspect)))
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=90)
        (folder / f"I{i:05d}.jpg").write_bytes(buffer.getvalue())


def decode_batch(source: FolderSource, ids: list[str], processor) -> torch.Tensor:
    images = []
    for image_id in ids:
        with Image.open(io.BytesIO(source.read_bytes(image_id))) as image:
            images.append(image.convert("RGB"))
    return processor(images=images, return_tensors="pt")["pixel_values"]


def bare_with_decoding(model, processor, source: FolderSource, batch_size: int) -> float:
    ids = source.ids()
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, len(ids), batch_size):
            output = model(pixel_values=decode_batch(source, ids[begin : begin + batch_size], processor))
            output.descriptor.numpy(), output.norm.numpy()
    return time.perf_counter() - start


def bare_forward(model, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for pixels in batches:
            output = model(pixel_values=pixels)
            output.descriptor.numpy(), output.norm.numpy()
    return time.perf_counter() - start


def pipeline(model, processor, source: FolderSource, batch_size: int, workers: int, shard_size: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        extract_descriptors(model, processor, source, out, batch_size=batch_size, num_workers=workers,
                            shard_size=shard_size, progress=False)
        merge_extraction(out)
        return time.perf_counter() - start


def best_of(repeats: int, **sides) -> dict[str, float]:
    """Best wall time of each side, the sides alternating so that load changes hit both."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            times[name].append(run())
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: on a shared, oversubscribed machine OpenMP threads spin against other
    # jobs and a 2-thread forward was measured 5-20x slower than a 1-thread one.
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="decoding workers of comparison 2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        write_images(Path(folder), args.images, args.seed)
        source = FolderSource(folder)
        n = len(source.ids())
        shard_size = max(1, n // 2)  # two shards: the shard bookkeeping is part of what is measured
        print(f"{n} JPEGs, batch {args.batch_size}, {args.threads} torch thread(s), {shard_size} images per shard, "
              f"best of {args.repeats}")
        for size in args.sizes:
            measure(size, source, shard_size, args)


def measure(size: int, source: FolderSource, shard_size: int, args: argparse.Namespace) -> None:
    """Both comparisons at one input size; prints one line each."""
    n = len(source.ids())
    model = asl_model_from_imagenet_mobilenet_v2(ASLConfig(image_size=size)).eval()
    processor = build_image_processor(size)
    batches = [decode_batch(source, source.ids()[b : b + args.batch_size], processor)
               for b in range(0, n, args.batch_size)]
    pipeline(model, processor, source, args.batch_size, 0, shard_size)  # warm-up (allocator, caches)
    one = best_of(
        args.repeats,
        bare=lambda: bare_with_decoding(model, processor, source, args.batch_size),
        pipeline=lambda: pipeline(model, processor, source, args.batch_size, 0, shard_size),
    )
    two = best_of(
        args.repeats,
        bare=lambda: bare_forward(model, batches),
        pipeline=lambda: pipeline(model, processor, source, args.batch_size, args.workers, shard_size),
    )
    print(f"\n{size} px")
    print(f"  1. decoding on both sides : bare {n / one['bare']:7.1f} img/s   extract_descriptors "
          f"{n / one['pipeline']:7.1f} img/s   ratio {one['bare'] / one['pipeline']:.3f}")
    print(f"  2. pre-decoded bare forward {n / two['bare']:7.1f} img/s   extract_descriptors "
          f"({args.workers} decode worker) {n / two['pipeline']:7.1f} img/s   ratio "
          f"{two['bare'] / two['pipeline']:.3f}")

if __name__ == "__main__":
    main()
