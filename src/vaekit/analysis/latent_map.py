"""Latent maps: a 2-D embedding of the posterior means, drawn coloured by what is known of
each sample.

Everything here returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing
touches matplotlib's global state and the figures can be saved from any thread or embedded in
a report.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from vaekit.atomic import atomic_file, check_parent
from vaekit.validation import is_anndata

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from vaekit.estimator import BaseVAE

TSNE_SLOW = 20_000  # t-SNE takes minutes beyond this many points
MISSING_COLOR = "#d9d9d9"
OTHER_COLOR = "#252525"


# ----------------------------------------------------------------------------- embeddings
@dataclass
class Embedding:
    """2-D coordinates (n, 2), what each axis shows, and whether tick values mean anything."""

    coords: np.ndarray
    axis_labels: tuple[str, str]
    ticks: bool = True


def _pca(latent: np.ndarray, seed: int, options: dict[str, Any]) -> Embedding:
    from sklearn.decomposition import PCA

    k = min(2, latent.shape[1])
    pca = PCA(n_components=k, random_state=seed, **options)
    coords = pca.fit_transform(latent)  # (n, k)
    labels = [f"PC {i + 1} ({r:.0%} var)" for i, r in enumerate(pca.explained_variance_ratio_)]
    if k == 1:
        warnings.warn(
            "the latent space has 1 feature; the map's second axis is empty (all zeros)",
            UserWarning,
            stacklevel=4,
        )
        coords = np.column_stack([coords, np.zeros(len(coords))])
        labels.append("(none: 1 latent feature)")
    return Embedding(coords, (labels[0], labels[1]))


def _tsne(latent: np.ndarray, seed: int, options: dict[str, Any]) -> Embedding:
    from sklearn.manifold import TSNE

    n = len(latent)
    if n > TSNE_SLOW:
        warnings.warn(
            f"t-SNE of {n} points is slow (minutes or more beyond ~{TSNE_SLOW}); use "
            "method='pca' or 'umap', or pass a subsample",
            UserWarning,
            stacklevel=4,
        )
    # sklearn requires perplexity < n; a third of n keeps each neighbourhood meaningful.
    options = {"perplexity": min(options.pop("perplexity", 30.0), (n - 1) / 3), **options}
    options.setdefault("init", "pca" if latent.shape[1] >= 2 else "random")
    coords = TSNE(n_components=2, random_state=seed, **options).fit_transform(latent)
    return Embedding(coords, ("t-SNE 1", "t-SNE 2"), ticks=False)


def _umap(latent: np.ndarray, seed: int, options: dict[str, Any]) -> Embedding:
    try:
        import umap
    except ImportError as err:
        problem = "is not installed" if err.name == "umap" else f"failed to import ({err})"
        raise ValueError(
            f"method='umap' needs the umap-learn package, which {problem}; "
            "run `pip install umap-learn`, or use method='pca' or 'tsne'"
        ) from None
    options = {"n_neighbors": min(options.pop("n_neighbors", 15), len(latent) - 1), **options}
    options.setdefault("n_jobs", 1)  # a seeded UMAP runs on one thread anyway; say so, no warning
    reducer = umap.UMAP(n_components=2, random_state=seed, **options)
    return Embedding(reducer.fit_transform(latent), ("UMAP 1", "UMAP 2"), ticks=False)


Embedder = Callable[[np.ndarray, int, dict[str, Any]], Embedding]
EMBEDDINGS: dict[str, Embedder] = {"pca": _pca, "tsne": _tsne, "umap": _umap}
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _embedding(latent: Any, method: str, seed: int, options: dict[str, Any]) -> Embedding:
    key = str(method).lower()
    if key not in EMBEDDINGS:
        raise ValueError(f"unknown embedding method {method!r}; use one of {list(EMBEDDINGS)}")
    latent = np.asarray(latent, dtype=np.float64)
    if latent.ndim != 2 or latent.shape[1] < 1:
        raise ValueError(
            f"latent must be a 2-D array (n_samples, n_latent); got shape {latent.shape}"
        )
    if len(latent) < 3:
        raise ValueError(f"a latent map needs at least 3 samples; got {len(latent)}")
    if not np.isfinite(latent).all():
        raise ValueError("latent has NaN or infinite values; check the model's encodings")
    return EMBEDDINGS[key](latent, seed, dict(options))


def embed(latent: Any, method: str = "pca", seed: int = 0, **options: Any) -> np.ndarray:
    """A 2-D embedding of latent points (usually posterior means).

    Parameters
    ----------
    latent : array-like, (n_samples, n_latent)
    method : {"pca", "tsne", "umap"}
        PCA (scikit-learn); t-SNE (scikit-learn, ``init="pca"``, perplexity at most
        (n - 1) / 3); UMAP (needs ``umap-learn``). A 1-D latent space is padded with zeros.
    seed : int
        Random state of the method.
    **options
        Passed to the scikit-learn / umap-learn estimator, e.g. ``perplexity=50``.

    Returns
    -------
    ndarray, (n_samples, 2)

    Examples
    --------
    >>> xy = embed(np.random.default_rng(0).normal(size=(100, 8)), "pca")
    >>> xy.shape
    (100, 2)
    """
    return _embedding(latent, method, seed, options).coords


# ----------------------------------------------------------------------------- colours
@dataclass
class Coloring:
    """How each point is drawn: RGBA colours (categorical) or values (continuous), a legend."""

    name: str | None
    missing: np.ndarray  # (n,) bool
    colors: np.ndarray | None = None  # (n, 4) RGBA, categorical
    values: np.ndarray | None = None  # (n,) float, continuous
    legend: list[tuple[str, Any]] | None = None  # (label, colour)


def _palette(k: int) -> np.ndarray:
    """``k`` distinct colours (k, 3): tab10, then tab20's dark shades before its light ones
    (its two greys left out, to keep them for "other" and missing), then turbo."""
    if k <= 10:
        return np.asarray(matplotlib.colormaps["tab10"].colors)[:k]
    if k <= 18:
        order = [*range(0, 14, 2), 16, 18, *range(1, 14, 2), 17, 19]
        return np.asarray(matplotlib.colormaps["tab20"].colors)[order][:k]
    return matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3]


def _text(level: Any) -> str:
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _is_continuous(values: pd.Series, max_categories: int) -> bool:
    """Fractional numbers, or whole numbers with more levels than a legend can hold."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return False
    if not pd.api.types.is_numeric_dtype(dtype):
        return False
    present = values.dropna().astype(float)
    return bool((present % 1 != 0).any()) or present.nunique() > max_categories


def _levels(values: pd.Series, max_categories: int) -> tuple[list, int]:
    """The levels to draw in legend order (the most frequent ones) and how many are lumped."""
    counts = values.value_counts(dropna=True, sort=True)
    counts = counts[counts > 0]
    kept = list(counts.index[:max_categories])
    if isinstance(values.dtype, pd.CategoricalDtype):
        chosen = set(kept)
        kept = [c for c in values.cat.categories if c in chosen]
    else:
        try:
            kept = sorted(kept)
        except TypeError:
            kept = sorted(kept, key=str)
    return kept, len(counts) - len(kept)


def _categorical(
    values: pd.Series, name: str | None, missing: np.ndarray, max_categories: int
) -> Coloring:
    kept, lumped = _levels(values, max_categories)
    colors = np.tile(matplotlib.colors.to_rgba(OTHER_COLOR), (len(values), 1))  # (n, 4)
    legend, n_other = [], int((~missing).sum())
    for level, rgb in zip(kept, _palette(len(kept)), strict=True):
        at = (values == level).to_numpy()
        colors[at] = matplotlib.colors.to_rgba(rgb)
        legend.append((_text(level), rgb))
        n_other -= int(at.sum())
    if lumped:
        legend.append((f"other: {lumped} levels ({n_other})", OTHER_COLOR))
    return Coloring(name, missing, colors=colors, legend=legend)


def _coloring(color: Any, n: int, max_categories: int) -> Coloring:
    if max_categories < 1:
        raise ValueError(f"max_categories must be at least 1; got {max_categories}")
    if np.ndim(color) != 1 or len(color) != n:
        raise ValueError(f"color must hold one value per sample ({n}); got shape {np.shape(color)}")
    if isinstance(color, pd.Series):
        values = color.reset_index(drop=True)
    else:  # infer_objects: numbers given as a list or an object array stay numbers
        values = pd.Series(np.asarray(color, dtype=object)).infer_objects()
    name = None if values.name is None else str(values.name)
    if _is_continuous(values, max_categories):
        numbers = values.to_numpy(dtype=float)
        return Coloring(name, ~np.isfinite(numbers), values=numbers)  # inf: no colour either
    return _categorical(values, name, values.isna().to_numpy(), max_categories)


# ----------------------------------------------------------------------------- drawing
def _marker(n: int) -> tuple[float, float]:
    """Point area and alpha: large and opaque for a few points, small and light for many."""
    size = float(np.clip(12_000 / n, 2, 40))
    alpha = float(np.clip(1.1 - 0.15 * np.log10(n), 0.3, 0.9))
    return size, alpha


def _draw(fig: Figure, ax: Axes, xy: np.ndarray, coloring: Coloring, seed: int) -> None:
    n = len(xy)
    size, alpha = _marker(n)
    style = {"s": size, "alpha": alpha, "linewidths": 0, "rasterized": n > 5000}
    gone = coloring.missing
    if gone.any():  # beneath the rest, so they never hide a known value
        ax.scatter(*xy[gone].T, c=MISSING_COLOR, **style)
    # One collection in random order, so no group is always drawn on top of the others.
    order = np.random.default_rng(seed).permutation(np.flatnonzero(~gone))
    handles = [_handle(text, rgb) for text, rgb in coloring.legend or []]
    if coloring.values is not None:
        points = ax.scatter(*xy[order].T, c=coloring.values[order], cmap="viridis", **style)
        fig.colorbar(points, ax=ax, label=coloring.name or "colour")
    elif coloring.colors is not None:
        ax.scatter(*xy[order].T, c=coloring.colors[order], **style)
    else:
        ax.scatter(*xy[order].T, c="C0", **style)
    if gone.any():
        handles.append(_handle(f"missing ({int(gone.sum())})", MISSING_COLOR))
    _legend(ax, handles, coloring)


def _handle(text: str, color: Any) -> Line2D:
    return Line2D([], [], marker="o", linestyle="", markersize=6, color=color, label=text)


def _legend(ax: Axes, handles: list[Line2D], coloring: Coloring) -> None:
    if not handles:
        return
    if coloring.values is not None:  # the colorbar holds the right side
        ax.legend(handles=handles, loc="best", fontsize="small")
        return
    ax.legend(
        handles=handles,
        title=coloring.name,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        borderaxespad=0,
        frameon=False,
        fontsize="small",
        ncols=1 if len(handles) <= 20 else 2,
    )


def _title(method: str, n: int, n_latent: int, name: str | None) -> str:
    title = f"{METHOD_NAMES[method]} of {n_latent}-D latent means, n = {n:,}"
    return title if name is None else f"{title}, coloured by {name}"


def latent_map(
    latent: Any,
    color: Any = None,
    *,
    method: str = "pca",
    title: str | None = None,
    seed: int = 0,
    max_categories: int = 20,
) -> Figure:
    """Scatter plot of a 2-D embedding of latent points, coloured by a label or a value.

    Parameters
    ----------
    latent : array-like, (n_samples, n_latent)
        Usually the posterior means, ``model.transform(X)``.
    color : array-like or Series of length n_samples, optional
        Labels (one colour per level, with a legend; beyond ``max_categories`` levels the
        most frequent are kept and the rest drawn as "other") or numbers with fractional
        values or many levels (viridis, with a colorbar). Missing values are drawn in light
        grey and counted in the legend. A named Series names the legend and title.
    method : {"pca", "tsne", "umap"}
        See :func:`embed`.
    title : str, optional
        Defaults to the method, the number of samples and the colour's name.
    seed : int
        Random state of the embedding and of the drawing order.
    max_categories : int
        Most levels given their own colour.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(300, 8))
    >>> fig = latent_map(z, pd.Series(np.repeat(["a", "b", "c"], 100), name="group"))
    >>> save_figure(fig, "map.png")  # doctest: +SKIP
    """
    emb = _embedding(latent, method, seed, {})
    n, n_latent = np.shape(latent)
    method = str(method).lower()
    if color is None:
        coloring = Coloring(None, np.zeros(n, dtype=bool))
    else:
        coloring = _coloring(color, n, max_categories)
    wide = coloring.legend is not None
    fig = Figure(figsize=(7.6 if wide else 6.4, 5.4), layout="constrained")
    ax = fig.add_subplot()
    _draw(fig, ax, emb.coords, coloring, seed)
    ax.set_xlabel(emb.axis_labels[0])
    ax.set_ylabel(emb.axis_labels[1])
    if not emb.ticks:  # t-SNE and UMAP coordinates have no units worth reading
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title if title is not None else _title(method, n, n_latent, coloring.name))
    return fig


# ----------------------------------------------------------------------------- from a model
def _color_values(X: Any, color: Any) -> Any:
    """``color`` as given, or the ``obs`` column of an AnnData that it names."""
    if not isinstance(color, str):
        return color
    if not is_anndata(X):
        raise ValueError(
            f"color={color!r} names a column, which needs an AnnData with that obs column; "
            f"got {type(X).__name__}: pass the values instead"
        )
    if color not in X.obs.columns:
        raise ValueError(
            f"obs has no column {color!r}; its columns: {[str(c) for c in X.obs.columns]}"
        )
    values = X.obs[color].reset_index(drop=True)
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()
    return values


def plot_latent(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    color: Any = None,
    *,
    method: str = "pca",
    seed: int = 0,
    title: str | None = None,
    max_categories: int = 20,
    layer: str | None = None,
) -> Figure:
    """The latent map of X: its posterior means under ``model``, embedded and coloured.

    Parameters
    ----------
    model : VAE
        A fitted model.
    X : array-like or AnnData
        The samples to map.
    y : optional
        The conditions, for a conditional model (values or AnnData ``obs`` column names).
    color : str or array-like, optional
        The name of an AnnData ``obs`` column, or one value per sample.
    method, seed, title, max_categories
        See :func:`latent_map`.
    layer : str, optional
        The AnnData layer to encode instead of ``X``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_latent(model, adata, color="cell_type", method="tsne")  # doctest: +SKIP
    """
    values = _color_values(X, color)  # a wrong column name fails before any encoding
    latent = model.transform(X, y, layer=layer)  # (n, n_latent)
    return latent_map(
        latent, values, method=method, title=title, seed=seed, max_categories=max_categories
    )


# ----------------------------------------------------------------------------- files
FIGURE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure_format(path: str | os.PathLike) -> str:
    """The figure format of ``path`` by its suffix; raise for one vaekit does not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(
            f"cannot tell the figure format of {path}; end the name with one of "
            f"{list(FIGURE_FORMATS)}"
        )
    return FIGURE_FORMATS[suffix]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG, SVG or PDF (by the suffix of ``path``), atomically.

    Examples
    --------
    >>> save_figure(latent_map(np.eye(4)), "map.svg")  # doctest: +SKIP
    """
    fmt = figure_format(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)  # tmp ends in .tmp: the format must be explicit
    return Path(path)


def write_latent_map(
    model: BaseVAE,
    X: Any,
    path: str | os.PathLike,
    y: Any = None,
    color: Any = None,
    *,
    method: str = "pca",
    seed: int = 0,
    dpi: int = 150,
    layer: str | None = None,
) -> Path:
    """Draw the latent map of X (see :func:`plot_latent`) and save it to ``path``.

    The path is checked before any work, so a wrong suffix or folder fails at once.

    Examples
    --------
    >>> write_latent_map(vaekit.load("model"), adata, "map.png", color="label")  # doctest: +SKIP
    """
    figure_format(path)
    if Path(path).is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    check_parent(path)
    fig = plot_latent(model, X, y, color, method=method, seed=seed, layer=layer)
    return save_figure(fig, path, dpi=dpi)
