"""Moving through the latent space: interpolation between two samples and traversals of one
latent feature at a time, decoded, as tables or image grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vaekit.analysis._limits import MAX_STEPS, check_count
from vaekit.analysis.evaluation import latent_usage
from vaekit.data.writers import image_grid
from vaekit.estimator import BaseVAE

# Below this norm a latent point has no direction; below this |sin(angle)| two points share one.
_TINY = 1e-7


@dataclass
class LatentPath:
    """Points on a path through the latent space and their decodings.

    Attributes
    ----------
    t : ndarray, (steps,)
        Position on the path, 0 at the start and 1 at the end.
    z : ndarray, (steps, n_latent)
    x : ndarray, (steps, n_features)
        Decoded, in the space the decoder models (``feature_names``).
    method : str
    feature_names : list of str
    """

    t: np.ndarray
    z: np.ndarray
    x: np.ndarray
    method: str
    feature_names: list[str]

    def to_frame(self) -> pd.DataFrame:
        """One row per step: ``t``, then the decoded features."""
        frame = pd.DataFrame(self.x, columns=self.feature_names, index=pd.RangeIndex(len(self.t)))
        frame.index.name = "step"
        frame.insert(0, "t", self.t)
        return frame


@dataclass
class Traversal:
    """Latent features varied one at a time around a base point, decoded.

    Attributes
    ----------
    z : ndarray, (n_shown, n_values, n_latent)
    x : ndarray, (n_shown, n_values, n_features)
    features : list of int
        The latent features shown, in the order of the rows.
    values : ndarray, (n_values,)
        Offsets added to each feature's base value.
    kl : ndarray, (n_shown,) or None
        Mean KL(q(z_j | x) || N(0, 1)) of each shown feature in nats; None when ``ordered_by``
        is ``"index"``.
    ordered_by : str
        ``"kl over data"``, ``"kl of the sample"`` or ``"index"`` (no data to measure KL on).
    feature_names : list of str
        The decoded features.
    """

    z: np.ndarray
    x: np.ndarray
    features: list[int]
    values: np.ndarray
    kl: np.ndarray | None
    ordered_by: str
    feature_names: list[str]

    def to_frame(self) -> pd.DataFrame:
        """A long table: ``feature`` (latent), ``value``, then the decoded features."""
        n_shown, n_values, _ = self.x.shape
        frame = pd.DataFrame(self.x.reshape(n_shown * n_values, -1), columns=self.feature_names)
        frame.insert(0, "value", np.tile(self.values, n_shown))
        frame.insert(0, "feature", np.repeat(self.features, n_values))
        return frame


# ------------------------------------------------------------------ interpolation methods
def _linear(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1 - t)[:, None] * z0 + t[:, None] * z1  # (steps, n_latent)


def _slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    # Spherical interpolation of the direction (Shoemake 1985; White 2016, "Sampling generative
    # networks") with the norm interpolated linearly, so it stays between the ends' norms.
    r0, r1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if min(r0, r1) < _TINY:
        return _linear(z0, z1, t)
    u0, u1 = z0 / r0, z1 / r1
    angle = np.arccos(np.clip(u0 @ u1, -1.0, 1.0))
    if np.sin(angle) < _TINY:  # (anti)parallel: no unique great circle
        return _linear(z0, z1, t)
    w0 = np.sin((1 - t) * angle) / np.sin(angle)
    w1 = np.sin(t * angle) / np.sin(angle)
    direction = w0[:, None] * u0 + w1[:, None] * u1
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return ((1 - t) * r0 + t * r1)[:, None] * direction


INTERPOLATIONS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "linear": _linear,
    "slerp": _slerp,
}


# ------------------------------------------------------------------ public functions
def interpolate(
    model: BaseVAE,
    a: Any,
    b: Any,
    steps: int = 8,
    method: str = "linear",
    y: Any = None,
    *,
    latent: bool = False,
    mean: bool = True,
    seed: int = 0,
) -> LatentPath:
    """The decoded path from ``a`` to ``b`` (both ends included).

    Parameters
    ----------
    model : VAE
        A fitted model.
    a, b : one sample or one latent point
        A sample is a 1-D feature vector, or a one-row array, DataFrame or AnnData; it is
        encoded to its posterior mean. With ``latent=True`` both are latent points of
        length ``n_latent``.
    steps : int
        Points on the path, at least 2.
    method : str
        ``"linear"`` or ``"slerp"`` (keys of :data:`INTERPOLATIONS`).
    y : optional
        The one condition of the whole path, required for a conditional model; text is
        matched to the model's categories as on the command line.
    latent : bool
        ``a`` and ``b`` are latent points, not samples.
    mean : bool
        Decode to the expected value rather than a draw from p(x | z) (seeded by ``seed``).

    Returns
    -------
    LatentPath

    Examples
    --------
    >>> path = interpolate(model, X[0], X[1], steps=5, method="slerp")  # doctest: +SKIP
    >>> path.x.shape  # doctest: +SKIP
    (5, 64)
    """
    _check_steps(steps)
    blend = _method(method)
    y = _condition(model, y, "the whole path")
    z0, z1 = _point(model, a, y, latent, "a"), _point(model, b, y, latent, "b")
    t = np.linspace(0.0, 1.0, steps)
    z = blend(z0, z1, t)
    z[0], z[-1] = z0, z1  # exact ends, whatever the rounding of the method
    x = model.decode(z, y, mean=mean, seed=seed)
    return LatentPath(t, z, x, method, list(model.features_))


def midpoint(
    model: BaseVAE,
    a: Any,
    b: Any,
    y: Any = None,
    *,
    method: str = "linear",
    latent: bool = False,
    mean: bool = True,
) -> np.ndarray:
    """The decoding of the point halfway between ``a`` and ``b`` in the latent space, e.g. a
    guess at an unseen state of a time course between two observed ones.

    Arguments are those of :func:`interpolate`.

    Returns
    -------
    ndarray, (n_features,)
        In the space the decoder models, features ``model.features_``.

    Examples
    --------
    >>> guess = midpoint(model, X_day0, X_day2)  # doctest: +SKIP
    """
    return interpolate(model, a, b, 3, method, y, latent=latent, mean=mean).x[1]


def traverse(
    model: BaseVAE,
    x: Any = None,
    features: int | Sequence[int] | None = None,
    values: Sequence[float] | np.ndarray | None = None,
    y: Any = None,
    *,
    data: Any = None,
    data_y: Any = None,
    mean: bool = True,
    seed: int = 0,
) -> Traversal:
    """Vary one latent feature at a time around the posterior mean of ``x`` (or the origin),
    decoded; features ordered by how much the encoder uses them.

    The order is by the mean KL(q(z_j | x) || N(0, 1)) of each feature over ``data`` when given,
    else over the sample ``x``, else by index (``ordered_by`` says which).

    Parameters
    ----------
    model : VAE
    x : one sample, optional
        As for :func:`interpolate`; the origin when None.
    features : int, sequence of int or None
        All latent features (None), the top k by KL (an int; all when k >= n_latent), or
        these features in this order.
    values : 1-D array-like
        Offsets added to the feature's base value; default -3, -2, ..., 3 (prior SDs).
    y : optional
        The condition of ``x`` and of the decodings, required for a conditional model.
    data : array-like, optional
        Samples on which to measure the KL per feature.
    data_y : optional
        Conditions of ``data`` (a conditional model), or the AnnData ``obs`` columns holding them.
    mean : bool
        Decode to the expected value rather than a draw from p(x | z).

    Returns
    -------
    Traversal

    Examples
    --------
    >>> tr = traverse(model, X[0], features=4, data=X)  # doctest: +SKIP
    >>> tr.x.shape  # 4 features x 7 values x 64 pixels  # doctest: +SKIP
    (4, 7, 64)
    """
    n_latent = model.module_.config.n_latent
    values = traversal_values() if values is None else _check_values(values)
    y = _condition(model, y, "the sample and the traversal")
    base = np.zeros(n_latent) if x is None else _point(model, x, y, False, "x")
    kl, ordered_by = _feature_kl(model, x, y, data, data_y)
    order = np.arange(n_latent) if kl is None else np.argsort(-kl, kind="stable")
    shown = _choose(features, order, n_latent)
    z = np.tile(base, (len(shown), len(values), 1))  # (n_shown, n_values, n_latent)
    z[np.arange(len(shown)), :, shown] += values
    decoded = model.decode(z.reshape(-1, n_latent), y, mean=mean, seed=seed)
    return Traversal(
        z,
        decoded.reshape(len(shown), len(values), -1),
        [int(j) for j in shown],
        values,
        None if kl is None else kl[shown],
        ordered_by,
        list(model.features_),
    )


def traversal_values(limit: float = 3.0, steps: int = 7) -> np.ndarray:
    """``steps`` evenly spaced offsets from ``-limit`` to ``limit``.

    Examples
    --------
    >>> traversal_values(2, 5)
    array([-2., -1.,  0.,  1.,  2.])
    """
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f"the range must be a positive number; got {limit!r}")
    _check_steps(steps)
    return np.linspace(-limit, limit, steps)


def to_image_grid(
    result: LatentPath | Traversal, image_shape: tuple[int, ...], pad: int = 2
) -> np.ndarray:
    """One uint8 picture of the decoded images: a row of frames for a path, a row per
    feature and a column per value for a traversal.

    Examples
    --------
    >>> write_png(to_image_grid(path, model.image_shape_), "path.png")  # doctest: +SKIP
    """
    if image_shape is None or int(np.prod(image_shape)) != result.x.shape[-1]:
        raise ValueError(
            f"image shape {image_shape} does not hold the {result.x.shape[-1]} decoded features; "
            "write a table instead"
        )
    n_cols = result.x.shape[-2] if result.x.ndim == 3 else result.x.shape[0]
    return image_grid(result.x.reshape(-1, result.x.shape[-1]), image_shape, n_cols, pad)


def find_sample(data: Any, key: str | int) -> Any:
    """The one-row slice of ``data`` (AnnData or DataFrame) whose sample ID is ``key``, else
    whose 0-based row number it is.

    Examples
    --------
    >>> find_sample(adata, "s3").n_obs  # doctest: +SKIP
    1
    """
    names = pd.Index(data.obs_names if hasattr(data, "obs_names") else data.index).astype(str)
    text = str(key)
    if text in names:
        row = int(np.flatnonzero(names == text)[0])
    elif text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
        row = int(text)
    else:
        raise ValueError(
            f"no sample {text!r}: give a sample ID (e.g. {list(names[:3])}) or a row number "
            f"0..{len(names) - 1}"
        )
    return data[row : row + 1] if hasattr(data, "obs_names") else data.iloc[row : row + 1]


# ------------------------------------------------------------------ helpers
def _check_steps(steps: int) -> None:
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (both ends are included); got {steps!r}")
    check_count("steps", steps, low=2, high=MAX_STEPS)  # a path nobody could look at


def _method(method: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    if method not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation method {method!r}; use one of {list(INTERPOLATIONS)}"
        )
    return INTERPOLATIONS[method]


def _check_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) == 0 or not np.isfinite(arr).all():
        raise ValueError(f"values must be a non-empty 1-D list of finite numbers; got {values!r}")
    return arr


def _condition(model: BaseVAE, y: Any, what: str) -> Any:
    """One condition as the model's methods take it: a one-row array, so that text is never
    read as the name of an AnnData column."""
    encoder = model.covariates_
    if encoder is None:
        if y is not None:
            raise ValueError(f"this model is not conditional; drop the condition (got {y!r})")
        return None
    if y is None:
        names = [c.name for c in encoder.columns]
        raise ValueError(
            f"this model is conditional on {names}; give one condition for {what} "
            "(y=..., or --condition on the command line)"
        )
    if isinstance(y, str):
        y = encoder.parse(y)
    if isinstance(y, (pd.DataFrame, pd.Series, np.ndarray, list, tuple)):
        return y
    return np.array([y], dtype=object)


def _point(model: BaseVAE, v: Any, y: Any, latent: bool, name: str) -> np.ndarray:
    """A latent point as given, or the posterior mean of one sample; (n_latent,)."""
    n_latent = model.module_.config.n_latent
    if latent:
        z = np.asarray(v, dtype=float)
        if z.ndim == 2 and z.shape[0] == 1:
            z = z[0]
        if z.shape != (n_latent,) or not np.isfinite(z).all():
            raise ValueError(
                f"{name} must be a latent point of {n_latent} finite values; got shape {z.shape}"
            )
        return z
    v = _one_row(v)
    n_rows = getattr(v, "shape", (None,))[0]
    if n_rows != 1:
        raise ValueError(
            f"{name} must be one sample (a 1-D vector or a one-row table); got {n_rows} rows. "
            "Pick one row, e.g. X[i], or pass latent=True for latent points"
        )
    return model.transform(v, y)[0].astype(float)


def _feature_kl(
    model: BaseVAE, x: Any, y: Any, data: Any, data_y: Any
) -> tuple[np.ndarray | None, str]:
    """Mean KL per latent feature, (n_latent,), and what it was measured on."""
    if data is not None:
        usage, source = latent_usage(model, data, data_y), "kl over data"
    elif x is not None:
        usage, source = latent_usage(model, _one_row(x), y), "kl of the sample"
    else:
        return None, "index"
    return np.asarray(usage["kl_per_feature"]), source


def _one_row(v: Any) -> Any:
    """A 1-D sample as a one-row table; anything else as it is."""
    if isinstance(v, pd.Series):
        return v.to_frame().T  # keeps the feature names, to be matched to the model's
    if isinstance(v, (list, tuple, np.ndarray)) and np.ndim(v) == 1:
        return np.asarray(v)[None, :]
    return v


def _choose(features: int | Sequence[int] | None, order: np.ndarray, n_latent: int) -> np.ndarray:
    """Indices of the latent features to show, in display order."""
    if features is None:
        return order
    if isinstance(features, (int, np.integer)) and not isinstance(features, bool):
        if features < 1:
            raise ValueError(f"features must be a positive number of features; got {features}")
        return order[:features]
    chosen = np.asarray(features)
    if chosen.ndim != 1 or len(chosen) == 0 or not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(f"features must be an int or a list of feature indices; got {features!r}")
    if chosen.min() < 0 or chosen.max() >= n_latent:
        raise ValueError(f"latent features are numbered 0..{n_latent - 1}; got {chosen.tolist()}")
    return chosen
