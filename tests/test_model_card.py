"""The model card: YAML that huggingface_hub parses back, eval results equal to the metrics JSON,
and text filled from a (fake) model config and training summary. No model is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

from hf_asl.errors import InputError
from hf_asl.metric import compute_metrics
from hf_asl.model_card import (
    GENERATED_MARKER,
    choose_license,
    is_generated_card,
    write_model_card,
)
from hf_asl.submission import make_submission, read_submission_metrics

GT_QUERIES = ["Q00000", "Q00001", "Q00002", "Q00003"]
GT_REFERENCES = ["R000000", "R000001", "", ""]
KINDS = {"Q00000": "copy", "Q00001": "copy", "Q00002": "hn_wider_view", "Q00003": "hn_look_alike"}
# Symmetric: the wider view Q00002 outranks every copy. ASL (hard): the norm test removed it.
METHODS = {
    "symmetric": [("Q00002", "R000000", 0.95), ("Q00000", "R000000", 0.9), ("Q00001", "R000001", 0.7),
                  ("Q00003", "R000001", 0.6)],
    "ASL (hard)": [("Q00000", "R000000", 0.9), ("Q00003", "R000001", 0.8), ("Q00001", "R000001", 0.7)],
}
CALIBRATION = {"threshold": 1.0412, "keep": 0.99, "n_copy_pairs": 400, "dropped_share": 0.01,
               "dropped_share_at_1": 0.37, "ratio_median": 0.93}


def _metrics_json(rows) -> dict:
    q, r, s = zip(*rows)
    result = compute_metrics(q, r, s, GT_QUERIES, GT_REFERENCES, kinds=KINDS)
    return json.loads(json.dumps(result.to_dict()))  # exactly what a metrics JSON file holds


@pytest.fixture
def mini_data(tmp_path: Path) -> Path:
    data = tmp_path / "mini"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({
        "name": "mini-NDEC", "generator": {"package": "hf-asl", "version": "0.1.0"}, "seed": 0, "size": "small",
        "photo_sources": [{"package": "scikit-image", "licences": ["CC0-1.0"]}, {"package": "mvtb-data", "licences": "MIT"}],
    }))
    return data


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "asl", "descriptor_dim": 256, "image_size": 128, "score_threshold": 1.0412,
        "norm_ratio_weight": 1.0, "content_tolerance": 0.05, "metric_losses": ["cosface", "infonce"],
        "backbone_config": {"model_type": "mobilenet_v2"}, "score_threshold_calibration": CALIBRATION,
    }))
    return folder


def _summary(data_dir: Path, backbone: str = "imagenet-mobilenet-v2") -> dict:
    return {
        "steps": 100, "processes": 1, "global_batch": 72, "seconds_per_step": 1.02,
        "losses_first5_mean": {"loss": 5.1, "norm_ratio": 1.0}, "losses_last5_mean": {"loss": 2.2, "norm_ratio": 0.4},
        "calibration": CALIBRATION, "norm_ordering_before": {"all": 0.66, "n_pairs": 40},
        "norm_ordering_after": {"all": 0.9, "n_pairs": 40}, "training_identities": 90, "training_negative_pairs": 30,
        "config": {"backbone": backbone, "data_dir": str(data_dir), "p": 16, "k": 4, "negatives_per_batch": 4,
                   "image_size": 128, "learning_rate": 1e-3, "backbone_learning_rate": 2e-4, "weight_decay": 1e-4,
                   "warmup_steps": 5, "freeze_backbone_blocks": 9, "seed": 0},
    }


def test_card_yaml_parses_back_and_matches_the_metrics_json(model_dir, mini_data):
    metrics = {label: _metrics_json(rows) for label, rows in METHODS.items()}
    path = write_model_card(model_dir, repo_id="me/asl-mini", metrics=metrics, training_summary=_summary(mini_data),
                            dataset_id="me/mini-ndec", dataset_name="mini-NDEC", limits="Measured on CPU only.")
    assert path == model_dir / "README.md"

    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "image-feature-extraction"
    assert data.license == "bsd-3-clause"  # torchvision MobileNetV2 start, mini-NDEC data
    assert "image-copy-detection" in data.tags
    assert data.datasets == ["me/mini-ndec"]
    assert data.base_model is None  # torchvision's checkpoint has no Hub id
    assert data.model_name == "asl-mini"

    published = {(r.metric_config, r.metric_type): r.metric_value for r in data.eval_results}
    expected = {
        (slug, key): metrics[label][key]
        for label, slug in (("symmetric", "symmetric"), ("ASL (hard)", "asl_hard"))
        for key in ("micro_ap", "recall_at_p90", "recall_at_rank1", "recall_at_rank10")
        if metrics[label][key] is not None
    }
    assert published == expected
    # Symmetric precision never reaches 0.9: its Recall@P90 is left out, not published as 0.
    assert metrics["symmetric"]["recall_at_p90"] is None and ("symmetric", "recall_at_p90") not in published
    assert {r.dataset_type for r in data.eval_results} == {"me/mini-ndec"}
    assert metrics["ASL (hard)"]["micro_ap"] > metrics["symmetric"]["micro_ap"]

    meta = metadata_load(path)
    assert meta["model-index"][0]["name"] == "asl-mini"
    assert meta["license"] == "bsd-3-clause"

    text = card.text
    assert 'AutoModel.from_pretrained("me/asl-mini", trust_remote_code=True)' in text
    assert "score_threshold = 1.04" in text and "drops 1.0% of those training copies" in text
    assert "| symmetric | " in text and "| ASL (hard) | " in text
    assert "FP `hn_wider_view`" in text
    # Limits come from the per-kind false positives above each method's P90 threshold.
    assert "| symmetric | 0.5833 | undefined |" in text
    assert ("**symmetric** still accepts 1 false positive(s) in the top G predictions (its precision never "
            "reaches 0.9): 1 `hn_wider_view`.") in text
    assert "**ASL (hard)** accepts no false positive above its Recall@P90 threshold" in text
    assert "Measured on CPU only." in text
    assert "66.0% before training, 90.0% after" in text
    assert "@inproceedings{wang2023benchmark" in text
    assert "{{" not in text and "}}" not in text
    assert is_generated_card(path)


def test_card_from_a_submission_folder(model_dir, tmp_path):
    data = tmp_path / "ndec"
    data.mkdir()
    (data / "gt.csv").write_text("query_id,reference_id\n" + "".join(f"{q},{r}\n" for q, r in zip(GT_QUERIES, GT_REFERENCES)))
    (data / "pred.csv").write_text("query_id,reference_id,score\n" + "".join(
        f"{q},{r},{s}\n" for q, r, s in METHODS["ASL (hard)"]))
    make_submission(data / "pred.csv", data / "gt.csv", tmp_path / "sub", method="ASL (hard)")
    context, metrics = read_submission_metrics(tmp_path / "sub")

    (model_dir / "training_summary.json").write_text(json.dumps(_summary(tmp_path / "nowhere")))
    path = write_model_card(model_dir, repo_id="me/asl", metrics={context["method"]: metrics},
                            training_summary=None, dataset_id=context["dataset_id"], limits=None)
    card = ModelCard.load(path)
    assert card.data.license == "cc-by-nc-4.0"  # read from training_summary.json: not a mini-NDEC build
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["micro_ap"] == metrics["micro_ap"]
    assert {r.dataset_name for r in card.data.eval_results} == {"NDEC"}
    assert "NDEC / DISC21 training images" in card.text


def test_card_without_metrics_or_summary(model_dir):
    card = ModelCard.load(write_model_card(model_dir, repo_id="me/asl", metrics=None, training_summary=None,
                                           dataset_id=None, limits=None))
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert card.data.license == "other"
    assert "No evaluation was recorded" in card.text and "No training summary was saved" in card.text


def test_metrics_need_a_dataset_and_a_model_config(model_dir, tmp_path):
    with pytest.raises(InputError, match="dataset_id"):
        write_model_card(model_dir, repo_id="me/asl", metrics={"ASL (hard)": _metrics_json(METHODS["ASL (hard)"])},
                         training_summary=None, dataset_id=None, limits=None)
    with pytest.raises(InputError, match="config"):
        write_model_card(tmp_path, repo_id="me/asl", metrics=None, training_summary=None, dataset_id=None, limits=None)


def test_license_follows_data_and_start_weights(mini_data, tmp_path):
    manifest = json.loads((mini_data / "manifest.json").read_text())
    assert choose_license(_summary(mini_data), None)[0] == "cc-by-nc-4.0"
    assert choose_license(_summary(mini_data), manifest)[0] == "bsd-3-clause"
    assert choose_license(_summary(mini_data, "random"), manifest)[0] == "apache-2.0"
    licence, why = choose_license(_summary(mini_data, "microsoft/resnet-50"), manifest)
    assert licence == "other" and "microsoft/resnet-50" in why
    assert choose_license(None, None)[0] == "other"


def test_hub_backbone_becomes_base_model(model_dir, mini_data):
    path = write_model_card(model_dir, repo_id="me/asl", metrics=None,
                            training_summary=_summary(mini_data, "microsoft/resnet-50"), dataset_id=None, limits=None)
    data = ModelCard.load(path).data
    assert data.base_model == "microsoft/resnet-50"
    assert data.license == "other" and data.license_name


def test_marker_identifies_generated_cards(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n# my own card\n")
    assert not is_generated_card(card)
    card.write_text(card.read_text() + GENERATED_MARKER + "\n")
    assert is_generated_card(card)
