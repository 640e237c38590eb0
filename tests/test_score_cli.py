"""`hf-asl score` on hand-made descriptors: hard filter, soft penalty, defaults, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hf_asl import ASLConfig
from hf_asl.cli import main
from hf_asl.descriptors import make_descriptors, save_descriptors

QUERY_NORMS = {"Q0": 1.0, "Q1": 2.0, "Q2": 3.0}
REFERENCE_NORMS = {"R0": 1.0, "R1": 2.0, "R2": 2.5}
# (query, reference, score), with the norm ratio |q|/|r| of each pair
CANDIDATES = [
    ("Q0", "R0", 0.9),   # 1.0  (at the threshold: kept)
    ("Q0", "R1", 0.8),   # 0.5
    ("Q1", "R0", 0.7),   # 2.0
    ("Q2", "R2", 0.6),   # 1.2
    ("Q1", "R2", 0.5),   # 0.8
    ("Q2", "R0", 0.4),   # 3.0
    ("Q1", "R1", 0.3),   # 1.0
]


def ratio(q: str, r: str) -> float:
    return QUERY_NORMS[q] / REFERENCE_NORMS[r]


def write_descriptors(path: Path, norms: dict[str, float], with_norms: bool = True) -> str:
    rng = np.random.default_rng(len(norms))
    vectors = rng.normal(size=(len(norms), 4))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    values = np.array(list(norms.values())) if with_norms else None
    save_descriptors(path, make_descriptors(list(norms), vectors, values))
    return str(path)


def read_rows(path: Path) -> list[tuple[str, str, float]]:
    with open(path, newline="") as f:
        return [(r["query_id"], r["reference_id"], float(r["score"])) for r in csv.DictReader(f)]


def assert_rows(rows: list[tuple[str, str, float]], expected: list[tuple[str, str, float]]) -> None:
    assert [(q, r) for q, r, _ in rows] == [(q, r) for q, r, _ in expected]
    assert [s for _, _, s in rows] == pytest.approx([s for _, _, s in expected])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    candidates = tmp_path / "candidates.csv"
    candidates.write_text("query_id,reference_id,score\n" + "".join(f"{q},{r},{s}\n" for q, r, s in CANDIDATES))
    return {
        "predictions": str(candidates),
        "queries": write_descriptors(tmp_path / "q.safetensors", QUERY_NORMS),
        "references": write_descriptors(tmp_path / "r.safetensors", REFERENCE_NORMS),
        "out": str(tmp_path / "out.csv"),
    }


def score(files: dict[str, str], *extra: str) -> int:
    args = ["score", *(x for key, value in files.items() for x in (f"--{key}", value)), *extra]
    return main(args)


@pytest.mark.parametrize("threshold", [1.0, 1.25, 0.6])
def test_hard_filter_drops_exactly_the_pairs_above_the_threshold(files, threshold, capsys):
    assert score(files, "--method", "hard", "--threshold", str(threshold)) == 0
    kept = read_rows(Path(files["out"]))
    expected = [(q, r, s) for q, r, s in CANDIDATES if ratio(q, r) <= threshold]
    assert_rows(kept, expected)
    dropped = len(CANDIDATES) - len(expected)
    assert f"{dropped} pair(s) with |q|/|r| > {threshold:.4g} dropped" in capsys.readouterr().out


def test_soft_penalty_demotes_without_dropping(files):
    assert score(files, "--method", "soft", "--threshold", "1.0", "--temperature", "0.1") == 0
    rows = read_rows(Path(files["out"]))
    assert len(rows) == len(CANDIDATES)
    expected = {(q, r): s - 0.1 * np.logaddexp(0.0, (ratio(q, r) - 1.0) / 0.1) for q, r, s in CANDIDATES}
    for q, r, s in rows:
        assert s == pytest.approx(expected[(q, r)], abs=1e-6)
    assert [s for _, _, s in rows] == sorted((s for _, _, s in rows), reverse=True)
    # Q1-R0 (ratio 2) falls from third to behind every pair below the threshold.
    assert [(q, r) for q, r, _ in rows].index(("Q1", "R0")) > [(q, r) for q, r, _ in rows].index(("Q1", "R2"))


def test_symmetric_keeps_scores_and_needs_no_norms(files, tmp_path):
    files["queries"] = write_descriptors(tmp_path / "q.npy", QUERY_NORMS, with_norms=False)
    assert score(files, "--method", "symmetric") == 0
    assert_rows(read_rows(Path(files["out"])), CANDIDATES)


def test_threshold_defaults_to_the_models_calibrated_one(files, tmp_path):
    model = tmp_path / "model"
    ASLConfig(score_threshold=1.25).save_pretrained(model)
    assert score(files, "--method", "hard", "--model", str(model)) == 0
    assert len(read_rows(Path(files["out"]))) == sum(ratio(q, r) <= 1.25 for q, r, _ in CANDIDATES)
    # An explicit threshold wins; without --model the paper's 1.0 applies.
    assert score(files, "--method", "hard", "--model", str(model), "--threshold", "0.6") == 0
    assert read_rows(Path(files["out"]))[0][:2] == ("Q0", "R1") and len(read_rows(Path(files["out"]))) == 1
    assert score(files, "--method", "hard") == 0
    assert len(read_rows(Path(files["out"]))) == sum(ratio(q, r) <= 1.0 for q, r, _ in CANDIDATES)


def test_candidate_without_descriptor_is_named(files, capsys):
    with open(files["predictions"], "a") as f:
        f.write("Q7,R1,0.2\n")
    assert score(files, "--method", "hard") == 2
    err = capsys.readouterr().err
    assert f"{files['predictions']}:9: query id 'Q7' has no descriptor in {files['queries']}" in err
    assert not Path(files["out"]).exists()


def test_descriptors_without_norms_are_refused_for_asl_scores(files, tmp_path, capsys):
    files["references"] = write_descriptors(tmp_path / "r.npy", REFERENCE_NORMS, with_norms=False)
    assert score(files, "--method", "soft") == 2
    err = capsys.readouterr().err
    assert f"{files['references']}: holds no descriptor norms, which --method soft needs" in err
