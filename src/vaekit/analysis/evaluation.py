"""Held-out numbers of a fitted model: ELBO and its parts, importance-sampled log-likelihood."""

from __future__ import annotations

from typing import Any

import numpy as np

from vaekit.estimator import VAE
from vaekit.train import ACTIVE_THRESHOLD


def evaluate(
    model: VAE,
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
    terms = model.elbo_terms(X, y, layer=layer, seed=seed)
    result = {
        "n_samples": len(terms),
        "elbo": float(terms["elbo"].mean()),
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float(terms["kl"].mean()),
        **latent_usage(model, X, y, layer=layer),
    }
    if importance_samples > 0:
        ll = model.log_likelihood(X, y, layer=layer, n_samples=importance_samples, seed=seed)
        result["log_likelihood"] = float(ll.mean())
        result["importance_samples"] = importance_samples
    return result


def latent_usage(model: VAE, X: Any, y: Any = None, *, layer: str | None = None) -> dict[str, Any]:
    """``n_latent``, ``active_units`` and ``kl_per_feature`` (list, nats) of a model on X."""
    mean, logvar = model.encode(X, y, layer=layer)
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1 - logvar)  # KL(N(mu, s^2) || N(0, 1)) per feature
    return {
        "n_latent": int(mean.shape[1]),
        "active_units": int((mean.var(0) > ACTIVE_THRESHOLD).sum()),
        "kl_per_feature": [float(v) for v in kl.mean(0)],
    }
