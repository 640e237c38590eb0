"""The main job: mini-NDEC -> ASL and symmetric training -> descriptors -> search -> scores -> report.

Each stage is the library call behind one `hf-asl` subcommand (``mini-ndec build``, ``train``,
``extract``, ``search``, ``score``, ``evaluate``), so the demo shows the path a user takes on
their own data. Every threshold comes from training data (the model config's calibrated
``score_threshold``); the test split is only evaluated.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .candidates import Candidates
from .descriptors import Descriptors
from .errors import InputError
from .metric import MetricResult

# Order is the report's row order: the three required rows first, then two rows that separate
# the effect of the training (ASL model scored symmetrically) from the paper's exact threshold.
SYMMETRIC = "symmetric"
ASL_HARD = "ASL (hard)"
ASL_SOFT = "ASL (soft)"
ASL_COSINE = "ASL model, cosine only"
ASL_HARD_T1 = "ASL (hard, threshold 1.0)"
ROW_ORDER = (SYMMETRIC, ASL_HARD, ASL_SOFT, ASL_COSINE, ASL_HARD_T1)


@dataclass
class DemoConfig:
    out: Path
    size: str = "default"
    seed: int = 0
    steps: int = 100
    image_size: int = 128
    batch_size: int = 64
    budget_per_query: int = 10
    reuse: bool = False
    progress: bool = True


@dataclass
class MethodRun:
    """One report row: how its candidates were scored and what the metric measured."""

    name: str
    model: str
    description: str
    candidates: Candidates
    metrics: MetricResult
    predictions_csv: Path


@dataclass
class DemoResult:
    out: Path
    data_dir: Path
    methods: list[MethodRun]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    report: Path | None = None


class _Stages:
    """Wall time per stage, printed as each stage ends."""

    def __init__(self, progress: bool):
        self.seconds: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def stage(self, name: str):
        if self.progress:
            print(f"== {name}", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        if self.progress:
            print(f"   {name}: {self.seconds[name]:.1f} s", flush=True)


def _build_data(cfg: DemoConfig, data_dir: Path) -> None:
    from .mini_ndec import build_mini_ndec

    if cfg.reuse and (data_dir / "manifest.json").is_file():
        return
    build_mini_ndec(data_dir, size=cfg.size, seed=cfg.seed, progress=cfg.progress, overwrite=True)


def _train(cfg: DemoConfig, data_dir: Path, model_dir: Path, norm_ratio_weight: float | None) -> dict:
    from .training import SUMMARY_FILE, TrainingConfig, train_asl

    summary = model_dir / SUMMARY_FILE
    if not (cfg.reuse and summary.is_file()):
        train_asl(
            TrainingConfig(
                data_dir=data_dir,
                output_dir=model_dir,
                steps=cfg.steps,
                image_size=cfg.image_size,
                norm_ratio_weight=norm_ratio_weight,
                seed=cfg.seed,
                log_with="none",
                dataset_cache_dir=str(cfg.out / "cache"),
                progress=cfg.progress,
            )
        )
    return json.loads(summary.read_text())


def _extract(cfg: DemoConfig, data_dir: Path, model_dir: Path) -> dict[str, Descriptors]:
    from .extract import extract_descriptors, load_extracted
    from .image_sources import open_dataset_source
    from .model_loading import load_model_and_processor

    model, processor = load_model_and_processor(str(model_dir))
    found = {}
    for config in ("queries", "references"):
        out = cfg.out / "descriptors" / model_dir.name / config
        source = open_dataset_source(data_dir, config, cache_dir=cfg.out / "cache")
        extract_descriptors(
            model, processor, source, out,
            model_name=str(model_dir), batch_size=cfg.batch_size, progress=cfg.progress,
        )
        found[config] = load_extracted(out)
    return found


def _score_rows(model_name: str, model_dir: Path, found: dict[str, Descriptors], n: int):
    """(row name, description, candidates) for the scorings of one model's descriptors."""
    from transformers import AutoConfig

    from .scoring import asl_hard, asl_soft
    from .search import global_search

    queries, references = found["queries"], found["references"]
    candidates = global_search(queries.vectors, references.vectors, n=n)
    if model_name == "symmetric":
        return [(SYMMETRIC, "baseline model (no norm-ratio loss), cosine", candidates)]
    config = AutoConfig.from_pretrained(model_dir)
    threshold, temperature = config.score_threshold, config.soft_score_temperature
    qn, rn = queries.norms, references.norms
    return [
        (ASL_HARD, f"ASL model, drop pairs with norm ratio > {threshold:.3f} (calibrated on training copies)",
         asl_hard(candidates, qn, rn, threshold)),
        (ASL_SOFT, f"ASL model, score - softplus penalty above ratio {threshold:.3f} (T={temperature})",
         asl_soft(candidates, qn, rn, threshold, temperature)),
        (ASL_COSINE, "ASL model, cosine only (no direction)", candidates),
        (ASL_HARD_T1, "ASL model, the paper's filter at exactly 1.0", asl_hard(candidates, qn, rn, 1.0)),
    ]


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run the whole job into ``cfg.out`` and write ``report.md`` there."""
    from .csv_io import read_ground_truth, read_kinds, write_predictions
    from .metric import compute_metrics
    from .model_card import write_model_card
    from .report import write_report

    if cfg.steps < 1:
        raise InputError(f"--steps must be >= 1, got {cfg.steps}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    if not cfg.reuse:
        # Derived from the data and models this run rebuilds: a datasets cache keyed on paths, not
        # contents, and descriptor shards pinned to the old weights would both be stale.
        for derived in ("cache", "descriptors"):
            shutil.rmtree(cfg.out / derived, ignore_errors=True)
    data_dir = cfg.out / "mini_ndec"
    stages = _Stages(cfg.progress)
    result = DemoResult(out=cfg.out, data_dir=data_dir, methods=[])
    with stages.stage("build mini-NDEC"):
        _build_data(cfg, data_dir)
    model_dirs = {"asl": cfg.out / "models" / "asl", "symmetric": cfg.out / "models" / "symmetric"}
    with stages.stage("train ASL"):
        result.training["asl"] = _train(cfg, data_dir, model_dirs["asl"], None)
    with stages.stage("train symmetric baseline"):
        result.training["symmetric"] = _train(cfg, data_dir, model_dirs["symmetric"], 0.0)
    found = {}
    with stages.stage("extract descriptors"):
        for name, model_dir in model_dirs.items():
            found[name] = _extract(cfg, data_dir, model_dir)
    ground_truth = read_ground_truth(data_dir / "public_ground_truth_h5.csv")
    kinds = read_kinds(data_dir / "kinds.csv")
    n = cfg.budget_per_query * len(found["asl"]["queries"].ids)
    rows = []
    with stages.stage("search + score"):
        for name, model_dir in model_dirs.items():
            rows += [(name, *row) for row in _score_rows(name, model_dir, found[name], n)]
    rows.sort(key=lambda row: ROW_ORDER.index(row[1]))
    with stages.stage("evaluate"):
        for model_name, row_name, description, candidates in rows:
            query_ids = found[model_name]["queries"].ids[candidates.query_index]
            reference_ids = found[model_name]["references"].ids[candidates.reference_index]
            csv_path = cfg.out / "predictions" / (_slug(row_name) + ".csv")
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            write_predictions(csv_path, query_ids, reference_ids, candidates.score)
            metrics = compute_metrics(
                query_ids, reference_ids, candidates.score,
                ground_truth.query_ids, ground_truth.reference_ids, kinds=kinds,
            )
            result.methods.append(MethodRun(row_name, model_name, description, candidates, metrics, csv_path))
    result.stage_seconds = stages.seconds
    with stages.stage("report"):
        result.report = write_report(result, found, ground_truth, kinds)
        # The ASL model folder is what a user would push: give it its card with the measured rows.
        write_model_card(
            model_dirs["asl"], repo_id="hf-asl/asl-mobilenetv2-mini-ndec",
            metrics={m.name: m.metrics for m in result.methods}, dataset_id="mini-ndec",
            dataset_name="mini-NDEC (hf-asl's embedded benchmark)",
        )
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_").replace("__", "_")


def removed_pairs(result: DemoResult) -> Candidates:
    """Pairs the ASL hard filter removed from the ASL model's cosine candidate list."""
    by_name = {m.name: m for m in result.methods}
    before, after = by_name[ASL_COSINE].candidates, by_name[ASL_HARD].candidates
    kept = set(zip(after.query_index.tolist(), after.reference_index.tolist()))
    mask = np.array(
        [(q, r) not in kept for q, r in zip(before.query_index.tolist(), before.reference_index.tolist())],
        dtype=bool,
    )
    return Candidates(before.query_index[mask], before.reference_index[mask], before.score[mask])
