"""Held-out numbers of a fitted model: ELBO and its parts, importance-sampled log-likelihood."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.distributions import Normal

from vaekit.analysis._limits import MAX_DRAWS, check_count
from vaekit.estimator import BaseVAE
from vaekit.train import usage_record, usage_sums


def evaluate(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    importance_samples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-sample ELBO, reconstruction and KL (nats), the importance-sampled
    log-likelihood with ``importance_samples`` draws (skipped when 0), and how the latent
    features are used: ``active_units`` (Burda et al. 2016: the posterior mean varies over X by
    more than 0.01) of ``n_latent``, and ``kl_per_feature``, the mean KL of each feature.

    Examples
    --------
    >>> evaluate(model, X_test, importance_samples=100)  # doctest: +SKIP
    {'n_samples': 450, 'elbo': -25.1, 'reconstruction': 21.3, 'kl': 3.8, 'active_units': 6, ...}
    """
    check_count("importance_samples", importance_samples, low=0, high=MAX_DRAWS)
    terms = model.elbo_terms(X, y, layer=layer, seed=seed)
    result = {
        "n_samples": len(terms),
        "elbo": float(terms["elbo"].mean()),
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float(terms["kl"].mean()),
        **latent_usage(model, X, y, layer=layer),
    }
    if importance_samples > 0:
        ll = model.log_likelihood(X, y, layer=layer, n_draws=importance_samples, seed=seed)
        result["log_likelihood"] = float(ll.mean())
        result["importance_samples"] = importance_samples
    return result


def latent_usage(
    model: BaseVAE, X: Any, y: Any = None, *, layer: str | None = None
) -> dict[str, Any]:
    """``n_latent``, ``active_units`` and ``kl_per_feature`` (list, nats) of a model on X, by
    the rule training records in ``history_``."""
    mean, logvar = model.encode(X, y, layer=layer)
    qz = Normal(torch.from_numpy(mean), torch.from_numpy(np.exp(0.5 * logvar)))
    record = usage_record(usage_sums(qz), len(mean))
    n_latent = mean.shape[1]
    return {
        "n_latent": int(n_latent),
        "active_units": record["active_units"],
        "kl_per_feature": [record[f"kl_z{j}"] for j in range(n_latent)],
    }
