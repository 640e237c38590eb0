"""PK batches for ASL training: P identities x K online views each, views carrying content fractions.

The sampler is a pure function of ``(seed, step, process)``: the identity order comes from a
seeded permutation per epoch and each step's view randomness from a generator seeded with
``(seed, step, process)``. Its whole state is therefore a few integers, the same on every
process, which is what lets ``accelerator.save_state`` (it writes registered objects from the
main process only) checkpoint it, and a resumed run replay exactly the same data stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .edits import EDITS, apply_chain, random_crop
from .errors import InputError

# Views 1..K-1 are crops whose area shares are spread over this range, one stratum per crop,
# so the views of one identity differ in content and the norm-ratio loss has ordered pairs.
CROP_AREA_RANGE = (0.15, 0.9)
# Edits applied after the stratified crop: everything but further crops, so the crop's stratum
# stays meaningful (covers such as text or emoji still lower the tracked content fraction).
CROP_VIEW_EDITS: tuple[str, ...] = tuple(name for name, edit in EDITS.items() if edit.effect != "crop")


@dataclass(frozen=True)
class NegativePair:
    """A hard-negative training pair: two images that are not copies of each other.

    ``wider`` is 0 when ``image_a`` is the wider view of the same scene, 1 for ``image_b``,
    None when neither holds the other.
    """

    image_a: Image.Image
    image_b: Image.Image
    kind: str
    wider: int | None


@dataclass
class PKBatch:
    """One process's batch, as PIL views plus what the losses need.

    Rows are P x K identity views followed by ``negative_views`` rows per image of each
    hard-negative pair (a's, then b's). Each image of a negative pair is a class of its own, so
    its views are positives of each other and negatives of everything else, its partner first
    of all. ``ordered_pairs`` holds row indices ``(wider, narrower)`` from wider-view pairs.
    """

    images: list[Image.Image]
    labels: torch.Tensor
    content: torch.Tensor
    ordered_pairs: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)


def wide_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A view keeping all content: zero to two mild edits (colour, JPEG, blur, resize, flip)."""
    return apply_chain(image, rng, n_edits=(0, 2), mild=True).image


def make_views(
    image: Image.Image, k: int, rng: np.random.Generator, backgrounds: Sequence[Image.Image] = ()
) -> list[tuple[Image.Image, float]]:
    """``k`` views of one image with their content fractions.

    View 0 is the wide view (content 1.0); views 1..k-1 are crops whose area shares come from
    successive strata of ``CROP_AREA_RANGE`` followed by one to three non-crop edits (pasting
    onto one of ``backgrounds`` among them, as benchmark copies are made).
    """
    views = [(wide_view(image, rng), 1.0)]
    edges = np.linspace(*CROP_AREA_RANGE, k)
    for low, high in itertools.pairwise(edges):
        crop, _, fraction = random_crop(image, rng, area_range=(float(low), float(high)))
        edited = apply_chain(crop, rng, n_edits=(1, 3), names=CROP_VIEW_EDITS, backgrounds=backgrounds)
        views.append((edited.image, fraction * edited.content_fraction))
    return views


class PKSampler:
    """Seeded, checkpointable stream of PK batches, sharded by process.

    Each step the processes together take the next ``P x num_processes`` identities of the
    epoch's permutation, process ``r`` the ``r``-th block of ``P``, so no identity appears twice
    in one global batch. An epoch ends when fewer than that many are left (like ``drop_last``).
    ``negatives_per_batch`` hard-negative pairs, drawn at random, join every batch.
    """

    def __init__(
        self,
        originals: Sequence[Image.Image],
        p: int,
        k: int,
        *,
        negative_pairs: Sequence[NegativePair] = (),
        negatives_per_batch: int = 0,
        negative_views: int = 2,
        seed: int = 0,
        num_processes: int = 1,
        process_index: int = 0,
    ):
        if p < 1 or k < 2:
            raise InputError(f"a PK batch needs P >= 1 and K >= 2 (views to compare), got P={p}, K={k}")
        if len(originals) < p * num_processes:
            raise InputError(
                f"{len(originals)} training identities cannot fill P={p} x {num_processes} process(es) per step;"
                " lower P or add training images"
            )
        if negatives_per_batch < 0 or negative_views < 1:
            raise InputError("negatives_per_batch must be >= 0 and negative_views >= 1")
        self.originals = originals
        self.negative_pairs = list(negative_pairs)
        self.p, self.k = p, k
        self.negatives_per_batch = min(negatives_per_batch, len(self.negative_pairs))
        self.negative_views = negative_views
        self.seed = seed
        self.num_processes, self.process_index = num_processes, process_index
        self.step = 0

    @property
    def num_identities(self) -> int:
        return len(self.originals)

    @property
    def num_classes(self) -> int:
        """Classes a classification loss needs: the identities plus one per negative-pair image."""
        return self.num_identities + 2 * len(self.negative_pairs)

    @property
    def rows_per_batch(self) -> int:
        """Images in one batch of this process: P x K views plus the negative pairs' views."""
        return self.p * self.k + 2 * self.negatives_per_batch * self.negative_views

    @property
    def steps_per_epoch(self) -> int:
        return self.num_identities // (self.p * self.num_processes)

    def identities(self, step: int) -> np.ndarray:
        """Identity indices this process takes at ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_identities)
        start = (within * self.num_processes + self.process_index) * self.p
        return order[start : start + self.p]

    def step_rng(self, step: int) -> np.random.Generator:
        """Generator for every random choice of one step on this process (edits, pair picks)."""
        return np.random.default_rng([self.seed, step, self.process_index, 1])

    def batch(self, step: int) -> PKBatch:
        """The batch of ``step``; pure, so the same step always gives the same batch."""
        rng = self.step_rng(step)
        images: list[Image.Image] = []
        labels: list[int] = []
        content: list[float] = []
        for identity in self.identities(step):
            # The other training originals double as the photos copies get pasted onto.
            for view, fraction in make_views(self.originals[identity], self.k, rng, self.originals):
                images.append(view)
                content.append(fraction)
                labels.append(int(identity))
        ordered: list[tuple[int, int]] = []
        if self.negatives_per_batch:
            picks = rng.choice(len(self.negative_pairs), size=self.negatives_per_batch, replace=False)
            for pair_index in picks:
                pair = self.negative_pairs[int(pair_index)]
                rows = []
                for side, image in enumerate((pair.image_a, pair.image_b)):
                    rows.append(range(len(images), len(images) + self.negative_views))
                    for _ in range(self.negative_views):
                        images.append(wide_view(image, rng))
                        content.append(1.0)
                        labels.append(self.num_identities + 2 * int(pair_index) + side)
                if pair.wider is not None:
                    ordered += [(w, n) for w in rows[pair.wider] for n in rows[1 - pair.wider]]
        return PKBatch(
            images=images,
            labels=torch.tensor(labels, dtype=torch.long),
            content=torch.tensor(content, dtype=torch.float32),
            ordered_pairs=torch.tensor(ordered, dtype=torch.long).reshape(-1, 2),
        )

    def __iter__(self) -> PKSampler:
        return self

    def __next__(self) -> PKBatch:
        batch = self.batch(self.step)
        self.step += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        """Position in the stream plus what fixes the stream; the same on every process."""
        return {
            "step": self.step,
            "seed": self.seed,
            "num_identities": self.num_identities,
            "identities_per_step": self.p * self.num_processes,
            "k": self.k,
            "negatives_per_batch": self.negatives_per_batch,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        mine = self.state_dict()
        for key, value in mine.items():
            if key != "step" and state.get(key) != value:
                raise InputError(
                    f"cannot resume: the checkpoint's sampler has {key}={state.get(key)}, this run {value};"
                    " resume with the same data, seed, P, K and number of processes"
                )
        self.step = int(state["step"])


__all__ = ["CROP_AREA_RANGE", "CROP_VIEW_EDITS", "NegativePair", "PKBatch", "PKSampler", "make_views", "wide_view"]
