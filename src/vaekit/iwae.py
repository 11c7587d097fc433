"""The importance-sampled log-likelihood of a :class:`~vaekit.model.VAEModule`, in blocks of
rows and draws: what :meth:`vaekit.VAE.log_likelihood` and the ``"iwae"`` anomaly score use."""

from __future__ import annotations

import math

import torch

from vaekit._deprecation import draws_keyword
from vaekit.batch import Batch
from vaekit.model import VAEModule


@torch.no_grad()
@draws_keyword
def log_likelihood(
    module: VAEModule,
    batch: Batch,
    n_draws: int = 1000,
    max_rows: int = 1024,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B,) importance-sampled log p(x) with q(z | x) as proposal (Burda et al. 2016).

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K. Samples and
    draws are decoded in blocks of about ``max_rows`` rows, which keep the decoder's
    activations in a CPU's cache (timings in benchmarks/README.md, log_likelihood_speed.py).

    Examples
    --------
    >>> ll = log_likelihood(module, module.batch(x), n_draws=100)  # doctest: +SKIP
    """
    blocks = [
        _block(module, batch.slice(i, max_rows), n_draws, max_rows, generator)
        for i in range(0, len(batch), max_rows)
    ]
    return torch.cat(blocks)


def _block(
    module: VAEModule,
    batch: Batch,
    n_draws: int,
    max_rows: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    qz = module.encode(batch.x, batch.condition, batch.observed)
    chunk = max(1, min(n_draws, max_rows // len(batch)))
    parts = []
    for start in range(0, n_draws, chunk):
        k = min(chunk, n_draws - start)
        draws = module.importance_draws(batch, k, qz, generator)
        parts.append(torch.logsumexp(draws.log_px - draws.log_ratio, dim=0))  # (B,)
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(n_draws)
