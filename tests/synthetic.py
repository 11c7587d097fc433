"""Synthetic data with known structure for tests."""

from __future__ import annotations

import numpy as np


def counts(n: int = 200, d: int = 30, seed: int = 0) -> np.ndarray:
    """Low-rank negative-binomial-like counts with varying library sizes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    rho = np.exp(z @ rng.normal(size=(3, d)))
    rho /= rho.sum(1, keepdims=True)
    library = rng.lognormal(np.log(500), 0.3, size=(n, 1))
    return rng.poisson(rng.gamma(5.0, rho * library / 5.0)).astype(np.float32) + (
        np.arange(d) == 0
    )  # +1 in the first gene: no sample is all zero
