"""Figures of table models (genes, counts, any numeric features): how well the reconstructions
and the samples from the prior match the data, value by value and feature by feature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plot import _data, _style
from vaekit.vae import VAE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HEXBIN_FROM = 5_000  # more points than this are drawn as a density, not as dots


def _scale(model: VAE) -> tuple[Any, str]:
    """Counts span decades, so they are compared on log(1 + x); anything else as it is."""
    if model.module_.likelihood.uses_library:
        return np.log1p, "log(1 + {})"
    return (lambda v: v), "{}"


def column_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r between matching columns of a and b, (n_features,), over the rows where
    both are known (not NaN); NaN where either column is constant there."""
    seen = ~(np.isnan(a) | np.isnan(b))
    n = np.maximum(seen.sum(0), 1)
    a, b = np.where(seen, a, 0.0), np.where(seen, b, 0.0)
    a = np.where(seen, a - a.sum(0) / n, 0.0)
    b = np.where(seen, b - b.sum(0) / n, 0.0)
    denominator = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(0) / denominator, np.nan)


def _identity_scatter(ax: Axes, x: np.ndarray, y: np.ndarray, gridsize: int = 60) -> None:
    """y against x, dots or (many points) a log-density hexbin, with the line y = x."""
    if len(x) > HEXBIN_FROM:
        ax.hexbin(x, y, gridsize=gridsize, bins="log", cmap="Blues", mincnt=1, linewidths=0)
    else:
        ax.scatter(x, y, s=8, alpha=0.6, color=_style.TRAIN, linewidths=0)
    low = float(min(np.min(x), np.min(y)))
    high = float(max(np.max(x), np.max(y)))
    ax.plot([low, high], [low, high], color=_style.MUTED, linestyle="--", linewidth=1)
    _style.tidy(ax)


def reconstruction_scatter(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    max_points: int = 50_000,
    seed: int = 0,
) -> Figure:
    """Reconstructions against the data: every value, and each feature's correlation.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData
        Samples to reconstruct (compared in the space the decoder models: after preprocessing).
    y : optional
        Conditions of X, for a conditional model.
    layer : str, optional
    max_points : int
        Values drawn in the scatter at most (a random subset; all enter the correlations).
    seed : int
        Seed of that subset.

    Returns
    -------
    matplotlib.figure.Figure
        Left, predicted against observed values (with y = x); right, the histogram over
        features of Pearson's r between a feature's observed and predicted values across
        samples, which tells features the model captures from those it reduces to a mean.

    Examples
    --------
    >>> fig = reconstruction_scatter(model, adata)  # doctest: +SKIP
    """
    observed = _data.modelled(model, X, y, layer=layer)
    predicted = _data.as_array(model.reconstruct(X, y, layer=layer))
    scale, label = _scale(model)
    axes = _style.panels(2, height=3.3, width=3.8)
    seen = ~np.isnan(observed.ravel())  # a mask-aware model's missing entries have no value
    known, rebuilt = observed.ravel()[seen], predicted.ravel()[seen]
    keep = _data.subsample(known.size, max_points, seed)
    x, p = scale(known[keep]), scale(rebuilt[keep])
    _identity_scatter(axes[0], x, p)
    overall = float(np.corrcoef(known, rebuilt)[0, 1])
    axes[0].set_xlabel(label.format("observed"))
    axes[0].set_ylabel(label.format("reconstructed"))
    axes[0].set_title(f"Every value: r = {overall:.3f}")
    r = column_correlation(observed, predicted)
    _correlation_histogram(axes[1], r)
    return axes[0].figure


def _correlation_histogram(ax: Axes, r: np.ndarray) -> None:
    ok = r[np.isfinite(r)]
    ax.hist(ok, bins=np.linspace(-1, 1, 41), color=_style.TRAIN)
    median = float(np.median(ok)) if len(ok) else float("nan")
    ax.axvline(median, color=_style.VALIDATION, linestyle="--", label=f"median {median:.2f}")
    ax.set_xlabel("Pearson r, observed vs reconstructed")
    ax.set_ylabel("features")
    constant = len(r) - len(ok)
    note = f"\n({constant:,} constant ones left out)" if constant else ""
    ax.set_title(f"{len(r):,} features, each across samples{note}")
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    _style.tidy(ax)


def _means_only(model: VAE, observed: np.ndarray) -> bool:
    """Whether to compare the decoder's means rather than draws: a Bernoulli draw is 0 or 1,
    which is not on the scale of data in [0, 1] that are not binary (Tybalt's min-max
    scaled expression)."""
    binary = bool(np.isin(observed[~np.isnan(observed)], (0.0, 1.0)).all())
    return model.settings_["likelihood"] == "bernoulli" and not binary


def sample_moments(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    seed: int = 0,
) -> Figure:
    """Samples from the prior against the data, feature by feature: their means and standard
    deviations.

    As many samples are drawn as X has rows (under X's conditions, for a conditional model),
    from p(x|z) with z ~ N(0, I): a model whose samples look like the data puts every feature
    near the line y = x in both panels. A Bernoulli model of data that are not binary is shown
    by its decoder means, since its draws are 0 or 1.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData
    y : optional
        Conditions of X, for a conditional model.
    layer : str, optional
    seed : int

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = sample_moments(model, adata)  # doctest: +SKIP
    """
    y = _data.conditions(X, y)
    observed = _data.modelled(model, X, y, layer=layer)
    mean = _means_only(model, observed)
    generated = model.sample(len(observed), y=y, seed=seed, mean=mean).astype(np.float64)
    scale, label = _scale(model)
    observed, generated = scale(observed), scale(generated)
    axes = _style.panels(2, height=3.3, width=3.6)
    # NaN-aware: the data's statistics over their known entries.
    for ax, name, stat in zip(axes, ("mean", "SD"), (np.nanmean, np.nanstd), strict=True):
        a, b = stat(observed, axis=0), stat(generated, axis=0)
        _identity_scatter(ax, a, b)
        r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
        ax.set_xlabel(f"{name} of data, " + label.format("x"))
        ax.set_ylabel(f"{name} of samples")
        ax.set_title(f"Feature {name}s: r = {r:.3f}")
    what = "decoder means" if mean else "samples"
    axes[0].figure.suptitle(f"{len(observed):,} {what} from the prior vs the data")
    return axes[0].figure
