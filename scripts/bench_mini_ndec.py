"""Mini-NDEC speed: build time of a build and images/s of the copy-edit chain at 256 px.

The edit chain runs in this one process (one core); its rate is given per CPU second as well as
per wall second, since wall time on a shared machine also counts other people's work.

    python scripts/bench_mini_ndec.py                    # default build + 2,000 chains
    python scripts/bench_mini_ndec.py --size small --chains 500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def bench_build(size: str, seed: int) -> None:
    from hf_asl.mini_ndec import build_mini_ndec

    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        manifest = build_mini_ndec(Path(tmp) / "mini_ndec", size=size, seed=seed, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        files = sum(1 for p in (Path(tmp) / "mini_ndec").rglob("*") if p.is_file())
        megabytes = sum(p.stat().st_size for p in (Path(tmp) / "mini_ndec").rglob("*") if p.is_file()) / 1e6
    sizes = manifest["sizes"]
    print(f"build --size {size}: {wall:.1f} s wall, {cpu:.1f} s CPU; {sizes['references']} references, "
          f"{sizes['queries']} queries {sizes['queries_by_kind']}, {sizes['train_images']} train images, "
          f"{sizes['train_views']} views, {sizes['negative_pairs']} pairs; {files} files, {megabytes:.0f} MB")


def bench_chains(n: int, side: int, seed: int) -> None:
    import numpy as np

    from hf_asl.edits import apply_chain
    from hf_asl.photos import load_photo_pool

    pool = load_photo_pool(["scikit-image"])
    images = [pool.image(name).resize((side, side)) for name in ("skimage/astronaut", "skimage/coffee",
                                                               "skimage/chelsea", "skimage/rocket")]
    backgrounds = [pool.image("skimage/hubble_deep_field"), pool.image("skimage/immunohistochemistry")]
    rng = np.random.default_rng(seed)
    apply_chain(images[0], rng, backgrounds=backgrounds)  # font and emoji caches warm up
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        apply_chain(images[i % len(images)], rng, backgrounds=backgrounds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"edit chains (1-4 edits) at {side} px: {n / cpu:.0f} images per CPU second, "
          f"{n / wall:.0f} images/s wall ({n} images, 1 process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "default"), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=2000, help="edit chains to time")
    parser.add_argument("--side", type=int, default=256, help="image side for the edit chains")
    args = parser.parse_args()
    bench_chains(args.chains, args.side, args.seed)
    bench_build(args.size, args.seed)


if __name__ == "__main__":
    main()
