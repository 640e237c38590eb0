"""`hf-asl search`: candidate (query, reference, score) pairs from two descriptor files, as a
predictions CSV.

By default keeps the N best pairs over all queries (the DISC21/NDEC rule, N = 10 per query);
``--knn K`` keeps K per query instead. ``--background`` subtracts β × the mean of each query's
top similarities to a background set (training images) before ranking.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="global top-N candidate search between query and reference descriptors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", required=True, help="query descriptors (.safetensors, or .npy + .ids.txt)")
    parser.add_argument("--references", required=True, help="reference descriptors (same formats)")
    parser.add_argument("--out", required=True, help="predictions CSV to write (query_id,reference_id,score)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--n", type=int, help="pairs kept over all queries (default: 10 per query)")
    budget.add_argument("--knn", type=int, metavar="K", help="keep the K nearest references of each query instead")
    norm = parser.add_argument_group("score normalisation")
    norm.add_argument("--background", help="descriptors of background (training) images, never the references")
    norm.add_argument("--beta", type=float, default=1.0, help="weight of the background term (default 1)")
    norm.add_argument("--norm-n", type=int, default=10, help="background neighbours averaged per query (default 10)")
    index = parser.add_argument_group("index")
    index.add_argument("--index-factory", help='faiss index factory string, e.g. "IVF1024,PQ32" (default: exact Flat)')
    index.add_argument("--train-size", type=int, help="references sampled to train the index (default 131072)")
    index.add_argument("--search-params", help='faiss search parameters, e.g. "nprobe=16"')
    index.add_argument(
        "--check-recall",
        type=int,
        default=1000,
        metavar="QUERIES",
        help="with --index-factory, report recall against exact search on this many sampled queries (0: skip)",
    )
    parser.add_argument("--chunk-size", type=int, default=8192, help="queries searched at a time")
    parser.add_argument("--threads", type=int, help="faiss threads (default: the usable CPUs)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from ..csv_io import write_predictions
    from ..descriptors import load_descriptors
    from ..errors import InputError
    from ..search import background_offsets, build_index, global_search, knn_search, recall_against_exact

    queries = load_descriptors(args.queries)
    references = load_descriptors(args.references)
    if references.dim != queries.dim:
        raise InputError(
            f"references have {references.dim} dimensions but queries have {queries.dim}", path=args.references
        )
    q, r, offsets = queries.vectors, references.vectors, None
    if args.background:
        if Path(args.background).resolve() == Path(args.references).resolve():
            raise InputError("the background set must not be the reference set", path=args.background)
        background = load_descriptors(args.background)
        if background.dim != queries.dim:
            raise InputError(
                f"background has {background.dim} dimensions but queries have {queries.dim}", path=args.background
            )
        offsets = background_offsets(
            q, background.vectors, n=args.norm_n, beta=args.beta, references=r, num_threads=args.threads
        )

    progress = not args.no_progress
    index = build_index(
        r,
        args.index_factory or "Flat",
        train_size=args.train_size,
        search_params=args.search_params,
        num_threads=args.threads,
        progress=progress,
    )
    if args.knn is not None:
        search, budget = knn_search, args.knn
    else:
        search, budget = global_search, args.n
    found = search(
        q,
        index,
        budget,
        chunk_size=args.chunk_size,
        score_offsets=offsets,
        num_threads=args.threads,
        progress=progress,
    )
    write_predictions(
        args.out,
        queries.ids[found.query_index],
        references.ids[found.reference_index],
        found.score,
    )
    n_queries = len(np.unique(found.query_index))
    print(f"wrote {len(found)} predictions for {n_queries} of {len(queries)} queries to {args.out}")
    if args.index_factory and args.index_factory != "Flat" and args.check_recall > 0:
        recall = recall_against_exact(
            q, r, index, sample_size=args.check_recall, score_offsets=offsets, num_threads=args.threads
        )
        print(
            f"recall of {args.index_factory!r} against exact search on {min(args.check_recall, len(q))} "
            f"sampled queries: {recall:.3f}"
        )
    return 0
