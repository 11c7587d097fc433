"""Figures of image models: reconstructions beside originals, samples from the prior, and
decoded paths and traversals of the latent space, drawn as grids of tiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.analysis.generation import generate
from vaekit.analysis.paths import interpolate, to_image_grid, traverse
from vaekit.data.writers import image_grid
from vaekit.plot import _data, _style
from vaekit.vae import VAE


def _picture_figure(
    picture: np.ndarray,
    shape: tuple[int, ...],
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    fig = _style.figure(*_style.picture_size(picture, _data.tile(shape)))
    ax = fig.add_subplot()
    _style.show_picture(ax, picture, _data.tile(shape), rows, columns)
    ax.set_title(title)
    return fig


def reconstruction_pairs(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    n: int = 10,
    layer: str | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """The first ``n`` images of X above their reconstructions (the decoder's mean at the
    posterior mean).

    Parameters
    ----------
    model : VAE
        A model of images (``image_shape_``, or give ``image_shape``).
    X : array-like or AnnData
    y : optional
        Conditions of X, for a conditional model.
    n : int
        Images shown, in rows of at most 10 pairs.
    layer : str, optional
    image_shape : tuple, optional
        (H, W) or (C, H, W), for a model that does not record it.

    Returns
    -------
    matplotlib.figure.Figure
        One image: rows of originals, each followed by a row of their reconstructions.

    Examples
    --------
    >>> fig = reconstruction_pairs(model, X_test, n=20)  # doctest: +SKIP
    """
    shape = _data.require_image_shape(model, image_shape)
    n = min(n, _data.n_rows(X))
    rows = np.arange(n)
    X, y = _data.take_rows(X, rows), _data.take_conditions(_data.conditions(X, y), rows)
    # Missing pixels of a mask-aware model's images are drawn mid-grey.
    original = np.nan_to_num(_data.modelled(model, X, y, layer=layer), nan=0.5)
    rebuilt = _data.as_array(model.reconstruct(X, y, layer=layer))
    n_cols = min(n, 10)
    stacked, labels = [], []
    for start in range(0, n, n_cols):  # pairs of rows: originals, then reconstructions
        part = slice(start, min(start + n_cols, n))
        for name, values in (("original", original[part]), ("reconstruction", rebuilt[part])):
            stacked.append(_pad_row(values, n_cols))
            labels.append(name)
    picture = image_grid(np.concatenate(stacked), shape, n_cols)
    return _picture_figure(picture, shape, labels, title=f"{n} images, reconstructed")


def _pad_row(values: np.ndarray, n_cols: int) -> np.ndarray:
    """A row of ``n_cols`` images, blank (white) where there are fewer."""
    blank = np.ones((n_cols - len(values), values.shape[1]))
    return np.concatenate([values, blank]) if len(blank) else values


def prior_samples(
    model: VAE,
    n: int = 10,
    *,
    condition: Any = None,
    seed: int = 0,
    mean: bool = True,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """Images decoded from z ~ N(0, I): a row per class for a model conditioned on a label
    (``n`` each), else one square grid of ``n``.

    Parameters
    ----------
    model : VAE
    n : int
        Samples (per class, for a label-conditioned model without ``condition``).
    condition : optional
        One condition for all samples (text is matched to the model's categories).
    seed : int
    mean : bool
        Show the decoder's mean (a smooth image) rather than a draw from p(x|z) (noisy pixels).
    image_shape : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = prior_samples(model, 10)  # doctest: +SKIP
    """
    shape = _data.require_image_shape(model, image_shape)
    result = generate(model, n, condition, seed=seed, mean=mean)
    per_class = result.conditions is not None and condition is None
    n_cols = n if per_class else math.ceil(math.sqrt(len(result.samples)))
    picture = image_grid(result.samples, shape, n_cols)
    rows = [str(c) for c in result.conditions[::n]] if per_class else None
    what = "decoder means" if mean else "draws"
    return _picture_figure(picture, shape, rows, title=f"Prior samples ({what})")


def interpolation_grid(
    model: VAE,
    X: Any,
    pairs: Sequence[tuple[int, int]],
    y: Any = None,
    *,
    steps: int = 8,
    method: str = "linear",
    layer: str | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """Decoded paths through the latent space between pairs of samples of X, a row per pair.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData
    pairs : sequence of (int, int)
        Row numbers of X: each path runs from the first to the second.
    y : optional
        Conditions of X; a path is decoded under the condition of its start.
    steps : int
        Points per path, both ends included.
    method : {"linear", "slerp"}
    layer : str, optional
    image_shape : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        Columns are the positions t = 0..1 along the paths.

    Examples
    --------
    >>> fig = interpolation_grid(model, X_test, [(0, 1), (2, 3)], steps=8)  # doctest: +SKIP
    """
    shape = _data.require_image_shape(model, image_shape)
    y = _data.conditions(X, y)
    rows = np.unique(np.asarray(pairs, dtype=int).ravel())
    means = model.transform(_data.take_rows(X, rows), _data.take_conditions(y, rows), layer=layer)
    z = dict(zip(rows, means, strict=True))  # each sample encoded once, whatever its pairs
    paths = []
    for a, b in pairs:
        condition = _data.take_conditions(y, np.array([a]))
        paths.append(interpolate(model, z[a], z[b], steps, method, condition, latent=True).x)
    picture = image_grid(np.concatenate(paths), shape, steps)
    columns = [f"{t:.2g}" for t in np.linspace(0, 1, steps)]
    labels = [f"{a} \u2192 {b}" for a, b in pairs]
    return _picture_figure(
        picture, shape, labels, columns, f"{method.capitalize()} paths, t = 0..1"
    )


def traversal_grid(
    model: VAE,
    X: Any = None,
    row: int | None = None,
    y: Any = None,
    *,
    features: int | Sequence[int] | None = 8,
    values: Sequence[float] | np.ndarray | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """One latent feature varied at a time around a sample of X (or the origin), decoded: a
    row per feature, most used first, a column per offset.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData, optional
        Data on which the features are ranked by KL, and from which ``row`` is taken.
    row : int, optional
        The sample to move around; the origin of the latent space when None.
    y : optional
        Conditions of X; the traversal is decoded under that of ``row`` (else of row 0).
    features : int or sequence of int
        The top k features by KL, or these features.
    values : sequence of float, optional
        Offsets; by default -3..3 prior standard deviations.
    image_shape : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = traversal_grid(model, X_test, row=0, features=6)  # doctest: +SKIP
    """
    shape = _data.require_image_shape(model, image_shape)
    if row is not None and X is None:
        raise ValueError(f"row={row} picks a sample of X; pass X too")
    y = None if X is None else _data.conditions(X, y)
    at = np.array([0 if row is None else row])
    condition = _data.take_conditions(y, at)
    x = None if row is None else _data.take_rows(X, at)
    result = traverse(model, x, features, values, condition, data=X, data_y=y)
    picture = to_image_grid(result, shape)
    labels = [f"z{j}" for j in result.features]
    if result.kl is not None:
        labels = [f"{name} ({kl:.1f})" for name, kl in zip(labels, result.kl, strict=True)]
    columns = [f"{v:+.2g}" for v in result.values]
    around = "the origin" if row is None else f"sample {row}"
    title = f"Around {around}" + (" (KL, nats)" if result.kl is not None else "")
    return _picture_figure(picture, shape, labels, columns, title)
