"""Random-access image sources for extraction: a folder, a tar, or a `datasets` image config.

Each source lists its image ids (file stems or the dataset's ``image_id`` column) without
decoding anything, and returns the encoded bytes of one id on demand, so that DataLoader workers
decode in parallel and a resumed run touches only the images it still needs.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Protocol

from .archives import iter_tar
from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Files that only a raw NDEC / mini-NDEC release root holds (an exported parquet folder has none).
RELEASE_MARKERS = ("public_ground_truth_h5.csv", "query_images_h5.tar", "query_images_h5")


class ImageSource(Protocol):
    """What extraction needs from a collection of images."""

    #: How errors and the extraction settings name the source.
    name: str
    #: Ids the source dropped itself as corrupt (``datasets`` configs prepared with ``skip_corrupt``).
    skipped: list[str]

    def ids(self) -> list[str]: ...

    def read_bytes(self, image_id: str) -> bytes: ...


def _is_image_name(name: str) -> bool:
    base = os.path.basename(name)
    # Hidden files (macOS ._x.jpg resource forks, .DS_Store) are not images.
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES


def _sorted_unique(pairs: list[tuple[str, str]], where: str) -> list[str]:
    """Sorted ids of ``(id, origin)`` pairs; an id twice is an error naming both origins."""
    seen: dict[str, str] = {}
    for image_id, origin in pairs:
        if image_id in seen:
            raise InputError(f"image id {image_id!r} appears twice ({seen[image_id]!r} and {origin!r})", path=where)
        seen[image_id] = origin
    return sorted(seen)


class FolderSource:
    """Image files directly inside a folder; the id is the file stem (``Q00001.jpg`` -> ``Q00001``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = str(self.folder.resolve())
        self.skipped: list[str] = []
        files = [p for p in self.folder.iterdir() if p.is_file() and _is_image_name(p.name)]
        if not files:
            raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder", path=self.folder)
        self._ids = _sorted_unique([(p.stem, p.name) for p in files], str(self.folder))
        self._paths = {p.stem: p for p in files}

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        return self._paths[image_id].read_bytes()


class TarSource:
    """Image members of an uncompressed tar (e.g. NDEC's ``query_images_h5.tar``); id = member file stem.

    The members are listed and checked once with :func:`hf_asl.archives.iter_tar`, which refuses
    absolute names, ``..``, links and device files. Images are then read by offset with
    ``os.pread``: no shared file position, so forked DataLoader workers can share the descriptor.
    A compressed tar is refused, since each random read would decompress from the start.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = str(self.path.resolve())
        self.skipped: list[str] = []
        names = [name for name, _ in iter_tar(str(self.path), read=False) if _is_image_name(name)]
        if not names:
            raise InputError("no image members in this tar", path=self.path)
        self._ids = _sorted_unique([(Path(n).stem, n) for n in names], str(self.path))
        wanted = set(names)
        try:
            # "r:" opens uncompressed tars only; the offsets below are then file offsets.
            with tarfile.open(self.path, mode="r:") as tar:
                spans = {m.name: (m.offset_data, m.size) for m in tar if m.name in wanted}
        except tarfile.ReadError as err:
            raise InputError(
                f"compressed tar ({err}): decompress it first (e.g. gunzip) for random access", path=self.path
            ) from None
        self._spans = {Path(n).stem: spans[n] for n in names}
        self._fd: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        offset, size = self._spans[image_id]
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise InputError(f"member of {image_id!r} is truncated ({len(data)} of {size} bytes)", path=self.path)
        return data


class DatasetSource:
    """A `datasets.Dataset` with ``image_id`` and ``image`` columns (NDEC's image configs)."""

    def __init__(self, dataset, name: str = "dataset", skipped: list[str] | None = None):
        import datasets

        missing = {"image_id", "image"} - set(dataset.column_names)
        if missing:
            raise InputError(f"dataset lacks column(s) {sorted(missing)} (an image config has image_id, image)", path=name)
        # Undecoded images give the stored bytes: decoding happens once, in the workers.
        self._dataset = dataset.select_columns(["image_id", "image"]).cast_column("image", datasets.Image(decode=False))
        self.name = name
        self.skipped = list(skipped or [])
        all_ids = list(self._dataset["image_id"])
        self._ids = _sorted_unique([(i, f"row {row}") for row, i in enumerate(all_ids)], name)
        self._row = {image_id: row for row, image_id in enumerate(all_ids)}

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        image = self._dataset[self._row[image_id]]["image"]
        if image.get("bytes") is not None:
            return image["bytes"]
        return Path(image["path"]).read_bytes()


def is_release_root(path: str | Path) -> bool:
    """Whether ``path`` is a raw NDEC / mini-NDEC release root (read through the NDEC builder)."""
    path = Path(path)
    return path.is_dir() and any((path / marker).exists() for marker in RELEASE_MARKERS)


def open_dataset_source(
    location: str | Path,
    config: str,
    *,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    skip_corrupt: bool = False,
    **sources: str | Path | None,
) -> DatasetSource:
    """An image config of a `datasets` location as a :class:`DatasetSource`.

    A raw NDEC / mini-NDEC release root is read through the :class:`hf_asl.ndec.NDEC` builder
    (``sources`` override single files, e.g. ``references=`` for the DISC21 images; corrupt
    images are dropped and listed with ``skip_corrupt``). Anything else (an exported parquet
    folder, a Hub dataset repo) goes to ``datasets.load_dataset``.
    """
    cache = None if cache_dir is None else str(cache_dir)
    given = {k: str(v) for k, v in sources.items() if v is not None}
    if is_release_root(location) or given:
        from .ndec import NDEC, SPLITS

        if config not in SPLITS:
            raise InputError(f"unknown NDEC config {config!r} (image configs: queries, references, train)")
        builder = NDEC(
            config_name=config,
            data_dir=str(location),
            cache_dir=cache,
            skip_corrupt=skip_corrupt,
            **given,
        )
        builder.download_and_prepare()
        split = split or SPLITS[config]
        name = f"{Path(location).resolve()}:{config}/{split}"
        return DatasetSource(builder.as_dataset(split=split), name=name, skipped=builder.skipped_images)

    import datasets

    try:
        loaded = datasets.load_dataset(str(location), config, split=split, cache_dir=cache)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        raise InputError(f"cannot load config {config!r}: {err}", path=location) from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise InputError(f"config {config!r} has splits {sorted(loaded)}: choose one with --split", path=location)
        (split, loaded), = loaded.items()
    where = str(Path(location).resolve()) if Path(location).exists() else str(location)
    return DatasetSource(loaded, name=f"{where}:{config}/{split}")


def open_image_source(
    source: str | Path,
    *,
    config: str | None = None,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    skip_corrupt: bool = False,
) -> ImageSource:
    """Open IMAGES as given on the command line: a folder of images, a tar, or (with
    ``config``) a `datasets` location (see :func:`open_dataset_source`)."""
    if config is not None:
        return open_dataset_source(source, config, split=split, cache_dir=cache_dir, skip_corrupt=skip_corrupt)
    path = Path(source)
    if path.is_dir():
        if is_release_root(path):
            raise InputError("an NDEC release root: pass --config queries|references|train", path=source)
        return FolderSource(path)
    if path.is_file() and tarfile.is_tarfile(path):
        return TarSource(path)
    if not path.exists():
        raise InputError("no such folder or file", path=source)
    raise InputError("not a folder of images or a tar (pass --config for a datasets source)", path=source)
