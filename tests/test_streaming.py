"""Preprocessing fitted a block of rows at a time (for backed data) equals the in-memory fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vaekit.data.preprocess import Preprocessor, SelectVariable
from vaekit.data.streaming import StreamStats

PIPELINES = [
    ["normalize_total", "log1p", SelectVariable(6), "zscore"],
    ["log1p", SelectVariable(5, "mad"), "center"],
    ["minmax"],
    [{"name": "normalize_total", "target_sum": 1e4}, "log1p", {"name": "zscore", "center": False}],
    [SelectVariable(7), "normalize_total"],
]
# Blocks of uneven sizes, one of a single row, so that every merge path runs.
CUTS = [0, 1, 8, 21, 60, 61, 150, 200]


def counts(seed: int, sparse: bool) -> np.ndarray | sp.csr_matrix:
    """200 x 12 counts with features of distinct spread (so the selection has no ties)."""
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.normal(0, 1, (200, 1)) + np.linspace(-1.5, 2.5, 12))
    X = rng.poisson(rate * (rng.random((200, 12)) < 0.6)).astype(np.float32)
    X[:, 0] += 1  # no sample is empty
    return sp.csr_matrix(X) if sparse else X


def blocks_of(X, calls: list[int]):
    def blocks():
        calls.append(1)
        return (X[a:b] for a, b in zip(CUTS[:-1], CUTS[1:], strict=True))
    return blocks


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("steps", PIPELINES, ids=lambda s: "-".join(map(str, s))[:40])
def test_streaming_fit_equals_in_memory(steps, sparse):
    X = counts(3, sparse)
    names = [f"g{i}" for i in range(12)]
    whole = Preprocessor(steps)
    whole.fit_transform(X, names)
    streamed = Preprocessor(steps).fit_stream(blocks_of(X, []), names)
    assert streamed.features_ == whole.features_
    expected, got = whole.state(), streamed.state()
    assert expected.keys() == got.keys()
    for key in expected:
        # float32 statistics: the in-memory fit of a dense float32 matrix sums in float32
        # (relative rounding ~ n * 2^-24 at worst, 1.2e-5 for n = 200), the streamed one in
        # float64; both are stored as float32.
        np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(
        _dense(streamed.transform(X)), _dense(whole.transform(X)), rtol=1e-4, atol=1e-5
    )


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


@pytest.mark.parametrize(("steps", "passes"), [
    ([], 0),
    (["log1p"], 0),
    ([{"name": "normalize_total", "target_sum": 1e4}, "log1p"], 0),
    (["log1p", "zscore"], 1),
    (["normalize_total", "log1p", SelectVariable(6), "zscore"], 2),
    (["normalize_total", "log1p", SelectVariable(6, "mad"), "zscore"], 3),
])
def test_one_pass_per_new_input(steps, passes):
    """A pass only where a step needs statistics of an input not yet summarised: the selection
    and the scaling after it share one."""
    calls: list[int] = []
    Preprocessor(steps).fit_stream(blocks_of(counts(0, True), calls), [f"g{i}" for i in range(12)])
    assert len(calls) == passes


def test_merged_variance_does_not_cancel():
    """Values of 1e8 + noise: summing squares in float64 would lose every digit of a variance
    near 1 (1e16 against float64's 16 digits); the pairwise merge keeps it to rounding."""
    rng = np.random.default_rng(5)
    X = 1e8 + rng.normal(0, 1, (1000, 3))
    stats = StreamStats.of(lambda: (X[a:a + 37] for a in range(0, 1000, 37)), needs={"columns"})
    np.testing.assert_allclose(stats.var, X.var(0), rtol=1e-9)
    np.testing.assert_allclose(stats.mean, X.mean(0), rtol=1e-15)
    assert stats.n == 1000


def test_sparse_statistics_count_implicit_zeros():
    X = sp.csr_matrix(np.array([[0.0, 2.0], [0.0, 0.0], [4.0, -1.0], [0.0, 3.0]]))
    stats = StreamStats.of(lambda: (X[:1], X[1:3], X[3:]), needs={"columns", "deviation"})
    dense = X.toarray()
    np.testing.assert_allclose(stats.min, dense.min(0))
    np.testing.assert_allclose(stats.max, dense.max(0))
    np.testing.assert_allclose(stats.deviation, np.abs(dense - dense.mean(0)).mean(0))
    np.testing.assert_allclose(stats.totals, dense.sum(1))


def test_unknown_statistic_is_refused():
    with pytest.raises(ValueError, match="unknown statistics"):
        StreamStats.of(lambda: (), needs={"median"})
