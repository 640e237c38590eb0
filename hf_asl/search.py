"""Candidate search on faiss: the global top-N (query, reference) pairs, per-query kNN, and the
background score normalisation, all by inner product on float32 descriptors.

The ISC/DISC21 rule keeps the N best pairs over *all* queries (N = 10 per query on average), not
k per query. :func:`global_search` finds exactly that set while only ever holding one chunk of
per-query neighbour lists plus the running top N in memory; the full score matrix is never built.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from tqdm.auto import tqdm

from .candidates import Candidates
from .errors import InputError

DEFAULT_CHUNK_SIZE = 8192
# Neighbours fetched per query in the first pass: this many times the average share N / n_queries.
# faiss's cost barely grows up to k≈40, and a larger k leaves fewer queries to search again.
_K_PER_SHARE = 4
_K_MIN = 16
_K_CAP = 1024
# Factor by which k grows for the queries that may still hold more of the global top N.
_K_GROWTH = 4
_DEFAULT_TRAIN_SIZE = 131_072
_ADD_BATCH_ROWS = 65_536

logger = logging.getLogger(__name__)


def global_search(
    queries: np.ndarray,
    references: np.ndarray | faiss.Index,
    n: int | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    k: int | None = None,
    score_offsets: np.ndarray | None = None,
    index_factory: str | None = None,
    train_size: int | None = None,
    search_params: str | None = None,
    num_threads: int | None = None,
    progress: bool = False,
) -> Candidates:
    """The ``n`` highest-scoring (query, reference) pairs over all queries, sorted by score.

    ``n`` defaults to 10 × the number of queries. With the default exact index the result
    equals brute-force global top-``n`` (pairs tied at the ``n``-th score may be swapped for
    other pairs with that same score). Queries are searched ``chunk_size`` at a time, ``k``
    neighbours each (chosen from ``n`` when None); a query whose ``k``-th neighbour still beats
    the running ``n``-th score is searched again with a larger ``k`` until none does.

    ``score_offsets`` (one per query, e.g. from :func:`background_offsets`) are subtracted
    from every score of their query before pairs are ranked: the score normalisation.

    ``references`` is a float matrix, or a faiss index already holding the references (then
    ``index_factory``, ``train_size`` and ``search_params`` are ignored). ``index_factory``
    (e.g. ``"IVF1024,PQ32"``) builds an approximate index trained on ``train_size`` sampled
    references; ``search_params`` (e.g. ``"nprobe=16"``) tunes it. Check such an index with
    :func:`recall_against_exact`.
    """
    q = _as_matrix(queries, "queries")
    offsets = _as_offsets(score_offsets, q.shape[0])
    _check_positive(chunk_size, "chunk_size")
    with _faiss_threads(num_threads):
        index = _as_index(references, q.shape[1], index_factory, train_size, search_params, progress)
        nq, nr = q.shape[0], index.ntotal
        n = 10 * nq if n is None else _check_positive(n, "n", allow_zero=True)
        n = min(n, nq * nr)
        if n == 0:
            return _empty_candidates()
        # No query can hold more than min(n, nr) of the top n.
        k_full = min(n, nr)
        if k is None:
            k = max(_K_MIN, _K_PER_SHARE * math.ceil(n / nq))
            k = min(k, _K_CAP)
        k = min(_check_positive(k, "k"), k_full)
        first_k = k
        logger.debug("global search: top %d of %d x %d pairs, first pass k=%d", n, nq, nr, k)

        top = _TopN(n, nq, index, q, offsets)
        kth_score = np.empty(nq, dtype=np.float32)
        for rows in _chunks(np.arange(nq), chunk_size, progress, "global search"):
            kth_score[rows] = top.add_search(rows, k)

        while k < k_full:
            # Neighbours beyond a query's k-th score at most its k-th score: only queries whose
            # k-th beats the running n-th score can hold more of the top n (ties change nothing).
            again = np.flatnonzero(kth_score > top.threshold())
            if again.size == 0:
                break
            k = min(k * _K_GROWTH, k_full)
            logger.debug("global search: %d queries may hold more of the top %d; again with k=%d", again.size, n, k)
            # Keep each call's result lists about as large as a first-pass chunk's.
            rows_per_call = max(1, chunk_size * first_k // k)
            for rows in _chunks(again, rows_per_call, progress, f"search again (k={k})"):
                top.drop_queries(rows)
                kth_score[rows] = top.add_search(rows, k)
        return top.candidates()


def knn_search(
    queries: np.ndarray,
    references: np.ndarray | faiss.Index,
    k: int = 10,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    score_offsets: np.ndarray | None = None,
    index_factory: str | None = None,
    train_size: int | None = None,
    search_params: str | None = None,
    num_threads: int | None = None,
    progress: bool = False,
) -> Candidates:
    """The ``k`` nearest references of every query (fewer when there are fewer references),
    all pairs together sorted by score. Options as in :func:`global_search`."""
    q = _as_matrix(queries, "queries")
    offsets = _as_offsets(score_offsets, q.shape[0])
    _check_positive(k, "k")
    _check_positive(chunk_size, "chunk_size")
    with _faiss_threads(num_threads):
        index = _as_index(references, q.shape[1], index_factory, train_size, search_params, progress)
        k = min(k, index.ntotal)
        if k == 0 or q.shape[0] == 0:
            return _empty_candidates()
        parts = []
        for rows in _chunks(np.arange(q.shape[0]), chunk_size, progress, "knn search"):
            parts.append(_search_rows(index, q, offsets, rows, k)[:3])
    qi, ri, s = (np.concatenate(p) for p in zip(*parts))
    return _sorted_candidates(qi, ri, s)


def build_index(
    references: np.ndarray,
    index_factory: str = "Flat",
    *,
    train_size: int | None = None,
    search_params: str | None = None,
    seed: int = 0,
    num_threads: int | None = None,
    progress: bool = False,
) -> faiss.Index:
    """An inner-product faiss index holding ``references`` (added in batches, so a
    memory-mapped matrix is never copied whole). Indexes that need training are trained on
    ``train_size`` references sampled with ``seed`` (default: up to 131,072)."""
    with _faiss_threads(num_threads):
        return _build_index(references, index_factory, train_size, search_params, seed, progress)


def _build_index(
    references: np.ndarray,
    index_factory: str,
    train_size: int | None,
    search_params: str | None,
    seed: int,
    progress: bool,
) -> faiss.Index:
    r = _as_matrix(references, "references", copy=False)
    d = r.shape[1]
    try:
        index = faiss.index_factory(d, index_factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise InputError(f"invalid faiss index factory string {index_factory!r}: {_faiss_message(err)}") from None
    if not index.is_trained:
        size = min(r.shape[0], _DEFAULT_TRAIN_SIZE if train_size is None else _check_positive(train_size, "train_size"))
        rows = np.sort(np.random.default_rng(seed).choice(r.shape[0], size=size, replace=False))
        sample = _checked_rows(r, rows, "references")
        try:
            index.train(sample)
        except RuntimeError as err:
            raise InputError(f"cannot train {index_factory!r} on {size} references: {_faiss_message(err)}") from None
    for rows in _chunks(np.arange(r.shape[0]), _ADD_BATCH_ROWS, progress, "index references"):
        index.add(_checked_rows(r, rows, "references"))
    if search_params:
        try:
            faiss.ParameterSpace().set_index_parameters(index, search_params)
        except RuntimeError as err:
            raise InputError(f"invalid search parameters {search_params!r}: {_faiss_message(err)}") from None
    return index


def recall_against_exact(
    queries: np.ndarray,
    references: np.ndarray,
    index: faiss.Index | str,
    *,
    sample_size: int = 1000,
    n_per_query: int = 10,
    score_offsets: np.ndarray | None = None,
    train_size: int | None = None,
    search_params: str | None = None,
    seed: int = 0,
    num_threads: int | None = None,
) -> float:
    """Share of the exact global top pairs that an approximate ``index`` also returns.

    Both searches run on ``sample_size`` queries sampled with ``seed`` and keep the top
    ``n_per_query`` × sample pairs. ``index`` is an index built on ``references`` or a factory
    string to build one; ``score_offsets`` as in :func:`global_search`. The exact side streams ``references`` in blocks, so it needs no more
    memory than the approximate index.
    """
    q = _as_matrix(queries, "queries")
    r = _as_matrix(references, "references", copy=False)
    if q.shape[1] != r.shape[1]:
        raise InputError(f"queries have {q.shape[1]} dimensions but references have {r.shape[1]}")
    offsets = _as_offsets(score_offsets, q.shape[0])
    size = min(_check_positive(sample_size, "sample_size"), q.shape[0])
    rows = np.sort(np.random.default_rng(seed).choice(q.shape[0], size=size, replace=False))
    sample, sample_offsets = q[rows], None if offsets is None else offsets[rows]
    n = _check_positive(n_per_query, "n_per_query") * size
    with _faiss_threads(num_threads):
        if isinstance(index, str):
            index = _build_index(r, index, train_size, search_params, seed, False)
        approx = global_search(sample, index, n, score_offsets=sample_offsets, num_threads=num_threads)
        # The exact global top n lies within the union of each reference block's own top n.
        exact = _TopN(min(n, size * r.shape[0]), size)
        for block in _chunks(np.arange(r.shape[0]), _ADD_BATCH_ROWS, False, ""):
            block_refs = _checked_rows(r, block, "references")
            found = global_search(sample, block_refs, n, score_offsets=sample_offsets, num_threads=num_threads)
            exact.add(found.query_index, block[found.reference_index], found.score)
    exact_pairs = exact.candidates()
    if len(exact_pairs) == 0:
        return 1.0
    key = r.shape[0]
    hits = np.isin(
        exact_pairs.query_index * key + exact_pairs.reference_index, approx.query_index * key + approx.reference_index
    )
    return float(hits.mean())


def background_offsets(
    queries: np.ndarray,
    background: np.ndarray,
    *,
    n: int = 10,
    beta: float = 1.0,
    references: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """β · b(q) per query, where b(q) is the mean of q's ``n`` highest inner products with the
    ``background`` set (training images, never the references searched).

    Pass the result as ``score_offsets`` to :func:`global_search`; this works with any index,
    unlike the extra dimension of :func:`normalize_for_search` (d + 1 is rarely a multiple of a
    PQ's sub-quantizer count). Pass ``references`` to have a background equal to them refused.
    """
    q = _as_matrix(queries, "queries")
    bg = _as_matrix(background, "background", copy=False)
    if references is not None:
        _refuse_reference_background(bg, _as_matrix(references, "references", copy=False))
    if q.shape[1] != bg.shape[1]:
        raise InputError(f"queries have {q.shape[1]} dimensions but the background has {bg.shape[1]}")
    _check_positive(n, "n")
    if n > bg.shape[0]:
        raise InputError(f"score normalisation needs at least n={n} background descriptors, got {bg.shape[0]}")
    if not (math.isfinite(beta) and beta >= 0):
        raise InputError(f"beta must be a finite number >= 0, got {beta}")
    with _faiss_threads(num_threads):
        index = _build_index(bg, "Flat", None, None, 0, False)
        sums = np.zeros(q.shape[0], dtype=np.float64)
        for rows in _chunks(np.arange(q.shape[0]), DEFAULT_CHUNK_SIZE, False, ""):
            scores, _ = index.search(q[rows], n)
            sums[rows] = scores.sum(axis=1, dtype=np.float64)
    return (beta * sums / n).astype(np.float32)


def normalize_for_search(
    queries: np.ndarray,
    references: np.ndarray,
    background: np.ndarray,
    *,
    n: int = 10,
    beta: float = 1.0,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Queries and references, each with one extra dimension, whose inner product is
    ``q·r − β·b(q)`` (see :func:`background_offsets`): queries get −β·b(q), references 1.

    Search the returned matrices with :func:`global_search` to rank pairs by normalised score.
    """
    r = _as_matrix(references, "references", copy=False)
    offsets = background_offsets(queries, background, n=n, beta=beta, references=r, num_threads=num_threads)
    q = _as_matrix(queries, "queries")
    q_ext = np.hstack([q, -offsets[:, None]])
    r_ext = np.hstack([r.astype(np.float32, copy=False), np.ones((r.shape[0], 1), dtype=np.float32)])
    return q_ext, r_ext


def _refuse_reference_background(background: np.ndarray, references: np.ndarray) -> None:
    if background is references or (background.shape == references.shape and np.array_equal(background, references)):
        raise InputError(
            "the background set is the reference set; normalise with descriptors of training "
            "images, never the references searched"
        )


class _TopN:
    """The ``size`` best (query, reference, score) entries seen so far."""

    def __init__(
        self,
        size: int,
        n_queries: int,
        index: faiss.Index | None = None,
        q: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
    ):
        self.size = size
        self.n_queries = n_queries
        self.index, self.q, self.offsets = index, q, offsets
        self.qi = np.empty(0, dtype=np.int64)
        self.ri = np.empty(0, dtype=np.int64)
        self.s = np.empty(0, dtype=np.float32)
        self._threshold = -np.inf

    def threshold(self) -> float:
        """Score an entry must beat to enter (−inf while fewer than ``size`` are held)."""
        return self._threshold

    def add_search(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Search these query rows with ``k`` neighbours, keep what enters, return each row's
        k-th score."""
        qi, ri, s, kth = _search_rows(self.index, self.q, self.offsets, rows, k)
        self.add(qi, ri, s)
        return kth

    def add(self, qi: np.ndarray, ri: np.ndarray, s: np.ndarray) -> None:
        enter = s > self._threshold
        qi = np.concatenate([self.qi, qi[enter]])
        ri = np.concatenate([self.ri, ri[enter].astype(np.int64, copy=False)])
        s = np.concatenate([self.s, s[enter]])
        if len(s) > self.size:
            keep = np.argpartition(-s, self.size - 1)[: self.size]
            qi, ri, s = qi[keep], ri[keep], s[keep]
        self.qi, self.ri, self.s = qi, ri, s
        self._threshold = float(s.min()) if len(s) == self.size else -np.inf

    def drop_queries(self, rows: np.ndarray) -> None:
        """Forget the entries of these queries (about to be searched again with a larger k)."""
        drop = np.zeros(self.n_queries, dtype=bool)
        drop[rows] = True
        keep = ~drop[self.qi]
        self.qi, self.ri, self.s = self.qi[keep], self.ri[keep], self.s[keep]
        self._threshold = float(self.s.min()) if len(self.s) == self.size else -np.inf

    def candidates(self) -> Candidates:
        return _sorted_candidates(self.qi, self.ri, self.s)


def _search_rows(
    index: faiss.Index, q: np.ndarray, offsets: np.ndarray | None, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat (query, reference, score) arrays of the rows' ``k`` nearest references, and each
    row's k-th score (−inf where the index found fewer than ``k``: nothing more to find)."""
    scores, labels = index.search(q[rows], k)
    if offsets is not None:
        # One offset per query shifts all its scores alike, so its neighbour order is unchanged.
        scores -= offsets[rows][:, None]
    found = labels >= 0
    kth = np.where(found[:, -1], scores[:, -1], -np.inf).astype(np.float32)
    return np.broadcast_to(rows[:, None], labels.shape)[found], labels[found], scores[found], kth


def _as_offsets(offsets: np.ndarray | None, n_queries: int) -> np.ndarray | None:
    if offsets is None:
        return None
    offsets = np.asarray(offsets)
    if offsets.shape != (n_queries,) or not np.issubdtype(offsets.dtype, np.floating):
        raise InputError(
            f"score_offsets must hold one float per query ({n_queries}), got {offsets.dtype} {offsets.shape}"
        )
    offsets = offsets.astype(np.float32)
    if not np.isfinite(offsets).all():
        raise InputError(f"score offset of query row {np.flatnonzero(~np.isfinite(offsets))[0]} is NaN or infinite")
    return offsets


def _sorted_candidates(qi: np.ndarray, ri: np.ndarray, s: np.ndarray) -> Candidates:
    # Ties broken by query then reference index so the output does not depend on chunking.
    order = np.lexsort((ri, qi, -s))
    return Candidates(qi[order].astype(np.int64), ri[order].astype(np.int64), s[order].astype(np.float32))


def _empty_candidates() -> Candidates:
    return Candidates(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


def _as_index(
    references: np.ndarray | faiss.Index,
    dim: int,
    index_factory: str | None,
    train_size: int | None,
    search_params: str | None,
    progress: bool,
) -> faiss.Index:
    if isinstance(references, faiss.Index):
        index = references
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise InputError("the faiss index must use the inner-product metric (METRIC_INNER_PRODUCT)")
    else:
        r = _as_matrix(references, "references", copy=False)
        if r.shape[1] != dim:
            raise InputError(f"queries have {dim} dimensions but references have {r.shape[1]}")
        index = _build_index(r, index_factory or "Flat", train_size, search_params, 0, progress)
    if index.d != dim:
        raise InputError(f"queries have {dim} dimensions but the index holds {index.d}-dimensional references")
    return index


def _as_matrix(a: np.ndarray, name: str, *, copy: bool = True) -> np.ndarray:
    """Validate a descriptor matrix; with ``copy`` return it checked, float32 and C-contiguous
    (otherwise rows are checked and converted lazily by :func:`_checked_rows`)."""
    if isinstance(a, faiss.Index) or not hasattr(a, "dtype") or not hasattr(a, "shape"):
        raise InputError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.ndim != 2:
        raise InputError(f"{name} must be a 2-D matrix (one descriptor per row), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"{name} must hold floating-point values, got dtype {a.dtype}")
    if a.shape[1] == 0:
        raise InputError(f"{name} has zero dimensions")
    if not copy:
        return a
    return _checked_rows(a, slice(None), name)


def _checked_rows(a: np.ndarray, rows: np.ndarray | slice, name: str) -> np.ndarray:
    block = np.ascontiguousarray(a[rows], dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if bad.size:
        row = np.arange(a.shape[0])[rows][bad[0]]
        raise InputError(f"{name} row {row} has NaN or infinite values")
    return block


def _check_positive(value: int, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return int(value)


def _chunks(rows: np.ndarray, size: int, progress: bool, desc: str) -> Iterator[np.ndarray]:
    starts = range(0, len(rows), size)
    for start in tqdm(starts, desc=desc, unit="chunk", disable=not progress or len(starts) < 2):
        yield rows[start : start + size]


@contextmanager
def _faiss_threads(num_threads: int | None) -> Iterator[None]:
    """Run faiss with ``num_threads`` OpenMP threads (default: the CPUs this process may use,
    which OpenMP overcounts in containers and under CPU affinity), then restore the setting."""
    before = faiss.omp_get_max_threads()
    wanted = num_threads if num_threads is not None else min(before, _usable_cpus())
    faiss.omp_set_num_threads(_check_positive(wanted, "num_threads"))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _faiss_message(err: RuntimeError) -> str:
    # faiss prefixes the readable part with the C++ function and source location.
    return re.split(r"\.(?:cpp|h):\d+: ", str(err).strip())[-1]
