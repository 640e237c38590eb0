"""Image descriptors on disk: ids, vectors and (for ASL) the raw descriptor norms.

Two formats hold the same three things:

* ``X.safetensors``: tensors ``descriptors`` (float32, n × d) and, when present, ``norms``
  (float32, n); the ids are a JSON list in the header metadata, next to ``format`` and ``version``.
* ``X.npy`` holding the vectors, with sidecar files ``X.ids.txt`` (one id per line, in row order)
  and, when present, ``X.norms.npy``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

FORMAT_NAME = "hf-asl-descriptors"
FORMAT_VERSION = 1

# Rows checked per step when scanning for NaN/inf, so a memory-mapped matrix is never copied whole.
_FINITE_CHECK_ROWS = 65536


@dataclass(frozen=True, eq=False)
class Descriptors:
    """Descriptors of ``n`` images.

    ``ids`` (str, shape (n,)) name the images; ``vectors`` (float32, shape (n, d)) are the
    L2-normalised descriptors compared by inner product; ``norms`` (float32, shape (n,) or None)
    are the norms of the raw, un-normalised descriptors, which ASL uses to tell the direction of
    a copy.
    """

    ids: np.ndarray
    vectors: np.ndarray
    norms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def validate(self, path: str | Path | None = None) -> None:
        """Raise :class:`InputError` (naming ``path``) unless ids, vectors and norms are consistent."""
        ids, vectors, norms = self.ids, self.vectors, self.norms
        if ids.ndim != 1:
            raise InputError(f"ids must be one-dimensional, got shape {ids.shape}", path=path)
        if vectors.ndim != 2:
            raise InputError(f"descriptors must be a 2-D matrix, got shape {vectors.shape}", path=path)
        if vectors.dtype != np.float32:
            raise InputError(f"descriptors must be float32, got {vectors.dtype}", path=path)
        if len(ids) != vectors.shape[0]:
            raise InputError(f"{len(ids)} ids for {vectors.shape[0]} descriptor rows", path=path)
        for row, image_id in enumerate(ids):
            if not isinstance(image_id, str) or not image_id or image_id != image_id.strip():
                raise InputError(f"row {row}: id {image_id!r} is empty or has surrounding spaces", path=path)
            if "\n" in image_id or "\r" in image_id:
                raise InputError(f"row {row}: id {image_id!r} contains a line break", path=path)
        _check_unique(ids, path)
        _check_finite(vectors, ids, "descriptor", path)
        if norms is not None:
            _check_norms(norms, ids, path)


def make_descriptors(
    ids: Sequence[str] | np.ndarray, vectors: np.ndarray, norms: np.ndarray | None = None
) -> Descriptors:
    """Build and validate :class:`Descriptors`, converting vectors and norms to float32."""
    d = Descriptors(
        ids=_as_id_array(ids),
        vectors=_as_float32(vectors, "descriptors", None),
        norms=None if norms is None else _as_float32(norms, "norms", None),
    )
    d.validate()
    return d


def save_descriptors(path: str | Path, d: Descriptors) -> None:
    """Write ``d`` to ``path`` (``.safetensors``, or ``.npy`` plus its sidecar files).

    Each file is written under a temporary name and then renamed, so an interrupted save never
    leaves a truncated file where a complete one was. A name like ``X.safetensors.partial``
    is written as safetensors (for callers that rename it themselves).
    """
    path = Path(path)
    d.validate()
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "safetensors":
        from safetensors.numpy import save_file

        tensors = {"descriptors": np.ascontiguousarray(d.vectors)}
        if d.norms is not None:
            tensors["norms"] = np.ascontiguousarray(d.norms)
        metadata = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "ids": json.dumps(d.ids.tolist())}
        with _atomic(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return
    ids_path, norms_path = sidecar_paths(path)
    with _atomic(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(d.vectors), allow_pickle=False)
    with _atomic(ids_path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in d.ids), encoding="utf-8")
    if d.norms is not None:
        with _atomic(norms_path) as tmp, open(tmp, "wb") as f:
            np.save(f, d.norms, allow_pickle=False)
    elif norms_path.exists():
        # A stale norms file from an earlier save would silently pair old norms with new vectors.
        norms_path.unlink()


def load_descriptors(path: str | Path, *, mmap: bool = False) -> Descriptors:
    """Read and validate descriptors saved by :func:`save_descriptors` (or made by hand to the same layout).

    With ``mmap=True`` a float32 ``.npy`` matrix is memory-mapped instead of read into RAM.
    """
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise InputError("descriptor file not found", path=path)
    if kind == "safetensors":
        d = _load_safetensors(path)
    else:
        d = _load_npy(path, mmap)
    d.validate(path)
    return d


def concat_descriptors(parts: Sequence[Descriptors]) -> Descriptors:
    """Stack several descriptor sets (e.g. shards) in order; refuses an id present twice."""
    if not parts:
        raise InputError("no descriptor sets to concatenate")
    dims = {p.dim for p in parts}
    if len(dims) != 1:
        raise InputError(f"descriptor sets have different dimensions: {sorted(dims)}")
    with_norms = [p.norms is not None for p in parts]
    if any(with_norms) and not all(with_norms):
        raise InputError("some descriptor sets have norms and others do not")
    ids = np.concatenate([p.ids for p in parts])
    _check_unique(ids, None)
    return Descriptors(
        ids=ids,
        vectors=np.concatenate([np.asarray(p.vectors) for p in parts]),
        norms=np.concatenate([p.norms for p in parts]) if all(with_norms) else None,
    )


def sidecar_paths(npy_path: str | Path) -> tuple[Path, Path]:
    """The ``X.ids.txt`` and ``X.norms.npy`` files that go with ``X.npy``."""
    npy_path = Path(npy_path)
    stem = npy_path.with_suffix("")
    return stem.with_name(stem.name + ".ids.txt"), stem.with_name(stem.name + ".norms.npy")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if ".safetensors" in (x.lower() for x in path.suffixes):
        return "safetensors"
    raise InputError("descriptor files must end in .safetensors or .npy", path=path)


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_safetensors(path: Path) -> Descriptors:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            names = set(f.keys())
            if "descriptors" not in names:
                raise InputError(f"no 'descriptors' tensor (found {sorted(names)})", path=path)
            vectors = f.get_tensor("descriptors")
            norms = f.get_tensor("norms") if "norms" in names else None
    except SafetensorError as err:
        raise InputError(f"not a readable safetensors file ({err})", path=path) from err
    if metadata.get("format") != FORMAT_NAME:
        raise InputError(f"metadata 'format' is {metadata.get('format')!r}, expected {FORMAT_NAME!r}", path=path)
    try:
        version = int(metadata.get("version", ""))
    except ValueError:
        raise InputError(f"metadata 'version' {metadata.get('version')!r} is not an integer", path=path) from None
    if version > FORMAT_VERSION:
        raise InputError(f"format version {version} is newer than this hf-asl reads ({FORMAT_VERSION})", path=path)
    if "ids" not in metadata:
        raise InputError("metadata has no 'ids'", path=path)
    try:
        ids = json.loads(metadata["ids"])
    except json.JSONDecodeError as err:
        raise InputError(f"metadata 'ids' is not valid JSON ({err})", path=path) from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError("metadata 'ids' must be a JSON list of strings", path=path)
    return Descriptors(
        ids=_as_id_array(ids),
        vectors=_as_float32(vectors, "descriptors", path),
        norms=None if norms is None else _as_float32(norms, "norms", path),
    )


def _load_npy(path: Path, mmap: bool) -> Descriptors:
    ids_path, norms_path = sidecar_paths(path)
    if not ids_path.is_file():
        raise InputError(f"missing sidecar id file {ids_path.name} (one id per line)", path=ids_path)
    vectors = _as_float32(_read_npy(path, mmap), "descriptors", path)
    if vectors.ndim != 2:
        raise InputError(f"descriptors must be a 2-D matrix, got shape {vectors.shape}", path=path)
    lines = ids_path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError("empty id line", path=ids_path, line=number)
    ids = _as_id_array([line.strip() for line in lines])
    if len(ids) != vectors.shape[0]:
        raise InputError(f"{len(ids)} ids for {vectors.shape[0]} rows of {path.name}", path=ids_path)
    norms = None
    if norms_path.is_file():
        norms = _as_float32(_read_npy(norms_path, False), "norms", norms_path)
        _check_norms(norms, ids, norms_path)
    return Descriptors(ids=ids, vectors=vectors, norms=norms)


def _read_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"not a readable .npy array ({err})", path=path) from err


def _as_id_array(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    # dtype=object keeps Python str values, so ids of any length compare and print plainly.
    arr = np.empty(len(ids), dtype=object)
    arr[:] = [str(i) if isinstance(i, np.str_) else i for i in ids]
    return arr


def _as_float32(a: np.ndarray, what: str, path: str | Path | None) -> np.ndarray:
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"{what} must be floating point, got {a.dtype}", path=path)
    # A float32 memory map stays a memory map; other float types are converted once.
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _check_unique(ids: np.ndarray, path: str | Path | None) -> None:
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    dup = np.flatnonzero(counts > 1)
    if dup.size:
        rows = np.flatnonzero(ids.astype(str) == uniq[dup[0]])
        raise InputError(
            f"duplicate id {str(uniq[dup[0]])!r} (rows {', '.join(map(str, rows[:5]))}); {dup.size} id(s) repeated",
            path=path,
        )


def _check_norms(norms: np.ndarray, ids: np.ndarray, path: str | Path | None) -> None:
    if norms.shape != (len(ids),):
        raise InputError(f"norms have shape {norms.shape}, expected ({len(ids)},)", path=path)
    if norms.dtype != np.float32:
        raise InputError(f"norms must be float32, got {norms.dtype}", path=path)
    _check_finite(norms[:, None], ids, "norm", path)
    bad = np.flatnonzero(norms <= 0)
    if bad.size:
        raise InputError(f"id {str(ids[bad[0]])!r}: norm {norms[bad[0]]} is not positive", path=path)


def _check_finite(matrix: np.ndarray, ids: np.ndarray, what: str, path: str | Path | None) -> None:
    for start in range(0, matrix.shape[0], _FINITE_CHECK_ROWS):
        block = np.asarray(matrix[start : start + _FINITE_CHECK_ROWS])
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            row = start + int(bad[0])
            raise InputError(f"row {row} (id {str(ids[row])!r}): {what} has NaN or infinite values", path=path)
