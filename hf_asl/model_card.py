"""The model card (README.md) of a trained ASL model, filled from its config, training summary
and measured metrics with ``huggingface_hub.ModelCard.from_template`` (``hub_card/model_card.md``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .errors import InputError
from .metric import MetricResult
from .submission import (
    EVAL_CONFIG,
    EVAL_SPLIT,
    MINI_NDEC_NAME,
    NDEC_DATASET_ID,
    NDEC_NAME,
    metric_values,
    mini_ndec_manifest,
    model_index_results,
)
from .training import OFFLINE_MOBILENET_V2, RANDOM_BACKBONE, SUMMARY_FILE

CARD_FILE = "README.md"
TEMPLATE = "model_card.md"
# First line of the card body: `hf-asl push` rewrites a card carrying it and keeps any other.
GENERATED_MARKER = "<!-- Written by hf-asl (write_model_card / hf-asl push); delete this line to keep your edits. -->"
TAGS = ["image-copy-detection", "near-duplicate-detection", "asl", "ndec", "disc21"]
_DIRECTION_LIMIT = (
    "- The norm test only settles *which way* a pair can be a copy, which rules out one-way crops (a query "
    "that is a wider view of a reference). Other views of the same scene and look-alike objects are told "
    "apart by the descriptor direction alone."
)
_EDIT_LIMIT = (
    "- Edits that keep all of an image's content (colour, JPEG, blur, small overlays) give norm ratios near 1, "
    "so any threshold trades dropped true copies against accepted wider views"
)
_NORM_LIMIT = (
    "- Norms are learned from the training edits: other kinds of edit (heavy stylisation, screenshots, "
    "collages of many images) may not order norms by content."
)
# Hard-negative kinds first: they are what the limits section is about.
_KIND_ORDER = ("hn_wider_view", "hn_other_view", "hn_look_alike", "distractor", "copy")


def write_model_card(
    model_dir: str | os.PathLike,
    *,
    repo_id: str,
    metrics: Mapping[str, MetricResult | Mapping[str, Any]] | None = None,
    training_summary: Mapping[str, Any] | None = None,
    dataset_id: str | None = None,
    limits: str | None = None,
    dataset_name: str | None = None,
    license: str | None = None,
) -> Path:
    """Write ``model_dir/README.md`` for the model saved in ``model_dir``; returns its path.

    ``metrics`` maps a scoring-method label (``"symmetric"``, ``"ASL (hard)"``, ...) to what
    :func:`hf_asl.metric.compute_metrics` measured with it (or its ``to_dict()``), on the dataset
    ``dataset_id`` (a Hub id, or a plain name when it is not on the Hub); they become the
    evaluation table, the ``model-index`` and the measured limits. ``training_summary`` defaults
    to ``model_dir/training_summary.json`` (written by ``hf-asl train``). ``license`` defaults to
    the most restrictive licence of what the weights come from (see :func:`choose_license`);
    ``limits`` is added to the measured limits.
    """
    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json", "model config (save the model with save_pretrained first)")
    if training_summary is None and (model_dir / SUMMARY_FILE).is_file():
        training_summary = _read_json(model_dir / SUMMARY_FILE, "training summary")
    if metrics and not dataset_id:
        raise InputError("metrics need the dataset_id they were measured on")
    if dataset_name is None and dataset_id is not None:
        dataset_name = NDEC_NAME if dataset_id == NDEC_DATASET_ID else dataset_id
    values = {label: metric_values(m) for label, m in (metrics or {}).items()}

    train_cfg = dict((training_summary or {}).get("config") or {})
    backbone_choice = train_cfg.get("backbone")
    manifest = _training_manifest(train_cfg)
    licence, licence_reason = (license, "chosen by the author") if license else choose_license(training_summary, manifest)
    model_name = repo_id.rsplit("/", 1)[-1]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-feature-extraction",
        tags=TAGS,
        license=licence,
        base_model=backbone_choice if _is_hub_id(backbone_choice) else None,
        datasets=[dataset_id] if _is_hub_id(dataset_id) else None,
        model_name=model_name,
        eval_results=model_index_results(values, dataset_id=dataset_id, dataset_name=dataset_name) if values else None,
    )
    if licence == "other":
        card_data.license_name = "see-model-card"

    calibration = config.get("score_threshold_calibration") or (training_summary or {}).get("calibration")
    from hub_card import template_path

    from .ndec import CITATION

    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path(TEMPLATE)),
        marker=GENERATED_MARKER,
        model_name=model_name,
        repo_id=repo_id,
        descriptor_dim=config.get("descriptor_dim", "?"),
        backbone=_backbone_text(config, backbone_choice),
        score_threshold=_number(config.get("score_threshold")),
        calibration=calibration,
        keep_share=_share((calibration or {}).get("keep")),
        dropped_share=_share((calibration or {}).get("dropped_share")),
        dropped_share_at_1=_share((calibration or {}).get("dropped_share_at_1")),
        training_text=training_text(config, training_summary, manifest, licence, licence_reason),
        evaluation_text=evaluation_text(values, dataset_id, dataset_name),
        limits_text=limits_text(values, calibration, manifest, limits),
        citation=CITATION,
    )
    path = model_dir / CARD_FILE
    card.save(path)
    return path


def is_generated_card(path: str | os.PathLike) -> bool:
    """Whether the card at ``path`` was written by :func:`write_model_card` and not claimed since."""
    path = Path(path)
    return path.is_file() and GENERATED_MARKER in path.read_text(encoding="utf-8")


def choose_license(training_summary: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(Hub licence id, why)`` of weights trained as ``training_summary`` records.

    NDEC is CC BY-NC 4.0, so weights trained on it (or on data we cannot identify as a mini-NDEC
    build) are shared non-commercially. On mini-NDEC, whose photos carry permissive licences, the
    weights follow their starting point: torchvision's ImageNet MobileNetV2 checkpoint is
    BSD-3-Clause, a random start is hf-asl's own Apache-2.0, a Hub backbone keeps its licence.
    """
    if training_summary is None:
        return "other", "no training summary was recorded, so the training data and start weights are unknown"
    backbone = (training_summary.get("config") or {}).get("backbone")
    if manifest is None:
        return "cc-by-nc-4.0", "trained on NDEC data (CC BY-NC 4.0: non-commercial use only)"
    if backbone == OFFLINE_MOBILENET_V2:
        return "bsd-3-clause", (
            "fine-tuned from torchvision's ImageNet MobileNetV2 checkpoint (BSD-3-Clause) on mini-NDEC; "
            "ImageNet's own terms of access apply to that checkpoint's training data"
        )
    if backbone == RANDOM_BACKBONE:
        return "apache-2.0", "trained from a random start on mini-NDEC by hf-asl (Apache-2.0)"
    return "other", f"fine-tuned from `{backbone}`: its licence applies"


def training_text(
    config: Mapping[str, Any],
    summary: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    licence: str,
    licence_reason: str,
) -> str:
    """The card's training section: data, recipe, losses, norm ordering and calibration."""
    lines = []
    if summary is None:
        lines.append("No training summary was saved with this model (`training_summary.json`), so the "
                     "recipe is not recorded here beyond the model config.")
        lines.append("")
    else:
        cfg = summary.get("config") or {}
        lines.append(f"- **Data**: {_data_text(cfg, summary, manifest)}")
        pk = f"P={cfg.get('p', '?')} identities × K={cfg.get('k', '?')} views"
        negatives = cfg.get("negatives_per_batch")
        if negatives:
            pk += f" + {negatives} hard-negative pairs"
        lines.append(
            f"- **Recipe**: {summary.get('steps', '?')} steps of {pk} per process "
            f"({summary.get('processes', 1)} process(es), global batch {summary.get('global_batch', '?')} images), "
            f"{cfg.get('image_size', config.get('image_size', '?'))} px inputs, AdamW lr {cfg.get('learning_rate', '?')} "
            f"(backbone {cfg.get('backbone_learning_rate', '?')}), weight decay {cfg.get('weight_decay', '?')}, "
            f"{cfg.get('warmup_steps', '?')} warm-up steps, first {cfg.get('freeze_backbone_blocks', 0)} backbone "
            f"blocks frozen, seed {cfg.get('seed', '?')}."
        )
        losses = " + ".join(config.get("metric_losses") or cfg.get("metric_losses") or ["?"])
        lines.append(
            f"- **Loss**: {losses} on descriptor directions + norm-ratio loss × "
            f"{_number(config.get('norm_ratio_weight'))} on the norms of views whose content fractions differ "
            f"by more than {_number(config.get('content_tolerance'))}."
        )
        first, last = summary.get("losses_first5_mean") or {}, summary.get("losses_last5_mean") or {}
        if first and last:
            parts = ", ".join(f"{name} {_number(first[name])} → {_number(last[name])}" for name in first if name in last)
            lines.append(f"- **Loss, mean of the first → last 5 steps**: {parts}.")
        if summary.get("seconds_per_step") is not None:
            lines.append(f"- **Speed**: {summary['seconds_per_step']:.2f} s per step.")
        before, after = summary.get("norm_ordering_before"), summary.get("norm_ordering_after")
        if after:
            held_out = f"{after.get('n_pairs', '?')} held-out (wider, narrower) view pairs"
            was = f"{_share(before.get('all'))} before training, " if before else ""
            lines.append(f"- **Norm ordering**: the wider view has the larger norm in {was}"
                         f"{_share(after.get('all'))} after, on {held_out}.")
        calibration = summary.get("calibration")
        if calibration:
            lines.append(
                f"- **Threshold calibration**: {calibration.get('n_copy_pairs', '?')} training copy pairs, "
                f"median norm ratio {_number(calibration.get('ratio_median'))}; threshold "
                f"{_number(calibration.get('threshold'))} keeps {_share(calibration.get('keep'))} of them."
            )
    lines.append(f"- **Licence**: `{licence}`: {licence_reason}.")
    return "\n".join(lines)


def evaluation_text(values: Mapping[str, Mapping[str, Any]], dataset_id: str | None, dataset_name: str | None) -> str:
    """The card's evaluation section: one table row per scoring method."""
    if not values:
        return ("No evaluation was recorded with this card. Score the model with `hf-asl evaluate` (or "
                "`hf-asl submit` for the leaderboard files) and push again with `--results`.")
    kinds = _kinds(values)
    header = ["method", "µAP", "R@P90", "recall@1", "recall@10", "predictions"] + [f"FP `{k}`" for k in kinds]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    top_g = False
    for label, v in values.items():
        per_kind = v.get("per_kind") or {}
        mark = ""
        if per_kind and v.get("per_kind_cut") == "top_g":
            mark, top_g = " †", True
        cells = [
            label,
            _fixed(v.get("micro_ap")),
            "undefined" if v.get("recall_at_p90") is None else _fixed(v["recall_at_p90"]),
            _fixed(v.get("recall_at_rank1")),
            _fixed(v.get("recall_at_rank10")),
            str(v.get("n_predictions", "?")),
        ] + [f"{per_kind[k]['false_positives']}{mark}" if k in per_kind else "–" for k in kinds]
        rows.append("| " + " | ".join(cells) + " |")
    where = f"**{dataset_name}**" + (f" (`{dataset_id}`)" if dataset_id != dataset_name else "")
    protocol = (
        f"Measured on {where}, config `{EVAL_CONFIG}`, split `{EVAL_SPLIT}`, with the DISC21 protocol: the "
        "predictions of all queries ranked together by score (ties broken pessimistically); µAP is the micro "
        "average precision, R@P90 the recall where precision is still ≥ 0.9 (undefined when precision never "
        "reaches it), recall@k counts true matches within a query's top k."
    )
    lines = [
        protocol,
        "",
        *rows,
    ]
    if kinds:
        lines += ["", "FP `kind`: false positives among queries of that kind scoring at least the method's "
                  "Recall@P90 threshold" + (" († precision never reached 0.9: among the top G predictions, G = "
                                            "ground-truth pairs)" if top_g else "") + "."]
    if dataset_name == MINI_NDEC_NAME or (dataset_id and "mini" in dataset_id.lower()):
        lines += ["", "mini-NDEC is a small generated stand-in for NDEC: these numbers say nothing about NDEC."]
    return "\n".join(lines)


def limits_text(
    values: Mapping[str, Mapping[str, Any]],
    calibration: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    extra: str | None,
) -> str:
    """The card's limits: the hard negatives each method still accepts, then what ASL cannot see."""
    lines = []
    for label, v in values.items():
        per_kind = v.get("per_kind")
        if not per_kind:
            continue
        cut = ("above its Recall@P90 threshold" if v.get("per_kind_cut") == "p90"
               else "in the top G predictions (its precision never reaches 0.9)")
        missed = [(k, per_kind[k]["false_positives"]) for k in _order(per_kind) if per_kind[k]["false_positives"]]
        if missed:
            total = sum(n for _, n in missed)
            parts = ", ".join(f"{n} `{k}`" for k, n in missed)
            lines.append(f"- **{label}** still accepts {total} false positive(s) {cut}: {parts}.")
        else:
            lines.append(f"- **{label}** accepts no false positive {cut} on this data.")
    dropped = (calibration or {}).get("dropped_share")
    edits = _EDIT_LIMIT + ("." if dropped is None else f"; on training copies this one drops {_share(dropped)}.")
    lines += [_DIRECTION_LIMIT, edits, _NORM_LIMIT]
    if manifest is not None:
        lines.append("- Trained on mini-NDEC, a few hundred generated views of a few dozen photos: a demonstration "
                     "of the method, not a production copy detector.")
    if extra:
        lines.append(f"- {extra.strip()}")
    return "\n".join(lines)


def _training_manifest(train_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    data_dir = train_cfg.get("data_dir")
    return mini_ndec_manifest(data_dir) if data_dir and Path(data_dir).is_dir() else None


def _data_text(cfg: Mapping[str, Any], summary: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> str:
    counts = (f"{summary.get('training_identities', '?')} training identities, "
              f"{summary.get('training_negative_pairs', '?')} hard-negative pairs")
    if manifest is None:
        return f"NDEC / DISC21 training images ({counts}), edited on the fly into copies."
    generator = manifest.get("generator") or {}
    sources = []
    for source in manifest.get("photo_sources") or []:
        if isinstance(source, dict):
            licences = source.get("licences") or source.get("licence") or "licence in the manifest"
            licences = "; ".join(licences) if isinstance(licences, list) else licences
            sources.append(f"`{source.get('package', '?')}` ({licences})")
    photos = f" Photos from {', '.join(sources)}." if sources else ""
    return (f"mini-NDEC (hf-asl {generator.get('version', '?')}, size {manifest.get('size', '?')}, seed "
            f"{manifest.get('seed', '?')}; {counts}), edited on the fly into copies.{photos}")


def _backbone_text(config: Mapping[str, Any], choice: str | None) -> str:
    model_type = (config.get("backbone_config") or {}).get("model_type", "?")
    if choice == OFFLINE_MOBILENET_V2:
        return "MobileNetV2 started from torchvision's ImageNet checkpoint, then GeM pooling, a projection and a BN neck"
    if choice == RANDOM_BACKBONE:
        return f"`{model_type}` from a random start, then GeM pooling, a projection and a BN neck"
    if choice:
        return f"`{choice}` ({model_type}), then GeM pooling, a projection and a BN neck"
    return f"`{model_type}`, then GeM pooling, a projection and a BN neck"


def _kinds(values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values.values():
        for kind in v.get("per_kind") or {}:
            seen[kind] = None
    return _order(seen)


def _order(kinds: Mapping[str, Any]) -> list[str]:
    known = [k for k in _KIND_ORDER if k in kinds]
    return known + sorted(k for k in kinds if k not in _KIND_ORDER)


def _is_hub_id(value: str | None) -> bool:
    """A ``namespace/name`` id (not a local path that happens to hold one slash)."""
    return bool(value) and value.count("/") == 1 and not value.startswith((".", "/", "~")) and not Path(value).exists()


def _number(value: Any) -> str:
    """Three significant digits for floats; anything else as it is."""
    if value is None:
        return "?"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fixed(value: Any) -> str:
    return "?" if value is None else f"{float(value):.4f}"


def _share(value: Any) -> str:
    return "?" if value is None else f"{100 * float(value):.1f}%"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"no {what} here", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"unreadable {what} ({err})", path=path) from None
    if not isinstance(data, dict):
        raise InputError(f"{what} is not a JSON object", path=path)
    return data


__all__ = [
    "GENERATED_MARKER",
    "choose_license",
    "evaluation_text",
    "is_generated_card",
    "limits_text",
    "training_text",
    "write_model_card",
]
