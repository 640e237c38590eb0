"""A pool of real photographs gathered from installed packages (never from the network).

Sources, in order: scikit-image's bundled colour photos, scikit-learn's two sample images and,
when the optional ``hf_asl[demo]`` extra is installed, the real photos of ``mvtb-data``. Each
photo records its package, licence and a *group*: photos of one subject (a stereo pair, frames
of one walk, one façade shot several times) share a group, so a split by group never lets a
scene leak between train and test, and the other members of a group are natural "other view"
hard negatives of its first member (the group's *primary*).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError

# Long side, in pixels, photos are brought down to when loaded: keeps tiling and memory bounded
# (the 8 MP mvtb photos would otherwise dominate every tile count).
DEFAULT_MAX_SIDE = 2048


@dataclass(frozen=True)
class Photo:
    """One photograph of the pool.

    ``name`` is unique in the pool (``"<source>/<file stem>"``); ``primary`` is False for the
    extra members of a same-subject group, which may show the primary's content from another
    viewpoint and so must never become references or training identities.
    """

    name: str
    package: str
    licence: str
    group: str
    primary: bool
    grey: bool
    load: Callable[[], Image.Image] = field(compare=False, repr=False)
    # Set for photos stored as files: their size can be read without decoding the pixels.
    path: Path | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PhotoSource:
    """A package that may provide photos; ``list_photos`` raises ImportError when it is absent."""

    package: str
    licence: str
    list_photos: Callable[[], list[Photo]] = field(compare=False, repr=False)


def _group(name: str, members: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """Map each member to (group, primary); the first member is the primary."""
    return {m: (name, i == 0) for i, m in enumerate(members)}


# ---- scikit-image -------------------------------------------------------------------------------

_SKIMAGE_LICENCES = {
    "astronaut": "public domain (NASA)",
    "chelsea": "CC0-1.0 (Stefan van der Walt)",
    "coffee": "CC0-1.0 (Rachel Michetti)",
    "rocket": "public domain (SpaceX)",
    "hubble_deep_field": "public domain (NASA)",
    "immunohistochemistry": "no known copyright restrictions (CMMI)",
    "retina": "CC0-1.0 (Mikael Häggström)",
    "motorcycle_left": "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014)",
    "motorcycle_right": "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014)",
}


def _skimage_loader(stem: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import skimage.data

        if stem.startswith("motorcycle_"):
            left, right, _ = skimage.data.stereo_motorcycle()
            array = left if stem.endswith("left") else right
        else:
            array = getattr(skimage.data, stem)()
        return Image.fromarray(np.ascontiguousarray(array[..., :3]))

    return load


def _skimage_photos() -> list[Photo]:
    if importlib.util.find_spec("skimage") is None:
        raise ImportError("scikit-image is not installed")
    groups = _group("skimage/motorcycle", ["motorcycle_left", "motorcycle_right"])
    photos = []
    for stem, licence in _SKIMAGE_LICENCES.items():
        group, primary = groups.get(stem, (f"skimage/{stem}", True))
        photos.append(
            Photo(f"skimage/{stem}", "scikit-image", licence, group, primary, False, _skimage_loader(stem))
        )
    return photos


# ---- scikit-learn -------------------------------------------------------------------------------


def _sklearn_photos() -> list[Photo]:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("scikit-learn is not installed")
    # The files load_sample_images() reads; opened directly so listing costs no sklearn import.
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images"
    photos = []
    for file in ("china.jpg", "flower.jpg"):
        path = folder / file
        if path.is_file():
            stem = path.stem
            photos.append(
                Photo(f"sklearn/{stem}", "scikit-learn", "CC-BY-2.0 (Flickr, see load_sample_images)",
                      f"sklearn/{stem}", True, False, _file_loader(path), path)
            )
    return photos


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as image:
            return image.convert("RGB")

    return load


# ---- mvtb-data ----------------------------------------------------------------------------------

# Real photos only, chosen by looking at every file: calibration targets, apriltag / aruco
# sheets, synthetic blobs and sharks, drawings (wheres-wally) and the third-party images
# (lena, monalisa, 58060, butterfly, image3) are left out; church.jpg duplicates church.png.
_MVTB_SINGLES = (
    "arucoboard.png", "church.png", "greenscreen.png", "lab-scene.png", "notre-dame.png",
    "parks.png", "road.png", "roof.png", "tags.png", "street.png", "penguins.png",
    "tomato_124.png", "tomato_14.png", "tomato_35.png", "tomato_54.png",
    "flowers2.png", "flowers3.png", "flowers4.png", "flowers5.png", "flowers6.png",
    "flowers7.png", "flowers9.png",
)
_CAMPUS = {  # frames of one walk, grouped by the scene they show (scenes recur within a group)
    "campus-brick": (491, 492, 493, 494),
    "campus-pillars": (495, 496, 497),
    "campus-umbrellas": (498, 499, 500, 501, 502, 503, 504, 505),
    "campus-lawn": (506, 507, 508, 509, 510, 514),
    "campus-palms": (511, 512, 513, 515),
}
_MVTB_GROUPS: dict[str, tuple[str, ...]] = {
    "building2": ("building2-3.png", "building2-1.png", "building2-2.png"),
    "eiffel": ("eiffel-1.png", "eiffel-2.png"),
    "castle": ("castle.png", "castle2.png"),
    "walls": ("walls-l.png", "walls-r.png"),
    "rocks2": ("rocks2-l.png", "rocks2-r.png"),
    "tulips": ("flowers1.png", "flowers8.png"),
    # One city seen from the air: overlapping colour and grey frames of one mosaic.
    "aerial": ("mosaic/aerialphoto.png", "mosaic/aerial-08.png", "mosaic/aerial-09.png",
               "mosaic/aerial-10.png", *(f"mosaic/aerial2-{i:03d}.png" for i in range(1, 11))),
    "toy-house": tuple(f"seq/im.{i:03d}.png" for i in range(1, 10)),
    **{
        name: tuple(
            f"campus/holdout/P1070{n}.png" if n in (492, 502, 508, 511, 513) else f"campus/P1070{n}.png"
            for n in frames
        )
        for name, frames in _CAMPUS.items()
    },
}
_MVTB_LICENCE = "MIT (mvtb-data, Peter Corke)"


def _mvtb_photos() -> list[Photo]:
    spec = importlib.util.find_spec("mvtbdata")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mvtb-data is not installed (pip install 'hf-asl[demo]')")
    folder = Path(next(iter(spec.submodule_search_locations))) / "images"
    members = {file: (f"mvtb/{Path(file).stem}", True) for file in _MVTB_SINGLES}
    for group, files in _MVTB_GROUPS.items():
        members.update({f: (f"mvtb/{group}", primary) for f, (_, primary) in _group(group, files).items()})
    photos = []
    for file, (group, primary) in members.items():
        path = folder / file
        if not path.is_file():
            continue
        with Image.open(path) as image:
            grey = image.mode in ("L", "LA", "I", "I;16", "1")
        photos.append(
            Photo(f"mvtb/{Path(file).stem}", "mvtb-data", _MVTB_LICENCE, group, primary, grey,
                  _file_loader(path), path)
        )
    return photos


PHOTO_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("scikit-image", "CC0 / public domain (per photo)", _skimage_photos),
    PhotoSource("scikit-learn", "CC-BY-2.0", _sklearn_photos),
    PhotoSource("mvtb-data", _MVTB_LICENCE, _mvtb_photos),
)


def _package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class PhotoPool:
    """The photos available offline, decoded on first use and cached for the pool's lifetime."""

    def __init__(self, photos: Sequence[Photo], *, max_side: int = DEFAULT_MAX_SIDE):
        self.photos: tuple[Photo, ...] = tuple(photos)
        self.max_side = max_side
        self._by_name = {p.name: p for p in self.photos}
        self._cache: dict[str, Image.Image] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, name: str) -> Photo:
        return self._by_name[name]

    def _scaled(self, size: tuple[int, int]) -> tuple[int, int]:
        scale = self.max_side / max(size)
        if scale >= 1:
            return size
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    def image(self, name: str) -> Image.Image:
        """The photo as an RGB image, its long side brought down to ``max_side``."""
        image = self._cache.get(name)
        if image is None:
            image = self._by_name[name].load().convert("RGB")
            size = self._scaled(image.size)
            if size != image.size:
                # reducing_gap: a fast integer box reduction first, then Lanczos over the last step.
                image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            self._cache[name] = image
            self._sizes[name] = image.size
        return image

    def size(self, name: str) -> tuple[int, int]:
        """(width, height) of ``image(name)``, read from the file header when possible."""
        size = self._sizes.get(name)
        if size is None:
            path = self._by_name[name].path
            if path is None:
                return self.image(name).size
            with Image.open(path) as image:
                size = self._sizes[name] = self._scaled(image.size)
        return size

    def groups(self) -> dict[str, list[Photo]]:
        """Photos by group, primary first, in pool order."""
        groups: dict[str, list[Photo]] = {}
        for photo in self.photos:
            groups.setdefault(photo.group, []).append(photo)
        for members in groups.values():
            members.sort(key=lambda p: not p.primary)
        return groups

    def sources(self, names: Sequence[str] | None = None) -> list[dict[str, object]]:
        """Per package that contributed photos (all, or those in ``names``): package, installed
        version, licences and photo count, in pool order."""
        wanted = None if names is None else set(names)
        licences: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for photo in self.photos:
            if wanted is not None and photo.name not in wanted:
                continue
            counts[photo.package] = counts.get(photo.package, 0) + 1
            known = licences.setdefault(photo.package, [])
            if photo.licence not in known:
                known.append(photo.licence)
        return [{"package": package, "version": _package_version(package), "licences": licences[package],
                 "photos": count} for package, count in counts.items()]


def load_photo_pool(
    sources: Sequence[str] | None = None, *, max_side: int = DEFAULT_MAX_SIDE
) -> PhotoPool:
    """Gather the photos of every installed source (or of the named ``sources`` packages).

    Raises InputError when no source provides a photo.
    """
    wanted = None if sources is None else set(sources)
    photos: list[Photo] = []
    missing: list[str] = []
    for source in PHOTO_SOURCES:
        if wanted is not None and source.package not in wanted:
            continue
        try:
            found = source.list_photos()
        except ImportError as err:
            missing.append(f"{source.package} ({err})")
            continue
        photos.extend(found)
    if not photos:
        tried = ", ".join(missing) if missing else "none selected"
        raise InputError(
            "no photo source is available to build images from; tried: "
            f"{tried}. Install scikit-image or scikit-learn, or the demo extra: pip install 'hf-asl[demo]'"
        )
    return PhotoPool(photos, max_side=max_side)
