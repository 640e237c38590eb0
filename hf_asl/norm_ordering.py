"""How well descriptor norms order content: the share of (wider, narrower) pairs with norm(wider) > norm(narrower).

ASL wants the norm to grow with the content an image holds. The check runs on pairs the model
never trained on: views of held-out training identities (the wide view against its crops, and
crops against smaller crops) and held-out wider-view hard-negative pairs. ImageNet features
order such pairs right only about 2 times in 3, so the share before and after training shows
whether the norm learned content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .pk_sampler import NegativePair, make_views


@dataclass(frozen=True)
class OrderedViewPairs:
    """Images and index pairs ``(wider, narrower)`` into them, with where each pair comes from."""

    images: list[Image.Image]
    pairs: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.pairs)


def held_out_view_pairs(
    originals: Sequence[Image.Image],
    negative_pairs: Sequence[NegativePair] = (),
    *,
    views: int = 4,
    tolerance: float = 0.05,
    seed: int = 0,
) -> OrderedViewPairs:
    """Ordered pairs from held-out images: every pair of views of one original whose content
    fractions differ by more than ``tolerance`` (source ``"views"``), plus each wider-view
    negative pair (source ``"wider_view"``). The same ``seed`` gives the same pairs."""
    rng = np.random.default_rng([seed, 2])
    images: list[Image.Image] = []
    pairs: list[tuple[int, int]] = []
    sources: list[str] = []
    for original in originals:
        made = make_views(original, views, rng)
        start = len(images)
        images += [view for view, _ in made]
        for i, (_, content_i) in enumerate(made):
            for j, (_, content_j) in enumerate(made):
                if content_i > content_j + tolerance:
                    pairs.append((start + i, start + j))
                    sources.append("views")
    for pair in negative_pairs:
        if pair.wider is None:
            continue
        start = len(images)
        images += [pair.image_a, pair.image_b]
        pairs.append((start + pair.wider, start + 1 - pair.wider))
        sources.append("wider_view")
    return OrderedViewPairs(images, np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(sources, dtype=str))


@torch.no_grad()
def compute_norms(model, processor, images: Sequence[Image.Image], *, batch_size: int = 64) -> np.ndarray:
    """Descriptor norms of ``images`` (float32), with the model switched to eval mode meanwhile."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    norms = []
    try:
        for start in range(0, len(images), batch_size):
            pixels = processor(list(images[start : start + batch_size]), return_tensors="pt")["pixel_values"]
            norms.append(model(pixels.to(device)).norm.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms).numpy() if norms else np.zeros(0, dtype=np.float32)


def ordering_fractions(norms: np.ndarray, pairs: OrderedViewPairs) -> dict[str, float | int]:
    """Share of pairs with ``norm[wider] > norm[narrower]``: overall and per source, plus counts."""
    correct = norms[pairs.pairs[:, 0]] > norms[pairs.pairs[:, 1]]
    result: dict[str, float | int] = {"all": float(correct.mean()) if len(correct) else float("nan"), "n_pairs": len(pairs)}
    for source in sorted(set(pairs.sources.tolist())):
        chosen = pairs.sources == source
        result[source] = float(correct[chosen].mean())
        result[f"n_{source}"] = int(chosen.sum())
    return result


def norm_ordering(model, processor, pairs: OrderedViewPairs, *, batch_size: int = 64) -> dict[str, float | int]:
    """:func:`ordering_fractions` of ``model``'s norms on ``pairs``."""
    return ordering_fractions(compute_norms(model, processor, pairs.images, batch_size=batch_size), pairs)


__all__ = ["OrderedViewPairs", "compute_norms", "held_out_view_pairs", "norm_ordering", "ordering_fractions"]
