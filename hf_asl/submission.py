"""A leaderboard submission: validated predictions, their metrics and the Hub's result files.

Layout written by :func:`make_submission` (``hf-asl submit``)::

    DIR/predictions.csv          query_id,reference_id,score (DISC21/NDEC format, within budget)
    DIR/metrics.json             {"submission": what was scored, "metrics": MetricResult.to_dict()}
    DIR/.eval_results/ndec.yaml  Hub eval results (EvalResultEntry), one per benchmark task
                                 (mini_ndec.yaml for a mini-NDEC ground truth)
    DIR/model_index.yaml         the legacy ``model-index`` block for a model card

The Hub shows ``.eval_results/*.yaml`` of a model repo on the model page and on the leaderboard
of the benchmark dataset they name, which must hold an ``eval.yaml`` at its root declaring the
same task ids (:func:`write_benchmark_eval_yaml`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from huggingface_hub import (
    EvalResult,
    EvalResultEntry,
    ModelCardData,
    eval_result_entries_to_yaml,
    parse_eval_result_entries,
)
from huggingface_hub.utils import yaml_dump

from .csv_io import (
    DISC21_PREDICTIONS_PER_QUERY,
    read_ground_truth,
    read_kinds,
    read_predictions,
    write_predictions,
)
from .errors import InputError
from .metric import MetricResult, compute_metrics
from .ndec import HF_MIRROR
from .version import __version__

# The authors' Hub mirror of NDEC (queries and hard-negative pairs), the default benchmark id.
NDEC_DATASET_ID = HF_MIRROR.removeprefix("https://huggingface.co/datasets/")
NDEC_NAME = "NDEC"
MINI_NDEC_NAME = "mini-NDEC"
# Benchmark tasks (one leaderboard each): the two headline numbers of the DISC21 protocol.
TASKS: dict[str, str] = {"micro_ap": "µAP", "recall_at_p90": "Recall@P90"}
# Metrics the model-index carries per scoring method (a superset of TASKS).
MODEL_INDEX_METRICS: dict[str, str] = {
    **TASKS,
    "recall_at_rank1": "Recall@rank-1",
    "recall_at_rank10": "Recall@rank-10",
}
MODEL_INDEX_TASK_TYPE = "image-feature-extraction"
MODEL_INDEX_TASK_NAME = "Image copy detection"
# The dataset config and split the predictions answer: NDEC's test queries.
EVAL_CONFIG = "queries"
EVAL_SPLIT = "test"
# Configs a benchmark export must hold to be evaluated: queries, references and their labels.
BENCHMARK_CONFIGS = ("queries", "references", "ground_truth")
# Not (yet) in the Hub's list of evaluation frameworks (huggingface.js packages/tasks/src/eval.ts).
EVALUATION_FRAMEWORK = "hf-asl"

PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
EVAL_RESULTS_DIR = ".eval_results"
# One file per benchmark, so NDEC and mini-NDEC results can sit side by side in one model repo.
EVAL_RESULTS_FILES = {NDEC_NAME: "ndec.yaml", MINI_NDEC_NAME: "mini_ndec.yaml"}
MODEL_INDEX_FILE = "model_index.yaml"
BENCHMARK_FILE = "eval.yaml"


@dataclass(frozen=True)
class Submission:
    """The files :func:`make_submission` wrote and the metrics it measured."""

    out_dir: Path
    predictions: Path
    metrics_json: Path
    eval_results: Path
    model_index: Path
    metrics: MetricResult
    budget: int | None


def mini_ndec_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The mini-NDEC ``manifest.json`` in ``folder``; ``None`` when there is none (real NDEC)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"unreadable manifest ({err})", path=path) from None
    return manifest if isinstance(manifest, dict) and manifest.get("name") == MINI_NDEC_NAME else None


def metric_values(metrics: MetricResult | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of ``metrics`` (a :class:`MetricResult` or its ``to_dict()``, e.g. read back)."""
    values = metrics.to_dict() if isinstance(metrics, MetricResult) else dict(metrics)
    if "micro_ap" not in values:
        raise InputError(f"metrics without micro_ap (got keys {sorted(values)})")
    return values


def method_slug(label: str) -> str:
    """``"ASL (hard)"`` -> ``"asl_hard"``: a method label as a YAML-friendly id."""
    slug = re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")
    if not slug:
        raise InputError(f"method label {label!r} has no letter or digit")
    return slug


def eval_result_entries(
    metrics: MetricResult | Mapping[str, Any],
    *,
    dataset_id: str,
    dataset_revision: str | None = None,
    date: str | None = None,
    notes: str | None = None,
) -> list[EvalResultEntry]:
    """One :class:`EvalResultEntry` per task of :data:`TASKS` that ``metrics`` defines.

    Recall@P90 has no value when precision never reaches 0.9; it is then left out rather than
    published as 0 (the leaderboard would rank a missing number as a measured one).
    """
    values = metric_values(metrics)
    return [
        EvalResultEntry(
            dataset_id=dataset_id, task_id=task, value=float(values[task]),
            dataset_revision=dataset_revision, date=date, notes=notes,
        )
        for task in TASKS
        if values.get(task) is not None
    ]


def write_eval_results(path: str | os.PathLike, entries: list[EvalResultEntry]) -> Path:
    """Write ``entries`` as a ``.eval_results/*.yaml`` file (a YAML list)."""
    path = Path(path)
    _write_text(path, yaml_dump(eval_result_entries_to_yaml(entries), sort_keys=False))
    return path


def read_eval_results(path: str | os.PathLike) -> list[EvalResultEntry]:
    """Parse a ``.eval_results/*.yaml`` file, raising :class:`InputError` when it is not one."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise TypeError(f"expected a YAML list of results, got {type(data).__name__}")
        return parse_eval_result_entries(data)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror})", path=path) from None
    except (yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError) as err:
        raise InputError(f"not an eval results file: {err}", path=path) from None


def model_index_results(
    metrics_by_method: Mapping[str, MetricResult | Mapping[str, Any]],
    *,
    dataset_id: str,
    dataset_name: str,
    dataset_revision: str | None = None,
) -> list[EvalResult]:
    """``model-index`` results: each metric of :data:`MODEL_INDEX_METRICS` of each scoring method.

    The method is the metric's ``config`` (its slug) and part of its display name, so one model
    can report the symmetric score beside ASL's on the same dataset.
    """
    results = []
    for label, metrics in metrics_by_method.items():
        values = metric_values(metrics)
        for key, name in MODEL_INDEX_METRICS.items():
            if values.get(key) is None:
                continue
            results.append(EvalResult(
                task_type=MODEL_INDEX_TASK_TYPE, task_name=MODEL_INDEX_TASK_NAME,
                dataset_type=dataset_id, dataset_name=dataset_name,
                dataset_config=EVAL_CONFIG, dataset_split=EVAL_SPLIT, dataset_revision=dataset_revision,
                metric_type=key, metric_value=float(values[key]),
                metric_name=f"{name} ({label})", metric_config=method_slug(label),
            ))
    return results


def write_model_index(path: str | os.PathLike, model_name: str, results: list[EvalResult]) -> Path:
    """Write the ``model-index:`` YAML block of ``results`` (paste it into a card's metadata)."""
    path = Path(path)
    _write_text(path, ModelCardData(model_name=model_name, eval_results=results).to_yaml() + "\n")
    return path


def make_submission(
    predictions: str | os.PathLike,
    ground_truth: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    kinds: str | os.PathLike | None = None,
    model_id: str | None = None,
    dataset_id: str | None = None,
    dataset_revision: str | None = None,
    budget: int | str | None = "disc21",
    method: str | None = None,
) -> Submission:
    """Validate ``predictions`` against ``ground_truth`` and write the submission files to ``out_dir``.

    The predictions must name only ground-truth queries, never repeat a pair and stay within
    ``budget`` (an int, ``"disc21"`` = 10 per ground-truth query, or ``None`` for no cap); any
    violation raises :class:`InputError` naming the line, before anything is written.
    ``dataset_id`` (the benchmark dataset on the Hub) defaults to NDEC's, except for a mini-NDEC
    ground truth (a ``manifest.json`` beside it), whose numbers must not land on NDEC's board.
    """
    ground_truth_path = Path(ground_truth)
    is_mini = mini_ndec_manifest(ground_truth_path.parent) is not None
    if dataset_id is None:
        if is_mini:
            raise InputError(
                "this ground truth is a mini-NDEC build: pass --dataset-id (its Hub export), "
                f"its numbers do not belong on {NDEC_DATASET_ID}'s leaderboard",
                path=ground_truth_path,
            )
        dataset_id = NDEC_DATASET_ID
    dataset_name = MINI_NDEC_NAME if is_mini else NDEC_NAME

    gt = read_ground_truth(ground_truth_path)
    kind_map = read_kinds(kinds) if kinds is not None else None
    pred = read_predictions(predictions, ground_truth=gt, budget=budget)
    try:
        result = compute_metrics(pred.query_ids, pred.reference_ids, pred.scores, gt.query_ids, gt.reference_ids,
                                 kinds=kind_map, query_scope="ground_truth")
    except InputError as err:
        raise InputError(str(err), path=ground_truth_path) from None

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limit = _budget_limit(budget, len(gt))
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    notes = "; ".join(filter(None, [
        f"scoring: {method}" if method else None,
        f"{len(pred)} predictions" + (f" (budget {limit})" if limit is not None else ""),
        f"hf-asl {__version__}",
    ]))

    predictions_path = out / PREDICTIONS_FILE
    write_predictions(predictions_path, pred.query_ids, pred.reference_ids, pred.scores)
    metrics_path = out / METRICS_FILE
    context = {
        "model_id": model_id,
        "method": method,
        "dataset_id": dataset_id,
        "dataset_name": dataset_name,
        "dataset_revision": dataset_revision,
        "predictions": str(predictions),
        "ground_truth": str(ground_truth_path),
        "kinds": None if kinds is None else str(kinds),
        "budget": limit,
        "created": created,
        "hf_asl_version": __version__,
    }
    _write_text(metrics_path, json.dumps({"submission": context, "metrics": result.to_dict()}, indent=2) + "\n")
    entries = eval_result_entries(result, dataset_id=dataset_id, dataset_revision=dataset_revision,
                                  date=created, notes=notes)
    eval_path = write_eval_results(out / EVAL_RESULTS_DIR / EVAL_RESULTS_FILES[dataset_name], entries)
    model_name = (model_id or out.resolve().name).rsplit("/", 1)[-1]
    index_path = write_model_index(
        out / MODEL_INDEX_FILE, model_name,
        model_index_results({method or "submitted": result}, dataset_id=dataset_id, dataset_name=dataset_name,
                            dataset_revision=dataset_revision),
    )
    return Submission(out, predictions_path, metrics_path, eval_path, index_path, result, limit)


def read_submission_metrics(out_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(submission context, metrics)`` of a folder written by :func:`make_submission`."""
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        raise InputError(f"no {METRICS_FILE} here (run `hf-asl submit` first)", path=out_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["submission"]), metric_values(data["metrics"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise InputError(f"not a submission metrics file ({type(err).__name__}: {err})", path=path) from None


def write_benchmark_eval_yaml(
    dataset_dir: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    evaluation_framework: str = EVALUATION_FRAMEWORK,
) -> Path:
    """Write ``eval.yaml`` at the root of an exported NDEC (or mini-NDEC) dataset folder.

    It declares the folder a Hub *benchmark* whose tasks are :data:`TASKS`, evaluated on the
    ``queries`` config's ``test`` split, so that ``.eval_results`` entries naming this dataset and
    these task ids show on its leaderboard. The Hub validates the file at push time and
    ``evaluation_framework`` must be one of the frameworks it lists.
    """
    root = Path(dataset_dir)
    missing = [c for c in BENCHMARK_CONFIGS if not any((root / c).glob("*.parquet"))]
    if missing:
        raise InputError(f"not a benchmark export: no parquet for config(s) {', '.join(missing)}", path=root)
    is_mini = mini_ndec_manifest(root) is not None
    if name is None:
        name = MINI_NDEC_NAME if is_mini else "NDEC (Negative Distractors for Edited Copy)"
    if description is None:
        description = (
            "Image copy detection with hard negatives (DISC21 protocol): each test query is an edited copy "
            "of a reference or has no match, many being near-duplicates that are not copies. Predictions "
            "are (query, reference, score) triples, at most 10 per query on average, ranked together; "
            "micro_ap is the micro average precision, recall_at_p90 the recall at precision 0.9."
        )
        if is_mini:
            description += " mini-NDEC is a small generated stand-in: its numbers say nothing about NDEC."
    spec = {
        "name": name,
        "description": description,
        "evaluation_framework": evaluation_framework,
        "tasks": [{"id": task, "config": EVAL_CONFIG, "split": EVAL_SPLIT} for task in TASKS],
    }
    path = root / BENCHMARK_FILE
    _write_text(path, yaml_dump(spec, sort_keys=False))
    return path


def _budget_limit(budget: int | str | None, n_ground_truth_queries: int) -> int | None:
    if budget is None:
        return None
    if budget == "disc21":
        return DISC21_PREDICTIONS_PER_QUERY * n_ground_truth_queries
    return int(budget)


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically, so an interrupted run never leaves half a result file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "BENCHMARK_CONFIGS",
    "EVALUATION_FRAMEWORK",
    "EVAL_RESULTS_DIR",
    "MODEL_INDEX_METRICS",
    "NDEC_DATASET_ID",
    "TASKS",
    "Submission",
    "eval_result_entries",
    "make_submission",
    "method_slug",
    "metric_values",
    "mini_ndec_manifest",
    "model_index_results",
    "read_eval_results",
    "read_submission_metrics",
    "write_benchmark_eval_yaml",
    "write_eval_results",
    "write_model_index",
]
