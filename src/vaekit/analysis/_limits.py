"""Checks of the counts an analysis is asked for, made before any work.

A count the user types (samples to generate, steps of a path, importance draws) is refused when
it is not an integer in range, or when the result would not fit in memory: a mistyped
``-n 2000000000`` gets a message naming the limit instead of an allocation the kernel kills.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Values in one result (rows x features): 100 million float64 are 0.8 GB, as much as a table
# written to one file can usefully hold; ask for more in parts (other seeds, fewer features).
MAX_VALUES = 100_000_000
# Importance draws or optimisation steps per sample: beyond this the run takes days, and the
# estimates stopped improving long before (their error falls as 1 / sqrt(draws)).
MAX_DRAWS = 100_000
# Copies of a multiple imputation (Rubin's rules use 5 to 100).
MAX_IMPUTATIONS = 10_000
# Points on a path or traversal: more than anyone can look at.
MAX_STEPS = 100_000


def check_count(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int; raise ValueError naming ``name`` when it is not an integer in
    ``[low, high]``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high:,}; got {value:,}")
    return int(value)


def check_size(what: str, rows: int, columns: int) -> None:
    """Raise when a result of ``rows`` x ``columns`` values would exceed :data:`MAX_VALUES`."""
    if rows * columns > MAX_VALUES:
        raise ValueError(
            f"{what} would be {rows:,} rows x {columns:,} features = {rows * columns:,} values "
            f"({rows * columns * 8 / 1e9:,.1f} GB); at most {MAX_VALUES:,} fit in one result: "
            "ask for fewer rows, in parts"
        )


def check_positive(name: str, value: Any, example: str) -> float:
    """``value`` as a float; raise ValueError when it is not a finite number > 0."""
    if (
        not isinstance(value, (int, float, np.number))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number (e.g. {example}); got {value!r}")
    return float(value)
