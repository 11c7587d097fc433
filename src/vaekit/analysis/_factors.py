"""Checked inputs of :func:`vaekit.analysis.disentanglement`: the latent codes, and the
generative factors as discrete labels (a discrete factor's values, a continuous factor's
histogram bins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Histogram bins of a continuous variable where a metric needs discrete values
# (disentanglement_lib's `discretizer_fn` default, used by MIG).
BINS = 20
# A factor is discrete by default when it has at most this many distinct values (binning it into
# BINS would not coarsen it), or when it is integer-valued with at most MAX_INTEGER_LEVELS.
MAX_LEVELS = BINS
MAX_INTEGER_LEVELS = 64


@dataclass(frozen=True)
class Factors:
    """Generative factors, checked: ``values`` (n, k) float64; ``labels`` (n, k) int, 0-based
    (a discrete factor's levels in sorted order, a continuous one's histogram bins)."""

    names: list[str]
    values: np.ndarray
    labels: np.ndarray
    discrete: np.ndarray  # (k,) bool
    bins: list[int]  # levels of each discrete factor, bins of each continuous one


def check_codes(Z: Any) -> np.ndarray:
    """``Z`` as a finite (n, d) float64 array with d >= 2; ValueError naming what is wrong."""
    try:
        z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Z must hold numbers (latent codes); got {err}") from None
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(
            "Z must be a 2-D array (samples x latent features) with at least 2 rows and 2 "
            f"features (MIG and SAP compare the best feature with the second); got shape {z.shape}"
        )
    bad = ~np.isfinite(z)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"Z has {int(bad.sum())} missing or infinite values, e.g. row {row}, feature {col}"
            f" ({z[row, col]}); encode complete rows only"
        )
    return z


def check_factors(factors: Any, n: int, discrete: Any = None) -> Factors:
    """``factors`` (DataFrame or (n, k) array) checked against ``n`` rows of codes."""
    table = _table(factors)
    if len(table) != n:
        raise ValueError(
            f"factors have {len(table)} rows and Z has {n}; give one row of factors per row of Z"
        )
    names = [str(c) for c in table.columns]
    values = np.column_stack([_numeric(table[c], str(c)) for c in table.columns])
    flags = _discrete_flags(values, names, discrete)
    labels, bins = zip(*(_labels(values[:, j], flags[j]) for j in range(len(names))), strict=True)
    return Factors(names, values, np.column_stack(labels), flags, list(bins))


def _table(factors: Any) -> pd.DataFrame:
    if isinstance(factors, pd.DataFrame):
        table = factors
    else:
        array = np.asarray(factors)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(
                f"factors must be a table (samples x factors); got shape {array.shape}"
            )
        table = pd.DataFrame(array, columns=[f"factor_{j}" for j in range(array.shape[1])])
    if table.shape[1] == 0:
        raise ValueError("factors have no columns; give at least one generative factor")
    twice = table.columns[table.columns.duplicated()]
    if len(twice):
        raise ValueError(f"factors name a column twice: {str(twice[0])!r}; give unique names")
    return table


def _numeric(column: pd.Series, name: str) -> np.ndarray:
    """A factor column as finite float64; ValueError naming the column otherwise."""
    try:
        values = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        examples = [v for v in column.astype(str).unique()[:3]]
        raise ValueError(
            f"factor {name!r} is not numeric (values like {examples}); code its levels as "
            "numbers, e.g. 0, 1, 2"
        ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"factor {name!r} has {int(bad.sum())} missing or infinite values, e.g. row "
            f"{int(np.argmax(bad))}; give every sample a value or leave such rows out"
        )
    if np.unique(values).size < 2:
        raise ValueError(
            f"factor {name!r} takes one value ({values[0]}) in every row: it carries no "
            "information to recover; leave it out"
        )
    return values


def _discrete_flags(values: np.ndarray, names: list[str], discrete: Any) -> np.ndarray:
    if discrete is None:
        return np.array([is_discrete(values[:, j]) for j in range(values.shape[1])])
    flags = np.atleast_1d(np.asarray(discrete))
    if flags.dtype != bool or flags.shape != (len(names),):
        raise ValueError(
            f"discrete must be one True/False per factor ({len(names)}: {names}); got {discrete!r}"
        )
    return flags


def is_discrete(values: np.ndarray) -> bool:
    """Whether a factor is treated as discrete by default: at most :data:`MAX_LEVELS`
    distinct values, or integer-valued with at most :data:`MAX_INTEGER_LEVELS`."""
    levels = np.unique(values).size
    integer = bool(np.all(values == np.round(values)))
    return levels <= MAX_LEVELS or (integer and levels <= MAX_INTEGER_LEVELS)


def _labels(values: np.ndarray, discrete: bool) -> tuple[np.ndarray, int]:
    if discrete:
        levels, labels = np.unique(values, return_inverse=True)
        return labels, len(levels)
    return histogram_bins(values), BINS


def histogram_bins(x: np.ndarray, bins: int = BINS) -> np.ndarray:
    """0-based equal-width histogram bins of ``x`` (disentanglement_lib's
    `_histogram_discretize`: ``np.digitize`` on the inner edges of ``np.histogram``)."""
    edges = np.histogram(x, bins)[1]
    return np.digitize(x, edges[1:-1])
