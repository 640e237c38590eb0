"""`hf-asl evaluate`: µAP, Recall@P90, recall@rank-1/10 of a predictions CSV against a ground truth."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from ..metric import MetricResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a predictions CSV (µAP, Recall@P90, recall@rank-1/10)",
        description=(
            "Evaluate query_id,reference_id,score predictions against a query_id,reference_id ground "
            "truth (empty reference = no match) with the DISC21 protocol: all predictions ranked "
            "together, ties broken pessimistically."
        ),
    )
    parser.add_argument("--ground-truth", required=True, type=Path, metavar="GT.csv",
                        help="query_id,reference_id file, one row per query (empty reference = no match)")
    parser.add_argument("--predictions", required=True, type=Path, metavar="P.csv",
                        help="query_id,reference_id,score file (higher score = more likely a copy)")
    parser.add_argument("--kinds", type=Path, metavar="KINDS.csv",
                        help="query_id,kind file: adds per-kind counts (e.g. false positives per hard-negative kind)")
    parser.add_argument("--references", type=Path, metavar="DIR_OR_TXT",
                        help="the reference ids (a folder of images or a text file, one id per line): "
                        "predicted references outside it are errors")
    parser.add_argument("--query-scope", choices=("ground_truth", "all"), default="ground_truth",
                        help="ground_truth (default, official DISC21 script): only predictions of queries listed "
                        "in the ground truth count; all: every prediction counts")
    parser.add_argument("--allow-unknown-ids", action="store_true",
                        help="count ids unknown to the ground truth / reference list as warnings instead of errors")
    parser.add_argument("--budget", type=parse_budget_arg, metavar="N|disc21",
                        help="maximum number of predictions; disc21 = 10 per ground-truth query")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write the metrics as JSON")
    parser.add_argument("--plot", type=Path, metavar="PR.png", help="also draw the precision-recall curve")
    parser.set_defaults(func=run)


def parse_budget_arg(text: str) -> int | str:
    if text == "disc21":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of predictions or 'disc21', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the budget cannot be negative")
    return value


def run(args: argparse.Namespace) -> int:
    from ..csv_io import (
        read_ground_truth,
        read_kinds,
        read_predictions,
        read_reference_ids,
    )
    from ..metric import compute_metrics

    ground_truth = read_ground_truth(args.ground_truth)
    kinds = read_kinds(args.kinds) if args.kinds else None
    references = read_reference_ids(args.references) if args.references else None
    predictions = read_predictions(
        args.predictions,
        ground_truth=ground_truth,
        reference_ids=references,
        allow_unknown_ids=args.allow_unknown_ids,
        budget=args.budget,
    )
    try:
        result = compute_metrics(
            predictions.query_ids, predictions.reference_ids, predictions.scores,
            ground_truth.query_ids, ground_truth.reference_ids,
            kinds=kinds, query_scope=args.query_scope,
        )
    except InputError as err:
        # compute_metrics knows nothing of files; the ground truth is what it can object to here.
        raise InputError(str(err), path=args.ground_truth) from None

    print(format_report(result, predictions.warnings))
    if args.json:
        summary = {
            "ground_truth": str(args.ground_truth),
            "predictions": str(args.predictions),
            "kinds": None if args.kinds is None else str(args.kinds),
            "n_unknown_queries": predictions.n_unknown_queries,
            "n_unknown_references": predictions.n_unknown_references,
            "warnings": list(predictions.warnings),
            **result.to_dict(),
        }
        _write_text(args.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        from ..plotting import plot_pr_curves

        title = f"{args.predictions.name} vs {args.ground_truth.name}"
        plot_pr_curves({args.predictions.stem: result}, args.plot, title=title)
        print(f"wrote {args.plot}")
    return 0


def format_report(result: MetricResult, warnings: tuple[str, ...] = ()) -> str:
    """The small text table `hf-asl evaluate` prints."""
    def number(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.4f}"

    p90 = number(result.recall_at_p90)
    if result.threshold_at_p90 is not None:
        p90 += f"  (score >= {result.threshold_at_p90:.6g})"
    else:
        p90 += "  (precision never reaches 0.9)"
    rows = [
        ("muAP", number(result.micro_ap)),
        ("recall@P90", p90),
        ("recall@rank-1", number(result.recall_at_rank1)),
        ("recall@rank-10", number(result.recall_at_rank10)),
        ("predictions", (f"{result.n_predictions} evaluated, {result.n_out_of_scope} out of scope "
                         f"(query scope: {result.query_scope})")),
        ("ground truth", (f"{result.n_ground_truth} pairs over {result.n_queries} queries, "
                          f"{result.n_true_positives} pairs found")),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if result.per_kind:
        cut = ("above the P90 threshold" if result.per_kind_cut == "p90"
               else "in the top G (precision never reaches 0.9)")
        lines += ["", f"per kind (true/false positives {cut}):"]
        header = ("kind", "queries", "gt pairs", "predictions", "TP", "FP")
        table = [header] + [
            (kind, *(str(c[k]) for k in ("n_queries", "n_ground_truth", "n_predictions",
                                         "true_positives", "false_positives")))
            for kind, c in result.per_kind.items()
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append("  " + "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
            ))
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"warning: {warning}" for warning in warnings]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
