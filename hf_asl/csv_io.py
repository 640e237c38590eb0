"""The DISC21 CSV files: ground truth, predictions and query kinds, read with validation.

* ground truth: ``query_id,reference_id`` -- one row per query, an empty ``reference_id`` marks
  a query without a match;
* predictions: ``query_id,reference_id,score`` -- higher score = more likely a copy;
* kinds (NDEC extra): ``query_id,kind``.

Files are parsed by Arrow's multi-threaded CSV reader and checked with vectorised operations on
the *distinct* ids, so 10M prediction rows read in seconds.  Only when something is wrong is the
file re-read line by line with :mod:`csv`, to name the exact line in the :class:`InputError`.
"""

from __future__ import annotations

import codecs
import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import InputError
from .ids import EncodedIds

GROUND_TRUTH_COLUMNS = ("query_id", "reference_id")
PREDICTION_COLUMNS = ("query_id", "reference_id", "score")
KIND_COLUMNS = ("query_id", "kind")
# DISC21 track rule: 500,000 predictions for 50,000 queries.
DISC21_PREDICTIONS_PER_QUERY = 10
# An id is one printable token: no whitespace or control character anywhere.
_MALFORMED_ID = r"[\s\x00-\x1f\x7f]"


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth rows: ``reference_ids[i]`` is the match of ``query_ids[i]``, ``""`` for none."""

    query_ids: np.ndarray  # object array of str
    reference_ids: np.ndarray  # object array of str, "" = no match
    path: str | None = None

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def n_pairs(self) -> int:
        """Number of (query, reference) pairs, i.e. queries with a match (``G`` of µAP)."""
        return int(np.count_nonzero(self.reference_ids != ""))

    @classmethod
    def from_mapping(cls, matches: Mapping[str, str | None]) -> GroundTruth:
        """From ``{query_id: reference_id}``; ``""`` or ``None`` for a query without a match."""
        queries = np.array(list(matches), dtype=object)
        references = np.array(["" if r is None else r for r in matches.values()], dtype=object)
        return cls(queries, references)


@dataclass(frozen=True)
class Predictions:
    """Validated predictions; ids are :class:`EncodedIds` (sequences of str backed by codes).

    ``n_unknown_queries`` / ``n_unknown_references`` count the rows whose query (reference) the
    ground truth (reference list) does not know; they are only non-zero when the reader was
    told to allow unknown ids, and ``warnings`` then says so in words.
    """

    query_ids: EncodedIds
    reference_ids: EncodedIds
    scores: np.ndarray  # float64
    path: str | None = None
    n_unknown_queries: int = 0
    n_unknown_references: int = 0
    warnings: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.scores)


def read_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Read and check a ``query_id,reference_id`` file (each query once, empty = no match)."""
    table = _read_table(path, GROUND_TRUTH_COLUMNS)
    queries = _encode_ids(table, "query_id", path)
    references = _encode_ids(table, "reference_id", path, allow_empty=True)
    _check_unique_rows(path, queries.codes, "query", queries)
    return GroundTruth(np.asarray(queries), np.asarray(references), path=str(path))


def read_kinds(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``query_id,kind`` file into ``{query_id: kind}`` (each query once)."""
    table = _read_table(path, KIND_COLUMNS)
    queries = _encode_ids(table, "query_id", path)
    kinds = _encode_ids(table, "kind", path)
    _check_unique_rows(path, queries.codes, "query", queries)
    return dict(zip(queries.tolist(), kinds.tolist()))


def read_reference_ids(path: str | os.PathLike) -> list[str]:
    """Reference ids from a folder of images (file stems) or a text file (one id per line)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p.stem for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not path.is_file():
        raise InputError("no such file or folder", path=path)
    with path.open(encoding="utf-8-sig") as lines:
        return [line.strip() for line in lines if line.strip()]


def read_predictions(
    path: str | os.PathLike,
    *,
    ground_truth: GroundTruth | None = None,
    reference_ids: Sequence[str] | None = None,
    allow_unknown_ids: bool = False,
    budget: int | str | None = None,
) -> Predictions:
    """Read and check a ``query_id,reference_id,score`` file.

    Always checked: the columns, ids (non-empty, no whitespace), finite numeric scores and that
    no (query, reference) pair repeats.  With ``ground_truth`` every query must be one it lists,
    with ``reference_ids`` every reference must be in that list; ``allow_unknown_ids`` turns
    those errors into counted warnings (the rows are kept: as false positives, or out of scope
    for queries -- see ``compute_metrics(query_scope=...)``).  ``budget`` caps the number of
    rows: an int, or ``"disc21"`` for 10 per ground-truth query.
    """
    limit = _budget(budget, ground_truth)
    table = _read_table(path, PREDICTION_COLUMNS, float_column="score")
    queries = _encode_ids(table, "query_id", path)
    references = _encode_ids(table, "reference_id", path)
    scores = table.column("score").to_numpy()
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise InputError(f"score is {float(scores[bad[0]])!r}; scores must be finite numbers",
                         path=path, line=line_of_row(path, int(bad[0])))

    if limit is not None and len(scores) > limit:
        raise InputError(
            f"{len(scores)} predictions exceed the budget of {limit}; this row is prediction {limit + 1}",
            path=path, line=line_of_row(path, limit),
        )
    pair_key = queries.codes.astype(np.int64) * len(references.categories) + references.codes
    _check_unique_rows(path, pair_key, "(query, reference) pair", queries, references)

    warnings: list[str] = []
    counts: dict[str, int] = {}
    for what, ids, known in (
        ("query", queries, None if ground_truth is None else ground_truth.query_ids),
        ("reference", references, reference_ids),
    ):
        counts[what] = 0
        if known is None:
            continue
        unknown_rows = _rows_with_unknown_ids(ids, known)
        if not len(unknown_rows):
            continue
        first = int(unknown_rows[0])
        source = "ground truth" if what == "query" else "reference list"
        if not allow_unknown_ids:
            raise InputError(
                f"{what} id {ids[first]!r} is not in the {source} ({len(unknown_rows)} such rows)",
                path=path, line=line_of_row(path, first),
            )
        counts[what] = len(unknown_rows)
        warnings.append(f"{path}: {len(unknown_rows)} prediction(s) name a {what} id not in the {source}")
    return Predictions(
        queries, references, scores, path=str(path),
        n_unknown_queries=counts["query"], n_unknown_references=counts["reference"],
        warnings=tuple(warnings),
    )


def write_predictions(
    path: str | os.PathLike,
    query_ids: Sequence[str],
    reference_ids: Sequence[str],
    scores: Sequence[float],
) -> None:
    """Write ``query_id,reference_id,score`` rows (atomically: a crash leaves no half file)."""
    score = np.asarray(scores)
    if score.dtype != np.float32:
        score = score.astype(np.float64)
    if not (len(query_ids) == len(reference_ids) == len(score)):
        raise ValueError(
            f"got {len(query_ids)} query ids, {len(reference_ids)} reference ids and {len(score)} scores"
        )
    if not np.all(np.isfinite(score)):
        raise ValueError("scores must be finite numbers")
    columns = {"query_id": _arrow_ids(query_ids), "reference_id": _arrow_ids(reference_ids)}
    # Plain unquoted rows unless an id holds a CSV structural character.
    needs_quotes = any(
        pc.any(pc.match_substring_regex(_distinct(column), r'[,"\r\n]')).as_py() for column in columns.values()
    )
    table = pa.table({**columns, "score": pa.array(score)})
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if needs_quotes else "none")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A sibling temporary file (created with the user's umask) renamed over the target.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write((",".join(PREDICTION_COLUMNS) + "\n").encode())
            pacsv.write_csv(table, out, write_options=options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _arrow_ids(ids: Sequence[str]) -> pa.Array:
    """Ids as an Arrow array; encoded ids stay dictionary-encoded (no per-row string objects)."""
    if isinstance(ids, EncodedIds):
        categories = pa.array(ids.categories, type=pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(ids.codes, type=pa.int64()), categories)
    return pa.array(np.asarray(ids, dtype=object), type=pa.string())


def _distinct(column: pa.Array) -> pa.Array:
    return column.dictionary if isinstance(column, pa.DictionaryArray) else column


def _budget(budget: int | str | None, ground_truth: GroundTruth | None) -> int | None:
    if budget is None:
        return None
    if budget == "disc21":
        if ground_truth is None:
            raise ValueError('budget="disc21" needs the ground truth (10 predictions per listed query)')
        return DISC21_PREDICTIONS_PER_QUERY * len(ground_truth)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f'budget must be a non-negative int or "disc21", got {budget!r}')
    return int(budget)


# --- reading -----------------------------------------------------------------------------------


def _read_table(path: str | os.PathLike, columns: tuple[str, ...], float_column: str | None = None) -> pa.Table:
    """Parse the file with Arrow after checking its header; diagnose failures line by line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    header = next(_records(path), None)
    if header is None:
        raise InputError(f"empty file; expected the header {','.join(columns)}", path=path, line=1)
    _check_header(path, header[1], columns)
    types = {name: pa.float64() if name == float_column else pa.string() for name in columns}
    try:
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            # No null values: an empty id stays "" (no match), an empty score is an error.
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        _diagnose(path, header[1], float_column)
        raise InputError(f"cannot parse the CSV: {err}", path=path) from None


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank record; blank lines are skipped as Arrow does."""
    def lines() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        with path.open("rb") as raw:
            for number, line in enumerate(raw, start=1):
                try:
                    yield decoder.decode(line)
                except UnicodeDecodeError as err:
                    raise InputError(f"not UTF-8 text ({err.reason})", path=path, line=number) from None

    reader = csv.reader(lines())
    previous_end = 0
    for fields in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if fields:
            yield start, fields


def _check_header(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in header]
    extra = [c for c in header if c not in columns]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise InputError(f"{'; '.join(problems)} (expected the header {','.join(columns)})", path=path, line=1)


def _diagnose(path: Path, header: list[str], float_column: str | None) -> None:
    """Find the first bad line that made Arrow fail and raise an error naming it."""
    records = _records(path)
    next(records)
    score_at = header.index(float_column) if float_column else None
    for line, fields in records:
        if len(fields) != len(header):
            raise InputError(f"expected {len(header)} fields ({','.join(header)}), got {len(fields)}",
                             path=path, line=line)
        if score_at is not None:
            text = fields[score_at]
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"{float_column} {text!r} is not a number", path=path, line=line) from None
            if not math.isfinite(value):
                raise InputError(f"{float_column} is {text!r}; scores must be finite numbers", path=path, line=line)


def line_of_row(path: str | os.PathLike, row: int) -> int:
    """Line number of data row ``row`` (0-based), counting the header and blank lines."""
    for index, (line, _) in enumerate(_records(Path(path))):
        if index == row + 1:
            return line
    raise AssertionError(f"{path} has no data row {row}")


# --- checks --------------------------------------------------------------------------------------


def _encode_ids(table: pa.Table, column: str, path: str | os.PathLike, *, allow_empty: bool = False) -> EncodedIds:
    """Dictionary-encode an id column, checking only its distinct values for malformed ids."""
    encoded = table.column(column).dictionary_encode()
    if encoded.num_chunks:
        dictionary = encoded.chunk(0).dictionary
        codes = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks])
    else:
        dictionary, codes = pa.array([], type=pa.string()), np.zeros(0, dtype=np.int32)
    bad = pc.match_substring_regex(dictionary, _MALFORMED_ID)
    if not allow_empty:
        bad = pc.or_(bad, pc.equal(dictionary, ""))
    bad_codes = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    if len(bad_codes):
        row = int(np.flatnonzero(np.isin(codes, bad_codes))[0])
        value = dictionary[int(codes[row])].as_py()
        problem = "is empty" if value == "" else "contains whitespace or a control character"
        raise InputError(f"{column} {value!r} {problem}", path=path, line=line_of_row(path, row))
    return EncodedIds(codes.astype(np.int64), dictionary.to_numpy(zero_copy_only=False))


def _check_unique_rows(path: str | os.PathLike, key: np.ndarray, what: str, *ids: EncodedIds) -> None:
    """Raise naming both lines when ``key`` (one integer per row) repeats."""
    ordered = np.sort(key)
    if not np.any(ordered[1:] == ordered[:-1]):
        return
    # Only on error: the stable order finds the earliest repeat and its first occurrence.
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    repeats = np.flatnonzero(sorted_key[1:] == sorted_key[:-1]) + 1
    later = int(order[repeats].min())
    first = int(order[np.searchsorted(sorted_key, key[later], side="left")])
    value = repr(ids[0][later]) if len(ids) == 1 else repr(tuple(i[later] for i in ids))
    raise InputError(
        f"{what} {value} repeats line {line_of_row(path, first)}", path=path, line=line_of_row(path, later)
    )


def _rows_with_unknown_ids(ids: EncodedIds, known: Sequence[str]) -> np.ndarray:
    known_set = pa.array(np.asarray(known, dtype=object), type=pa.string())
    categories = pa.array(ids.categories, type=pa.string())
    unknown_codes = np.flatnonzero(~pc.is_in(categories, value_set=known_set).to_numpy(zero_copy_only=False))
    if not len(unknown_codes):
        return unknown_codes
    return np.flatnonzero(np.isin(ids.codes, unknown_codes))
