"""ASL training losses: metric losses on descriptor directions and the norm-ratio loss on norms.

Batches are PK batches: ``labels[i]`` is the training identity of row ``i`` (P identities x K
views, any P and K), ``content[i]`` the fraction of the original image's area visible in the
view (1.0 for the full image). Hard-negative pairs enter as negatives of the metric losses
(``InfoNCELoss(negatives=...)``, or as extra classes of ``CosFaceLoss``) and, for wider-view
pairs, as extra (wider, narrower) orderings of the norm-ratio loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class CosFaceLoss(nn.Module):
    """Instance classification with a cosine margin (CosFace / large-margin cosine loss).

    Each training identity is its own class with a learned unit-norm centre; the target logit is
    ``s * (cos - m)``, the others ``s * cos``, then cross-entropy. Only directions matter: the
    descriptors are normalised here, so un-normalised embeddings may be passed too.
    """

    uses_negatives = False

    def __init__(self, n_classes: int, dim: int, scale: float = 30.0, margin: float = 0.35,
                 label_smoothing: float = 0.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"CosFaceLoss needs at least 2 classes, got {n_classes}")
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale
        self.margin = margin
        self.label_smoothing = label_smoothing

    def logits(self, descriptors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled cosine logits with the margin taken off each row's target class."""
        cosine = F.normalize(descriptors, dim=-1) @ F.normalize(self.weight, dim=-1).T
        margin = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype) * self.margin
        return self.scale * (cosine - margin)

    def forward(self, descriptors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(descriptors, labels), labels, label_smoothing=self.label_smoothing)


class InfoNCELoss(nn.Module):
    """Multi-positive InfoNCE over a PK batch (supervised-contrastive form).

    For anchor ``i`` the positives are the other rows with its label, the candidates all other
    rows plus ``negatives``: ``-mean_p log(exp(s_ip / t) / sum_a exp(s_ia / t))``, averaged over
    anchors that have a positive. ``negatives`` are descriptors that must match no anchor, e.g.
    the images of hard-negative pairs (to push a specific image ``a`` from ``b``, give ``a``'s
    views a label in the batch and pass ``b`` as a negative).
    """

    uses_negatives = True

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, descriptors: torch.Tensor, labels: torch.Tensor,
                negatives: torch.Tensor | None = None) -> torch.Tensor:
        anchors = F.normalize(descriptors, dim=-1)
        candidates = anchors if negatives is None else torch.cat([anchors, F.normalize(negatives, dim=-1)])
        logits = anchors @ candidates.T / self.temperature
        n = anchors.shape[0]
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[:, :n] = torch.eye(n, dtype=torch.bool, device=logits.device)
        log_prob = logits.masked_fill(self_mask, float("-inf")).log_softmax(dim=1)
        positive = torch.zeros_like(self_mask)
        positive[:, :n] = (labels[:, None] == labels[None, :]) & ~self_mask[:, :n]
        n_positive = positive.sum(dim=1)
        has_positive = n_positive > 0
        if not has_positive.any():
            return descriptors.sum() * 0.0
        # where() rather than multiply: log_prob is -inf on the diagonal and -inf * 0 is nan.
        per_anchor = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
        return -(per_anchor[has_positive] / n_positive[has_positive]).mean()


class NormRatioLoss(nn.Module):
    """The ASL norm-ratio loss: a view holding more content must have the larger descriptor norm.

    Over every ordered pair ``(a, b)`` of views of one identity with
    ``content[a] > content[b] + tolerance``, plus the given ``ordered_pairs`` (row indices
    ``(wider, narrower)``, e.g. of wider-view hard-negative pairs), the loss is the mean of
    ``exp(1 - |f(a)| / |f(b)|)``: 1 for equal norms, towards ``e`` when the wider view's norm is
    the smaller, towards 0 as it grows past the narrower one's. Averaged over all valid pairs of
    the batch. With no valid pair it is 0 with a (zero) gradient, so it can always be added.
    """

    def __init__(self, tolerance: float = 0.05):
        super().__init__()
        self.tolerance = tolerance

    def pair_mask(self, labels: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Boolean (n, n) mask of the ordered same-identity pairs (wider row, narrower column)."""
        same = labels[:, None] == labels[None, :]
        return same & (content[:, None] > content[None, :] + self.tolerance)

    def forward(self, norms: torch.Tensor, labels: torch.Tensor, content: torch.Tensor,
                ordered_pairs: torch.Tensor | None = None) -> torch.Tensor:
        ratio = norms[:, None] / norms[None, :]
        terms = torch.exp(1.0 - ratio[self.pair_mask(labels, content)])
        if ordered_pairs is not None and len(ordered_pairs):
            wider, narrower = ordered_pairs[:, 0], ordered_pairs[:, 1]
            terms = torch.cat([terms, torch.exp(1.0 - norms[wider] / norms[narrower])])
        if terms.numel() == 0:
            return norms.sum() * 0.0
        return terms.mean()


class ASLLoss(nn.Module):
    """Total ASL loss: the sum of the metric losses + ``norm_ratio_weight`` x norm-ratio loss.

    ``metric_losses`` maps names to losses taking ``(descriptors, labels)`` (and ``negatives=``
    when the loss has ``uses_negatives``). ``forward`` returns a dict with ``"loss"`` (to
    back-propagate) and each component, detached, for logging.
    """

    def __init__(self, metric_losses: Mapping[str, nn.Module], norm_ratio: NormRatioLoss,
                 norm_ratio_weight: float = 1.0):
        super().__init__()
        if not metric_losses:
            raise ValueError("ASLLoss needs at least one metric loss")
        self.metric_losses = nn.ModuleDict(dict(metric_losses))
        self.norm_ratio = norm_ratio
        self.norm_ratio_weight = norm_ratio_weight

    def forward(self, descriptors: torch.Tensor, norms: torch.Tensor, labels: torch.Tensor, content: torch.Tensor,
                negatives: torch.Tensor | None = None,
                ordered_pairs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        parts = {}
        for name, loss in self.metric_losses.items():
            extra = {"negatives": negatives} if getattr(loss, "uses_negatives", False) else {}
            parts[name] = loss(descriptors, labels, **extra)
        parts["norm_ratio"] = self.norm_ratio(norms, labels, content, ordered_pairs)
        total = sum(parts[name] for name in self.metric_losses) + self.norm_ratio_weight * parts["norm_ratio"]
        return {"loss": total, **{name: value.detach() for name, value in parts.items()}}


def build_asl_loss(config, n_classes: int | None = None) -> ASLLoss:
    """The ASL loss an [`ASLConfig`] describes. ``n_classes`` (training identities, plus any
    hard-negative images given classes of their own) is needed when ``"cosface"`` is used."""
    metric: dict[str, nn.Module] = {}
    if "cosface" in config.metric_losses:
        if n_classes is None:
            raise ValueError("the cosface loss needs n_classes (the number of training identities)")
        metric["cosface"] = CosFaceLoss(n_classes, config.descriptor_dim, scale=config.cosface_scale,
                                        margin=config.cosface_margin, label_smoothing=config.label_smoothing)
    if "infonce" in config.metric_losses:
        metric["infonce"] = InfoNCELoss(config.infonce_temperature)
    return ASLLoss(metric, NormRatioLoss(config.content_tolerance), config.norm_ratio_weight)


__all__ = ["ASLLoss", "CosFaceLoss", "InfoNCELoss", "NormRatioLoss", "build_asl_loss"]
