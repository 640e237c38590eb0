"""Precision-recall plots of one or several methods on one axis (PNG, matplotlib Agg)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .metric import P90, MetricResult

# Enough points for a smooth line; a 10M-prediction curve is thinned to this many.
MAX_POINTS = 5000

Curve = MetricResult | tuple[np.ndarray, np.ndarray]


def plot_pr_curves(
    curves: Mapping[str, Curve], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Draw every ``name -> MetricResult`` (or ``(precision, recall)``) curve into one PNG.

    Curves are drawn as steps (precision held over each recall interval), so the area under a
    :class:`MetricResult` curve is its µAP; its µAP goes in the legend and its Recall@P90 point
    is marked.
    Returns the path written.
    """
    # A bare Figure renders with Agg and leaves pyplot's global backend and state alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.subplots()
    for name, curve in curves.items():
        if isinstance(curve, MetricResult):
            precision, recall = curve.precision, curve.recall
            label = f"{name} (µAP {curve.micro_ap:.3f})"
        else:
            precision, recall = (np.asarray(a, dtype=float) for a in curve)
            label = name
        if len(precision) != len(recall):
            raise ValueError(f"curve {name!r}: {len(precision)} precision vs {len(recall)} recall values")
        keep = _thin(len(recall))
        # Steps from recall 0: the area under the drawn curve is µAP = Σ (r_j - r_{j-1}) p_j.
        x = np.concatenate([[0.0], recall[keep]])
        y = np.concatenate([precision[keep][:1], precision[keep]])
        (line,) = ax.plot(x, y, drawstyle="steps-pre", label=label, linewidth=1.5)
        if isinstance(curve, MetricResult) and curve.recall_at_p90 is not None:
            at = np.searchsorted(recall, curve.recall_at_p90, side="right") - 1
            ax.plot([recall[at]], [precision[at]], "o", color=line.get_color(), markersize=4)
    ax.axhline(P90, color="grey", linestyle=":", linewidth=1, label="precision 0.9")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title or "Precision-recall")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _thin(n: int) -> np.ndarray:
    """Evenly spaced indices (first and last kept) so huge curves plot fast."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64))
