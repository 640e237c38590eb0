"""Benchmark: hf_asl global top-N search against a raw faiss ``IndexFlatIP.search`` with k=10.

Both run in the same process on the same data (default 20k queries × 100k references × 256
dims, random unit vectors, a fifth of the queries being noisy copies of a reference), each
including its index build, alternating for ``--repeats`` rounds; the best time of each counts.
Wall time and process CPU time are both reported: on a machine shared with other jobs the CPU
time is the steadier measure. Goal: global search within 1.2× the raw search time.

"Same top pairs" is checked in the two senses that hold by construction:
1. Where raw kNN is exact — its pairs scoring above every query's 10th score, i.e. the global
   top M that no per-query cap can cut — the global search returns exactly those M pairs first,
   with the same scores.
2. Over all N = 10 × queries pairs, the two results differ only by the per-query cap: each pair
   only the global search has is beyond its query's 10th neighbour (score ≤ that query's raw
   10th score), and each pair only raw kNN has scores at most the global N-th score.
"""

from __future__ import annotations

import argparse
import logging
import time

import faiss
import numpy as np

from hf_asl.search import global_search


def unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def make_data(nq: int, nr: int, dim: int, copy_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    references = unit_rows(rng.standard_normal((nr, dim), dtype=np.float32))
    queries = unit_rows(rng.standard_normal((nq, dim), dtype=np.float32))
    copies = rng.choice(nq, size=int(copy_share * nq), replace=False)
    sources = rng.choice(nr, size=len(copies), replace=False)
    noise = rng.standard_normal((len(copies), dim), dtype=np.float32) * rng.uniform(0.02, 0.12, (len(copies), 1))
    queries[copies] = unit_rows(references[sources] + noise.astype(np.float32))
    return queries, references


def raw_faiss(queries: np.ndarray, references: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(references.shape[1])
    index.add(references)
    return index.search(queries, k)


def pair_keys(qi: np.ndarray, ri: np.ndarray, nr: int) -> np.ndarray:
    return qi.astype(np.int64) * nr + ri.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--references", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--copy-share", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="faiss threads for both (default: faiss's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("hf_asl.search").setLevel(logging.DEBUG)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    threads = faiss.omp_get_max_threads()

    nq, nr, k = args.queries, args.references, 10
    queries, references = make_data(nq, nr, args.dim, args.copy_share, args.seed)
    print(f"{nq} queries x {nr} references x {args.dim} dims, faiss {faiss.__version__}, {threads} threads")

    raw_times, ours_times = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        raw_scores, raw_labels = raw_faiss(queries, references, k)
        raw_times.append((time.perf_counter() - t, time.process_time() - c))
        t, c = time.perf_counter(), time.process_time()
        ours = global_search(queries, references, num_threads=threads)
        ours_times.append((time.perf_counter() - t, time.process_time() - c))
    for name, times in (("raw IndexFlatIP.search k=10", raw_times), ("hf_asl global_search top-N", ours_times)):
        runs = ", ".join(f"{w:.2f}/{c:.2f}" for w, c in times)
        print(
            f"{name:28s} best wall {min(w for w, _ in times):6.2f} s, best CPU {min(c for _, c in times):6.2f} s "
            f"(wall/CPU per run: {runs})"
        )
    for i, what in ((0, "wall"), (1, "CPU")):
        ratio = min(t[i] for t in ours_times) / min(t[i] for t in raw_times)
        print(f"ratio ({what}): {ratio:.3f}  (goal <= 1.2) -> {'met' if ratio <= 1.2 else 'NOT met'}")

    n = 10 * nq
    raw_qi = np.repeat(np.arange(nq), k)
    raw_ri, raw_s = raw_labels.ravel(), raw_scores.ravel()
    order = np.lexsort((raw_ri, raw_qi, -raw_s))
    raw_qi, raw_ri, raw_s = raw_qi[order], raw_ri[order], raw_s[order]
    tenth = raw_scores[:, -1]

    # 1. The exact prefix: raw pairs above every query's 10th score.
    m = int(np.sum(raw_s > tenth.max()))
    prefix_same = np.array_equal(
        np.sort(pair_keys(raw_qi[:m], raw_ri[:m], nr)),
        np.sort(pair_keys(ours.query_index[:m], ours.reference_index[:m], nr)),
    )
    max_diff = float(np.max(np.abs(raw_s[:m] - ours.score[:m]))) if m else 0.0
    print(
        f"1. exact prefix: top {m} pairs (score > max 10th-neighbour score {tenth.max():.4f}): "
        f"same pairs {prefix_same}, max score difference {max_diff:.2e}"
    )

    # 2. All N pairs: differences come only from the per-query cap of raw kNN.
    raw_keys = pair_keys(raw_qi, raw_ri, nr)
    our_keys = pair_keys(ours.query_index, ours.reference_index, nr)
    only_ours = ~np.isin(our_keys, raw_keys)
    only_raw = ~np.isin(raw_keys, our_keys)
    ours_beyond_cap = bool(np.all(ours.score[only_ours] <= tenth[ours.query_index[only_ours]]))
    raw_below_nth = bool(np.all(raw_s[only_raw] <= ours.score[-1]))
    per_query = np.bincount(ours.query_index, minlength=nq)
    print(
        f"2. all N={n}: {n - only_ours.sum()} pairs in both ({(n - only_ours.sum()) / n:.1%}); "
        f"{only_ours.sum()} only in global search, all beyond their query's 10th neighbour: {ours_beyond_cap}; "
        f"{only_raw.sum()} only in raw kNN, all scoring <= the global N-th score {ours.score[-1]:.4f}: {raw_below_nth}"
    )
    print(
        f"   global top-N spread: {np.sum(per_query > k)} queries hold more than {k} pairs "
        f"(max {per_query.max()}), {np.sum(per_query == 0)} queries hold none; "
        f"score sums: global {ours.score.astype(np.float64).sum():.1f} >= raw {raw_s.astype(np.float64).sum():.1f}"
    )


if __name__ == "__main__":
    main()
