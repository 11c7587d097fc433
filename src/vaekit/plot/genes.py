"""What the latent features mean: the genes that weigh most on a feature, and which sample
annotations each feature tracks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaekit.analysis.findings import SIGNIFICANT
from vaekit.analysis.genesets import gene_symbol
from vaekit.analysis.interpretation import heaviest
from vaekit.plot import _style

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def gene_weights(
    loadings: pd.DataFrame, features: int | Sequence[int], k: int = 12, titles: Sequence[str] = ()
) -> Figure:
    """The ``k`` genes of largest absolute weight on each of ``features``, a panel each.

    Parameters
    ----------
    loadings : DataFrame, (n_latent, n_genes)
        From :meth:`vaekit.VAE.loadings`.
    features : int or sequence of int
        Latent features (rows of ``loadings``).
    k : int
        Genes per feature.
    titles : sequence of str, optional
        A second title line per feature, e.g. the annotation it tracks.

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal bars, heaviest at the top, red for genes that rise with the feature and
        blue for genes that fall; TCGA-style ``SYMBOL|EntrezID`` names shown by symbol.

    Examples
    --------
    >>> fig = gene_weights(model.loadings(), [3, 7], k=15)  # doctest: +SKIP
    """
    features = [features] if np.ndim(features) == 0 else list(features)
    if not features:
        raise ValueError("give at least one latent feature")
    axes = _style.panels(len(features), height=0.6 + 0.22 * min(k, loadings.shape[1]), width=3.0)
    method = loadings.attrs.get("method")
    for i, (ax, feature) in enumerate(zip(axes, features, strict=True)):
        _weight_bars(ax, heaviest(loadings, feature, k))
        extra = f"\n{titles[i]}" if i < len(titles) else ""
        ax.set_title(f"z{feature}{extra}", fontsize="medium")
    note = f" (loadings: {method})" if method else ""
    axes[0].figure.supxlabel(f"weight{note}", fontsize="small")
    return axes[0].figure


def _weight_bars(ax: Axes, weights: pd.Series) -> None:
    weights = weights.iloc[::-1]  # barh draws bottom up: heaviest last, at the top
    colors = np.where(weights.to_numpy() > 0, _style.POSITIVE, _style.NEGATIVE)
    ax.barh(np.arange(len(weights)), weights.to_numpy(), color=colors, height=0.75)
    ax.set_yticks(np.arange(len(weights)), [gene_symbol(str(g)) for g in weights.index])
    ax.tick_params(axis="y", labelsize="small", length=0)
    ax.axvline(0, color="black", linewidth=0.6)
    _style.tidy(ax).grid(False, axis="y")


# ----------------------------------------------------------------------------- associations
def effect_size(associations: pd.DataFrame) -> pd.Series:
    """A signed effect in [-1, 1] for every row of :func:`vaekit.analysis.associate`: the
    rank-biserial correlation 2 AUROC - 1 for annotations with levels, Spearman's rho for
    numbers, so that one colour scale serves both."""
    rank_biserial = 2 * associations["auroc"].astype(float) - 1
    return rank_biserial.where(associations["test"] != "spearman", associations["statistic"])


def _column_label(rows: pd.DataFrame) -> str:
    """The annotation, with the level that a positive effect favours when it has one."""
    name = str(rows["annotation"].iloc[0])
    if rows["test"].iloc[0] == "mann-whitney":
        return f"{name}\n({rows['level'].iloc[0]} +)"
    return name


def association_heatmap(associations: pd.DataFrame, max_features: int = 20) -> Figure:
    """Which latent features track which annotations: an effect per feature x annotation.

    Parameters
    ----------
    associations : DataFrame
        From :func:`vaekit.analysis.associate` (columns ``feature``, ``annotation``, ``test``,
        ``statistic``, ``auroc``, ``q``...).
    max_features : int
        Rows shown: the features with the strongest effect on any annotation.

    Returns
    -------
    matplotlib.figure.Figure
        Rows are latent features, strongest first; columns annotations. The colour is the
        effect size (:func:`effect_size`); each cell states it, in bold where q < 0.05.

    Examples
    --------
    >>> fig = association_heatmap(associate(model.transform(X), phenotypes))  # doctest: +SKIP
    """
    if associations.empty:
        raise ValueError("no associations to draw: every annotation was skipped or none given")
    frame = associations.assign(effect=effect_size(associations))
    effect = frame.pivot(index="feature", columns="annotation", values="effect")
    q = frame.pivot(index="feature", columns="annotation", values="q")
    order = effect.abs().max(axis=1).sort_values(ascending=False, kind="stable").index
    order = order[:max_features]
    columns = list(dict.fromkeys(frame["annotation"]))  # strongest finding first (q order)
    effect, q = effect.loc[order, columns], q.loc[order, columns]
    labels = [_column_label(frame[frame["annotation"] == c]) for c in columns]
    fig = _style.figure(max(4.2, 1.6 + 1.25 * len(columns)), 1.3 + 0.28 * len(order))
    ax = fig.add_subplot()
    image = ax.imshow(effect.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    _cell_texts(ax, effect.to_numpy(dtype=float), q.to_numpy(dtype=float))
    ax.set_xticks(np.arange(len(columns)), labels, fontsize="small")
    ax.set_yticks(np.arange(len(order)), [f"z{j}" for j in order], fontsize="small")
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label="2 AUROC - 1, or Spearman rho", shrink=0.8)
    ax.set_xlabel(f"bold: q < {SIGNIFICANT} (Benjamini-Hochberg over all tests)", fontsize="small")
    return fig


def _cell_texts(ax: Axes, effect: np.ndarray, q: np.ndarray) -> None:
    for (i, j), value in np.ndenumerate(effect):
        if not np.isfinite(value):
            continue
        strong = bool(q[i, j] < SIGNIFICANT)
        ax.text(
            j,
            i,
            f"{value:+.2f}",
            ha="center",
            va="center",
            fontsize="x-small",
            fontweight="bold" if strong else "normal",
            color="white" if abs(value) > 0.6 else "black",
        )
