"""`hf-asl submit`: a leaderboard submission folder from a predictions CSV.

Checks the predictions (DISC21/NDEC format, only ground-truth queries, no repeated pair, within
the budget), scores them, and writes DIR/predictions.csv, DIR/metrics.json, the Hub eval results
DIR/.eval_results/ndec.yaml and a model-index block DIR/model_index.yaml. `hf-asl push MODEL_DIR
REPO_ID --results DIR` then uploads the results with the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .evaluate import format_report, parse_budget_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="validate predictions and write the leaderboard files (metrics, .eval_results, model-index)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--predictions", required=True, type=Path, metavar="P.csv",
                        help="query_id,reference_id,score file (higher score = more likely a copy)")
    parser.add_argument("--ground-truth", required=True, type=Path, metavar="GT.csv",
                        help="query_id,reference_id file, one row per query (empty reference = no match)")
    parser.add_argument("--kinds", type=Path, metavar="KINDS.csv",
                        help="query_id,kind file: per-kind false positives in metrics.json")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="submission folder to write")
    parser.add_argument("--model-id", metavar="ORG/NAME", help="the model repo the results belong to")
    parser.add_argument("--dataset-id", metavar="ORG/NAME",
                        help="benchmark dataset on the Hub (default: NDEC's; required for a mini-NDEC ground truth)")
    parser.add_argument("--dataset-revision", metavar="SHA", help="commit of the benchmark dataset evaluated")
    parser.add_argument("--method", metavar="LABEL", help='scoring used, e.g. "ASL (hard)" (recorded in the results)')
    parser.add_argument("--budget", type=parse_budget_arg, default="disc21", metavar="N|disc21",
                        help="maximum number of predictions (default disc21: 10 per ground-truth query)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..submission import make_submission

    submission = make_submission(
        args.predictions, args.ground_truth, args.out,
        kinds=args.kinds, model_id=args.model_id, dataset_id=args.dataset_id,
        dataset_revision=args.dataset_revision, budget=args.budget, method=args.method,
    )
    print(format_report(submission.metrics))
    if submission.metrics.recall_at_p90 is None:
        print("Recall@P90 is undefined, so the eval results hold µAP only")
    for path in (submission.predictions, submission.metrics_json, submission.eval_results, submission.model_index):
        print(f"wrote {path}")
    return 0
