"""Parquet export speed: hf-asl's batched pyarrow writer vs ``Dataset.from_generator().to_parquet``.

Both read the same rows from the same mini-NDEC build through the NDEC builder (no decoding), so
the difference is the writing path. Prints images/s for each.

    python scripts/bench_export.py                       # builds a default-size mini-NDEC in a temp dir
    python scripts/bench_export.py --src /path/to/mini_ndec --configs queries negative_pairs
"""

from __future__ import annotations

import argparse
import tempfile
import time


def _images(features, rows: int) -> int:
    import datasets

    return rows * sum(isinstance(f, datasets.Image) for f in features.values())


def _rows(src: str, config: str, cache_dir: str):
    """The builder and its rows, plus the seconds spent reading and checking the sources."""
    from hf_asl.ndec import NDEC

    builder = NDEC(config_name=config, data_dir=src, cache_dir=cache_dir)
    start = time.perf_counter()
    rows = list(builder.iter_examples())
    return builder, rows, time.perf_counter() - start


def bench(src: str, configs: list[str], repeats: int) -> None:
    import datasets

    from hf_asl.ndec import SPLITS
    from hf_asl.ndec_export import write_config

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            builder, rows, read_seconds = _rows(src, config, f"{tmp}/builder_cache")
            features = builder.info.features
            images = _images(features, len(rows))
            size_mb = sum(
                len(v["bytes"]) for row in rows for v in row.values() if isinstance(v, dict)
            ) / 1e6
            best_ours = best_hf = float("inf")
            for repeat in range(repeats):
                start = time.perf_counter()
                write_config(iter(rows), f"{tmp}/{config}/ours{repeat}", config, SPLITS[config], features)
                best_ours = min(best_ours, time.perf_counter() - start)

                start = time.perf_counter()
                # A fresh cache_dir per run: from_generator would otherwise reuse its Arrow cache.
                dataset = datasets.Dataset.from_generator(
                    lambda rows=rows: iter(rows), features=features, cache_dir=f"{tmp}/{config}/hf_cache{repeat}"
                )
                dataset.to_parquet(f"{tmp}/{config}/hf{repeat}.parquet")
                best_hf = min(best_hf, time.perf_counter() - start)
            print(
                f"{config:15s} {len(rows):6d} rows {images:6d} images {size_mb:7.1f} MB | "
                f"pyarrow batches {images / best_ours:8.0f} img/s ({best_ours:.2f} s) | "
                f"from_generator+to_parquet {images / best_hf:8.0f} img/s ({best_hf:.2f} s) | "
                f"speed-up {best_hf / best_ours:.1f}x | reading+checking sources {images / read_seconds:6.0f} img/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", help="mini-NDEC (or NDEC) root; default: build one in a temp dir")
    parser.add_argument("--size", default="default", choices=("small", "default"), help="mini-NDEC size to build")
    parser.add_argument("--configs", nargs="+", default=["queries", "references", "negative_pairs", "train_views"])
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    if args.src:
        bench(args.src, args.configs, args.repeats)
        return
    from hf_asl.mini_ndec import build_mini_ndec

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_mini_ndec(f"{tmp}/mini_ndec", size=args.size, seed=0, progress=False)
        print(f"built mini-NDEC ({args.size}) in {time.perf_counter() - start:.1f} s")
        bench(f"{tmp}/mini_ndec", args.configs, args.repeats)


if __name__ == "__main__":
    main()
