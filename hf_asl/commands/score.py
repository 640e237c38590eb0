"""`hf-asl score`: rescore the candidate pairs of `hf-asl search` by direction (ASL).

Each candidate (query, reference, score) keeps its search score and is judged by the norm
ratio |q| / |r| of the two descriptors, read from the norms stored in the descriptor files
(computed once per image at extraction, never per pair):

  symmetric  scores unchanged (the baseline)
  hard       pairs with |q| / |r| > THRESHOLD are dropped: the query holds more content than
             the reference, so it cannot be a copy of it (the paper's filter, threshold 1)
  soft       score - TEMPERATURE * softplus((|q| / |r| - THRESHOLD) / TEMPERATURE): pairs above
             the threshold are demoted, none is dropped

THRESHOLD defaults to the model's calibrated `score_threshold` when --model is given, else 1.
"""

from __future__ import annotations

import argparse

METHODS = {"symmetric": "symmetric", "hard": "asl_hard", "soft": "asl_soft"}
DEFAULT_THRESHOLD = 1.0
DEFAULT_TEMPERATURE = 0.05


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="rescore search candidates by direction with the descriptor norms (symmetric, hard, soft)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--predictions", required=True, metavar="CANDIDATES.csv",
                        help="query_id,reference_id,score candidates (hf-asl search output)")
    parser.add_argument("--queries", required=True, help="query descriptors with norms (hf-asl extract output)")
    parser.add_argument("--references", required=True, help="reference descriptors with norms")
    parser.add_argument("--method", required=True, choices=tuple(METHODS))
    parser.add_argument("--threshold", type=float,
                        help="norm-ratio threshold (default: the --model's calibrated score_threshold, else 1.0)")
    parser.add_argument("--temperature", type=float,
                        help="width of the soft penalty (default: the --model's soft_score_temperature, else 0.05)")
    parser.add_argument("--model", help="ASL model folder or Hub id whose saved scoring settings give the defaults")
    parser.add_argument("--out", required=True, metavar="OUT.csv", help="rescored predictions CSV to write")
    parser.set_defaults(func=run)


def candidate_rows(ids, descriptors, descriptor_path: str, predictions_path: str, what: str):
    """Row of each candidate's ``what`` id in ``descriptors``; an id without a descriptor is an
    :class:`InputError` naming the id, the descriptor file and the CSV line."""
    import numpy as np

    from ..csv_io import line_of_row
    from ..errors import InputError

    row_of = {image_id: row for row, image_id in enumerate(descriptors.ids.tolist())}
    category_rows = np.fromiter((row_of.get(c, -1) for c in ids.categories), dtype=np.int64, count=len(ids.categories))
    rows = category_rows[ids.codes]
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        first = int(missing[0])
        raise InputError(
            f"{what} id {ids[first]!r} has no descriptor in {descriptor_path} "
            f"({len(missing)} candidate row(s) name ids missing there)",
            path=predictions_path,
            line=line_of_row(predictions_path, first),
        )
    return rows


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..candidates import Candidates
    from ..csv_io import read_predictions, write_predictions
    from ..descriptors import load_descriptors
    from ..errors import InputError
    from ..scoring import apply_scoring, norm_ratios

    mode = METHODS[args.method]
    threshold, temperature = args.threshold, args.temperature
    if (threshold is None or temperature is None) and args.model:
        from ..model_loading import model_score_settings

        saved = model_score_settings(args.model)
        threshold = saved.get("score_threshold") if threshold is None else threshold
        temperature = saved.get("soft_score_temperature") if temperature is None else temperature
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    if not np.isfinite(threshold) or threshold <= 0:
        raise InputError(f"--threshold must be a positive number, got {threshold}")
    if not np.isfinite(temperature) or temperature <= 0:
        raise InputError(f"--temperature must be a positive number, got {temperature}")

    predictions = read_predictions(args.predictions)
    queries = load_descriptors(args.queries)
    references = load_descriptors(args.references)
    if mode != "symmetric":
        for descriptors, path in ((queries, args.queries), (references, args.references)):
            if descriptors.norms is None:
                raise InputError(
                    f"holds no descriptor norms, which --method {args.method} needs; extract the descriptors "
                    "with hf-asl extract (an ASL model stores them)",
                    path=path,
                )
    query_rows = candidate_rows(predictions.query_ids, queries, args.queries, args.predictions, "query")
    reference_rows = candidate_rows(predictions.reference_ids, references, args.references, args.predictions,
                                    "reference")
    # Candidates must be sorted by score: a hand-made CSV need not be.
    found = Candidates(query_rows, reference_rows, np.zeros(len(query_rows), np.float32)).with_scores(
        predictions.scores.astype(np.float32)
    )
    scored = apply_scoring(mode, found, queries.norms, references.norms, threshold=threshold, temperature=temperature)
    write_predictions(args.out, queries.ids[scored.query_index], references.ids[scored.reference_index], scored.score)

    summary = f"{args.method}: {len(found)} candidates -> {len(scored)} predictions in {args.out}"
    if mode != "symmetric":
        above = int(np.count_nonzero(norm_ratios(found, queries.norms, references.norms) > threshold))
        action = "dropped" if mode == "asl_hard" else "demoted"
        summary += f" ({above} pair(s) with |q|/|r| > {threshold:.4g} {action}"
        summary += f", temperature {temperature:.4g})" if mode == "asl_soft" else ")"
    print(summary)
    return 0
