"""Anomaly scores against the threshold calibrated on control samples."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plot import _style


def anomaly_histogram(
    scores: Any,
    calibration: Any = None,
    *,
    bins: int = 50,
    label: str = "samples",
) -> Figure:
    """The distribution of anomaly scores (higher = more anomalous), with the controls' scores
    and the calibrated threshold when there is a calibration.

    Parameters
    ----------
    scores : array-like, (n_samples,)
        From :meth:`vaekit.VAE.anomaly_score`.
    calibration : optional
        ``model.calibration_`` or any object with ``threshold`` (float) and, optionally,
        ``control_scores`` (array), ``fpr`` (float) and ``method`` (str).
    bins : int
        Bins over the range of all scores drawn.
    label : str
        What the scores are of, for the legend.

    Returns
    -------
    matplotlib.figure.Figure
        Densities, so that a few samples and many controls share one axis; the threshold as a
        vertical line, the share of samples above it in the title.

    Examples
    --------
    >>> fig = anomaly_histogram(model.anomaly_score(X_new), model.calibration_)  # doctest: +SKIP
    """
    scores = np.asarray(scores, dtype=float).ravel()
    if len(scores) == 0 or not np.isfinite(scores).all():
        raise ValueError(f"scores must be a non-empty array of finite numbers; got {len(scores)}")
    controls = _controls(calibration)
    edges = np.histogram_bin_edges(np.concatenate([scores, controls]), bins=bins)
    fig = _style.figure(6.0, 3.4)
    ax = _style.tidy(fig.add_subplot())
    ax.hist(scores, bins=edges, density=True, color=_style.TRAIN, alpha=0.75, label=label)
    if len(controls):
        ax.hist(controls, bins=edges, density=True, histtype="step", linewidth=1.5,
                color=_style.MUTED, label=f"controls ({len(controls):,})")  # fmt: skip
    title = f"Anomaly scores of {len(scores):,} {label}"
    if calibration is not None:
        title += _threshold(ax, scores, calibration)
    ax.set_xlabel(
        f"anomaly score ({getattr(calibration, 'method', None) or 'higher = more anomalous'})"
    )
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize="small", framealpha=0.9, edgecolor="none")  # over the bars at times
    return fig


def _controls(calibration: Any) -> np.ndarray:
    values = getattr(calibration, "control_scores", None)
    return np.empty(0) if values is None else np.asarray(values, dtype=float).ravel()


def _threshold(ax: Any, scores: np.ndarray, calibration: Any) -> str:
    """Draw the threshold; return the title's note of how many samples pass it."""
    threshold = float(calibration.threshold)
    fpr = getattr(calibration, "fpr", None)
    name = f"threshold {threshold:.4g}" + ("" if fpr is None else f" (FPR {fpr:.0%} on controls)")
    ax.axvline(threshold, color=_style.VALIDATION, linewidth=1.5, label=name)
    flagged = int((scores > threshold).sum())
    return f"\n{flagged:,} above the threshold ({flagged / len(scores):.1%})"
