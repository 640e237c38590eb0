"""The `evaluate` module shipped in hf_asl/metrics/micro_ap and its metric card.

`import evaluate` takes seconds, so the module is loaded once for the whole file.
"""

from __future__ import annotations

import ast
import inspect
import re

import numpy as np
import pytest

import hf_asl.metrics
from hf_asl.csv_io import GroundTruth
from hf_asl.metric import compute_metrics
from hub_card import template_path

PREDICTIONS = {
    "query_id": ["Q00000", "Q00000", "Q00001", "Q00002"],
    "reference_id": ["R000000", "R000009", "R000001", "R000005"],
    "score": [0.9, 0.8, 0.7, 0.6],
}
MATCHES = {"Q00000": "R000000", "Q00001": "R000001", "Q00002": ""}


@pytest.fixture(scope="module")
def micro_ap(tmp_path_factory):
    # Offline, with evaluate's module cache in a temporary folder (read when evaluate is imported).
    cache = tmp_path_factory.mktemp("hf_modules")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setenv("HF_EVALUATE_OFFLINE", "1")
        patch.setenv("HF_MODULES_CACHE", str(cache))
        import evaluate

        yield evaluate.load(hf_asl.metrics.metric_module_path(), keep_in_memory=True)


def test_load_offline_and_compute_the_toy_example(micro_ap):
    results = micro_ap.compute(**PREDICTIONS, ground_truth=MATCHES)
    assert results["micro_ap"] == pytest.approx(5 / 6)
    assert results["recall_at_p90"] == 0.5
    assert results["n_ground_truth"] == 2


def test_module_is_the_numpy_core(micro_ap, tmp_path):
    gt_csv = tmp_path / "gt.csv"
    gt_csv.write_text("query_id,reference_id\n" + "".join(f"{q},{r}\n" for q, r in MATCHES.items()))
    kinds = {"Q00000": "copy", "Q00001": "copy", "Q00002": "hn_look_alike"}
    gt = GroundTruth.from_mapping(MATCHES)
    # evaluate stores the score feature as float32.
    scores = np.array(PREDICTIONS["score"], dtype=np.float32)
    expected = compute_metrics(
        PREDICTIONS["query_id"], PREDICTIONS["reference_id"], scores, gt.query_ids, gt.reference_ids,
        kinds=kinds, query_scope="all",
    )
    for ground_truth in (MATCHES, str(gt_csv), gt):
        results = micro_ap.compute(**PREDICTIONS, ground_truth=ground_truth, kinds=kinds, query_scope="all")
        assert results == expected.to_dict()


def test_missing_ground_truth_is_explained(micro_ap):
    with pytest.raises(ValueError, match="ground truth"):
        micro_ap.compute(**PREDICTIONS)


def test_metric_card_front_matter_and_example_match_the_module(micro_ap):
    from huggingface_hub import metadata_load

    card = template_path("metric_card.md")
    meta = metadata_load(card)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert {"evaluate", "metric"} <= set(meta["tags"])
    assert {"title", "emoji", "colorFrom", "colorTo", "description"} <= set(meta)

    example = re.search(r"```python\n(.*?)```", card.read_text(encoding="utf-8"), flags=re.DOTALL).group(1)
    call = next(
        node for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "compute"
    )
    card_arguments = {keyword.arg for keyword in call.keywords}
    features = set(micro_ap.features)
    assert features == {"query_id", "reference_id", "score"}
    compute_keywords = set(inspect.signature(micro_ap._compute).parameters)
    assert card_arguments <= compute_keywords and features <= card_arguments
    assert "ground_truth" in card_arguments
    # Running the example prints what its comment claims.
    printed = []
    exec(compile(example, str(card), "exec"), {"print": lambda *values: printed.extend(values)})  # noqa: S102
    claimed = re.search(r"print\(.*\)\s*#\s*(.*)", example).group(1).split()
    assert printed == [float(value) for value in claimed]
