"""Direction-aware scoring of candidate pairs with the descriptor norms (ASL).

A crop of a photo is a copy of it, the photo is not a copy of the crop: the query of a true copy
holds at most the reference's content, so its norm should not exceed the reference's. The norms
are computed once per image with the descriptor; here they are only gathered per pair by the
candidates' indices.
"""

from __future__ import annotations

import numpy as np

from .candidates import Candidates

SCORING_MODES = ("symmetric", "asl_hard", "asl_soft")


def _as_norms(norms: np.ndarray, name: str, max_index: int) -> np.ndarray:
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1:
        raise ValueError(f"{name} must be one norm per image (1-D), got shape {norms.shape}")
    if max_index >= len(norms):
        raise ValueError(f"candidates index image {max_index} but {name} holds only {len(norms)} norms")
    if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        raise ValueError(f"{name} must be positive and finite (got min {norms.min() if len(norms) else None})")
    return norms


def norm_ratios(candidates: Candidates, query_norms: np.ndarray, reference_norms: np.ndarray) -> np.ndarray:
    """``|q| / |r|`` of every candidate pair, gathered from per-image norms."""
    if len(candidates) == 0:
        return np.zeros(0, dtype=np.float64)
    q = _as_norms(query_norms, "query_norms", int(candidates.query_index.max()))
    r = _as_norms(reference_norms, "reference_norms", int(candidates.reference_index.max()))
    return q[candidates.query_index] / r[candidates.reference_index]


def symmetric(candidates: Candidates) -> Candidates:
    """The symmetric score: the cosine of the normalised descriptors the search returned, unchanged."""
    return candidates


def asl_hard(candidates: Candidates, query_norms: np.ndarray, reference_norms: np.ndarray,
             threshold: float = 1.0) -> Candidates:
    """The paper's filter: drop every pair with ``|q| / |r| > threshold`` (the query holds more than
    the reference, so it cannot be a copy of it); the kept scores are unchanged."""
    keep = norm_ratios(candidates, query_norms, reference_norms) <= threshold
    return candidates.with_scores(candidates.score, keep=keep)


def soft_penalty(ratios: np.ndarray, threshold: float = 1.0, temperature: float = 0.05) -> np.ndarray:
    """Smooth hinge ``temperature * softplus((ratio - threshold) / temperature)``.

    About 0 well below the threshold (under ``5e-5 * temperature`` ten temperatures below), about
    ``ratio - threshold`` well above it, increasing everywhere.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return temperature * np.logaddexp(0.0, (np.asarray(ratios, dtype=np.float64) - threshold) / temperature)


def asl_soft(candidates: Candidates, query_norms: np.ndarray, reference_norms: np.ndarray,
             threshold: float = 1.0, temperature: float = 0.05, strength: float = 1.0) -> Candidates:
    """Soft variant: ``score - strength * soft_penalty(ratio)``, re-sorted; no pair is dropped.

    A pair well below the threshold keeps its score, one just above loses a little, and the loss
    grows with the excess ratio, so a borderline true copy is demoted rather than removed.
    """
    ratios = norm_ratios(candidates, query_norms, reference_norms)
    score = candidates.score.astype(np.float64) - strength * soft_penalty(ratios, threshold, temperature)
    return candidates.with_scores(score.astype(np.float32))


def apply_scoring(mode: str, candidates: Candidates, query_norms: np.ndarray | None = None,
                  reference_norms: np.ndarray | None = None, threshold: float = 1.0,
                  temperature: float = 0.05) -> Candidates:
    """Score ``candidates`` with one of :data:`SCORING_MODES` (the ASL modes need both norm arrays)."""
    if mode == "symmetric":
        return symmetric(candidates)
    if mode not in SCORING_MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; choose from {', '.join(SCORING_MODES)}")
    if query_norms is None or reference_norms is None:
        raise ValueError(f"scoring mode {mode!r} needs the query and reference descriptor norms")
    if mode == "asl_hard":
        return asl_hard(candidates, query_norms, reference_norms, threshold)
    return asl_soft(candidates, query_norms, reference_norms, threshold, temperature)


def calibrate_ratio_threshold(copy_ratios: np.ndarray, keep: float = 0.99) -> float:
    """Smallest threshold that keeps at least ``keep`` of the given true-copy ratios ``|q| / |r|``.

    Fit it on TRAINING copy pairs (an edited view as query, its original as reference), never on
    the test split. Edits that keep all content give ratios near 1, so the paper's threshold of
    exactly 1 drops about half of them unless the model learned a margin.
    """
    ratios = np.asarray(copy_ratios, dtype=np.float64)
    if ratios.ndim != 1 or len(ratios) == 0:
        raise ValueError("copy_ratios must be a non-empty 1-D array")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    # inverted_cdf: the returned value is an observed ratio with at least `keep` of them <= it.
    return float(np.quantile(ratios, keep, method="inverted_cdf"))


def dropped_share(copy_ratios: np.ndarray, threshold: float) -> float:
    """Share of true-copy pairs the hard filter at ``threshold`` would drop (ratio above it)."""
    ratios = np.asarray(copy_ratios, dtype=np.float64)
    if len(ratios) == 0:
        raise ValueError("copy_ratios is empty")
    return float(np.mean(ratios > threshold))


__all__ = [
    "SCORING_MODES",
    "apply_scoring",
    "asl_hard",
    "asl_soft",
    "calibrate_ratio_threshold",
    "dropped_share",
    "norm_ratios",
    "soft_penalty",
    "symmetric",
]
