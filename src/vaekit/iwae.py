"""The importance-sampled log-likelihood of a :class:`~vaekit.model.VAEModule`, in blocks of
rows and draws: what :meth:`vaekit.VAE.log_likelihood` and the ``"iwae"`` anomaly score use."""

from __future__ import annotations

import math

import torch

from vaekit._deprecation import draws_keyword
from vaekit._runtime import chunk_rows, row_normal
from vaekit.batch import Batch
from vaekit.config import ModelConfig
from vaekit.model import VAEModule

CPU_ROWS = 1024  # decoded rows per block on the CPU: the decoder's activations stay in cache
# float32 values a decoded row holds at once, per input feature: with an MLP its copy of x,
# mask, the likelihood's parameters and log-probabilities; a conv decoder's ~50 maps per pixel.
VALUES_PER_FEATURE = {"mlp": 8, "conv": 50}


def row_values(config: ModelConfig) -> int:
    """float32 values that decoding and scoring one row holds at once (what a chunk of rows
    on a GPU is sized by, :func:`vaekit._runtime.chunk_rows`)."""
    per_feature = VALUES_PER_FEATURE.get(config.architecture, max(VALUES_PER_FEATURE.values()))
    return per_feature * config.n_input + 2 * sum(config.decoder_layers) + 4 * config.n_latent


@torch.no_grad()
@draws_keyword
def log_likelihood(
    module: VAEModule,
    batch: Batch,
    n_draws: int = 1000,
    max_rows: int | None = None,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    first_row: int = 0,
) -> torch.Tensor:
    """(B,) importance-sampled log p(x) with q(z | x) as proposal (Burda et al. 2016).

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K. Samples and
    draws are decoded in blocks of about ``max_rows`` rows; by default the device decides
    (:func:`~vaekit._runtime.chunk_rows`): on the CPU 1024, which keep the decoder's
    activations in cache (timings in benchmarks/README.md, log_likelihood_speed.py), on a GPU
    as many as its free memory holds.

    With ``seed``, draw j of row i (row ``first_row + i`` of the data) is a function of
    (seed, row, j) alone (:func:`~vaekit._runtime.row_normal`), so the estimate does not
    depend on the blocks, nor on which rows are evaluated together; otherwise the draws come
    from ``generator`` (torch's default generator when None).

    Examples
    --------
    >>> ll = log_likelihood(module, module.batch(x), n_draws=100, seed=0)  # doctest: +SKIP
    """
    if max_rows is None:
        max_rows = chunk_rows(batch.x.device, row_values(module.config), CPU_ROWS)
    blocks = [
        _block(module, batch.slice(i, max_rows), n_draws, max_rows, generator, seed, first_row + i)
        for i in range(0, len(batch), max_rows)
    ]
    return torch.cat(blocks)


def _block(
    module: VAEModule,
    batch: Batch,
    n_draws: int,
    max_rows: int,
    generator: torch.Generator | None,
    seed: int | None,
    first_row: int,
) -> torch.Tensor:
    qz = module.encode(batch.x, batch.condition, batch.observed)
    chunk = max(1, min(n_draws, max_rows // len(batch)))
    device = batch.x.device
    rows = torch.arange(first_row, first_row + len(batch), device=device)
    parts = []
    for start in range(0, n_draws, chunk):
        k = min(chunk, n_draws - start)
        noise = None
        if seed is not None:  # (k, B, L)
            draws = torch.arange(start, start + k, device=device)
            noise = row_normal(seed, rows, draws, qz.loc.shape[-1])
        draws = module.importance_draws(batch, k, qz, generator, noise=noise)
        parts.append(torch.logsumexp(draws.log_px - draws.log_ratio, dim=0))  # (B,)
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(n_draws)
