"""Safe tar reading: split parts as one stream, refused members, missing parts."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from hf_asl.archives import ChainedParts, iter_tar, resolve_parts
from hf_asl.errors import InputError


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _tar_bytes(members: list[tuple[str, bytes]], **tar_kwargs) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", **tar_kwargs) as tar:
        for name, data in members:
            _add(tar, name, data)
    return buffer.getvalue()


MEMBERS = [(f"negative_pair/P{i:06d}/{side}.jpg", os.urandom(4000 + 311 * i)) for i in range(5) for side in "ab"]


@pytest.fixture()
def split_tar(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The same tar joined and cut into four parts (.aa … .ad)."""
    data = _tar_bytes(MEMBERS)
    joined = tmp_path / "joined.tar"
    joined.write_bytes(data)
    size = -(-len(data) // 4)
    parts = []
    for index, suffix in enumerate(("aa", "ab", "ac", "ad")):
        part = tmp_path / f"negative_pair.tar.{suffix}"
        part.write_bytes(data[index * size : (index + 1) * size])
        parts.append(part)
    return joined, parts


def test_split_tar_reads_like_the_joined_tar(split_tar):
    joined, parts = split_tar
    expected = list(iter_tar(joined))
    assert expected == MEMBERS
    assert list(iter_tar(parts[0])) == expected  # parts found from the first one
    assert list(iter_tar(str(parts[0].parent / "negative_pair.tar.*"))) == expected  # glob
    assert list(iter_tar([str(p) for p in parts])) == expected  # explicit list
    assert [n for n, _ in iter_tar(joined, read=False)] == [n for n, _ in MEMBERS]


def test_chained_parts_is_the_concatenation(split_tar):
    joined, parts = split_tar
    with ChainedParts([str(p) for p in parts]) as stream:
        assert stream.read() == joined.read_bytes()


def test_missing_middle_part_is_named(split_tar):
    _, parts = split_tar
    parts[1].unlink()
    for source in (parts[0], str(parts[0].parent / "negative_pair.tar.*"), [str(parts[0]), str(parts[2])]):
        with pytest.raises(InputError, match=r"negative_pair\.tar\.ab: missing part"):
            resolve_parts(source)


def test_missing_first_part_is_named(split_tar):
    _, parts = split_tar
    with pytest.raises(InputError, match=r"negative_pair\.tar\.aa: missing part"):
        resolve_parts(parts[1])


def test_missing_last_part_is_reported_while_reading(split_tar):
    _, parts = split_tar
    parts[-1].unlink()
    with pytest.raises(InputError, match=r"negative_pair\.tar\.ac missing"):
        list(iter_tar(parts[0]))


def test_stream_ending_between_members_is_reported(tmp_path: Path):
    data = _tar_bytes(MEMBERS[:2])
    end_of_first = 512 + -(-len(MEMBERS[0][1]) // 512) * 512
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:end_of_first])  # stops exactly after a member: tarfile alone says nothing
    with pytest.raises(InputError, match="end-of-archive marker after member"):
        list(iter_tar(cut))


def test_compressed_tar(tmp_path: Path):
    path = tmp_path / "x.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in MEMBERS[:3]:
            _add(tar, name, data)
    assert list(iter_tar(path)) == MEMBERS[:3]


def test_directories_and_hidden_files_are_skipped(tmp_path: Path):
    path = tmp_path / "x.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "query_images_h5", type=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "query_images_h5/Q00000.jpg", b"jpeg")
        _add(tar, "query_images_h5/._Q00000.jpg", b"resource fork")
        _add(tar, "__MACOSX/query_images_h5/Q00000.jpg", b"resource fork")
    assert list(iter_tar(path)) == [("query_images_h5/Q00000.jpg", b"jpeg")]


UNSAFE = [
    ("/etc/passwd", {}, "absolute path"),
    ("../outside.jpg", {}, r"'\.\.'"),
    ("negative_pair/../../outside.jpg", {}, r"'\.\.'"),
    ("negative_pair/link.jpg", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "symbolic link"),
    ("negative_pair/hard.jpg", {"type": tarfile.LNKTYPE, "linkname": "negative_pair/a.jpg"}, "hard link"),
    ("negative_pair/dev", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "device file"),
    ("negative_pair/blk", {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, "device file"),
    ("negative_pair/fifo", {"type": tarfile.FIFOTYPE}, "fifo"),
]


@pytest.mark.parametrize("name, fields, reason", UNSAFE, ids=[u[2].strip("r'\\") for u in UNSAFE])
def test_unsafe_member_is_refused(tmp_path: Path, name, fields, reason):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "negative_pair/a.jpg", b"fine")
        _add(tar, name, **fields)
    with pytest.raises(InputError) as excinfo:
        list(iter_tar(path))
    message = str(excinfo.value)
    assert message.startswith(f"{path}: refusing tar member {name!r}")
    assert re.search(reason, message)
    # Listing names is checked the same way.
    with pytest.raises(InputError, match="refusing tar member"):
        list(iter_tar(path, read=False))


def test_unsafe_member_in_split_tar_names_the_archive(tmp_path: Path):
    data = _tar_bytes([("negative_pair/P0/a.jpg", b"x" * 2000), ("/abs.jpg", b"y")])
    (tmp_path / "np.tar.aa").write_bytes(data[:1500])
    (tmp_path / "np.tar.ab").write_bytes(data[1500:])
    with pytest.raises(InputError, match=r"np\.tar\.aa \(\+1 parts\): refusing tar member '/abs\.jpg'"):
        list(iter_tar(tmp_path / "np.tar.aa"))


def test_single_file_and_missing_archive(tmp_path: Path):
    assert resolve_parts(tmp_path / "plain.tar") == [str(tmp_path / "plain.tar")]
    with pytest.raises(InputError, match=r"plain\.tar: no such file"):
        list(iter_tar(tmp_path / "plain.tar"))
