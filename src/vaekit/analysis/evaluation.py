"""Held-out numbers of a fitted model: ELBO and its parts, importance-sampled log-likelihood."""

from __future__ import annotations

from typing import Any

from vaekit.estimator import VAE


def evaluate(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    importance_samples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-sample ELBO, reconstruction and KL (nats), and the importance-sampled
    log-likelihood with ``importance_samples`` draws (skipped when 0).

    Examples
    --------
    >>> evaluate(model, X_test, importance_samples=100)  # doctest: +SKIP
    {'n_samples': 450, 'elbo': -25.1, 'reconstruction': 21.3, 'kl': 3.8, 'log_likelihood': -24.6}
    """
    terms = model.elbo_terms(X, y, layer=layer, seed=seed)
    result = {
        "n_samples": len(terms),
        "elbo": float(terms["elbo"].mean()),
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float(terms["kl"].mean()),
    }
    if importance_samples > 0:
        ll = model.log_likelihood(X, y, layer=layer, n_samples=importance_samples, seed=seed)
        result["log_likelihood"] = float(ll.mean())
        result["importance_samples"] = importance_samples
    return result
