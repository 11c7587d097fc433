"""Rows of the data as the figures need them: subsets, conditions, and values in the space the
decoder models."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from vaekit.validation import is_anndata, resolve_y, take_rows

if TYPE_CHECKING:
    from vaekit.vae import VAE


def n_rows(X: Any) -> int:
    """Samples in X: an AnnData, a table, an array or a sparse matrix."""
    return int(X.n_obs) if is_anndata(X) else int(X.shape[0])


def conditions(X: Any, y: Any) -> Any:
    """One condition per sample of X: ``y`` as given, or the AnnData ``obs`` columns it names,
    so that subsets of X can be given their own rows of it."""
    return None if y is None else resolve_y(X, y)


def take_conditions(y: Any, rows: np.ndarray) -> Any:
    """The conditions of ``rows``; a single condition for all samples stays as it is."""
    return take_rows(y, rows)


def subsample(n: int, most: int | None, seed: int = 0) -> np.ndarray:
    """All of ``range(n)``, or ``most`` of them drawn at random (sorted), seeded."""
    if most is None or n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))


def as_array(values: Any) -> np.ndarray:
    """A model's output (an array, or a DataFrame when X had sample names) as float64."""
    return np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values, np.float64)


def modelled(model: VAE, X: Any, y: Any = None, *, layer: str | None = None) -> np.ndarray:
    """X as the decoder sees it, (n, len(model.features_)), dense: prepared as the model
    prepares its inputs (:meth:`~vaekit.estimator.BaseVAE.prepare`), so that it compares with
    ``model.reconstruct(X, y)``; NaN where a mask-aware model's X has missing entries."""
    values = model.prepare(X, y, layer=layer).table.X
    return np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float64)


def image_shape(model: VAE, shape: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
    """The shape of the images the model's rows are, or None when its rows are not whole
    images (no shape known, or preprocessing kept some of the pixels)."""
    shape = shape if shape is not None else getattr(model, "image_shape_", None)
    if shape is None or math.prod(shape) != len(model.features_):
        return None
    return tuple(int(v) for v in shape)


def require_image_shape(model: VAE, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    found = image_shape(model, shape)
    if found is None:
        given = shape if shape is not None else getattr(model, "image_shape_", None)
        raise ValueError(
            f"this figure shows images, but the model's {len(model.features_)} modelled "
            f"features are not whole images of shape {given}; pass image_shape=(H, W) or "
            "(C, H, W), or use the table figures (reconstruction_scatter, sample_moments)"
        )
    return found


def tile(shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of one image of ``shape``."""
    return int(shape[-2]), int(shape[-1])
