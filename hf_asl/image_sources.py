"""Random-access image sources for extraction: a folder, a tar, or a `datasets` image config.

Each source lists its image ids (file stems or the dataset's ``image_id`` column) without
decoding anything, and returns the encoded bytes of one id on demand, so that DataLoader workers
decode in parallel and a resumed run touches only the images it still needs.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Protocol

from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Files that only a raw NDEC / mini-NDEC release root holds (an exported parquet folder has none).
RELEASE_MARKERS = ("public_ground_truth_h5.csv", "query_images_h5.tar", "query_images_h5")


class ImageSource(Protocol):
    name: str

    def ids(self) -> list[str]: ...

    def read_bytes(self, image_id: str) -> bytes: ...


def _check_unique(ids: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    for image_id in ids:
        if image_id in seen:
            raise InputError(f"image id {image_id!r} appears twice", path=where)
        seen.add(image_id)
    return sorted(ids)


class FolderSource:
    """Images directly inside a folder; the id is the file stem (``Q00001.jpg`` -> ``Q00001``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = str(self.folder)
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError("no image files in this folder", path=self.folder)
        self._paths = {p.stem: p for p in files}
        self._ids = _check_unique([p.stem for p in files], self.name)

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        return self._paths[image_id].read_bytes()


class TarSource:
    """Image members of an uncompressed or compressed tar; the id is the member's file stem.

    The member index is built once from the headers; each process (and DataLoader worker)
    opens its own handle because tarfile objects cannot be shared across processes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = str(self.path)
        try:
            with tarfile.open(self.path) as tar:
                members = [
                    m.name for m in tar.getmembers()
                    if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES
                ]
        except (tarfile.TarError, OSError) as err:
            raise InputError(f"cannot read tar: {err}", path=self.path) from err
        if not members:
            raise InputError("no image members in this tar", path=self.path)
        self._members = {Path(m).stem: m for m in members}
        self._ids = _check_unique([Path(m).stem for m in members], self.name)
        self._tar: tarfile.TarFile | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tar": None}

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        if self._tar is None:
            self._tar = tarfile.open(self.path)
        handle = self._tar.extractfile(self._members[image_id])
        if handle is None:
            raise InputError(f"member for {image_id!r} is not a regular file", path=self.path)
        return handle.read()


class DatasetSource:
    """A `datasets.Dataset` with ``image_id`` and ``image`` columns (NDEC's image configs)."""

    def __init__(self, dataset, name: str = "dataset"):
        import datasets

        missing = {"image_id", "image"} - set(dataset.column_names)
        if missing:
            raise InputError(f"dataset lacks column(s) {sorted(missing)}", path=name)
        # Undecoded images give the stored bytes: decoding happens once, in the workers.
        self._dataset = dataset.cast_column("image", datasets.Image(decode=False))
        self.name = name
        all_ids = list(self._dataset["image_id"])
        self._row = {image_id: row for row, image_id in enumerate(all_ids)}
        self._ids = _check_unique(all_ids, name)

    def ids(self) -> list[str]:
        return self._ids

    def read_bytes(self, image_id: str) -> bytes:
        image = self._dataset[self._row[image_id]]["image"]
        if image.get("bytes") is not None:
            return image["bytes"]
        return Path(image["path"]).read_bytes()


def open_image_source(
    source: str | Path, *, config: str | None = None, split: str | None = None
) -> ImageSource:
    """Open IMAGES as given on the command line.

    A folder of images or a tar file is read directly. With ``config`` the source is a
    `datasets` location: a Hub repo id or an exported parquet folder (``load_dataset``), or a
    raw NDEC / mini-NDEC release root (read through the :class:`hf_asl.ndec.NDEC` builder).
    """
    path = Path(source)
    if config is None:
        if path.is_dir():
            return FolderSource(path)
        if path.is_file() and tarfile.is_tarfile(path):
            return TarSource(path)
        raise InputError(
            "not a folder of images or a tar (pass --config for a datasets source)", path=source
        )
    split = split or "test"
    if path.is_dir() and any((path / marker).exists() for marker in RELEASE_MARKERS):
        from .ndec import load_ndec

        dataset = load_ndec(config, data_dir=str(path), split=split)
    else:
        import datasets

        dataset = datasets.load_dataset(str(source), config, split=split)
    return DatasetSource(dataset, name=f"{source}:{config}/{split}")
