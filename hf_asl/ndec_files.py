"""Reading the files of an NDEC release (or a mini-NDEC build): where they are, what they hold.

Everything here is plain file access with checks that name the file and line at fault; the
:class:`hf_asl.ndec.NDEC` builder turns it into `datasets` examples. File access lives here and
not in the builder module because `datasets` rewrites the ``open``/``os.path`` names of a
builder's module for streaming.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .archives import iter_tar, open_binary, resolve_parts
from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
KINDS = ("copy", "hn_wider_view", "hn_other_view", "hn_look_alike", "distractor")
SKIPPED_FILE = "hf_asl_skipped_images.json"

# File names of the NDEC release (and of mini-NDEC, which adds the metadata CSVs).
RELEASE_NAMES: dict[str, tuple[str, ...]] = {
    "queries": ("query_images_h5.tar", "query_images_h5"),
    "references": ("references", "references.tar"),
    "ground_truth": ("public_ground_truth_h5.csv",),
    "kinds": ("kinds.csv",),
    "negative_pairs": ("negative_pair.tar.aa", "negative_pair.tar", "negative_pair"),
    "negative_pairs_csv": ("negative_pairs.csv",),
    "train": ("train", "train.tar"),
    "train_views": ("train_views",),
    "train_views_csv": ("train_views.csv",),
}

_FILE_URL = re.compile(r"\.(?:tar|tgz|gz|bz2|xz|csv|zip|[a-z]{2}|\d{2,3})$")


def is_url(path: str) -> bool:
    return "://" in path


def _ask_remote(check, path: str, download_config) -> bool:
    try:
        return check(path, download_config=download_config)
    except Exception as err:  # fsspec backends raise their own network errors
        raise InputError(f"cannot reach ({type(err).__name__}: {err})", path=path) from err


def path_exists(path: str, download_config=None) -> bool:
    """``os.path.exists`` that also answers for fsspec URLs (hf://, https://…)."""
    if not is_url(path):
        return os.path.exists(path)
    from datasets.utils.file_utils import xexists

    return _ask_remote(xexists, path, download_config)


def path_isdir(path: str, download_config=None) -> bool:
    """``os.path.isdir`` for paths and URLs; a URL naming a file (x.tar, x.tar.aa, x.csv) is not asked."""
    if not is_url(path):
        return os.path.isdir(path)
    if _FILE_URL.search(path.split("?", 1)[0]):
        return False
    from datasets.utils.file_utils import xisdir

    return _ask_remote(xisdir, path, download_config)


def join(base: str, name: str) -> str:
    return posixpath.join(base, name) if is_url(base) else os.path.join(base, name)


def find_in_release(data_dir: str, key: str, download_config=None) -> str | None:
    """The first of the release's file names for ``key`` present in ``data_dir``, or None."""
    for name in RELEASE_NAMES[key]:
        candidate = join(data_dir, name)
        if path_exists(candidate, download_config):
            return candidate
    return None


def archive_parts(source: str, download_config=None) -> tuple[str, ...] | None:
    """The parts of ``source`` when it is a tar (split or not), or None for a folder."""
    if path_isdir(source, download_config):
        return None
    return tuple(resolve_parts(source, exists=lambda p: path_exists(p, download_config)))


# --- images -----------------------------------------------------------------------------------


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _walk(folder: str, download_config=None) -> Iterator[str]:
    """Files under ``folder`` in a stable (sorted) order, hidden entries skipped."""
    if is_url(folder):
        from datasets.utils.file_utils import xwalk

        walker = xwalk(folder, download_config=download_config)
    else:
        walker = os.walk(folder)
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        for filename in sorted(filenames):
            if not filename.startswith((".", "__")):
                yield join(dirpath, filename)


def _read(path: str, download_config=None) -> bytes:
    with open_binary(path, download_config) as handle:
        return handle.read()


def iter_image_files(
    source: str | tuple[str, ...], *, name: str | None = None, download_config=None
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(image_id, file_name, bytes)`` for the images of a folder or a tar (parts).

    The id is the file stem (``Q00001.jpg`` -> ``Q00001``); an id seen twice is an error.
    ``name`` is how errors call the source (default: the folder or first part).
    """
    seen: dict[str, str] = {}
    if isinstance(source, tuple):
        where = name or source[0]
        entries = ((member, data) for member, data in iter_tar(source, name=where) if _is_image(member))
    else:
        where = name or source
        entries = ((path, _read(path, download_config)) for path in _walk(source, download_config) if _is_image(path))
    for entry, data in entries:
        image_id = _stem(entry)
        if image_id in seen:
            raise InputError(f"image id {image_id!r} appears twice ({seen[image_id]!r} and {entry!r})", path=where)
        seen[image_id] = entry
        yield image_id, posixpath.basename(entry.replace("\\", "/")), data


def list_image_ids(source: str | tuple[str, ...] | None) -> set[str] | None:
    """Ids of a *local* image folder or tar, read from names only; None when not cheaply known."""
    if source is None:
        return None
    if isinstance(source, tuple):
        if any(is_url(p) for p in source):
            return None
        return {_stem(name) for name, _ in iter_tar(source, read=False) if _is_image(name)}
    if is_url(source):
        return None
    return {_stem(path) for path in _walk(source) if _is_image(path)}


def image_problem(data: bytes) -> str | None:
    """Why ``data`` is not a readable image (truncated, corrupt, not an image), or None.

    Decodes the whole entropy-coded stream (a header check misses truncation); JPEGs are decoded
    at 1/8 scale, which reads every byte at a fraction of the cost.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    # PIL raises many types for bad data (OSError, SyntaxError, ValueError, struct.error…).
    except Exception as err:  # noqa: BLE001
        return f"{type(err).__name__}: {err}"
    return None


# --- pairs ------------------------------------------------------------------------------------


def iter_pair_files(
    source: str | tuple[str, ...], *, name: str | None = None, download_config=None
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(pair_id, file_name, bytes)`` for the images of ``negative_pair/<pair_id>/<file>``."""
    if isinstance(source, tuple):
        where = name or source[0]
        for member, data in iter_tar(source, name=where):
            if not _is_image(member):
                continue
            pieces = member.replace("\\", "/").strip("/").split("/")
            if len(pieces) < 2:
                raise InputError(f"tar member {member!r} is not inside a pair folder", path=where)
            yield pieces[-2], pieces[-1], data
        return
    for path in _walk(source, download_config):
        if not _is_image(path):
            continue
        parent = posixpath.dirname(path.replace("\\", "/"))
        if parent.rstrip("/") == source.replace("\\", "/").rstrip("/"):
            raise InputError("image is not inside a pair folder", path=path)
        yield posixpath.basename(parent), posixpath.basename(path.replace("\\", "/")), _read(path, download_config)


# --- CSV files --------------------------------------------------------------------------------


def _open_text(path: str, download_config=None):
    if not is_url(path):
        return open(path, encoding="utf-8-sig", newline="")
    from datasets.utils.file_utils import xopen

    try:
        return xopen(path, "r", encoding="utf-8-sig", newline="", download_config=download_config)
    except FileNotFoundError:
        raise
    except Exception as err:  # fsspec backends raise their own network errors
        raise InputError(f"cannot open ({type(err).__name__}: {err})", path=path) from err


def _rows(path: str, columns: tuple[str, ...], optional: tuple[str, ...] = (), download_config=None):
    """Yield ``(line_number, row_dict)`` of a CSV whose header must hold ``columns``."""
    try:
        handle = _open_text(path, download_config)
    except FileNotFoundError as err:
        raise InputError("no such file", path=path) from err
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError("empty file (expected a header line)", path=path, line=1)
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"header lacks column(s) {missing}; found {header}", path=path, line=1)
        wanted = [c for c in columns + optional if c in header]
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} fields, found {len(row)}", path=path, line=reader.line_num)
            values = dict(zip(header, (cell.strip() for cell in row)))
            yield reader.line_num, {c: values[c] for c in wanted}


@dataclass(frozen=True)
class GroundTruthRow:
    line: int
    query_id: str
    reference_id: str | None
    kind: str | None


def read_ground_truth(
    path: str,
    *,
    kinds_path: str | None = None,
    query_ids: set[str] | None = None,
    reference_ids: set[str] | None = None,
    download_config=None,
) -> list[GroundTruthRow]:
    """Rows of ``public_ground_truth_h5.csv`` (``query_id,reference_id``; empty = no match).

    Checked: no empty or duplicate query id, ids present in ``query_ids``/``reference_ids`` when
    those are given, and the optional ``kinds.csv`` (``query_id,kind``) names GT queries with a
    known kind consistent with the row (``copy`` has a reference, every other kind has none).
    """
    rows: list[tuple[int, str, str | None]] = []
    first_line: dict[str, int] = {}
    for line, row in _rows(path, ("query_id", "reference_id"), download_config=download_config):
        query_id, reference_id = row["query_id"], row["reference_id"] or None
        if not query_id:
            raise InputError("empty query_id", path=path, line=line)
        if query_id in first_line:
            raise InputError(f"query {query_id!r} repeated (first on line {first_line[query_id]})", path=path, line=line)
        first_line[query_id] = line
        if query_ids is not None and query_id not in query_ids:
            raise InputError(f"unknown query {query_id!r}: not among the query images", path=path, line=line)
        if reference_id is not None and reference_ids is not None and reference_id not in reference_ids:
            raise InputError(f"unknown reference {reference_id!r}: not among the reference images", path=path, line=line)
        rows.append((line, query_id, reference_id))
    kinds = read_kinds(kinds_path, {q: r for _, q, r in rows}, download_config) if kinds_path else {}
    return [GroundTruthRow(line, q, r, kinds.get(q)) for line, q, r in rows]


def read_kinds(path: str, gt: dict[str, str | None], download_config=None) -> dict[str, str]:
    """``kinds.csv`` as ``{query_id: kind}``, checked against the GT mapping ``{query: reference}``."""
    kinds: dict[str, str] = {}
    for line, row in _rows(path, ("query_id", "kind"), download_config=download_config):
        query_id, kind = row["query_id"], row["kind"]
        if kind not in KINDS:
            raise InputError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", path=path, line=line)
        if query_id not in gt:
            raise InputError(f"query {query_id!r} is not in the ground truth", path=path, line=line)
        if query_id in kinds:
            raise InputError(f"query {query_id!r} repeated", path=path, line=line)
        if (kind == "copy") != (gt[query_id] is not None):
            state = "has no reference" if gt[query_id] is None else f"has reference {gt[query_id]!r}"
            raise InputError(f"kind {kind!r} contradicts the ground truth: query {query_id!r} {state}", path=path, line=line)
        kinds[query_id] = kind
    return kinds


@dataclass(frozen=True)
class PairRow:
    line: int
    kind: str | None
    image_a: str
    image_b: str
    wider: str | None  # "a", "b" or None


def read_pairs(path: str, download_config=None) -> dict[str, PairRow]:
    """``negative_pairs.csv`` (``pair_id,kind,image_a,image_b,wider``) keyed by pair id."""
    pairs: dict[str, PairRow] = {}
    columns = ("pair_id", "image_a", "image_b")
    for line, row in _rows(path, columns, ("kind", "wider"), download_config=download_config):
        pair_id = row["pair_id"]
        if not pair_id or not row["image_a"] or not row["image_b"] or row["image_a"] == row["image_b"]:
            raise InputError("a pair needs a pair_id and two different image names", path=path, line=line)
        if pair_id in pairs:
            raise InputError(f"pair {pair_id!r} repeated (first on line {pairs[pair_id].line})", path=path, line=line)
        wider_name = row.get("wider") or None
        wider = {row["image_a"]: "a", row["image_b"]: "b", None: None}.get(wider_name)
        if wider_name is not None and wider is None:
            raise InputError(f"wider {wider_name!r} is neither image_a nor image_b", path=path, line=line)
        pairs[pair_id] = PairRow(line, row.get("kind") or None, row["image_a"], row["image_b"], wider)
    return pairs


@dataclass(frozen=True)
class ViewRow:
    line: int
    train_id: str
    content_fraction: float | None


def read_train_views(path: str, train_ids: set[str] | None = None, download_config=None) -> dict[str, ViewRow]:
    """``train_views.csv`` (``image_id,train_id,content_fraction``) keyed by view image id."""
    views: dict[str, ViewRow] = {}
    columns = ("image_id", "train_id")
    for line, row in _rows(path, columns, ("content_fraction",), download_config=download_config):
        image_id, train_id = row["image_id"], row["train_id"]
        if not image_id or not train_id:
            raise InputError("empty image_id or train_id", path=path, line=line)
        if image_id in views:
            raise InputError(f"view {image_id!r} repeated", path=path, line=line)
        if train_ids is not None and train_id not in train_ids:
            raise InputError(f"unknown train image {train_id!r}", path=path, line=line)
        fraction = row.get("content_fraction") or None
        try:
            value = None if fraction is None else float(fraction)
        except ValueError as err:
            raise InputError(f"content_fraction {fraction!r} is not a number", path=path, line=line) from err
        views[image_id] = ViewRow(line, train_id, value)
    return views


# --- skipped-image record kept beside a prepared cache ------------------------------------------


def write_skipped(fs, directory: str, skipped: list[str]) -> None:
    """Record the skipped ids beside a prepared dataset; ``fs`` is the builder's fsspec filesystem."""
    with fs.open(posixpath.join(directory, SKIPPED_FILE), "w", encoding="utf-8") as handle:
        json.dump({"skipped_images": skipped}, handle)


def read_skipped(directory: str) -> list[str] | None:
    path = os.path.join(directory, SKIPPED_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return list(json.load(handle)["skipped_images"])

