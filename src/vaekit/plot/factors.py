"""Which latent feature carries which known generative factor: a factor x feature heatmap of
:func:`vaekit.analysis.disentanglement`'s matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plot import _style

# the matrices of a disentanglement result that can be drawn, with their colour bar label
MATRICES = {
    "mutual_information": "MI / factor entropy",
    "importance": "DCI importance (random forest)",
}


def factor_heatmap(
    result: dict[str, Any], matrix: str = "mutual_information", max_features: int = 30
) -> Figure:
    """Factors (rows) against latent features (columns), coloured by ``matrix``.

    Parameters
    ----------
    result : dict
        From :func:`vaekit.analysis.disentanglement` (or
        :func:`vaekit.analysis.carriers.annotation_carriers`, drawn the same way).
    matrix : {"mutual_information", "importance"}
        Normalised mutual information (what MIG compares), or DCI importances.
    max_features : int
        Columns shown at most: the features that carry a factor first, then the others by
        their largest value.

    Returns
    -------
    matplotlib.figure.Figure
        Each cell states its value; the feature that carries each factor (highest mutual
        information) is in bold, and each row label gives the factor's MIG gap. A
        disentangled code shows one bright cell per row and per column.

    Examples
    --------
    >>> fig = factor_heatmap(disentanglement(model.transform(X), factors))  # doctest: +SKIP
    """
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {list(MATRICES)}; got {matrix!r}")
    detail = result["detail"]
    if matrix not in detail:
        raise ValueError(f"this result has no {matrix!r} matrix; draw 'mutual_information'")
    if not detail["factors"]:
        raise ValueError("no factor to draw: none was given, or every annotation was skipped")
    values = np.asarray(detail[matrix], dtype=np.float64)  # (n_factors, n_latent)
    factors = detail["factors"]
    columns = _columns(values, [f["feature"] for f in factors], max_features)
    shown = values[:, columns]
    fig = _style.figure(max(4.0, 1.8 + 0.45 * len(columns)), 1.2 + 0.4 * len(factors))
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=max(1e-12, values.max()), aspect="auto")
    for (i, j), value in np.ndenumerate(shown):
        carrier = columns[j] == factors[i]["feature"]
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                fontweight="bold" if carrier else "normal",
                color="black" if value > 0.6 * values.max() else "white")  # fmt: skip
    ax.set_xticks(np.arange(len(columns)), [f"z{c}" for c in columns], fontsize="small")
    labels = [f"{f['name']}\n(gap {f['gap']:.2f})" for f in factors]
    ax.set_yticks(np.arange(len(factors)), labels, fontsize="small")
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label=MATRICES[matrix], shrink=0.8)
    ax.set_xlabel("bold: the feature with the most mutual information", fontsize="small")
    return fig


def _columns(values: np.ndarray, carriers: list[int], most: int) -> list[int]:
    """Feature indices to show: carriers in factor order, then the strongest others."""
    first = list(dict.fromkeys(carriers))
    rest = [int(j) for j in np.argsort(-values.max(axis=0), kind="stable") if j not in first]
    return (first + rest)[: max(most, len(first))]
