"""The demo's report folder: report.md, one PR plot of all methods, and pair grids."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .candidates import Candidates
from .csv_io import GroundTruth
from .descriptors import Descriptors
from .plotting import plot_pr_curves
from .visualize import PairPanel, save_pair_grid

if TYPE_CHECKING:
    from .demo import DemoResult

HARD_NEGATIVE_KINDS = ("hn_wider_view", "hn_other_view", "hn_look_alike", "distractor", "copy")
GRID_PAIRS = 12


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _method_table(result: DemoResult) -> list[str]:
    kinds = [k for k in HARD_NEGATIVE_KINDS if any(k in (m.metrics.per_kind or {}) for m in result.methods)]
    header = ["method", "µAP", "R@P90", "threshold@P90", "recall@1", "recall@10", "predictions"]
    header += [f"FP {k}" for k in kinds]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in result.methods:
        m = method.metrics
        # When precision never reaches 0.9 the per-kind counts are taken at the top-G cut instead.
        mark = "" if m.per_kind_cut == "p90" else "*"
        cells = [
            method.name, _fmt(m.micro_ap), _fmt(m.recall_at_p90),
            _fmt(m.threshold_at_p90, 4), _fmt(m.recall_at_rank1), _fmt(m.recall_at_rank10),
            str(m.n_predictions),
        ]
        cells += [f"{(m.per_kind or {}).get(k, {}).get('false_positives', 0)}{mark}" for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _image(data_dir: Path, folder: str, image_id: str) -> Image.Image:
    with Image.open(data_dir / folder / f"{image_id}.jpg") as image:
        return image.convert("RGB")


def _panels(result, found, model, candidates, gt: Mapping[str, str], kinds) -> list[PairPanel]:
    queries, references = found[model]["queries"], found[model]["references"]
    panels = []
    for qi, ri, score in zip(candidates.query_index[:GRID_PAIRS], candidates.reference_index[:GRID_PAIRS],
                             candidates.score[:GRID_PAIRS]):
        q_id, r_id = str(queries.ids[qi]), str(references.ids[ri])
        ratio = float(queries.norms[qi] / references.norms[ri])
        if gt.get(q_id) == r_id:
            truth = "TRUE COPY"
        elif q_id in gt:
            truth = f"copy of {gt[q_id]}"
        else:
            truth = kinds.get(q_id, "?")
        panels.append(PairPanel(
            _image(result.data_dir, "query_images_h5", q_id), _image(result.data_dir, "references", r_id),
            [f"{q_id} -> {r_id} ({truth})", f"score {score:.3f}", f"norm ratio q/r {ratio:.3f}"],
        ))
    return panels


def _false_positives(method, gt: Mapping[str, str], found) -> Candidates:
    c = method.candidates
    queries, references = found[method.model]["queries"], found[method.model]["references"]
    wrong = np.array([gt.get(str(queries.ids[q])) != str(references.ids[r])
                      for q, r in zip(c.query_index, c.reference_index)], dtype=bool)
    return Candidates(c.query_index[wrong], c.reference_index[wrong], c.score[wrong])


def write_report(
    result: DemoResult, found: Mapping[str, Mapping[str, Descriptors]], ground_truth: GroundTruth,
    kinds: Mapping[str, str],
) -> Path:
    """Write ``report.md`` and its figures into ``result.out``; returns the report's path."""
    from .demo import ASL_HARD, SYMMETRIC, removed_pairs

    out = result.out
    gt = {q: r for q, r in zip(ground_truth.query_ids, ground_truth.reference_ids) if r}
    by_name = {m.name: m for m in result.methods}
    plot_pr_curves({m.name: m.metrics for m in result.methods}, out / "pr_curves.png",
                   title="mini-NDEC test: precision-recall")
    for name in (SYMMETRIC, ASL_HARD):
        method = by_name[name]
        save_pair_grid(_panels(result, found, method.model, _false_positives(method, gt, found), gt, kinds),
                       out / f"top_false_positives_{method.model}.png",
                       title=f"Top false positives: {name}")
    removed = removed_pairs(result)
    save_pair_grid(_panels(result, found, "asl", removed, gt, kinds), out / "asl_removed_pairs.png",
                   title="Highest-scoring pairs the ASL hard filter removed")
    asl_queries, asl_refs = found["asl"]["queries"].ids, found["asl"]["references"].ids
    removed_by_kind: dict[str, int] = {}
    for q, r in zip(removed.query_index, removed.reference_index):
        q_id = str(asl_queries[q])
        label = "true copy" if gt.get(q_id) == str(asl_refs[r]) else kinds.get(q_id, "?")
        removed_by_kind[label] = removed_by_kind.get(label, 0) + 1

    asl_summary = result.training["asl"]
    calibration = asl_summary.get("calibration", {})
    lines = [
        "# hf-asl demo report (mini-NDEC)",
        "",
        f"Data: `{result.data_dir}` — {len(found['asl']['queries'].ids)} queries, "
        f"{len(found['asl']['references'].ids)} references, {ground_truth.n_pairs} ground-truth pairs. "
        "Candidates: the global top-N pairs (N = 10 × queries) of each model's cosine search.",
        "",
        *_method_table(result),
        "",
        "FP columns: false positives of queries of that kind scoring at or above the method's P90 "
        "threshold (`*`: precision never reached 0.9; counted at the top-G cut instead). "
        "FP copy = a copy query matched to a wrong reference.",
        "",
        "Methods:",
        *[f"- **{m.name}**: {m.description}; predictions `{m.predictions_csv.relative_to(out)}`"
          for m in result.methods],
        "",
        "## Direction filter",
        f"- Threshold calibrated on training copy pairs: {_fmt(calibration.get('threshold'), 4)} "
        f"(keeps {calibration.get('keep', 'n/a')} of training copies; drops "
        f"{_fmt(calibration.get('dropped_share'))} of them; the paper's threshold 1.0 would drop "
        f"{_fmt(calibration.get('dropped_share_at_1'))}).",
        f"- On the test candidates the hard filter removed {len(removed)} pairs: "
        + ", ".join(f"{label} {count}" for label, count in sorted(removed_by_kind.items())) + ".",
        "",
        "## Norm ordering on held-out (wider, narrower) pairs",
        "| model | before training | after training |",
        "|---|---|---|",
        *[f"| {name} | {_ordering(s.get('norm_ordering_before'))} | {_ordering(s.get('norm_ordering_after'))} |"
          for name, s in result.training.items()],
        "",
        "## Training",
        *[f"- {name}: {s['steps']} steps, {s['seconds_per_step']:.2f} s/step, loss "
          f"{_fmt(s.get('loss_first'))} -> {_fmt(s.get('loss_last'))}" for name, s in result.training.items()],
        "",
        "## Wall time per stage",
        *[f"- {stage}: {seconds:.1f} s" for stage, seconds in result.stage_seconds.items()],
        "",
        "## Files",
        "- `pr_curves.png`: precision-recall of every method",
        "- `top_false_positives_symmetric.png`, `top_false_positives_asl.png`: highest-scoring wrong pairs",
        "- `asl_removed_pairs.png`: highest-scoring pairs the ASL filter removed",
        "- `predictions/*.csv`: DISC21-format predictions per method",
        "- `models/asl`, `models/symmetric`: trained models (`AutoModel.from_pretrained`)",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _ordering(value) -> str:
    if not value:
        return "n/a"
    per_source = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()
                           if k not in ("all", "n_pairs") and not k.startswith("n_"))
    return f"{_fmt(value['all'])} of {value['n_pairs']} ({per_source})"
