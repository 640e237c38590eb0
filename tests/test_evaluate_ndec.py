"""scripts/evaluate_ndec.py on a small mini-NDEC build with a tiny random ASL model."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import save_tiny_asl_model

from hf_asl.cli import main as cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_ndec.py"
THRESHOLD = 1.1


def load_script():
    spec = importlib.util.spec_from_file_location("evaluate_ndec", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random MobileNetV2 ASL model with a calibrated-looking threshold in its config."""
    return save_tiny_asl_model(tmp_path_factory.mktemp("tiny_asl"), score_threshold=THRESHOLD)


def rows(path: Path) -> list[tuple[str, str, float]]:
    with open(path, newline="") as f:
        return [(r["query_id"], r["reference_id"], float(r["score"])) for r in csv.DictReader(f)]


def test_evaluate_ndec_matches_the_subcommand_chain(model_dir, mini_ndec_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [str(model_dir), "--data-dir", str(mini_ndec_dir), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--num-workers", "0", "--shard-size", "16", "--no-progress"]
    script = load_script()
    # IVF with every list probed is exhaustive: the same candidates as exact search, recall 1.
    assert script.main([*args, "--index-factory", "IVF4,Flat", "--search-params", "nprobe=4"]) == 0
    printed = capsys.readouterr().out
    assert "search recall against exact on 60 queries: 1.0000" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_queries"], metrics["n_references"], metrics["descriptor_dim"]) == (60, 32, 8)
    assert metrics["search"]["recall_against_exact"] == 1.0 and metrics["search"]["n_candidates"] == 600
    assert metrics["scoring"]["threshold"] == pytest.approx(THRESHOLD)
    assert list(metrics["methods"]) == ["symmetric", "hard", "soft"]
    for method, m in metrics["methods"].items():
        assert 0.0 < m["micro_ap"] <= 1.0 and m["n_ground_truth"] == 21, method
        assert set(m["per_kind"]) >= {"copy", "distractor"}, method
    above = metrics["scoring"]["share_of_candidates_above_threshold"] * 600
    assert metrics["methods"]["hard"]["n_dropped"] == round(above) > 0
    assert metrics["methods"]["soft"]["n_dropped"] == metrics["methods"]["symmetric"]["n_dropped"] == 0

    # The same steps as subcommands give the same files and numbers.
    q, r = (str(out / "descriptors" / c / "descriptors.safetensors") for c in ("queries", "references"))
    assert cli(["search", "--queries", q, "--references", r, "--out", str(tmp_path / "c.csv"), "--no-progress"]) == 0
    exact, script_candidates = rows(tmp_path / "c.csv"), rows(out / "candidates.csv")
    assert [x[:2] for x in exact] == [x[:2] for x in script_candidates]
    np.testing.assert_allclose([x[2] for x in exact], [x[2] for x in script_candidates], atol=1e-6)
    for method in ("hard", "soft"):
        scored = tmp_path / f"{method}.csv"
        assert cli(["score", "--predictions", str(out / "candidates.csv"), "--queries", q, "--references", r,
                    "--method", method, "--model", str(model_dir), "--out", str(scored)]) == 0
        assert rows(scored) == rows(out / f"predictions_{method}.csv"), method
    assert cli(["evaluate", "--ground-truth", str(out / "ground_truth.csv"), "--kinds", str(out / "kinds.csv"),
                "--predictions", str(out / "predictions_hard.csv"), "--json", str(tmp_path / "m.json")]) == 0
    evaluated = json.loads((tmp_path / "m.json").read_text())
    assert evaluated["micro_ap"] == pytest.approx(metrics["methods"]["hard"]["micro_ap"])
    assert evaluated["per_kind"] == metrics["methods"]["hard"]["per_kind"]

    # A second run finds every shard done and extracts nothing again.
    shards = sorted((out / "descriptors").glob("*/shards/*.safetensors"))
    assert len(shards) == 4 + 2
    before = [p.stat().st_mtime_ns for p in shards]
    assert script.main([*args, "--methods", "symmetric"]) == 0
    assert [p.stat().st_mtime_ns for p in shards] == before
    assert list(json.loads((out / "metrics.json").read_text())["methods"]) == ["symmetric"]
