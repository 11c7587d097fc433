"""Statistics of a matrix read a block of rows at a time: what preprocessing steps are fitted
from when the data never fit in memory (:meth:`vaekit.data.preprocess.Preprocessor.fit_stream`).

Column means and variances are merged block by block with the pairwise update of Chan, Golub
and LeVeque (1979) in float64, which keeps the variance exact to rounding where the textbook
sum of squares would cancel; a sparse block is summarised without densifying it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

Matrix = np.ndarray | sp.csr_matrix
# What a step's streaming fit reads: the row totals, the columns' moments and ranges, and the
# columns' mean absolute deviation (a second pass: it needs the means first).
NEEDS = ("rows", "columns", "deviation")


@dataclass
class StreamStats:
    """Per-column count, mean, variance (ddof 0), minimum, maximum and, when asked, mean
    absolute deviation from the mean; and the row totals, in row order.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])
    >>> stats = StreamStats.of(lambda: (X[:2], X[2:]), needs={"columns"})
    >>> stats.mean, stats.var
    (array([3., 4.]), array([2.66666667, 2.66666667]))
    """

    n: int = 0
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    deviation: np.ndarray | None = None
    totals: list[np.ndarray] | np.ndarray = field(default_factory=list)
    has: frozenset[str] = frozenset(("rows", "columns"))  # which of NEEDS these describe

    @classmethod
    def of(
        cls,
        blocks: Callable[[], Iterable[Matrix]],
        steps: Sequence[Any] = (),
        needs: Iterable[str] = ("rows", "columns"),
    ) -> StreamStats:
        """The statistics of the blocks that ``blocks()`` yields, each passed through the
        fitted ``steps`` first: one pass, and a second for ``"deviation"``."""
        needs = set(needs)
        unknown = needs - set(NEEDS)
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)}; choose from {NEEDS}")
        stats = cls()
        for block in _through(blocks(), steps):
            stats.add(block)
        stats.totals = np.concatenate(stats.totals) if stats.totals else np.zeros(0)
        if "deviation" in needs:
            stats.deviation = _mean_absolute_deviation(_through(blocks(), steps), stats)
            stats.has = stats.has | {"deviation"}
        return stats

    def add(self, block: Matrix) -> None:
        """Merge one block of rows into the statistics."""
        m = block.shape[0]
        if m == 0:
            return
        mean, var, low, high = _block_moments(block)
        self.totals.append(np.asarray(block.sum(axis=1), dtype=np.float64).ravel())
        if self.n == 0:
            self.n, self.mean, self.var, self.min, self.max = m, mean, var, low, high
            return
        n = self.n + m
        delta = mean - self.mean
        # Chan et al.: M2 = M2_a + M2_b + delta^2 * n_a * n_b / n, with M2 = variance * count
        m2 = self.var * self.n + var * m + delta**2 * (self.n * m / n)
        self.mean = self.mean + delta * (m / n)
        self.var, self.n = m2 / n, n
        self.min, self.max = np.minimum(self.min, low), np.maximum(self.max, high)

    def columns(self, index: np.ndarray) -> StreamStats:
        """The statistics of the columns ``index`` (the row totals no longer apply)."""
        pick = [None if v is None else v[index] for v in (self.mean, self.var, self.min,
                                                          self.max, self.deviation)]
        has = self.has - {"rows"}
        return StreamStats(self.n, *pick, totals=np.zeros(0), has=has)


def _through(blocks: Iterable[Matrix], steps: Sequence[Any]) -> Iterable[Matrix]:
    for block in blocks:
        for step in steps:
            block = step.transform(block)
        yield block


def _block_moments(block: Matrix) -> tuple[np.ndarray, ...]:
    """(mean, variance, min, max) of each column of one block, float64."""
    if sp.issparse(block):
        from sklearn.utils.sparsefuncs import mean_variance_axis, min_max_axis

        block = sp.csr_matrix(block, dtype=np.float64)
        mean, var = mean_variance_axis(block, axis=0)
        low, high = min_max_axis(block, axis=0)
        return mean, var, np.asarray(low, np.float64), np.asarray(high, np.float64)
    block = np.asarray(block, dtype=np.float64)
    return block.mean(0), block.var(0), block.min(0), block.max(0)


def _mean_absolute_deviation(blocks: Iterable[Matrix], stats: StreamStats) -> np.ndarray:
    """mean |x - mean| of each column, the means known; a sparse block's implicit zeros each
    add |mean| without being densified."""
    total = np.zeros_like(stats.mean)
    for block in blocks:
        if sp.issparse(block):
            block = sp.csr_matrix(block, dtype=np.float64)
            stored = np.bincount(block.indices, minlength=len(total))
            away = np.abs(block.data - stats.mean[block.indices])
            total += np.bincount(block.indices, weights=away, minlength=len(total))
            total += (block.shape[0] - stored) * np.abs(stats.mean)
        else:
            total += np.abs(np.asarray(block, dtype=np.float64) - stats.mean).sum(0)
    return total / max(1, stats.n)
