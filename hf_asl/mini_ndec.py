"""Mini-NDEC: a small, offline copy-detection benchmark built from real photos, in NDEC's layout.

Photos come from installed packages (``hf_asl.photos``); every photo group (one scene) is given
one role so no scene crosses the train/test boundary:

- *reference* groups are cut into a grid of cells; each used cell holds one reference (a crop
  of 35–70% of the cell) and a margin that belongs to no other reference, so a wider view or a
  shifted window of the same cell never contains another reference's pixels. The other members
  of a group (stereo partner, later frames of a walk) never become references: they supply
  "other view" hard negatives.
- *query* groups supply look-alikes, distractors and the second photo of paste edits.
- *train* groups supply training identities (disjoint tiles), their edited views and the
  hard-negative training pairs.

Every image is generated from its own seeded generator (seed, stage, index), JPEGs use fixed
settings and tar members fixed metadata, so one seed and version give byte-identical files.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .edits import (
    MIN_SIDE,
    EditedImage,
    apply_chain,
    emoji_files,
    font_files,
    random_crop,
)
from .errors import InputError
from .photos import PhotoPool, load_photo_pool
from .version import __version__

FORMAT_VERSION = 1
KINDS = ("copy", "hn_wider_view", "hn_other_view", "hn_look_alike", "distractor")
HARD_NEGATIVE_KINDS = ("hn_wider_view", "hn_other_view", "hn_look_alike")
# Copies get a third of the queries and hard negatives about half, as in NDEC (49% hard negatives).
QUERY_SHARES = {"copy": 0.36, "hn_wider_view": 0.16, "hn_other_view": 0.16, "hn_look_alike": 0.16, "distractor": 0.16}

# Long side of every written image. Tiles of small photos are brought up to the minimum (at
# most 2x) so image size tells nothing about an image's role.
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 256, 512
JPEG_SETTINGS = {"quality": 90, "subsampling": "4:2:0", "optimize": False, "progressive": False}
NEGATIVE_PAIR_PARTS = 3

# Cell sides (pixels of a 1 MP photo of the pool) tried from large to small until enough exist.
_MAX_CELL, _MIN_CELL, _CELL_STEP = 640, 144, 8
_REFERENCE_SHARE_OF_CELL = (0.35, 0.7)
_HARD_NEGATIVE_EDIT_PROBABILITY = 0.6
# Copies and training views keep at least this share of the original: below it an edit chain
# (small crop, then an overlay) leaves too little to call the result a copy.
MIN_CONTENT_FRACTION = 0.15

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MiniNdecSize:
    """How many images a build makes."""

    references: int
    queries: int
    train_images: int
    views_per_image: int
    negative_pairs: int
    # Scenes drawn from the pool (None: all); fewer scenes means fewer photos to decode.
    max_groups: int | None = None


SIZES: dict[str, MiniNdecSize] = {
    "small": MiniNdecSize(references=32, queries=60, train_images=20, views_per_image=3, negative_pairs=12,
                          max_groups=12),
    "default": MiniNdecSize(references=300, queries=600, train_images=180, views_per_image=4, negative_pairs=240),
}


# ---- seeded randomness ----------------------------------------------------------------------------


def _rng(seed: int, stage: str, index: int = 0) -> np.random.Generator:
    """An independent generator per (stage, item): adding queries never changes references."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode()), index])


# ---- geometry -----------------------------------------------------------------------------------


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _intersection(a: Box, b: Box) -> int:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _grid(size: tuple[int, int], side: int) -> list[Box]:
    """Non-overlapping cells of about side x side covering an image of ``size``."""
    width, height = size
    nx, ny = max(1, width // side), max(1, height // side)
    xs = [round(i * width / nx) for i in range(nx + 1)]
    ys = [round(j * height / ny) for j in range(ny + 1)]
    return [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(ny) for i in range(nx)]


def _box_in(bounds: Box, rng: np.random.Generator, area: float, aspect: float) -> Box:
    """A box of about ``area`` and ``aspect`` (w/h) at a random place inside ``bounds``."""
    bw, bh = bounds[2] - bounds[0], bounds[3] - bounds[1]
    w = min(bw, max(min(MIN_SIDE, bw), round(math.sqrt(area * aspect))))
    h = min(bh, max(min(MIN_SIDE, bh), round(math.sqrt(area / aspect))))
    x0 = bounds[0] + int(rng.integers(0, bw - w + 1))
    y0 = bounds[1] + int(rng.integers(0, bh - h + 1))
    return x0, y0, x0 + w, y0 + h


def _jittered_aspect(rng: np.random.Generator, aspect: float, spread: float = 0.25) -> float:
    return aspect * math.exp(rng.uniform(-spread, spread))


def _reference_box(cell: Box, rng: np.random.Generator) -> Box:
    cw, ch = cell[2] - cell[0], cell[3] - cell[1]
    share = rng.uniform(*_REFERENCE_SHARE_OF_CELL)
    return _box_in(cell, rng, share * cw * ch, _jittered_aspect(rng, cw / ch))


def _wider_box(inner: Box, bounds: Box, rng: np.random.Generator) -> Box | None:
    """A box inside ``bounds`` containing ``inner``, adding at least 20% new content."""
    iw, ih = inner[2] - inner[0], inner[3] - inner[1]
    bw, bh = bounds[2] - bounds[0], bounds[3] - bounds[1]
    for _ in range(50):
        w = iw + round(rng.uniform(0.15, 1.0) * (bw - iw))
        h = ih + round(rng.uniform(0.15, 1.0) * (bh - ih))
        if iw * ih / (w * h) > 0.8:
            continue
        x0 = int(rng.integers(max(bounds[0], inner[2] - w), min(inner[0], bounds[2] - w) + 1))
        y0 = int(rng.integers(max(bounds[1], inner[3] - h), min(inner[1], bounds[3] - h) + 1))
        return x0, y0, x0 + w, y0 + h
    return None


def _overlapping_box(box: Box, bounds: Box, rng: np.random.Generator) -> Box | None:
    """A box inside ``bounds`` sharing 20–70% of ``box`` and made of at least 30% new content.

    Neither contains the other: the result is another window on the scene, not a crop of
    ``box`` (which would be a copy) nor a wider view of it.
    """
    area = _area(box)
    aspect = (box[2] - box[0]) / (box[3] - box[1])
    for _ in range(300):
        candidate = _box_in(bounds, rng, area * rng.uniform(0.6, 1.3), _jittered_aspect(rng, aspect))
        shared = _intersection(box, candidate)
        if 0.2 <= shared / area <= 0.7 and shared / _area(candidate) <= 0.7:
            return candidate
    return None


def _relative_box(box: Box, source: tuple[int, int], target: tuple[int, int], rng: np.random.Generator) -> Box:
    """The same relative window in another photo of the scene, shifted and scaled a little."""
    sx, sy = target[0] / source[0], target[1] / source[1]
    w = min(target[0], max(MIN_SIDE, round((box[2] - box[0]) * sx * rng.uniform(0.9, 1.1))))
    h = min(target[1], max(MIN_SIDE, round((box[3] - box[1]) * sy * rng.uniform(0.9, 1.1))))
    cx = (box[0] + box[2]) / 2 * sx + rng.uniform(-0.1, 0.1) * w
    cy = (box[1] + box[3]) / 2 * sy + rng.uniform(-0.1, 0.1) * h
    x0 = int(min(max(0, round(cx - w / 2)), target[0] - w))
    y0 = int(min(max(0, round(cy - h / 2)), target[1] - h))
    return x0, y0, x0 + w, y0 + h


def _random_window(size: tuple[int, int], side: float, rng: np.random.Generator) -> Box:
    """A window of about side x side (aspect jittered) anywhere in an image of ``size``."""
    scale = rng.uniform(0.7, 1.2)
    return _box_in((0, 0, *size), rng, (side * scale) ** 2, _jittered_aspect(rng, 4 / 3, 0.35))


# ---- detail: plain sky, flat walls and the empty rim of the retina make no usable reference -------

# Mean absolute grey-level step between neighbouring pixels at quarter scale (0-255 units):
# below this a window is a nearly flat area (measured on the pool: sky ~1, clouds ~5, brick ~13).
_MIN_DETAIL = 10.0
_DETAIL_SCALE = 4


class _DetailMaps:
    """Per-photo summed-area tables of gradient magnitude, for O(1) detail of any box."""

    def __init__(self, pool: PhotoPool):
        self.pool = pool
        self._tables: dict[str, np.ndarray] = {}

    def _table(self, photo: str) -> np.ndarray:
        table = self._tables.get(photo)
        if table is None:
            grey = self.pool.image(photo).convert("L").reduce(_DETAIL_SCALE)
            g = np.asarray(grey, dtype=np.float32)
            step = np.zeros_like(g)
            step[:, 1:] += np.abs(np.diff(g, axis=1))
            step[1:, :] += np.abs(np.diff(g, axis=0))
            table = np.zeros((g.shape[0] + 1, g.shape[1] + 1), dtype=np.float64)
            table[1:, 1:] = step.cumsum(0).cumsum(1)
            self._tables[photo] = table
        return table

    def detail(self, photo: str, box: Box) -> float:
        table = self._table(photo)
        x0, y0, x1, y1 = (v // _DETAIL_SCALE for v in box)
        x0, y0 = min(x0, table.shape[1] - 2), min(y0, table.shape[0] - 2)
        x1, y1 = min(max(x1, x0 + 1), table.shape[1] - 1), min(max(y1, y0 + 1), table.shape[0] - 1)
        total = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
        return float(total / max(1, (x1 - x0) * (y1 - y0)))

    def window(self, photo: str, draw: Callable[[], Box], tries: int = 20) -> Box:
        """The first drawn box with enough detail (the last one drawn if none has)."""
        for _ in range(tries):
            box = draw()
            if self.detail(photo, box) >= _MIN_DETAIL:
                return box
        return box


# ---- image helpers --------------------------------------------------------------------------------


def _fit(image: Image.Image) -> Image.Image:
    """Bring the long side into [MIN_IMAGE_SIDE, MAX_IMAGE_SIDE] (upscaling at most 2x)."""
    long_side = max(image.size)
    if long_side > MAX_IMAGE_SIDE:
        scale = MAX_IMAGE_SIDE / long_side
    elif long_side < MIN_IMAGE_SIDE:
        scale = min(2.0, MIN_IMAGE_SIDE / long_side)
    else:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale > 1:
        return image.resize(size, Image.Resampling.BICUBIC)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", **JPEG_SETTINGS)
    return buffer.getvalue()


def _signature(image: Image.Image) -> np.ndarray:
    """Colour statistic for look-alikes: 8x8x8 RGB histogram (sqrt, for the Bhattacharyya
    coefficient) and a zero-mean 4x4 colour layout, each of unit length."""
    pixels = np.asarray(image.convert("RGB").resize((48, 48), Image.Resampling.BOX), dtype=np.int64)
    bins = (pixels[..., 0] >> 5) * 64 + (pixels[..., 1] >> 5) * 8 + (pixels[..., 2] >> 5)
    hist = np.sqrt(np.bincount(bins.ravel(), minlength=512) / bins.size)
    layout = np.asarray(image.convert("RGB").resize((4, 4), Image.Resampling.BOX), dtype=np.float64).ravel()
    layout -= layout.mean()
    layout /= np.linalg.norm(layout) or 1.0
    return np.concatenate([hist, 0.5 * layout])


def _mild(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, list[str]]:
    if rng.random() >= _HARD_NEGATIVE_EDIT_PROBABILITY:
        return image, []
    edited = apply_chain(image, rng, n_edits=(1, 2), mild=True)
    return edited.image, edited.edits


def _edited_copy(image: Image.Image, rng: np.random.Generator, backgrounds: Sequence[Image.Image],
                 start_fraction: float = 1.0) -> EditedImage:
    """An edit chain keeping at least MIN_CONTENT_FRACTION of the original (redrawn otherwise).

    ``start_fraction`` is the content fraction ``image`` itself keeps (after a first crop).
    """
    for _ in range(20):
        edited = apply_chain(image, rng, backgrounds=backgrounds)
        if start_fraction * edited.content_fraction >= MIN_CONTENT_FRACTION:
            break
    return edited


def _split_counts(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total``; every kind gets one first when total allows."""
    counts = {k: 0 for k in shares}
    if total >= len(shares):
        counts = {k: 1 for k in shares}
    rest = total - sum(counts.values())
    raw = {k: rest * s / sum(shares.values()) for k, s in shares.items()}
    for k in shares:
        counts[k] += int(raw[k])
    leftover = total - sum(counts.values())
    for k in sorted(shares, key=lambda k: raw[k] - int(raw[k]), reverse=True)[:leftover]:
        counts[k] += 1
    return counts


# ---- planning -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    photo: str
    box: Box


@dataclass(frozen=True)
class _Reference:
    cell: _Cell
    box: Box


@dataclass(frozen=True)
class _Query:
    kind: str
    photo: str
    box: Box
    reference: int | None  # GT reference index (copies) or the reference a hard negative mimics
    index: int  # item index within its kind, for its generator


@dataclass(frozen=True)
class _Pair:
    kind: str
    a: tuple[str, Box]
    b: tuple[str, Box]
    wider: str  # "a", "b" or ""


class _Planner:
    """Decides every image of a build as (photo, box) windows, before any pixel is written."""

    def __init__(self, pool: PhotoPool, size: MiniNdecSize, seed: int, progress: bool = False):
        self.pool, self.size, self.seed = pool, size, seed
        self.details = _DetailMaps(pool)
        self.roles = self._assign_roles(progress)

    def _usable_area(self, photo: str) -> float:
        """Area of the photo's cells (at a middle cell size) that have enough detail."""
        cells = _grid(self.pool.size(photo), self._photo_cell_side(photo, 256))
        return float(sum(_area(box) for box in cells if self.details.detail(photo, box) >= _MIN_DETAIL))

    def _assign_roles(self, progress: bool) -> dict[str, str]:
        """Map photo groups to "reference", "query" or "train", balancing usable primary area.

        Groups are visited in a seeded random order and each goes to the role furthest below
        its target share, so the seed also changes which scenes are test and which are train.
        """
        groups = self.pool.groups()
        if len(groups) < 4:
            raise InputError(
                f"mini-NDEC needs at least 4 unrelated photos (one scene for references, one for queries, two "
                f"for training); the photo pool has {len(groups)}. Install the demo extra: pip install 'hf-asl[demo]'"
            )
        weight_reference, weight_train = self.size.references, 0.7 * self.size.train_images
        # Query scenes only need variety (their windows may overlap), so they get a small share.
        targets = {
            "reference": 0.88 * weight_reference / (weight_reference + weight_train),
            "train": 0.88 * weight_train / (weight_reference + weight_train),
            "query": 0.12,
        }
        names = sorted(groups)
        chosen = [names[i] for i in _rng(self.seed, "roles").permutation(len(names))[: self.size.max_groups]]
        # Measuring usable area decodes every primary photo: the slow part of planning.
        areas = {g: sum(self._usable_area(p.name) for p in groups[g] if p.primary)
                 for g in tqdm(chosen, desc="photo scenes", unit="scene", disable=not progress)}
        total = sum(areas.values()) or 1.0
        assigned = dict.fromkeys(targets, 0.0)
        roles: dict[str, str] = {}
        for group in chosen:
            role = max(targets, key=lambda r: (targets[r] - assigned[r] / total) / targets[r])
            roles[group] = role
            assigned[role] += areas[group]
        # Every role needs a scene, and training two (look-alike pairs join unrelated scenes):
        # the smallest scene of the most populated role moves over when one is short.
        for role, needed in (("reference", 1), ("query", 1), ("train", 2)):
            while sum(r == role for r in roles.values()) < needed:
                donor_role = max(targets, key=lambda r: sum(v == r for v in roles.values()))
                if sum(v == donor_role for v in roles.values()) <= 1:
                    break
                donor = min((g for g in roles if roles[g] == donor_role), key=lambda g: areas[g])
                roles[donor] = role
        return roles

    def photos(self, role: str, primary_only: bool) -> list[str]:
        return [p.name for p in self.pool.photos
                if self.roles.get(p.group) == role and (p.primary or not primary_only)]

    def partners(self, photo: str) -> list[str]:
        """Other photos of the scene of a primary photo (stereo partner, other frames)."""
        if not self.pool[photo].primary:
            return []
        group = self.pool[photo].group
        return [p.name for p in self.pool.photos if p.group == group and not p.primary]

    def photo_weights(self, photos: Sequence[str]) -> np.ndarray:
        """Chance of drawing each photo for a free window: grows with its size, but a scene
        shot many times (a walk, an aerial mosaic) counts about as much as one large photo."""
        members: dict[str, int] = {}
        for photo in photos:
            members[self.pool[photo].group] = members.get(self.pool[photo].group, 0) + 1
        weights = np.array([math.sqrt(math.prod(self.pool.size(p))) / members[self.pool[p].group] for p in photos])
        return weights / weights.sum()

    # cells

    def cells(self, photos: Sequence[str], side: int) -> list[_Cell]:
        """Grid cells with enough detail to be told apart, of about ``side`` px in a 1 MP photo.

        Cells grow gently with the photo (fourth root of its area), so a large photo gives
        more cells without all of them turning into close-ups of one texture.
        """
        return [_Cell(name, box) for name in photos
                for box in _grid(self.pool.size(name), self._photo_cell_side(name, side))
                if self.details.detail(name, box) >= _MIN_DETAIL]

    def _photo_cell_side(self, photo: str, side: int) -> int:
        return max(_MIN_CELL, round(side * (math.prod(self.pool.size(photo)) / 1e6) ** 0.25))

    def pick_cells(self, photos: Sequence[str], demand: int, what: str, stage: str, explicit: bool
                   ) -> tuple[list[_Cell], int]:
        """``demand`` cells of the largest side that has enough; fewer (with a warning) for a
        preset size on a small photo pool, an InputError for an explicit count.

        Cells are taken from the photos in turn (seeded order), so every photo contributes and
        the large ones do not fill the set with their many cells.
        """
        for side in range(_MAX_CELL, _MIN_CELL - 1, -_CELL_STEP):
            cells = self.cells(photos, side)
            if len(cells) >= demand:
                break
        else:
            message = (f"the photo pool gives only {len(cells)} {what} of at least {_MIN_CELL} px, {demand} were "
                       "asked for; ask for fewer or install more photos: pip install 'hf-asl[demo]'")
            if explicit or not cells:
                raise InputError(message)
            warnings.warn(f"{message}; building {len(cells)}", stacklevel=4)
            demand = len(cells)
        rng = _rng(self.seed, stage)
        by_photo: dict[str, list[_Cell]] = {}
        for cell in cells:
            by_photo.setdefault(cell.photo, []).append(cell)
        queues = [[group[i] for i in rng.permutation(len(group))] for group in by_photo.values()]
        queues = [queues[i] for i in rng.permutation(len(queues))]
        chosen: list[_Cell] = []
        while len(chosen) < demand:
            for queue in queues:
                if queue and len(chosen) < demand:
                    chosen.append(queue.pop())
        return chosen, side

    def window(self, photo: str, side: float, rng: np.random.Generator) -> Box:
        """A random window of about side x side in ``photo``, preferring ones with detail."""
        size = self.pool.size(photo)
        return self.details.window(photo, functools.partial(_random_window, size, side, rng))

    # test split

    def references(self, count: int, explicit: bool) -> tuple[list[_Reference], int]:
        cells, side = self.pick_cells(self.photos("reference", True), count, "reference cells",
                                      "reference-cells", explicit)
        order = _rng(self.seed, "reference-order").permutation(len(cells))
        references = []
        for n, i in enumerate(order):
            rng, cell = _rng(self.seed, "reference", n), cells[i]
            box = self.details.window(cell.photo, functools.partial(_reference_box, cell.box, rng))
            references.append(_Reference(cell, box))
        return references, side

    def queries(self, references: list[_Reference], counts: dict[str, int], cell_side: int) -> list[_Query]:
        n_ref = len(references)
        queries: list[_Query] = []

        copy_targets = _rng(self.seed, "copy-targets").permutation(n_ref)
        for i in range(counts["copy"]):
            r = int(copy_targets[i % n_ref])
            queries.append(_Query("copy", references[r].cell.photo, references[r].box, r, i))

        hard_targets = _rng(self.seed, "hard-negative-targets").permutation(n_ref).tolist()
        for i in range(counts["hn_wider_view"]):
            rng = _rng(self.seed, "hn_wider_view", i)
            for attempt in range(n_ref):
                ref = references[hard_targets[(i + attempt) % n_ref]]
                box = _wider_box(ref.box, ref.cell.box, rng)
                if box is not None:
                    queries.append(_Query("hn_wider_view", ref.cell.photo, box, hard_targets[(i + attempt) % n_ref], i))
                    break

        # Other views: the stereo partner or another frame where the scene has one (the
        # references with a partner go first so those natural pairs are used), else a shifted
        # window of the reference's own cell.
        with_partner = [r for r in hard_targets if self.partners(references[r].cell.photo)]
        other_targets = with_partner[: counts["hn_other_view"] // 2]
        other_targets += [r for r in hard_targets if r not in set(other_targets)]
        for i in range(counts["hn_other_view"]):
            rng = _rng(self.seed, "hn_other_view", i)
            for attempt in range(n_ref):
                r = other_targets[(i + attempt) % n_ref]
                ref = references[r]
                partners = self.partners(ref.cell.photo)
                if partners and rng.random() < 0.75:
                    partner = partners[int(rng.integers(len(partners)))]
                    box = _relative_box(ref.box, self.pool.size(ref.cell.photo), self.pool.size(partner), rng)
                    queries.append(_Query("hn_other_view", partner, box, r, i))
                    break
                box = _overlapping_box(ref.box, ref.cell.box, rng)
                if box is not None:
                    queries.append(_Query("hn_other_view", ref.cell.photo, box, r, i))
                    break

        photos = self.photos("query", primary_only=False)
        weights = self.photo_weights(photos)

        def windows(stage: str, n: int) -> list[tuple[str, Box]]:
            drawn = []
            for i in range(n):
                rng = _rng(self.seed, stage, i)
                photo = photos[int(rng.choice(len(photos), p=weights))]
                drawn.append((photo, self.window(photo, cell_side * 0.8, rng)))
            return drawn

        candidates = windows("look-alike-candidates", 3 * counts["hn_look_alike"])
        queries += self.look_alikes(references, candidates, counts["hn_look_alike"])
        queries += [_Query("distractor", photo, box, None, i)
                    for i, (photo, box) in enumerate(windows("distractor", counts["distractor"]))]
        return queries

    def look_alikes(self, references: list[_Reference], candidates: list[tuple[str, Box]], count: int
                    ) -> list[_Query]:
        """Pair candidate windows (from query scenes) with the references they resemble most.

        Greedy on the similarity matrix: the most similar (candidate, reference) pair first, each
        candidate once and each reference once while enough remain.
        """
        if count == 0:
            return []
        ref_signatures = np.stack([_signature(self.crop(r.cell.photo, r.box)) for r in references])
        signatures = np.stack([_signature(self.crop(photo, box)) for photo, box in candidates])
        pairs = _greedy_pairs(signatures @ ref_signatures.T, count, distinct_columns=True)
        return [_Query("hn_look_alike", *candidates[c], r, i) for i, (c, r) in enumerate(pairs)]

    # train split

    def train_tiles(self, count: int) -> tuple[list[_Cell], int]:
        return self.pick_cells(self.photos("train", True), count, "training tiles", "train-cells", explicit=False)

    def pairs(self, count: int, side: int) -> list[_Pair]:
        """Hard-negative training pairs from the training scenes, the three kinds in equal parts."""
        counts = _split_counts(count, dict.fromkeys(HARD_NEGATIVE_KINDS, 1.0))
        photos = self.photos("train", primary_only=False)
        weights = self.photo_weights(photos)

        def draw(rng: np.random.Generator, scale: float = 1.0) -> tuple[str, Box]:
            photo = photos[int(rng.choice(len(photos), p=weights))]
            return photo, self.window(photo, side * scale, rng)

        pairs: list[_Pair] = []
        for i in range(counts["hn_wider_view"]):
            rng = _rng(self.seed, "pair-wider", i)
            photo, outer = draw(rng, rng.uniform(1.0, 1.5))
            aspect = (outer[2] - outer[0]) / (outer[3] - outer[1])
            inner = _box_in(outer, rng, _area(outer) * rng.uniform(0.3, 0.75), _jittered_aspect(rng, aspect))
            first, second, wider = ((inner, outer, "b") if rng.random() < 0.5 else (outer, inner, "a"))
            pairs.append(_Pair("hn_wider_view", (photo, first), (photo, second), wider))

        for i in range(counts["hn_other_view"]):
            rng = _rng(self.seed, "pair-other", i)
            for _ in range(20):
                photo, first = draw(rng)
                partners = self.partners(photo)
                if partners and rng.random() < 0.75:
                    partner = partners[int(rng.integers(len(partners)))]
                    box = _relative_box(first, self.pool.size(photo), self.pool.size(partner), rng)
                    pairs.append(_Pair("hn_other_view", (photo, first), (partner, box), ""))
                    break
                box = _overlapping_box(first, (0, 0, *self.pool.size(photo)), rng)
                if box is not None:
                    pairs.append(_Pair("hn_other_view", (photo, first), (photo, box), ""))
                    break

        n_look = counts["hn_look_alike"]
        if n_look:
            candidates = [draw(_rng(self.seed, "pair-look-alike-candidates", i)) for i in range(4 * n_look)]
            signatures = np.stack([_signature(self.crop(p, b)) for p, b in candidates])
            similarity = signatures @ signatures.T
            groups = np.array([self.pool[p].group for p, _ in candidates])
            # Only pairs of different scenes, each unordered pair once.
            similarity[groups[:, None] == groups[None, :]] = -np.inf
            similarity[np.tril_indices(len(candidates))] = -np.inf
            for x, y in _greedy_pairs(similarity, n_look, distinct_columns=True, shared_items=True):
                pairs.append(_Pair("hn_look_alike", candidates[x], candidates[y], ""))
        return pairs

    def crop(self, photo: str, box: Box) -> Image.Image:
        return self.pool.image(photo).crop(box)


def _greedy_pairs(similarity: np.ndarray, count: int, *, distinct_columns: bool, shared_items: bool = False
                  ) -> list[tuple[int, int]]:
    """Up to ``count`` (row, column) pairs, most similar first, each row used once.

    Columns are used once too while possible (``distinct_columns``), then reused. With
    ``shared_items`` rows and columns index the same items, none of which is used twice.
    """
    order = np.argsort(-similarity, axis=None, kind="stable")
    used_rows: set[int] = set()
    used_columns: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for reuse in ((False, True) if distinct_columns else (True,)):
        for flat in order:
            row, column = divmod(int(flat), similarity.shape[1])
            if len(chosen) == count or not np.isfinite(similarity[row, column]):
                break
            if row in used_rows or (column in used_columns and not reuse):
                continue
            if shared_items and (column in used_rows or row in used_columns):
                continue
            used_rows.add(row)
            used_columns.add(column)
            chosen.append((row, column))
    return chosen


# ---- writing --------------------------------------------------------------------------------------


def _tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A tar of ``members`` (name, data), sorted, with fixed metadata so it is reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _part_suffixes(n: int) -> list[str]:
    """aa, ab, ... as `split` names its parts."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [letters[i // 26] + letters[i % 26] for i in range(n)]


def _write_split(path: Path, data: bytes, parts: int) -> list[str]:
    size = max(1, math.ceil(len(data) / parts))
    names = []
    for i, suffix in enumerate(_part_suffixes(parts)):
        part = path.with_name(f"{path.name}.{suffix}")
        part.write_bytes(data[i * size : (i + 1) * size])
        names.append(part.name)
    return names


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


class _Writer:
    """Writes JPEGs under the output folder, keeping the bytes for the tars and a progress bar."""

    def __init__(self, root: Path, bar: tqdm):
        self.root = root
        self.bar = bar
        self.members: dict[str, list[tuple[str, bytes]]] = {}

    def write(self, relative: str, image: Image.Image, tar: str | None = None) -> None:
        data = _jpeg(_fit(image))
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if tar is not None:
            self.members.setdefault(tar, []).append((relative, data))
        self.bar.update(1)


class _LazyPhotos(Sequence[Image.Image]):
    """Photos decoded only when an edit actually draws one (the second photo of paste edits)."""

    def __init__(self, pool: PhotoPool, names: Sequence[str]):
        self.pool, self.names = pool, list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):  # type: ignore[override]
        return self.pool.image(self.names[index])


def _round(x: float) -> float:
    return round(float(x), 6)


def build_mini_ndec(
    out_dir: str | Path,
    *,
    size: str = "default",
    seed: int = 0,
    references: int | None = None,
    queries: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Build a mini-NDEC benchmark in ``out_dir`` (NDEC's layout) and return its manifest.

    ``size`` picks a preset of ``SIZES``; ``references`` and ``queries`` override its counts.
    The folder must be new or empty, or hold a previous mini-NDEC build and ``overwrite`` be
    set. The build is written to a temporary sibling folder and moved into place at the end,
    so a failed build leaves nothing half-written and an existing one untouched.
    """
    if size not in SIZES:
        raise InputError(f"unknown mini-NDEC size {size!r}; choose one of {', '.join(SIZES)}")
    for name, value in (("references", references), ("queries", queries)):
        if value is not None and value < 1:
            raise InputError(f"--{name} must be at least 1, got {value}")
    preset = SIZES[size]
    plan_size = replace(preset, references=references or preset.references, queries=queries or preset.queries)
    out = Path(out_dir)
    occupied = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if occupied and not (overwrite and (out / "manifest.json").is_file()):
        raise InputError("output folder exists and is not empty (overwrite replaces only a previous "
                             "mini-NDEC build)", path=out)

    planner = _Planner(load_photo_pool(), plan_size, seed, progress)
    refs, ref_side = planner.references(plan_size.references, explicit=references is not None)
    query_plan = planner.queries(refs, _split_counts(plan_size.queries, QUERY_SHARES), ref_side)
    query_plan = [query_plan[i] for i in _rng(seed, "query-order").permutation(len(query_plan))]
    tiles, train_side = planner.train_tiles(plan_size.train_images)
    pairs = planner.pairs(plan_size.negative_pairs, train_side)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    total = len(refs) + len(query_plan) + len(tiles) * (1 + plan_size.views_per_image) + 2 * len(pairs)
    try:
        with tqdm(total=total, desc="mini-NDEC", unit="img", disable=not progress) as bar:
            writer = _Writer(staging, bar)
            ref_ids, ref_images = _write_references(writer, planner, refs)
            query_records = _write_queries(writer, planner, query_plan, ref_ids, ref_images)
            train_records, n_views = _write_train(writer, planner, tiles, plan_size.views_per_image)
            pair_records = _write_pairs(writer, planner, pairs)
        (staging / "query_images_h5.tar").write_bytes(_tar_bytes(writer.members.get("query_images_h5", [])))
        parts = _write_split(staging / "negative_pair.tar", _tar_bytes(writer.members.get("negative_pair", [])),
                             NEGATIVE_PAIR_PARTS)
        manifest = {
            "name": "mini-NDEC",
            "generator": {"package": "hf-asl", "version": __version__, "format_version": FORMAT_VERSION},
            "seed": seed,
            "size": size,
            "sizes": {
                "references": len(refs),
                "queries": len(query_plan),
                "queries_by_kind": {k: sum(q.kind == k for q in query_plan) for k in KINDS},
                "train_images": len(tiles),
                "train_views": n_views,
                "negative_pairs": len(pairs),
                "negative_pairs_by_kind": {k: sum(p.kind == k for p in pairs) for k in HARD_NEGATIVE_KINDS},
            },
            "files": {"query_tar": "query_images_h5.tar", "negative_pair_tar_parts": parts},
            "image": {"min_side": MIN_IMAGE_SIDE, "max_side": MAX_IMAGE_SIDE, "jpeg": JPEG_SETTINGS,
                      "cell_side": {"reference": ref_side, "train": train_side},
                      "photo_max_side": planner.pool.max_side},
            "photo_sources": planner.pool.sources([p.name for p in planner.pool.photos if p.group in planner.roles]),
            # Emoji drawn onto copies are Twemoji (CC-BY-4.0): their attribution travels with the build.
            "overlay_assets": {
                "emoji": "Twemoji by Twitter, CC-BY-4.0 (files of the augly wheel)" if emoji_files() else
                "drawn shapes (augly wheel not installed)",
                "fonts": "fonts bundled in the augly wheel (open font licences)" if font_files() else
                "Pillow's default font",
            },
            "photos": [{"name": p.name, "package": p.package, "licence": p.licence, "group": p.group,
                        "role": planner.roles[p.group]} for p in planner.pool.photos if p.group in planner.roles],
            # Where every image comes from: lets tests and users check that no hard negative is
            # a copy, and that train and test never share a scene.
            "provenance": {"references": [{"id": rid, "photo": r.cell.photo, "box": list(r.box),
                                           "cell": list(r.cell.box)} for rid, r in zip(ref_ids, refs)],
                           "queries": query_records, "train": train_records, "negative_pairs": pair_records},
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        (staging / "manifest.json").write_text(text, encoding="utf-8")
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists():  # empty, or a previous build being overwritten: swap, then drop the old one
        old = staging.with_name(staging.name.replace(".building-", ".old-"))
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def _write_references(writer: _Writer, planner: _Planner, refs: list[_Reference]
                      ) -> tuple[list[str], list[Image.Image]]:
    ref_ids = [f"R{i:06d}" for i in range(len(refs))]
    images = [planner.crop(ref.cell.photo, ref.box) for ref in refs]
    for rid, image in zip(ref_ids, images):
        writer.write(f"references/{rid}.jpg", image)
    return ref_ids, images


def _write_queries(writer: _Writer, planner: _Planner, plan: list[_Query], ref_ids: list[str],
                   ref_images: list[Image.Image]) -> list[dict]:
    """Queries with public_ground_truth_h5.csv and kinds.csv; returns their provenance."""
    backgrounds = _LazyPhotos(planner.pool, planner.photos("query", primary_only=False))
    gt_rows, kind_rows, records = [], [], []
    for n, q in enumerate(plan):
        qid = f"Q{n:05d}"
        rng = _rng(planner.seed, f"render-{q.kind}", q.index)
        record: dict[str, object] = {"id": qid, "kind": q.kind, "photo": q.photo, "box": list(q.box)}
        if q.kind == "copy":
            assert q.reference is not None
            edited = _edited_copy(ref_images[q.reference], rng, backgrounds)
            image, record["edits"] = edited.image, edited.edits
            record["content_fraction"] = _round(edited.content_fraction)
        elif q.kind == "distractor":
            # Edited like the copies, so edits alone do not tell a copy from a distractor.
            edited = _edited_copy(planner.crop(q.photo, q.box), rng, backgrounds)
            image, record["edits"] = edited.image, edited.edits
        else:
            image, record["edits"] = _mild(planner.crop(q.photo, q.box), rng)
        if q.reference is not None:
            record["reference"] = ref_ids[q.reference]
        writer.write(f"query_images_h5/{qid}.jpg", image, tar="query_images_h5")
        gt_rows.append((qid, ref_ids[q.reference] if q.kind == "copy" and q.reference is not None else ""))
        kind_rows.append((qid, q.kind))
        records.append(record)
    _write_csv(writer.root / "public_ground_truth_h5.csv", ("query_id", "reference_id"), gt_rows)
    _write_csv(writer.root / "kinds.csv", ("query_id", "kind"), kind_rows)
    return records


def _write_train(writer: _Writer, planner: _Planner, tiles: list[_Cell], views: int) -> tuple[list[dict], int]:
    """Training originals and their edited views with train_views.csv; returns provenance."""
    backgrounds = _LazyPhotos(planner.pool, planner.photos("train", primary_only=False))
    rows, records = [], []
    for t, tile in enumerate(tiles):
        tid = f"T{t:06d}"
        original = planner.crop(tile.photo, tile.box)
        writer.write(f"train/{tid}.jpg", original)
        records.append({"id": tid, "photo": tile.photo, "box": list(tile.box)})
        for v in range(views):
            rng = _rng(planner.seed, "train-view", t * 1000 + v)
            image, fraction = original, 1.0
            if rng.random() < 0.5:  # half the views start with a crop, so content fractions spread out
                image, _, fraction = random_crop(original, rng, area_range=(0.2, 0.9))
            edited = _edited_copy(image, rng, backgrounds, fraction)
            writer.write(f"train_views/{tid}_{v:02d}.jpg", edited.image)
            rows.append((f"{tid}_{v:02d}", tid, f"{fraction * edited.content_fraction:.6f}"))
    _write_csv(writer.root / "train_views.csv", ("image_id", "train_id", "content_fraction"), rows)
    return records, len(rows)


def _write_pairs(writer: _Writer, planner: _Planner, pairs: list[_Pair]) -> list[dict]:
    """negative_pair/<pair>/{a,b}.jpg with negative_pairs.csv; returns provenance."""
    rows, records = [], []
    for p, pair in enumerate(pairs):
        pid = f"P{p:06d}"
        rng = _rng(planner.seed, "render-pair", p)
        for name, (photo, box) in (("a", pair.a), ("b", pair.b)):
            image, _ = _mild(planner.crop(photo, box), rng)
            writer.write(f"negative_pair/{pid}/{name}.jpg", image, tar="negative_pair")
        rows.append((pid, pair.kind, "a.jpg", "b.jpg", f"{pair.wider}.jpg" if pair.wider else ""))
        records.append({"id": pid, "kind": pair.kind, "a": {"photo": pair.a[0], "box": list(pair.a[1])},
                        "b": {"photo": pair.b[0], "box": list(pair.b[1])}})
    _write_csv(writer.root / "negative_pairs.csv", ("pair_id", "kind", "image_a", "image_b", "wider"), rows)
    return records
