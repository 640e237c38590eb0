"""Evaluate a model on NDEC (or a mini-NDEC build): extract -> search -> score -> evaluate.

    python scripts/evaluate_ndec.py MODEL --data-dir ROOT --out OUT [--index-factory IVF1024,PQ32]

MODEL is a Hub model id or a local folder (an ASL model, or any transformers image model, used
through its pooled features). ROOT is an NDEC release root or a mini-NDEC build, read through
the NDEC `datasets` builder (configs ``queries``, ``references``, ``ground_truth``); single
files can be given instead (``--references`` for the DISC21 reference images, which the NDEC
release does not ship). ROOT may also be the parquet export of `hf-asl ndec` (a folder or a Hub
dataset repo), read with ``datasets.load_dataset``. Written to OUT:

    descriptors/queries/, descriptors/references/   resumable extractions (descriptors.safetensors)
    ground_truth.csv, kinds.csv                      the ground truth as the builder read it
    candidates.csv                                   global top-N search (N = 10 per query)
    predictions_<method>.csv                         symmetric, hard and soft ASL scores
    metrics.json                                     muAP, R@P90, recall@1/10, per-kind counts

The same steps are the subcommands `hf-asl extract`, `search`, `score` and `evaluate`. Launched
with ``accelerate launch`` (or ``torchrun``) the extraction is shared by the processes and the
main process does the rest; an interrupted run resumes its extraction when started again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

METHODS = {"symmetric": "symmetric", "hard": "asl_hard", "soft": "asl_soft"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Hub model id or local model folder")
    parser.add_argument("--data-dir", required=True, help="NDEC release root or mini-NDEC build")
    parser.add_argument("--out", required=True, help="output folder")
    files = parser.add_argument_group("single NDEC files (override what --data-dir holds)")
    for key in ("queries", "references", "ground_truth", "kinds"):
        files.add_argument(f"--{key.replace('_', '-')}", dest=key, help=f"the {key} source (folder, tar or CSV)")
    parser.add_argument("--cache-dir", help="datasets cache folder (default: the datasets default)")
    extract = parser.add_argument_group("extraction")
    extract.add_argument("--batch-size", type=int, default=32)
    extract.add_argument("--num-workers", type=int, default=2)
    extract.add_argument("--shard-size", type=int, default=1024)
    extract.add_argument("--skip-corrupt", action="store_true", help="leave out (and list) undecodable images")
    extract.add_argument("--trust-remote-code", action="store_true")
    search = parser.add_argument_group("search")
    search.add_argument("--n", type=int, help="candidate pairs kept over all queries (default: 10 per query)")
    search.add_argument("--index-factory", help='faiss index factory string, e.g. "IVF1024,PQ32" (default: exact)')
    search.add_argument("--train-size", type=int, help="references sampled to train the index")
    search.add_argument("--search-params", help='faiss search parameters, e.g. "nprobe=16"')
    search.add_argument("--check-recall", type=int, default=1000, metavar="QUERIES",
                        help="with --index-factory: queries sampled to measure recall against exact search")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS))
    scoring.add_argument("--threshold", type=float, help="norm-ratio threshold (default: the model's score_threshold)")
    scoring.add_argument("--temperature", type=float, help="soft score width (default: the model's soft_score_temperature)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def extract_config(args, config: str, model, processor, accelerator):
    """Descriptors of one NDEC image config, extracted (or resumed) into OUT/descriptors/<config>."""
    from hf_asl.extract import extract_descriptors, merge_extraction
    from hf_asl.image_sources import open_dataset_source

    out = Path(args.out) / "descriptors" / config
    with accelerator.main_process_first():
        source = open_dataset_source(
            args.data_dir, config, cache_dir=args.cache_dir, skip_corrupt=args.skip_corrupt,
            **{config: getattr(args, config)},
        )
    extract_descriptors(
        model, processor, source, out, model_name=args.model, shard_size=args.shard_size,
        batch_size=args.batch_size, num_workers=args.num_workers, skip_corrupt=args.skip_corrupt,
        accelerator=accelerator, progress=not args.no_progress,
    )
    # Only the main process goes on to search: the others are done once their shards are written.
    return merge_extraction(out) if accelerator.is_main_process else None


def read_ground_truth(args):
    """``(query_ids, reference_ids, kinds)`` from the ground_truth config ("" = no match)."""
    from hf_asl.image_sources import is_release_root
    from hf_asl.ndec import load_ndec

    sources = {k: getattr(args, k) for k in ("queries", "references", "ground_truth", "kinds")}
    if is_release_root(args.data_dir) or any(sources.values()):
        table = load_ndec("ground_truth", data_dir=args.data_dir, cache_dir=args.cache_dir, **sources)
    else:  # an exported parquet folder or Hub dataset repo
        import datasets

        table = datasets.load_dataset(args.data_dir, "ground_truth", split="test", cache_dir=args.cache_dir)
    query_ids = list(table["query_id"])
    reference_ids = [r or "" for r in table["reference_id"]]
    kinds = {q: k for q, k in zip(query_ids, table["kind"]) if k}
    return query_ids, reference_ids, kinds


def write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from hf_asl.accelerators import make_accelerator
    from hf_asl.csv_io import write_predictions
    from hf_asl.errors import HfAslError
    from hf_asl.metric import compute_metrics
    from hf_asl.model_loading import load_model_and_processor
    from hf_asl.scoring import apply_scoring, norm_ratios
    from hf_asl.search import build_index, global_search, recall_against_exact

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        accelerator = make_accelerator()
        start = time.perf_counter()
        model, processor = load_model_and_processor(args.model, trust_remote_code=args.trust_remote_code)
        queries = extract_config(args, "queries", model, processor, accelerator)
        references = extract_config(args, "references", model, processor, accelerator)
        timings["extract"] = time.perf_counter() - start
        if not accelerator.is_main_process:
            return 0
        q, r = queries.descriptors, references.descriptors
        if q.dim != r.dim:
            raise HfAslError(f"query descriptors have {q.dim} dimensions, references {r.dim}")

        start = time.perf_counter()
        progress = not args.no_progress
        factory = args.index_factory or "Flat"
        index = build_index(r.vectors, factory, train_size=args.train_size, search_params=args.search_params,
                            progress=progress)
        candidates = global_search(q.vectors, index, args.n, progress=progress)
        write_predictions(out / "candidates.csv", q.ids[candidates.query_index], r.ids[candidates.reference_index],
                          candidates.score)
        recall = None
        if factory != "Flat" and args.check_recall > 0:
            recall = recall_against_exact(q.vectors, r.vectors, index, sample_size=args.check_recall)
        timings["search"] = time.perf_counter() - start

        start = time.perf_counter()
        gt_queries, gt_references, kinds = read_ground_truth(args)
        write_csv(out / "ground_truth.csv", ("query_id", "reference_id"), zip(gt_queries, gt_references))
        write_csv(out / "kinds.csv", ("query_id", "kind"), sorted(kinds.items()))
        config = model.config
        threshold = args.threshold if args.threshold is not None else getattr(config, "score_threshold", 1.0)
        temperature = (args.temperature if args.temperature is not None
                       else getattr(config, "soft_score_temperature", 0.05))
        ratios = norm_ratios(candidates, q.norms, r.norms)
        results = {}
        for method in args.methods:
            scored = apply_scoring(METHODS[method], candidates, q.norms, r.norms, threshold=threshold,
                                   temperature=temperature)
            query_ids, reference_ids = q.ids[scored.query_index], r.ids[scored.reference_index]
            write_predictions(out / f"predictions_{method}.csv", query_ids, reference_ids, scored.score)
            metrics = compute_metrics(query_ids, reference_ids, scored.score, gt_queries, gt_references,
                                      kinds=kinds or None)
            results[method] = {"predictions": f"predictions_{method}.csv", "n_dropped": len(candidates) - len(scored),
                               **metrics.to_dict()}
        timings["score_and_evaluate"] = time.perf_counter() - start
    except HfAslError as err:
        print(f"evaluate_ndec: error: {err}", file=sys.stderr)
        return 2

    summary = {
        "model": args.model,
        "data_dir": str(args.data_dir),
        "n_queries": len(q),
        "n_references": len(r),
        "descriptor_dim": q.dim,
        "skipped_corrupt": {"queries": sorted(queries.skipped_corrupt), "references": sorted(references.skipped_corrupt)},
        "search": {"index_factory": factory, "search_params": args.search_params, "n_candidates": len(candidates),
                   "recall_against_exact": recall,
                   "recall_sample_queries": min(args.check_recall, len(q)) if recall is not None else None},
        "scoring": {"threshold": float(threshold), "temperature": float(temperature),
                    "share_of_candidates_above_threshold": float(np.mean(ratios > threshold)) if len(ratios) else 0.0},
        "methods": results,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / "metrics.json")
    print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """One line per method: muAP first, then R@P90, recall@1 and the pairs the method dropped."""
    def number(value):
        return "  n/a " if value is None else f"{value:.4f}"

    search = summary["search"]
    header = (f"{summary['model']} on {summary['data_dir']}: {summary['n_queries']} queries, "
              f"{summary['n_references']} references, {search['n_candidates']} candidates ({search['index_factory']})")
    lines = [header]
    if summary["search"]["recall_against_exact"] is not None:
        lines.append(f"search recall against exact on {summary['search']['recall_sample_queries']} queries: "
                     f"{summary['search']['recall_against_exact']:.4f}")
    lines.append(f"{'method':<10} {'muAP':>7} {'R@P90':>7} {'R@1':>7} {'dropped':>8}")
    for method, m in summary["methods"].items():
        lines.append(f"{method:<10} {number(m['micro_ap']):>7} {number(m['recall_at_p90']):>7} "
                     f"{number(m['recall_at_rank1']):>7} {m['n_dropped']:>8}")
    lines.append(f"threshold {summary['scoring']['threshold']:.4g}; wrote {len(summary['methods'])} predictions CSVs "
                 "and metrics.json")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
