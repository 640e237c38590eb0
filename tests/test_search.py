"""Global top-N search, kNN, score normalisation and `hf-asl search` against brute force."""

from __future__ import annotations

import csv

import faiss
import numpy as np
import pytest

from hf_asl.cli import main
from hf_asl.descriptors import make_descriptors, save_descriptors
from hf_asl.errors import InputError
from hf_asl.search import (
    background_offsets,
    build_index,
    global_search,
    knn_search,
    normalize_for_search,
    recall_against_exact,
)


def int_data(seed: int, nq: int, nr: int, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer vectors: every inner product is exact in float32, and ties are common."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-3, 4, (nq, d)).astype(np.float32)
    r = rng.integers(-3, 4, (nr, d)).astype(np.float32)
    return q, r


def unit_data(seed: int, nq: int, nr: int, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    r = rng.standard_normal((nr, d)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), r / np.linalg.norm(r, axis=1, keepdims=True)


def brute_force_top_scores(q: np.ndarray, r: np.ndarray, n: int) -> np.ndarray:
    flat = (q.astype(np.float64) @ r.T.astype(np.float64)).ravel()
    return np.sort(flat)[::-1][:n]


def check_pairs(found, q: np.ndarray, r: np.ndarray) -> None:
    """Scores are the pairs' inner products, pairs are distinct, order is by score."""
    expected = np.einsum("ij,ij->i", q[found.query_index].astype(np.float64), r[found.reference_index])
    np.testing.assert_allclose(found.score, expected, rtol=1e-5, atol=1e-5)
    pairs = found.query_index * len(r) + found.reference_index
    assert len(np.unique(pairs)) == len(found)
    assert np.all(np.diff(found.score) <= 0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [None, 5, 31, 400, 2000, 50 * 120 + 7])
def test_global_search_equals_brute_force(seed, n):
    q, r = int_data(seed, 50, 120)
    # One query far above the rest holds most of the global top N, more than a first pass fetches.
    q[seed] *= 20
    found = global_search(q, r, n, chunk_size=16)
    n_expected = min(10 * len(q) if n is None else n, q.shape[0] * r.shape[0])
    assert len(found) == n_expected
    np.testing.assert_array_equal(found.score, brute_force_top_scores(q, r, n_expected).astype(np.float32))
    check_pairs(found, q, r)


def test_global_search_dominating_query_holds_more_than_first_pass_k():
    q, r = int_data(7, 30, 300)
    q[4] *= 50
    found = global_search(q, r, k=3, chunk_size=8)
    # Searched with k=3 first, the query must be searched again (k=12, 48, 192) to get its share.
    assert np.sum(found.query_index == 4) > 100
    np.testing.assert_array_equal(found.score, brute_force_top_scores(q, r, 300).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1])
def test_global_search_continuous_pairs_equal_brute_force(seed):
    q, r = unit_data(seed, 60, 500)
    found = global_search(q, r, 300, k=2)
    scores = q.astype(np.float64) @ r.T.astype(np.float64)
    best = np.argsort(-scores.ravel())[:300]
    assert set(zip(*np.unravel_index(best, scores.shape))) == set(zip(found.query_index, found.reference_index))


def test_global_search_chunking_invariance():
    q, r = unit_data(3, 70, 400)
    one = global_search(q, r, 500, chunk_size=1)
    big = global_search(q, r, 500, chunk_size=10_000)
    np.testing.assert_array_equal(one.query_index, big.query_index)
    np.testing.assert_array_equal(one.reference_index, big.reference_index)
    np.testing.assert_allclose(one.score, big.score, rtol=1e-6, atol=1e-6)


def test_knn_search_equals_brute_force():
    q, r = unit_data(5, 40, 200)
    found = knn_search(q, r, k=7, chunk_size=9)
    assert len(found) == 40 * 7
    assert np.all(np.diff(found.score) <= 0)
    scores = q @ r.T
    for i in range(len(q)):
        mine = found.reference_index[found.query_index == i]
        assert set(mine) == set(np.argsort(-scores[i])[:7])
    check_pairs(found, q, r)
    assert len(knn_search(q, r[:3], k=10)) == 40 * 3


def test_global_search_accepts_a_built_index_and_float64():
    q, r = int_data(2, 20, 50)
    from_index = global_search(q.astype(np.float64), build_index(r), 100)
    np.testing.assert_array_equal(from_index.score, brute_force_top_scores(q, r, 100).astype(np.float32))


def test_empty_inputs_and_zero_budget():
    q, r = int_data(0, 5, 10)
    assert len(global_search(q[:0], r)) == 0
    assert len(global_search(q, r, 0)) == 0
    assert len(knn_search(q[:0], r)) == 0


def test_score_normalisation_equals_formula():
    q, r = unit_data(11, 30, 200)
    background, _ = unit_data(12, 150, 1)
    beta, n = 1.5, 10
    q_ext, r_ext = normalize_for_search(q, r, background, n=n, beta=beta)
    b = np.sort(q.astype(np.float64) @ background.T, axis=1)[:, ::-1][:, :n].mean(axis=1)
    np.testing.assert_allclose(background_offsets(q, background, n=n, beta=beta), beta * b, rtol=1e-5, atol=1e-6)
    expected = q.astype(np.float64) @ r.T - beta * b[:, None]
    np.testing.assert_allclose(q_ext @ r_ext.T, expected, rtol=1e-5, atol=1e-5)
    found = global_search(q_ext, r_ext, 100)
    np.testing.assert_allclose(found.score, np.sort(expected.ravel())[::-1][:100], rtol=1e-5, atol=1e-5)
    # The same ranking without the extra dimension, as offsets subtracted per query.
    offsets = background_offsets(q, background, n=n, beta=beta)
    for k in (1, None):
        shifted = global_search(q, r, 100, k=k, score_offsets=offsets)
        np.testing.assert_array_equal(shifted.query_index, found.query_index)
        np.testing.assert_array_equal(shifted.reference_index, found.reference_index)
        np.testing.assert_allclose(shifted.score, found.score, rtol=1e-5, atol=1e-5)
    knn = knn_search(q, r, 3, score_offsets=offsets)
    np.testing.assert_allclose(knn.score, expected[knn.query_index, knn.reference_index], rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(knn.score) <= 0)


def test_score_normalisation_refuses_the_reference_set():
    q, r = unit_data(1, 5, 50)
    for background in (r, r.copy()):
        with pytest.raises(InputError, match="background set is the reference set"):
            normalize_for_search(q, r, background)
    with pytest.raises(InputError, match="at least n=10"):
        normalize_for_search(q, r, r[:5] + 1)
    with pytest.raises(InputError, match="beta"):
        normalize_for_search(q, r, r + 1, beta=-1.0)
    with pytest.raises(InputError, match="background set is the reference set"):
        background_offsets(q, r, references=r.copy())
    with pytest.raises(InputError, match="one float per query"):
        global_search(q, r, score_offsets=np.zeros(4))
    with pytest.raises(InputError, match="query row 2 is NaN"):
        global_search(q, r, score_offsets=np.array([0, 0, np.nan, 0, 0]))


def test_index_factory_path_and_recall():
    q, r = unit_data(4, 200, 3000, d=32)
    # Probing every list of an IVF index is exact.
    exact_ivf = recall_against_exact(q, r, "IVF8,Flat", search_params="nprobe=8", sample_size=50)
    assert exact_ivf == 1.0
    pq = build_index(r, "IVF8,PQ8x4", train_size=2000, search_params="nprobe=2")
    recall = recall_against_exact(q, r, pq, sample_size=50)
    assert 0.0 < recall < 1.0
    found = global_search(q, r, 500, index_factory="IVF8,PQ8x4", train_size=2000, search_params="nprobe=2")
    assert len(found) == 500
    assert np.all(np.diff(found.score) <= 0)


@pytest.mark.parametrize(
    ("queries", "references", "kwargs", "message"),
    [
        (np.ones(8, np.float32), np.ones((4, 8), np.float32), {}, "queries must be a 2-D matrix"),
        (np.ones((2, 8), np.int64), np.ones((4, 8), np.float32), {}, "queries must hold floating-point"),
        (np.ones((2, 8), np.float32), np.ones((4, 6), np.float32), {}, "8 dimensions but references have 6"),
        (np.ones((2, 8), np.float32), [[1.0] * 8], {}, "references must be a numpy array"),
        (np.array([[1, np.nan]], np.float32), np.ones((4, 2), np.float32), {}, "queries row 0 has NaN"),
        (np.ones((2, 2), np.float32), np.array([[1, 1], [np.inf, 0]], np.float32), {}, "references row 1 has NaN"),
        (np.ones((2, 2), np.float32), np.ones((4, 2), np.float32), {"n": -1}, "n must be >= 0"),
        (np.ones((2, 2), np.float32), np.ones((4, 2), np.float32), {"k": 0}, "k must be > 0"),
        (np.ones((2, 2), np.float32), np.ones((4, 2), np.float32), {"chunk_size": 0}, "chunk_size must be > 0"),
        (np.ones((2, 2), np.float32), np.ones((4, 2), np.float32), {"index_factory": "Nope"}, "invalid faiss index"),
    ],
)
def test_bad_input_raises_clear_error(queries, references, kwargs, message):
    with pytest.raises(InputError, match=message):
        global_search(queries, references, **kwargs)


def test_refuses_l2_index():
    index = faiss.IndexFlatL2(4)
    index.add(np.ones((3, 4), np.float32))
    with pytest.raises(InputError, match="inner-product"):
        global_search(np.ones((2, 4), np.float32), index)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_search_writes_global_top_n(tmp_path, capsys):
    q, r = unit_data(8, 20, 100)
    background, _ = unit_data(9, 50, 1)
    save_descriptors(tmp_path / "q.safetensors", make_descriptors([f"Q{i:05d}" for i in range(20)], q))
    save_descriptors(tmp_path / "r.npy", make_descriptors([f"R{i:06d}" for i in range(100)], r))
    save_descriptors(tmp_path / "bg.npy", make_descriptors([f"T{i:06d}" for i in range(50)], background))
    out = tmp_path / "pred.csv"
    base = ["search", "--queries", str(tmp_path / "q.safetensors"), "--references", str(tmp_path / "r.npy")]
    assert main([*base, "--out", str(out), "--no-progress"]) == 0
    rows = read_csv(out)
    assert len(rows) == 200
    expected = global_search(q, r)
    assert [(row["query_id"], row["reference_id"]) for row in rows[:20]] == [
        (f"Q{i:05d}", f"R{j:06d}") for i, j in zip(expected.query_index[:20], expected.reference_index[:20])
    ]
    assert main([*base, "--out", str(out), "--knn", "3", "--no-progress"]) == 0
    assert len(read_csv(out)) == 60
    args = ["--out", str(out), "--n", "50", "--background", str(tmp_path / "bg.npy"), "--beta", "2", "--no-progress"]
    assert main([*base, *args]) == 0
    q_ext, r_ext = normalize_for_search(q, r, background, beta=2.0)
    np.testing.assert_allclose(
        [float(row["score"]) for row in read_csv(out)], global_search(q_ext, r_ext, 50).score, rtol=1e-5, atol=1e-5
    )
    assert "wrote 50 predictions" in capsys.readouterr().out
    # Normalised scores through an approximate index (d=16 is not d+1: PQ still divides it).
    ivf = ["--index-factory", "IVF4,PQ4x4", "--search-params", "nprobe=4", "--check-recall", "10"]
    assert main([*base, *args, *ivf]) == 0
    assert "recall of 'IVF4,PQ4x4' against exact search on 10 sampled queries" in capsys.readouterr().out
    assert len(read_csv(out)) == 50


def test_cli_search_reports_bad_file(tmp_path, capsys):
    q, r = unit_data(8, 4, 10)
    save_descriptors(tmp_path / "q.safetensors", make_descriptors([f"Q{i}" for i in range(4)], q))
    save_descriptors(tmp_path / "r.safetensors", make_descriptors([f"R{i}" for i in range(10)], r[:, :8]))
    rc = main(
        [
            "search",
            "--queries",
            str(tmp_path / "q.safetensors"),
            "--references",
            str(tmp_path / "r.safetensors"),
            "--out",
            str(tmp_path / "p.csv"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "r.safetensors" in err and "8 dimensions" in err
