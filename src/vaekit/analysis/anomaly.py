"""Anomaly scores of a fitted VAE, a threshold calibrated on control samples, and per-feature
contributions: which samples deviate from the training (control) distribution, and where.

A new score is one function ``(model, X, y, layer, n_draws, seed) -> (n,) scores`` and one
line in :data:`SCORES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.distributions import Distribution

from vaekit._deprecation import draws_keyword
from vaekit.calibration import Calibration, check_fpr, min_control  # noqa: F401 - re-exported
from vaekit.model import VAEModule, observed_sum

if TYPE_CHECKING:
    from vaekit.batch import Batch
    from vaekit.estimator import BaseVAE


class Score(NamedTuple):
    """One anomaly score: how to compute it and how many posterior draws it takes by default.

    Attributes
    ----------
    fn : callable
        ``fn(model, X, y, layer, n_draws, seed)`` -> (n,) float64, higher = more anomalous.
    n_draws : int
        Default number of posterior draws (importance samples for ``"iwae"``).
    """

    fn: Callable[..., np.ndarray]
    n_draws: int


def _negative_elbo(
    model: BaseVAE, X: Any, y: Any, layer: str | None, n: int, seed: int
) -> np.ndarray:
    return -model.score_samples(X, y, layer=layer, n_draws=n, seed=seed)


def _negative_iwae(
    model: BaseVAE, X: Any, y: Any, layer: str | None, n: int, seed: int
) -> np.ndarray:
    return -model.log_likelihood(X, y, layer=layer, n_draws=n, seed=seed)


def _reconstruction(
    model: BaseVAE, X: Any, y: Any, layer: str | None, n: int, seed: int
) -> np.ndarray:
    # An & Cho (2015): the reconstruction probability E_q[log p(x|z)], by Monte Carlo over q.
    terms = model.elbo_terms(X, y, layer=layer, n_draws=n, seed=seed)
    return terms["reconstruction"].to_numpy()


def _deviance(model: BaseVAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    # Likelihoods rank inputs by their own complexity as much as by their fit (Serra et al.
    # 2020); the saturated model's log-likelihood is that complexity for per-feature families.
    return _negative_elbo(model, X, y, layer, n, seed) + saturated_log_likelihood(
        model, X, y, layer=layer
    )


def _mean_deviance(
    model: BaseVAE, X: Any, y: Any, layer: str | None, n: int, seed: int
) -> np.ndarray:
    # The VAE read as an autoencoder: x decoded from its posterior mean, no draws and no KL.
    # Draws blur the reconstruction of every sample alike, and the KL rewards an encoder that
    # squeezes a new kind of sample into the familiar part of the latent space: both dilute
    # how badly the decoder can rebuild it (figures in benchmarks/README.md, anomaly.py).
    def deviance(module: VAEModule, px: Distribution, x: torch.Tensor) -> torch.Tensor:
        return _saturated(module, px, x) - module.log_px(px, x)

    return _at_posterior_mean(model, X, y, layer, deviance)


SCORES: dict[str, Score] = {
    "elbo": Score(_negative_elbo, 10),
    # 100 importance samples rank samples as 1000 would at a tenth of the cost; the bound's
    # bias is the same for control and new samples, so a calibration absorbs it.
    "iwae": Score(_negative_iwae, 100),
    "reconstruction": Score(_reconstruction, 10),
    "deviance": Score(_deviance, 10),
    "mean_deviance": Score(_mean_deviance, 1),  # deterministic: n_draws is not used
}


def default_method(model: BaseVAE) -> str:
    """The score ``anomaly_score`` uses when none is named: its likelihood's
    ``anomaly_score`` (:mod:`vaekit.likelihoods`): ``"mean_deviance"`` for the Bernoulli and
    the count families, ``"elbo"`` for the others.

    -ELBO charges each sample for its own randomness as well as for its misfit: deep cells
    cost more nats under a count likelihood and grey pixels their entropy under a Bernoulli
    one, so it ranks samples by depth or ink as much as by type. The deviances subtract that
    charge (the saturated fit's log-likelihood); of the two, ``mean_deviance`` (no draws, no
    KL) ranked best on every Bernoulli and count set of benchmarks/defaults.py but one, where
    it tied. One-class AUROC on PBMC cell types, the same models: 0.839 by -ELBO, 0.970 by the
    deviance, 0.972 by ``mean_deviance``; PCA 0.950. For a Gaussian likelihood the deviance
    ranks as -ELBO does (its scale is not set per sample) and ``mean_deviance`` was worse on
    the small clinical tables, so -ELBO stays.
    """
    return type(model.module_.likelihood).anomaly_score


def get_score(method: str) -> Score:
    """The anomaly score registered as ``method``; raise naming the choices otherwise."""
    try:
        return SCORES[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown anomaly score {method!r}; choose one of {list(SCORES)}"
        ) from None


@draws_keyword
def anomaly_score(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    method: str | None = None,
    *,
    layer: str | None = None,
    n_draws: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Per-sample anomaly scores, in nats; higher = less like the training data.

    Parameters
    ----------
    model : VAE
        A fitted model, ideally trained on control (normal) samples only.
    X : array-like, DataFrame, sparse matrix or AnnData, (n_samples, n_features)
    y : optional
        Conditions of X, for a conditional model.
    method : str, optional
        None (the default) takes :func:`default_method`: ``"mean_deviance"`` for Bernoulli
        and count likelihoods, else ``"elbo"``.
        ``"elbo"``: -ELBO, averaged over ``n_draws`` posterior draws (default 10);
        ``"iwae"``: -log p(x) by importance sampling with ``n_draws`` draws (default 100);
        ``"reconstruction"``: -E_q[log p(x|z)] over ``n_draws`` draws (default 10), An &
        Cho (2015)'s reconstruction probability, which ignores how unusual z itself is;
        ``"deviance"``: -ELBO + log p(x | saturated) (default 10 draws), the ELBO's shortfall
        from the best fit any decoder output could give x (the deviance of generalised linear
        models, Nelder & Wedderburn 1972, in nats and with the KL). It removes what the
        likelihood charges for the randomness of x itself: under a Bernoulli likelihood a grey
        pixel costs its entropy however well it is reconstructed, so -ELBO calls images with
        more grey edge pixels anomalous; count likelihoods likewise charge more for deeper
        samples. For binary data and a Gaussian likelihood it is -ELBO up to a constant.
        ``"mean_deviance"``: the deviance of x decoded from its posterior mean,
        log p(x | saturated) - log p(x | z = E_q[z]), without draws or KL: the model's
        reconstruction error in its likelihood's units (squared error over twice the variance
        for a Gaussian), as one would score a plain autoencoder.
    layer : str, optional
        AnnData layer to use instead of ``X``.
    n_draws : int, optional
        Posterior draws; None takes the method's default (:data:`SCORES`).
    seed : int
        Seeds the draws: the same seed gives the same scores.

    Returns
    -------
    ndarray, (n_samples,)

    Examples
    --------
    >>> scores = anomaly_score(model, X_new, method="iwae")  # doctest: +SKIP
    >>> X_new[np.argsort(-scores)[:10]]  # the ten least typical samples  # doctest: +SKIP
    """
    score = get_score(default_method(model) if method is None else method)
    n = score.n_draws if n_draws is None else n_draws
    return np.asarray(score.fn(model, X, y, layer, n, seed), dtype=np.float64)


def saturated_log_likelihood(
    model: BaseVAE, X: Any, y: Any = None, *, layer: str | None = None
) -> np.ndarray:
    """Per-sample log p(x) under the saturated model, in nats: the model's likelihood family
    with every feature's mean set to its observed value (its likelihood's
    :meth:`~vaekit.likelihoods.Likelihood.saturated_log_prob`); no decoder output can fit x
    better, so -ELBO minus this is >= 0 up to Monte Carlo error.

    Returns
    -------
    ndarray, (n_samples,)
    """
    # Decoded only for its family and its per-feature parameters (scale, dispersion).
    return _at_posterior_mean(model, X, y, layer, _saturated)


def _at_posterior_mean(
    model: BaseVAE,
    X: Any,
    y: Any,
    layer: str | None,
    fn: Callable[[VAEModule, Distribution, torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """(n,) ``fn(module, px, x)`` per sample, with px decoded from x's posterior mean."""
    module = model.module_

    def block(b: Batch) -> torch.Tensor:
        qz = module.encode(b.x, b.condition)
        return fn(module, module.decode(qz.loc, b.condition, b.library), b.x)

    parts = model.map_batches(model.prepare(X, y, layer=layer), block)
    return torch.cat(parts).cpu().double().numpy()


def _saturated(module: VAEModule, px: Distribution, x: torch.Tensor) -> torch.Tensor:
    """(B,) the saturated log-likelihood over the entries the model counts: with
    ``missing="mask"`` the observed ones, as its ELBO does."""
    return observed_sum(module.likelihood.saturated_log_prob(px, x), module.observed(x))


@draws_keyword
def calibrate(
    model: BaseVAE,
    X_control: Any,
    y: Any = None,
    *,
    fpr: float = 0.05,
    method: str | None = None,
    layer: str | None = None,
    n_draws: int | None = None,
) -> Calibration:
    """Score control samples held out from training and set the threshold that flags a share
    ``fpr`` of such samples.

    Parameters
    ----------
    model : VAE
    X_control : array-like or AnnData
        Samples of the normal (control) distribution that the model was not trained on;
        at least about 1 / ``fpr`` of them (19 for 0.05).
    y : optional
        Their conditions, for a conditional model.
    fpr : float
        The false-positive rate wanted, in (0, 1).
    method, layer, n_draws
        As in :func:`anomaly_score`; the method (None: :func:`default_method`) and its
        default ``n_draws`` are stored, so later scores use the same score and draws.

    Returns
    -------
    Calibration

    Examples
    --------
    >>> cal = calibrate(model, X_control, fpr=0.01, method="iwae")  # doctest: +SKIP
    >>> cal.flags(anomaly_score(model, X_new, method="iwae")).mean()  # doctest: +SKIP
    """
    check_fpr(fpr)
    method = default_method(model) if method is None else method
    n = get_score(method).n_draws if n_draws is None else n_draws
    scores = anomaly_score(model, X_control, y, method, layer=layer, n_draws=n)
    return Calibration.fit(scores, fpr, method, n)


@draws_keyword
def contributions(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    n_draws: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Per sample and feature, -E_q[log p(x_j | z)] in nats over ``n_draws`` posterior draws:
    the reconstruction part of the anomaly score split by feature (its row sums are the
    ``"reconstruction"`` score). Large values point at the genes or pixels that the model
    finds unlikely for that sample.

    Returns
    -------
    DataFrame, (n_samples, n_features)
        Columns ``model.features_`` (the modelled features, after preprocessing); the index
        holds X's sample names when it had them.

    Examples
    --------
    >>> c = contributions(model, X_new)  # doctest: +SKIP
    >>> c.loc["S42"].nlargest(10)  # the ten genes that make sample S42 unusual  # doctest: +SKIP
    """
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer; got {n_draws!r}")
    module = model.module_

    def per_feature(b: Batch) -> torch.Tensor:
        total = torch.zeros_like(b.x)
        for _ in range(n_draws):
            _, _, px = module(b.x, b.condition)  # one reparameterised draw from q(z|x)
            total -= px.log_prob(b.x)  # (B, n_features)
        return total / n_draws

    prepared = model.prepare(X, y, layer=layer)
    values = torch.cat(model.map_batches(prepared, per_feature, seed=seed)).cpu().double().numpy()
    return pd.DataFrame(values, index=prepared.table.sample_names, columns=list(model.features_))
