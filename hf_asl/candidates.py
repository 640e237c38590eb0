"""Candidate (query, reference, score) pairs: what search produces and scoring/metrics consume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidates:
    """Parallel arrays, one entry per candidate pair, sorted by ``score`` descending.

    Indices point into the query / reference descriptor matrices the search was given, so that
    per-image values computed once (ids, descriptor norms) are gathered per pair by indexing.
    """

    query_index: np.ndarray  # int64, shape (n,)
    reference_index: np.ndarray  # int64, shape (n,)
    score: np.ndarray  # float32, shape (n,)

    def __post_init__(self) -> None:
        n = len(self.score)
        if len(self.query_index) != n or len(self.reference_index) != n:
            raise ValueError("query_index, reference_index and score must have the same length")

    def __len__(self) -> int:
        return len(self.score)

    def with_scores(self, score: np.ndarray, keep: np.ndarray | None = None) -> Candidates:
        """Rescored (and optionally filtered by the boolean mask ``keep``) copy, re-sorted."""
        qi, ri, s = self.query_index, self.reference_index, np.asarray(score, dtype=np.float32)
        if keep is not None:
            qi, ri, s = qi[keep], ri[keep], s[keep]
        order = np.argsort(-s, kind="stable")
        return Candidates(qi[order], ri[order], s[order])
