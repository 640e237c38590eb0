"""Benchmark the numpy µAP against a pure-Python reference, and time 10M predictions.

    python scripts/bench_metric.py [--n 1000000] [--big 10000000] [--csv]

1. µAP core on N random predictions with ties (labels + scores): `hf_asl.metric` vs the
   definition written as plain Python (a sorted list of (score, not label) tuples, reverse=True
   so that negatives rank first among equal scores). Goal: identical values, >= 50x faster.
2. The full `compute_metrics` (string ids, all metrics) vs the same Python reference with
   labelling by set lookup.
3. `compute_metrics` on BIG predictions given as encoded ids (what `read_predictions` returns),
   and with --csv also writing and reading them as a CSV file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hf_asl.csv_io import GroundTruth, read_predictions, write_predictions
from hf_asl.ids import EncodedIds
from hf_asl.metric import compute_metrics, micro_average_precision

N_QUERIES = 50_000
N_REFERENCES = 1_000_000


def python_micro_ap(labels: list[bool], scores: list[float], n_ground_truth: int) -> float:
    """µAP exactly as the definition reads."""
    rows = sorted(zip(scores, (not y for y in labels)), reverse=True)
    tp, total = 0, 0.0
    for k, (_, negative) in enumerate(rows, start=1):
        if not negative:
            tp += 1
            total += tp / k
    return total / n_ground_truth


def random_predictions(n: int, seed: int):
    """n unique (query, reference) codes, scores on a 1e-4 grid (ties), ~5% true pairs.

    Query q's true reference is reference q for even q; odd queries have no match.
    """
    rng = np.random.default_rng(seed)
    q = rng.integers(0, N_QUERIES, size=int(n * 1.05))
    r = rng.integers(0, N_REFERENCES, size=len(q))
    true = (rng.random(len(q)) < 0.05) & (q % 2 == 0)
    r[true] = q[true]
    _, first = np.unique(q * N_REFERENCES + r, return_index=True)
    keep = np.sort(rng.permutation(first)[:n])
    q, r = q[keep], r[keep]
    labels = (q % 2 == 0) & (r == q)
    scores = (rng.integers(0, 10_000, size=len(q)) + 3_000 * labels) / 13_000
    return q, r, labels, scores.astype(np.float32)


def timed(function, *args, repeat: int = 1, **kwargs):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return value, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="predictions for the comparison")
    parser.add_argument("--big", type=int, default=10_000_000, help="predictions for the large timing (0 = skip)")
    parser.add_argument("--csv", action="store_true", help="also time writing and reading the large CSV")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    query_names = np.array([f"Q{i:05d}" for i in range(N_QUERIES)], dtype=object)
    reference_names = np.array([f"R{i:06d}" for i in range(N_REFERENCES)], dtype=object)
    gt = GroundTruth(query_names, np.where(np.arange(N_QUERIES) % 2 == 0, reference_names[:N_QUERIES], ""))
    g = gt.n_pairs

    q, r, labels, scores = random_predictions(args.n, args.seed)
    print(f"{len(scores):,} predictions, {len(np.unique(scores)):,} distinct scores, "
          f"{int(labels.sum()):,} true positives, G = {g:,}")

    fast, fast_s = timed(micro_average_precision, labels, scores, g, repeat=5)
    label_list, score_list = labels.tolist(), scores.tolist()
    slow, slow_s = timed(python_micro_ap, label_list, score_list, g)
    print("\n1. µAP core (labels + scores)")
    print(f"   numpy   {fast!r}  {fast_s * 1e3:9.1f} ms")
    print(f"   python  {slow!r}  {slow_s * 1e3:9.1f} ms")
    print(f"   identical: {fast == slow}   speed-up: {slow_s / fast_s:.0f}x")

    query_ids, reference_ids = query_names[q].tolist(), reference_names[r].tolist()
    result, full_s = timed(compute_metrics, query_ids, reference_ids, scores, gt.query_ids, gt.reference_ids)

    def python_end_to_end() -> float:
        pairs = {(qq, rr) for qq, rr in zip(gt.query_ids.tolist(), gt.reference_ids.tolist()) if rr}
        found = [pair in pairs for pair in zip(query_ids, reference_ids)]
        return python_micro_ap(found, score_list, len(pairs))

    reference, reference_s = timed(python_end_to_end)
    print("\n2. from string ids (compute_metrics: µAP, R@P90, recall@1/10, checks)")
    print(f"   numpy   {result.micro_ap!r}  {full_s * 1e3:9.1f} ms")
    print(f"   python  {reference!r}  {reference_s * 1e3:9.1f} ms   (µAP only)")
    print(f"   identical: {result.micro_ap == reference}   speed-up: {reference_s / full_s:.1f}x")

    if args.big:
        q, r, labels, scores = random_predictions(args.big, args.seed + 1)
        print(f"\n3. {len(scores):,} predictions")
        _, core_s = timed(micro_average_precision, labels, scores, g)
        print(f"   µAP core                        {core_s:6.2f} s")
        queries, references = EncodedIds(q, query_names), EncodedIds(r, reference_names)
        result, big_s = timed(compute_metrics, queries, references, scores, gt.query_ids, gt.reference_ids)
        print(f"   compute_metrics (encoded ids)   {big_s:6.2f} s   µAP {result.micro_ap:.6f}")
        if args.csv:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "predictions.csv"
                _, write_s = timed(write_predictions, path, queries, references, scores)
                predictions, read_s = timed(read_predictions, path, ground_truth=gt)
                print(f"   write_predictions               {write_s:6.2f} s   ({path.stat().st_size / 1e6:.0f} MB)")
                print(f"   read_predictions (+ validation) {read_s:6.2f} s")
                again, again_s = timed(compute_metrics, predictions.query_ids, predictions.reference_ids,
                                       predictions.scores, gt.query_ids, gt.reference_ids)
                print(f"   compute_metrics after reading   {again_s:6.2f} s   same µAP: {again.micro_ap == result.micro_ap}")


if __name__ == "__main__":
    main()
