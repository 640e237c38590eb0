"""Micro average precision (µAP) and the DISC21 operating points, in plain numpy.

Definitions (DISC21 protocol, also used by NDEC):

* Each prediction ``(query, reference, score)`` is a true positive when the pair is in the ground
  truth, otherwise a false positive -- every prediction for a query without a match is a false
  positive.  ``G`` counts *all* ground-truth pairs, including those no prediction names.
* All predictions of all queries are ranked together by score, descending; **ties are broken
  pessimistically** (within equal scores, false positives rank first).  At rank ``k``,
  ``precision_k = TP_k / k`` and ``recall_k = TP_k / G``;
  ``µAP = Σ_k (recall_k - recall_{k-1}) precision_k = (1/G) Σ_{k: y_k = 1} precision_k``.
* Recall@P90 is the largest ``recall_k`` with ``precision_k >= 0.9``, reported with the score at
  that rank; when precision never reaches 0.9 it is ``None`` (and a note says so).
* Recall@rank-r, per ground-truth pair: the true match counts when fewer than ``r`` *other*
  predictions of the same query score at least as high as it (pessimistic ties again).

Which predictions are evaluated is explicit (``query_scope``): ``"ground_truth"`` keeps only the
predictions of queries listed in the ground truth (the official DISC21 script), ``"all"`` counts
every prediction, predictions of unlisted queries being false positives (the research code).
NDEC lists every query, so both agree there.

Nothing here needs an argsort of the predictions: under pessimistic ties the rank of the j-th
true positive (by score) is ``#(negatives scoring >= its score) + j``, which one ``np.sort`` of
the scores and a ``np.searchsorted`` give for all positives at once.  Precision only rises at
true positives, so the Recall@P90 point is a true positive too -- the last of its tie group
(the next positive of the group would have higher precision and recall) -- hence keeping the
predictions with ``score >= threshold_at_p90`` reproduces exactly that operating point.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import InputError
from .ids import EncodedIds

QueryScope = Literal["ground_truth", "all"]
QUERY_SCOPES: tuple[str, ...] = ("ground_truth", "all")
# Per-kind bucket for queries the ``kinds`` mapping does not label.
UNLABELLED_KIND = "(no kind)"
P90 = 0.9


@dataclass(frozen=True)
class MetricResult:
    """Everything :func:`compute_metrics` measures.

    ``precision``, ``recall`` and ``thresholds`` hold one point per true positive, in ranking
    order: the precision and recall at the rank of that true positive and its score.  They are
    exactly the points µAP averages (``micro_ap == precision.sum() / n_ground_truth``) and the
    upper corners of the precision-recall staircase, which is what a PR plot draws.

    ``per_kind`` (only when kinds were given) maps each query kind to counts: ``n_queries`` and
    ``n_ground_truth`` (ground-truth queries and pairs of that kind), ``n_predictions`` (evaluated
    predictions of its queries) and ``true_positives`` / ``false_positives`` among the
    predictions scoring at least ``per_kind_threshold``.  That threshold is the Recall@P90
    threshold (``per_kind_cut == "p90"``) or, when precision never reaches 0.9, the score of the
    ``G``-th ranked prediction (``per_kind_cut == "top_g"``; all predictions when there are fewer
    than ``G``).
    """

    micro_ap: float
    recall_at_p90: float | None
    threshold_at_p90: float | None
    recall_at_rank1: float
    recall_at_rank10: float
    n_predictions: int
    n_ground_truth: int
    n_true_positives: int
    n_queries: int
    n_out_of_scope: int
    query_scope: str
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    per_kind: dict[str, dict[str, int]] | None = None
    per_kind_cut: str | None = None
    per_kind_threshold: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def p90_reached(self) -> bool:
        """Whether precision reaches 0.9 at some rank (else Recall@P90 is undefined)."""
        return self.recall_at_p90 is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: every scalar, the per-kind counts and the notes (not the curve)."""
        return {
            "micro_ap": self.micro_ap,
            "recall_at_p90": self.recall_at_p90,
            "threshold_at_p90": self.threshold_at_p90,
            "p90_reached": self.p90_reached,
            "recall_at_rank1": self.recall_at_rank1,
            "recall_at_rank10": self.recall_at_rank10,
            "n_predictions": self.n_predictions,
            "n_ground_truth": self.n_ground_truth,
            "n_true_positives": self.n_true_positives,
            "n_queries": self.n_queries,
            "n_out_of_scope": self.n_out_of_scope,
            "query_scope": self.query_scope,
            "per_kind": None if self.per_kind is None else {k: dict(v) for k, v in self.per_kind.items()},
            "per_kind_cut": self.per_kind_cut,
            "per_kind_threshold": self.per_kind_threshold,
            "notes": list(self.notes),
        }


def positive_ranks(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (1-based) of the true positives under pessimistic ties, and their scores.

    Both arrays are in ranking order (scores descending).  A positive's rank is the number of
    negatives scoring at least as high plus its position among the positives, since within a
    tie every negative ranks first.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores)
    positive_scores = np.sort(scores[labels])  # ascending
    n_pos = len(positive_scores)
    if n_pos == 0:
        return np.zeros(0, dtype=np.int64), positive_scores
    all_ascending = np.sort(scores)
    desc = positive_scores[::-1]
    n_all_ge = len(scores) - np.searchsorted(all_ascending, desc, side="left")
    n_pos_ge = n_pos - np.searchsorted(positive_scores, desc, side="left")
    ranks = n_all_ge - n_pos_ge + np.arange(1, n_pos + 1)
    return ranks.astype(np.int64), desc


def micro_average_precision(labels: np.ndarray, scores: np.ndarray, n_ground_truth: int) -> float:
    """µAP of labelled predictions (``labels`` true for ground-truth pairs), ``G = n_ground_truth``."""
    if n_ground_truth <= 0:
        raise ValueError("µAP is undefined without ground-truth pairs (n_ground_truth must be > 0)")
    ranks, _ = positive_ranks(labels, scores)
    if len(ranks) > n_ground_truth:
        raise ValueError(f"{len(ranks)} true positives but only {n_ground_truth} ground-truth pairs")
    return _mean_precision(np.arange(1, len(ranks) + 1) / ranks, n_ground_truth)


def _mean_precision(precision: np.ndarray, n_ground_truth: int) -> float:
    # Summed left to right like the definition reads, so a plain Python loop agrees bit for bit.
    return float(np.cumsum(precision)[-1] / n_ground_truth) if len(precision) else 0.0


def compute_metrics(
    query_ids: Sequence[str],
    reference_ids: Sequence[str],
    scores: Sequence[float],
    gt_query_ids: Sequence[str],
    gt_reference_ids: Sequence[str | None],
    *,
    kinds: Mapping[str, str] | None = None,
    query_scope: QueryScope = "ground_truth",
) -> MetricResult:
    """µAP, Recall@P90 (+ threshold), recall@rank-1/10 and per-kind counts of predictions.

    ``gt_*`` list the ground truth row by row; an empty or ``None`` reference marks a query
    without a match (it is still "listed", which matters for ``query_scope="ground_truth"``).
    A query may have several ground-truth references.  ``kinds`` maps query ids to a label
    (e.g. the NDEC hard-negative kind) for the per-kind breakdown.  Repeated prediction or
    ground-truth pairs, empty prediction ids and non-finite scores raise :class:`InputError`,
    as does a ground truth without any pair (µAP is undefined there).
    """
    if query_scope not in QUERY_SCOPES:
        raise ValueError(f"query_scope must be one of {QUERY_SCOPES}, got {query_scope!r}")
    n = len(scores)
    if len(query_ids) != n or len(reference_ids) != n:
        raise InputError(
            f"predictions have {len(query_ids)} query ids, {len(reference_ids)} reference ids and {n} scores"
        )
    if len(gt_query_ids) != len(gt_reference_ids):
        raise InputError(
            f"ground truth has {len(gt_query_ids)} query ids but {len(gt_reference_ids)} reference ids"
        )
    score = _scores_array(scores)

    # Ground-truth queries take the first codes, so "listed in the ground truth" is `code < n_listed`.
    query_vocab: dict[Hashable, int] = {}
    gt_q = _codes(gt_query_ids, query_vocab, what="ground-truth query id")
    n_listed = len(query_vocab)
    gt_refs = np.array(["" if r is None else r for r in gt_reference_ids], dtype=object)
    has_pair = gt_refs != ""
    gt_q, gt_refs = gt_q[has_pair], gt_refs[has_pair]
    n_gt = len(gt_q)
    if n_gt == 0:
        raise InputError("the ground truth has no (query, reference) pair: µAP is undefined")
    if len(set(zip(gt_q.tolist(), gt_refs.tolist()))) != n_gt:
        raise InputError("the ground truth repeats a (query, reference) pair")

    queries, refs = _as_sequence(query_ids), _as_sequence(reference_ids)
    pred_q = _codes(queries, query_vocab, what="query id")
    # References are never given codes: their hashes find empty ids, repeated pairs and true
    # pairs (each candidate then compared exactly), one pass over millions of ids.
    ref_hash = _hashes(refs)
    _check_not_empty(refs, ref_hash, what="reference id")
    _check_unique_pairs(pred_q, ref_hash, queries, refs)
    labels = _label(pred_q, ref_hash, refs, gt_q, gt_refs, len(query_vocab))

    n_out_of_scope = 0
    if query_scope == "ground_truth":
        keep = pred_q < n_listed
        n_out_of_scope = int(n - np.count_nonzero(keep))
        if n_out_of_scope:
            pred_q, score, labels = pred_q[keep], score[keep], labels[keep]
    n_queries_vocab = len(query_vocab)

    ranks, positive_scores = positive_ranks(labels, score)
    tp = np.arange(1, len(ranks) + 1)
    precision = tp / ranks
    recall = tp / n_gt
    micro_ap = _mean_precision(precision, n_gt)

    notes: list[str] = []
    # Integer test (10·TP >= 9·k) so that exactly 90 % precision is never lost to rounding.
    reaches = np.flatnonzero(10 * tp >= 9 * ranks)
    recall_at_p90 = threshold_at_p90 = None
    if len(reaches):
        # The last qualifying positive closes its tie group (see the module docstring).
        best = reaches[-1]
        recall_at_p90 = float(recall[best])
        threshold_at_p90 = float(positive_scores[best])
    else:
        notes.append("precision never reaches 0.9: recall_at_p90 and threshold_at_p90 are undefined")
    if len(score) == 0:
        notes.append("no predictions to evaluate")

    hits1, hits10 = _rank_hits(pred_q, score, labels, n_queries_vocab, ranks=(1, 10))

    per_kind = per_kind_cut = per_kind_threshold = None
    if kinds is not None:
        if threshold_at_p90 is not None:
            per_kind_cut, per_kind_threshold = "p90", threshold_at_p90
        else:
            per_kind_cut = "top_g"
            if len(score):
                # Partition, not sort: only the G-th largest score is needed.
                kth = min(n_gt, len(score))
                per_kind_threshold = float(np.partition(score, len(score) - kth)[len(score) - kth])
        per_kind = _per_kind_counts(
            kinds, query_vocab, gt_q, np.arange(n_listed), pred_q, score, labels, per_kind_threshold
        )
    return MetricResult(
        micro_ap=micro_ap,
        recall_at_p90=recall_at_p90,
        threshold_at_p90=threshold_at_p90,
        recall_at_rank1=hits1 / n_gt,
        recall_at_rank10=hits10 / n_gt,
        n_predictions=len(score),
        n_ground_truth=n_gt,
        n_true_positives=len(ranks),
        n_queries=n_listed,
        n_out_of_scope=n_out_of_scope,
        query_scope=query_scope,
        precision=precision,
        recall=recall,
        thresholds=positive_scores,
        per_kind=per_kind,
        per_kind_cut=per_kind_cut,
        per_kind_threshold=per_kind_threshold,
        notes=tuple(notes),
    )


def _scores_array(scores: Sequence[float]) -> np.ndarray:
    """Scores as float32 when given so (ties stay exactly as the producer made them), else float64."""
    score = np.asarray(scores)
    if score.dtype != np.float32:
        try:
            score = score.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InputError(f"scores must be numbers: {err}") from None
    if score.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {score.shape}")
    bad = np.flatnonzero(~np.isfinite(score))
    if len(bad):
        raise InputError(f"score #{bad[0]} is {float(score[bad[0]])!r}; scores must be finite numbers")
    return score


def _as_sequence(ids: Iterable[Hashable]) -> list | EncodedIds:
    # Python's str hashing beats numpy string scalars, hence lists rather than numpy arrays.
    if isinstance(ids, (list, EncodedIds)):
        return ids
    return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)


def _codes(ids: Iterable[Hashable], vocab: dict[Hashable, int], *, what: str) -> np.ndarray:
    """Integer codes of ``ids`` in ``vocab``, adding unseen ids to it (hashing, no string sort).

    :class:`EncodedIds` only has its distinct ids looked up.  Empty ids raise
    :class:`InputError` naming the first position.
    """
    ids = _as_sequence(ids)
    values = ids.categories.tolist() if isinstance(ids, EncodedIds) else ids
    unique = dict.fromkeys(values)
    if "" in unique or None in unique:
        _check_not_empty(ids, None, what=what)
    new = [v for v in unique if v not in vocab]
    vocab.update(zip(new, range(len(vocab), len(vocab) + len(new))))
    codes = np.fromiter(map(vocab.__getitem__, values), dtype=np.int64, count=len(values))
    return codes[ids.codes] if isinstance(ids, EncodedIds) else codes


def _hashes(ids: list | EncodedIds) -> np.ndarray:
    """Python hash of every id (equal ids, equal hashes), as int64."""
    if isinstance(ids, EncodedIds):
        return _hashes(ids.categories.tolist())[ids.codes]
    return np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))


def _check_not_empty(ids: list | EncodedIds, hashes: np.ndarray | None, *, what: str) -> None:
    """Raise naming the first empty (``""`` or ``None``) id; ``hashes`` narrows the search."""
    if hashes is None:
        positions = range(len(ids))
    else:
        positions = np.flatnonzero((hashes == hash("")) | (hashes == hash(None))).tolist()
    for position in positions:
        if ids[position] in ("", None):
            raise InputError(f"{what} #{position} is empty")


def _check_unique_pairs(
    query_codes: np.ndarray, reference_hash: np.ndarray, query_ids: Sequence, reference_ids: Sequence
) -> None:
    """Raise on a repeated (query, reference) pair.

    Each pair is mixed into one 64-bit key (query code and reference hash), so one ``np.sort``
    finds candidate repeats; candidates are then compared exactly, so a key collision can never
    raise a false alarm.
    """
    if len(query_codes) < 2:
        return
    key = (query_codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ reference_hash.view(np.uint64)
    ordered = np.sort(key)
    repeated_keys = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated_keys):
        return
    first_seen: dict[tuple[Hashable, Hashable], int] = {}
    for index in np.flatnonzero(np.isin(key, repeated_keys)).tolist():
        pair = (query_ids[index], reference_ids[index])
        if pair in first_seen:
            raise InputError(f"prediction #{index} repeats the pair {pair} of prediction #{first_seen[pair]}")
        first_seen[pair] = index


def _label(
    pred_q: np.ndarray,
    ref_hash: np.ndarray,
    refs: Sequence,
    gt_q: np.ndarray,
    gt_refs: np.ndarray,
    n_queries: int,
) -> np.ndarray:
    """True where (query, reference) is a ground-truth pair.

    Per slot ``j`` (a query's j-th true reference; DISC21/NDEC have one slot), tables
    ``query -> hash / id of that reference`` turn labelling into a gather and a compare;
    only the hash matches are compared as strings.
    """
    order = np.argsort(gt_q, kind="stable")
    q_sorted, r_sorted = gt_q[order], gt_refs[order]
    slot = np.arange(len(q_sorted)) - np.searchsorted(q_sorted, q_sorted, side="left")
    labels = np.zeros(len(pred_q), dtype=bool)
    for j in range(int(slot.max()) + 1):
        in_slot = slot == j
        has = np.zeros(n_queries, dtype=bool)
        has[q_sorted[in_slot]] = True
        expected_hash = np.zeros(n_queries, dtype=np.int64)
        expected_hash[q_sorted[in_slot]] = _hashes(r_sorted[in_slot].tolist())
        expected = np.empty(n_queries, dtype=object)
        expected[q_sorted[in_slot]] = r_sorted[in_slot]
        candidates = np.flatnonzero(has[pred_q] & (expected_hash[pred_q] == ref_hash))
        if len(candidates):
            found = np.empty(len(candidates), dtype=object)
            found[:] = [refs[i] for i in candidates.tolist()]
            labels[candidates[found == expected[pred_q[candidates]]]] = True
    return labels


def _rank_hits(
    pred_q: np.ndarray, score: np.ndarray, labels: np.ndarray, n_queries: int, ranks: tuple[int, ...]
) -> tuple[int, ...]:
    """How many true positives have fewer than ``r`` other predictions of their query scoring >= them.

    Per slot of true positives (one per query at a time), a table ``query -> that positive's
    score`` lets one comparison and one bincount count, for every positive, the predictions of
    its query scoring at least as high -- no sort of the predictions.
    """
    tp_index = np.flatnonzero(labels)
    if len(tp_index) == 0:
        return tuple(0 for _ in ranks)
    tq = pred_q[tp_index]
    order = np.argsort(tq, kind="stable")
    tq, tp_index = tq[order], tp_index[order]
    slot = np.arange(len(tq)) - np.searchsorted(tq, tq, side="left")
    n_at_least = np.empty(len(tq), dtype=np.int64)
    for j in range(int(slot.max()) + 1):
        in_slot = slot == j
        threshold = np.full(n_queries, np.inf)
        threshold[tq[in_slot]] = score[tp_index[in_slot]]
        at_least = score >= threshold[pred_q]
        counts = np.bincount(pred_q[at_least], minlength=n_queries)
        n_at_least[in_slot] = counts[tq[in_slot]]
    others = n_at_least - 1
    return tuple(int(np.count_nonzero(others < r)) for r in ranks)


def _per_kind_counts(
    kinds: Mapping[str, str],
    query_vocab: dict[str, int],
    gt_q: np.ndarray,
    listed_q: np.ndarray,
    pred_q: np.ndarray,
    score: np.ndarray,
    labels: np.ndarray,
    threshold: float | None,
) -> dict[str, dict[str, int]]:
    names: dict[str, int] = {}
    kind_of_query = np.fromiter(
        (names.setdefault(kinds.get(q, UNLABELLED_KIND), len(names)) for q in query_vocab),
        dtype=np.int64,
        count=len(query_vocab),
    )
    n_kinds = len(names)

    def count(q_codes: np.ndarray) -> np.ndarray:
        return np.bincount(kind_of_query[q_codes], minlength=n_kinds)

    above = np.zeros(len(score), dtype=bool) if threshold is None else score >= threshold
    columns = {
        "n_queries": count(listed_q),
        "n_ground_truth": count(gt_q),
        "n_predictions": count(pred_q),
        "true_positives": count(pred_q[above & labels]),
        "false_positives": count(pred_q[above & ~labels]),
    }
    return {
        name: {column: int(values[index]) for column, values in columns.items()}
        for name, index in sorted(names.items())
    }
