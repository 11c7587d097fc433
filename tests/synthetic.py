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


def planted_cells(
    n: int = 600,
    d: int = 60,
    n_types: int = 3,
    n_batches: int = 2,
    batch_sd: float = 0.8,
    seed: int = 0,
) -> dict:
    """Single-cell-like counts with planted cell types and batch effects.

    Each type raises its own block of d // (2 * n_types) genes 8-fold over a shared log-normal
    baseline; each batch multiplies every gene by its own factor exp(N(0, batch_sd^2)), and
    shifts the cells' library sizes (log-normal around 400 * (1 + batch) counts). Counts are
    negative binomial (gamma-Poisson, inverse dispersion 5). Types and batches are drawn
    independently, so every batch holds every type.

    Returns
    -------
    dict
        ``X`` (n, d) float32 counts; ``types`` and ``batches`` (n,) str labels; ``log_batch``
        (n_batches, d) the planted log factors; ``log_type`` (n_types, d) the type profiles.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 0.5, size=d)
    log_type = np.tile(base, (n_types, 1))
    block = d // (2 * n_types)
    for t in range(n_types):
        log_type[t, t * block : (t + 1) * block] += np.log(8.0)
    log_batch = rng.normal(0.0, batch_sd, size=(n_batches, d))
    types = rng.integers(n_types, size=n)
    batches = rng.integers(n_batches, size=n)
    logits = log_type[types] + log_batch[batches]
    rho = np.exp(logits - logits.max(1, keepdims=True))
    rho /= rho.sum(1, keepdims=True)
    library = rng.lognormal(np.log(400.0 * (1 + batches)), 0.3)[:, None]
    X = rng.poisson(rng.gamma(5.0, rho * library / 5.0)).astype(np.float32)
    X[:, -1] += 1  # no cell is all zero
    return {
        "X": X,
        "types": np.array([f"type{t}" for t in types]),
        "batches": np.array([f"batch{b}" for b in batches]),
        "log_batch": log_batch,
        "log_type": log_type,
    }
