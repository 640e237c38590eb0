"""Direction-aware scoring on hand-made norms."""

from __future__ import annotations

import numpy as np
import pytest

from hf_asl.candidates import Candidates
from hf_asl.scoring import (
    apply_scoring,
    asl_hard,
    asl_soft,
    calibrate_ratio_threshold,
    dropped_share,
    norm_ratios,
    soft_penalty,
    symmetric,
)

QUERY_NORMS = np.array([1.0, 2.0], dtype=np.float32)
REFERENCE_NORMS = np.array([1.5, 1.0, 0.5], dtype=np.float32)


def hand_candidates() -> Candidates:
    # (query, reference, score) -> ratio |q|/|r|: 1/1.5, 2/1, 1/0.5, 2/1.5, 1/1
    return Candidates(
        query_index=np.array([0, 1, 0, 1, 0]),
        reference_index=np.array([0, 1, 2, 0, 1]),
        score=np.array([0.9, 0.8, 0.7, 0.6, 0.5], dtype=np.float32),
    )


def pairs(c: Candidates) -> list[tuple[int, int]]:
    return list(zip(c.query_index.tolist(), c.reference_index.tolist(), strict=True))


def test_norm_ratios_gathered_per_pair():
    np.testing.assert_allclose(norm_ratios(hand_candidates(), QUERY_NORMS, REFERENCE_NORMS),
                               [1 / 1.5, 2.0, 2.0, 2 / 1.5, 1.0], rtol=1e-6)


def test_symmetric_keeps_everything():
    c = hand_candidates()
    assert symmetric(c) is c


def test_hard_filter_drops_queries_holding_more_than_the_reference():
    kept = asl_hard(hand_candidates(), QUERY_NORMS, REFERENCE_NORMS)
    assert pairs(kept) == [(0, 0), (0, 1)]  # ratio exactly 1 is kept: only "> threshold" drops
    np.testing.assert_allclose(kept.score, [0.9, 0.5])
    looser = asl_hard(hand_candidates(), QUERY_NORMS, REFERENCE_NORMS, threshold=1.5)
    assert pairs(looser) == [(0, 0), (1, 0), (0, 1)]


def test_soft_score_hand_values_and_reordering():
    soft = asl_soft(hand_candidates(), QUERY_NORMS, REFERENCE_NORMS, threshold=1.0, temperature=0.05)
    by_pair = dict(zip(pairs(soft), soft.score.tolist(), strict=True))
    assert by_pair[(0, 0)] == pytest.approx(0.9, abs=1e-4)  # 6.7 temperatures below: untouched
    assert by_pair[(0, 1)] == pytest.approx(0.5 - 0.05 * np.log(2), abs=1e-6)  # at the threshold
    assert by_pair[(1, 1)] == pytest.approx(0.8 - 1.0, abs=1e-6)  # ratio 2: penalty = excess ratio
    assert by_pair[(1, 0)] == pytest.approx(0.6 - 0.05 * np.log1p(np.exp((1 / 3) / 0.05)), abs=1e-6)
    assert pairs(soft) == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]  # re-sorted by the new scores


def test_soft_penalty_is_monotone_and_vanishes_below_threshold():
    ratios = np.linspace(0.2, 3.0, 200)
    penalty = soft_penalty(ratios, threshold=1.2, temperature=0.1)
    assert np.all(np.diff(penalty) > 0)
    assert penalty[0] < 1e-4  # ten temperatures below the threshold
    np.testing.assert_allclose(penalty[ratios > 2.5], ratios[ratios > 2.5] - 1.2, atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        soft_penalty(ratios, temperature=0.0)


def test_apply_scoring_dispatches_and_needs_norms():
    c = hand_candidates()
    assert pairs(apply_scoring("asl_hard", c, QUERY_NORMS, REFERENCE_NORMS)) == pairs(
        asl_hard(c, QUERY_NORMS, REFERENCE_NORMS))
    np.testing.assert_array_equal(apply_scoring("asl_soft", c, QUERY_NORMS, REFERENCE_NORMS, temperature=0.1).score,
                                  asl_soft(c, QUERY_NORMS, REFERENCE_NORMS, temperature=0.1).score)
    assert apply_scoring("symmetric", c) is c
    with pytest.raises(ValueError, match="norms"):
        apply_scoring("asl_hard", c)
    with pytest.raises(ValueError, match="unknown scoring mode"):
        apply_scoring("cosine", c, QUERY_NORMS, REFERENCE_NORMS)


def test_bad_norms_are_refused():
    c = hand_candidates()
    with pytest.raises(ValueError, match="holds only 2 norms"):
        asl_hard(c, QUERY_NORMS, REFERENCE_NORMS[:2])
    with pytest.raises(ValueError, match="positive"):
        asl_hard(c, np.array([0.0, 1.0]), REFERENCE_NORMS)
    with pytest.raises(ValueError, match="1-D"):
        asl_hard(c, QUERY_NORMS[None], REFERENCE_NORMS)


def test_empty_candidates():
    empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert len(asl_hard(empty, QUERY_NORMS, REFERENCE_NORMS)) == 0
    assert len(asl_soft(empty, QUERY_NORMS, REFERENCE_NORMS)) == 0


def test_calibrated_threshold_keeps_the_asked_share():
    ratios = np.arange(1, 101) / 100  # 0.01 ... 1.00
    threshold = calibrate_ratio_threshold(ratios, keep=0.99)
    assert threshold == pytest.approx(0.99)
    assert dropped_share(ratios, threshold) == pytest.approx(0.01)
    assert calibrate_ratio_threshold(ratios, keep=1.0) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        sample = rng.lognormal(0.0, 0.1, size=rng.integers(1, 300))
        assert dropped_share(sample, calibrate_ratio_threshold(sample, keep=0.95)) <= 0.05 + 1e-12


def test_threshold_one_drops_about_half_of_content_keeping_copies():
    # Colour/JPEG-style copies keep all content: ratios scatter around 1 and the paper's
    # threshold of exactly 1 drops about half of them; the calibrated one drops 1%.
    ratios = np.random.default_rng(1).normal(1.0, 0.03, size=2000)
    assert 0.45 < dropped_share(ratios, 1.0) < 0.55
    assert dropped_share(ratios, calibrate_ratio_threshold(ratios)) <= 0.01


def test_calibration_input_checks():
    with pytest.raises(ValueError, match="non-empty"):
        calibrate_ratio_threshold(np.array([]))
    with pytest.raises(ValueError, match="keep"):
        calibrate_ratio_threshold(np.array([1.0]), keep=0.0)
    with pytest.raises(ValueError, match="empty"):
        dropped_share(np.array([]), 1.0)
