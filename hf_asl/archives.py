"""Safe, streaming reading of tar archives, including tars split in parts (``x.tar.aa``, ``.ab``…).

NDEC ships its hard-negative pairs as one 121 GB tar cut into parts with ``split``. The parts are
read here as one stream (never joined on disk) and every member is checked before use: absolute
names, ``..`` components, links, device files and fifos are refused with an error naming the
member and the archive. Nothing is ever extracted to disk; members are returned as bytes.

``datasets``' own ``iter_archive`` silently skips non-regular members and stops silently on a
truncated stream; both hide a broken or hostile download, hence this module.
"""

from __future__ import annotations

import glob
import io
import os
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from .errors import InputError

PartOpener = Callable[[str], BinaryIO]

# `split` names parts with letters (aa, ab, …) or, with -d, digits (00, 01, … or 001, 002, …).
_PART_NAME = re.compile(r"^(?P<stem>.+\.t(?:ar|gz|bz2|xz)(?:\.(?:gz|bz2|xz))?)\.(?P<suffix>[a-z]{2,3}|\d{2,3})$")
_COMPRESSION_SUFFIXES = ("gz", "xz", "bz2")
_READ_SIZE = 1 << 20


def _is_url(path: str) -> bool:
    return "://" in path


def open_binary(path: str, download_config=None) -> BinaryIO:
    """Open a local path, or a URL through ``datasets``' fsspec-backed ``xopen``, for reading bytes."""
    if not _is_url(path):
        return open(path, "rb", buffering=_READ_SIZE)
    from datasets.utils.file_utils import xopen

    try:
        # block_size=0 gives a plain streaming HTTP response instead of range requests.
        return xopen(path, "rb", download_config=download_config, block_size=0)
    except FileNotFoundError:
        raise
    except Exception as err:  # fsspec backends raise their own network errors
        raise InputError(f"cannot open ({type(err).__name__}: {err})", path=path) from err


def _next_suffix(suffix: str) -> str:
    """The part suffix after ``suffix`` (``aa`` -> ``ab``, ``az`` -> ``ba``, ``09`` -> ``10``)."""
    if suffix.isdigit():
        return str(int(suffix) + 1).zfill(len(suffix))
    chars = list(suffix)
    for i in range(len(chars) - 1, -1, -1):
        if chars[i] != "z":
            chars[i] = chr(ord(chars[i]) + 1)
            return "".join(chars)
        chars[i] = "a"
    raise InputError(f"too many parts after .{suffix}")


def _is_first_suffix(suffix: str) -> bool:
    return set(suffix) == {"a"} or set(suffix) == {"0"} or suffix in ("01", "001")


def _split_name(path: str) -> tuple[str, str] | None:
    match = _PART_NAME.match(path)
    if match is None or match["suffix"] in _COMPRESSION_SUFFIXES:  # x.tar.gz is not part "gz"
        return None
    return match["stem"], match["suffix"]


def _check_consecutive(parts: list[str]) -> None:
    first = _split_name(parts[0])
    if first is None:
        raise InputError("not the name of a split-archive part (expected NAME.tar.aa, .ab, …)", path=parts[0])
    stem, suffix = first
    if not _is_first_suffix(suffix):
        start = "a" * len(suffix) if suffix.isalpha() else "0" * len(suffix)
        raise InputError("missing part: a split archive starts with its first part", path=f"{stem}.{start}")
    for part in parts[1:]:
        suffix = _next_suffix(suffix)
        expected = f"{stem}.{suffix}"
        if part != expected:
            named = _split_name(part)
            if named is None or named[0] != stem:
                raise InputError(f"part {part!r} does not belong to the split archive {stem}", path=part)
            raise InputError("missing part of the split archive (parts must be consecutive)", path=expected)


def resolve_parts(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    exists: Callable[[str], bool] | None = None,
) -> list[str]:
    """The ordered list of files making up one archive.

    ``source`` is a single tar, the first part of a split tar (``x.tar.aa``: the following
    ``.ab``, ``.ac``… are found with ``exists``), a glob such as ``x.tar.*`` (local only), or an
    explicit list of parts. Parts must be consecutive; a gap raises an :class:`InputError` naming
    the missing part. A missing *last* part cannot be seen from the names: :func:`iter_tar`
    reports it when the stream ends without the tar end-of-archive marker.
    """
    exists = exists or os.path.exists
    if not isinstance(source, (str, os.PathLike)):
        parts = [os.fspath(p) for p in source]
        if not parts:
            raise InputError("empty list of archive parts")
        if len(parts) > 1 or _split_name(parts[0]):
            _check_consecutive(parts)
        return parts
    path = os.fspath(source)
    if not _is_url(path) and glob.has_magic(path):
        parts = sorted(glob.glob(path))
        if not parts:
            raise InputError("no file matches this pattern", path=path)
        return resolve_parts(parts, exists=exists)
    named = _split_name(path)
    if named is None or not _is_first_suffix(named[1]):
        if named is not None:
            _check_consecutive([path])  # raises, naming the missing first part
        return [path]
    stem, suffix = named
    parts = [path]
    if not exists(path):
        raise InputError("missing part of the split archive", path=path)
    while exists(candidate := f"{stem}.{(suffix := _next_suffix(suffix))}"):
        parts.append(candidate)
    # A part beyond the first absent one means a gap, not the end of the archive.
    if exists(f"{stem}.{_next_suffix(suffix)}"):
        raise InputError("missing part of the split archive (parts must be consecutive)", path=candidate)
    return parts


class ChainedParts(io.RawIOBase):
    """The parts of a split file read back to back as one forward-only stream.

    Each part is opened only when the previous one is exhausted, so a 121 GB archive needs no
    joined copy and a remote part is fetched only when reached.
    """

    def __init__(self, parts: Sequence[str], opener: PartOpener = open_binary):
        super().__init__()
        self.parts = list(parts)
        self._opener = opener
        self._index = 0
        self._current: BinaryIO | None = None

    @property
    def current_part(self) -> str:
        """The part being read (the last one once the stream is exhausted)."""
        return self.parts[min(self._index, len(self.parts) - 1)]

    def readable(self) -> bool:
        return True

    def _open_current(self) -> BinaryIO:
        part = self.parts[self._index]
        try:
            return self._opener(part)
        except FileNotFoundError as err:
            what = "no such file" if len(self.parts) == 1 else "missing part of the split archive"
            raise InputError(what, path=part) from err

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self.parts):
            if self._current is None:
                self._current = self._open_current()
            try:
                data = self._current.read(len(view))
            except Exception as err:  # a dropped connection, a vanished file…
                raise InputError(f"reading failed ({type(err).__name__}: {err})", path=self.current_part) from err
            if data:
                view[: len(data)] = data
                return len(data)
            self._current.close()
            self._current = None
            self._index += 1
        return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class _CheckedTarInfo(tarfile.TarInfo):
    """Records why tarfile stopped reading headers: it ends silently on truncated data."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as err:
            tar.hf_asl_end = err
            raise


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "path with '..'"
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "fifo"
    if not (member.isreg() or member.isdir()):
        return f"unsupported member type {member.type!r}"
    return None


def _is_hidden(name: str) -> bool:
    # The same files `datasets.iter_archive` skips: macOS resource forks (._x), .DS_Store, __MACOSX.
    return any(part.startswith((".", "__")) for part in name.split("/") if part not in ("", "."))


def _describe(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"


def _open_tar(source: str | ChainedParts) -> tarfile.TarFile:
    """A local tar opened for random access (listing skips member data), or a forward stream."""
    if isinstance(source, str):
        return tarfile.open(source, mode="r:*", tarinfo=_CheckedTarInfo)
    return tarfile.open(fileobj=source, mode="r|*", tarinfo=_CheckedTarInfo, bufsize=_READ_SIZE)


def iter_tar(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    opener: PartOpener = open_binary,
    read: bool = True,
    name: str | None = None,
) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(member_name, data)`` for each regular file of a tar, in archive order.

    ``source`` is a path or URL given to :func:`resolve_parts` (a tar, the first part of a split
    tar, a glob), or a sequence of parts taken as given, in order (e.g. downloaded copies whose
    names no longer show the part suffixes). ``name`` is how errors call the archive (default:
    its first part). Directories and hidden files are skipped; any unsafe member raises
    :class:`InputError` naming it. With ``read=False`` the data is ``None`` and a single local
    tar is listed by seeking over the member data. Compressed tars (gz, bz2, xz) are read too.
    """
    if isinstance(source, (str, os.PathLike)):
        parts = resolve_parts(source)
    else:
        parts = [os.fspath(p) for p in source]
    where = name or _describe(parts)
    split = len(parts) > 1 or _split_name(parts[0]) is not None
    hint = f"; is a part after {parts[-1]} missing?" if split else ""
    seekable = not read and len(parts) == 1 and not _is_url(parts[0])
    stream = None if seekable else ChainedParts(parts, opener)
    last = None
    if seekable and not os.path.exists(parts[0]):
        raise InputError("no such file", path=parts[0])
    try:
        with _open_tar(parts[0] if seekable else stream) as tar:
            for member in tar:
                problem = _member_problem(member)
                if problem:
                    raise InputError(f"refusing tar member {member.name!r}: {problem}", path=where)
                last = member.name
                if member.isdir() or _is_hidden(member.name):
                    continue
                data = None
                if read:
                    handle = tar.extractfile(member)
                    data = handle.read()
                yield member.name, data
                # Stream mode keeps every TarInfo otherwise: 100k members would pile up.
                tar.members = []
            end = getattr(tar, "hf_asl_end", None)
    except tarfile.ReadError as err:
        after = f" in or after member {last!r}" if last else ""
        raise InputError(f"unreadable tar data{after} ({err}): truncated or corrupt archive{hint}", path=where) from err
    finally:
        if stream is not None:
            stream.close()
    if isinstance(end, tarfile.EOFHeaderError):
        return
    after = f" after member {last!r}" if last else ""
    if isinstance(end, tarfile.InvalidHeaderError):
        raise InputError(f"corrupt tar header{after} ({end}): damaged archive or parts out of order", path=where)
    raise InputError(f"archive ends without the tar end-of-archive marker{after} (truncated{hint})", path=where)
