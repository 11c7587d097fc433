"""Differential expression at a glance: the volcano plot of a table from
:func:`vaekit.analysis.differential_expression` (or ``vaekit de``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaekit.analysis.differential import bayes_factor, check_de_table
from vaekit.analysis.genesets import gene_symbol
from vaekit.plot import _style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Y_AXES = {
    "proba_de": "P(|LFC| > delta)",
    "bayes_factor": "Bayes factor, log(p / (1 - p))",
}
MAX_DRAWS_ASSUMED = 5000  # draws behind a table read back without its settings (the default)


def volcano(
    table: pd.DataFrame, y: str = "proba_de", top: int = 10, delta: float | None = None
) -> Figure:
    """The volcano plot: each gene's posterior mean log2 fold change against the evidence
    that it changes, with the calls coloured and the strongest genes named.

    Parameters
    ----------
    table : DataFrame
        From :func:`vaekit.analysis.differential_expression`: ``lfc_mean`` and ``proba_de``,
        and, when there, ``is_de_fdr`` (the calls) and ``bayes_factor``.
    y : str
        ``"proba_de"`` or ``"bayes_factor"``.
    top : int
        Genes named: the calls (else all genes) with the largest |lfc_mean| x proba_de.
    delta : float, optional
        Draw dashed lines at +/- delta (by default the table's own ``attrs["delta"]``).

    Returns
    -------
    matplotlib.figure.Figure
        Red: called up in group1; blue: called down; grey: not called.

    Examples
    --------
    >>> fig = volcano(differential_expression(model, adata, "cell_type", "B"))  # doctest: +SKIP
    """
    check_de_table(table)
    if y not in Y_AXES:
        raise ValueError(f"y must be one of {list(Y_AXES)}; got {y!r}")
    lfc = table["lfc_mean"].to_numpy(dtype=float)
    height = _height(table, y)
    called = _calls(table)
    fig = _style.figure(5.2, 4.2)
    ax = _style.tidy(fig.add_subplot())
    colours = np.where(called, np.where(lfc > 0, _style.POSITIVE, _style.NEGATIVE), _style.MUTED)
    order = np.argsort(called, kind="stable")  # calls drawn last, on top
    ax.scatter(lfc[order], height[order], c=colours[order], s=9, alpha=0.8, linewidths=0)
    delta = table.attrs.get("delta") if delta is None else delta
    if delta is not None:
        for x in (-delta, delta):
            ax.axvline(x, color=_style.MUTED, linestyle="--", linewidth=0.8)
    _label(ax, table, lfc, height, called, top)
    ax.set_xlabel(f"mean log2 fold change ({_groups(table)})")
    ax.set_ylabel(Y_AXES[y])
    ax.set_title(f"{int(called.sum())} of {len(table)} genes called", fontsize="medium")
    return fig


def _height(table: pd.DataFrame, y: str) -> np.ndarray:
    if y == "bayes_factor" and "bayes_factor" in table.columns:
        return table["bayes_factor"].to_numpy(dtype=float)
    if y == "bayes_factor":  # a table without it: the same clipping as the analysis
        n = int(table.attrs.get("n_samples", MAX_DRAWS_ASSUMED))
        return bayes_factor(table["proba_de"].to_numpy(dtype=float), n)
    return table["proba_de"].to_numpy(dtype=float)


def _calls(table: pd.DataFrame) -> np.ndarray:
    if "is_de_fdr" not in table.columns:
        return np.zeros(len(table), dtype=bool)
    calls = table["is_de_fdr"]
    if calls.dtype == object:  # read back from text: "True"/"False"
        calls = calls.astype(str).str.lower().isin(["true", "1"])
    return calls.to_numpy(dtype=bool)


def _label(
    ax: Axes, table: pd.DataFrame, lfc: np.ndarray, height: np.ndarray, called: np.ndarray, top: int
) -> None:
    """Name the ``top`` strongest genes. Their points crowd at the top (probabilities near 1),
    so each side's names step down from their points, towards the middle, with a thin line."""
    pool = np.flatnonzero(called) if called.any() else np.arange(len(table))
    strength = np.abs(lfc[pool]) * table["proba_de"].to_numpy(dtype=float)[pool]
    chosen = pool[np.argsort(-np.nan_to_num(strength, nan=-1.0), kind="stable")][:top]
    for up in (True, False):
        side = [i for i in chosen if (lfc[i] > 0) == up]
        for step, i in enumerate(sorted(side, key=lambda i: -height[i])):
            ax.annotate(
                gene_symbol(str(table.index[i])),
                (lfc[i], height[i]),
                xytext=(-6 if up else 6, -4 - 10 * step),
                textcoords="offset points",
                ha="right" if up else "left",
                va="top",
                fontsize="x-small",
                arrowprops={"arrowstyle": "-", "color": _style.MUTED, "linewidth": 0.5},
            )


def _groups(table: pd.DataFrame) -> str:
    a = table.attrs
    return f"{a['group1']} / {a['group2']}" if "group1" in a and "group2" in a else "group1 / 2"
