"""Anomaly scores of a fitted VAE, a threshold calibrated on control samples, and per-feature
contributions: which samples deviate from the training (control) distribution, and where.

A new score is one function ``(model, X, y, layer, n_samples, seed) -> (n,) scores`` and one
line in :data:`SCORES`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.distributions import Distribution

from vaekit.model import VAEModule, observed_sum

if TYPE_CHECKING:  # analysis builds on the estimator; only the type is needed here
    from vaekit.estimator import VAE


class Score(NamedTuple):
    """One anomaly score: how to compute it and how many posterior draws it takes by default.

    Attributes
    ----------
    fn : callable
        ``fn(model, X, y, layer, n_samples, seed)`` -> (n,) float64, higher = more anomalous.
    n_samples : int
        Default number of posterior draws (importance samples for ``"iwae"``).
    """

    fn: Callable[..., np.ndarray]
    n_samples: int


def _negative_elbo(model: VAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    return -model.score_samples(X, y, layer=layer, n_samples=n, seed=seed)


def _negative_iwae(model: VAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    return -model.log_likelihood(X, y, layer=layer, n_samples=n, seed=seed)


def _reconstruction(model: VAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    # An & Cho (2015): the reconstruction probability E_q[log p(x|z)], by Monte Carlo over q.
    terms = model.elbo_terms(X, y, layer=layer, n_samples=n, seed=seed)
    return terms["reconstruction"].to_numpy()


def _deviance(model: VAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    # Likelihoods rank inputs by their own complexity as much as by their fit (Serra et al.
    # 2020); the saturated model's log-likelihood is that complexity for per-feature families.
    return _negative_elbo(model, X, y, layer, n, seed) + saturated_log_likelihood(
        model, X, y, layer=layer
    )


def _mean_deviance(model: VAE, X: Any, y: Any, layer: str | None, n: int, seed: int) -> np.ndarray:
    # The VAE read as an autoencoder: x decoded from its posterior mean, no draws and no KL.
    # Draws blur the reconstruction of every sample alike, and the KL rewards an encoder that
    # squeezes a new kind of sample into the familiar part of the latent space: both dilute
    # how badly the decoder can rebuild it (MNIST one-class mean AUROC, benchmarks/anomaly.py:
    # 0.966 -> 0.969 over "deviance" with a Bernoulli likelihood, 0.971 -> 0.972 over
    # "reconstruction" with an isotropic Gaussian).
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
    "mean_deviance": Score(_mean_deviance, 1),  # deterministic: n_samples is not used
}


def get_score(method: str) -> Score:
    """The anomaly score registered as ``method``; raise naming the choices otherwise."""
    try:
        return SCORES[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown anomaly score {method!r}; choose one of {list(SCORES)}"
        ) from None


def anomaly_score(
    model: VAE,
    X: Any,
    y: Any = None,
    method: str = "elbo",
    *,
    layer: str | None = None,
    n_samples: int | None = None,
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
    method : str
        ``"elbo"``: -ELBO, averaged over ``n_samples`` posterior draws (default 10);
        ``"iwae"``: -log p(x) by importance sampling with ``n_samples`` draws (default 100);
        ``"reconstruction"``: -E_q[log p(x|z)] over ``n_samples`` draws (default 10), An &
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
    n_samples : int, optional
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
    score = get_score(method)
    n = score.n_samples if n_samples is None else n_samples
    return np.asarray(score.fn(model, X, y, layer, n, seed), dtype=np.float64)


def saturated_log_likelihood(
    model: VAE, X: Any, y: Any = None, *, layer: str | None = None
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
    model: VAE,
    X: Any,
    y: Any,
    layer: str | None,
    fn: Callable[[VAEModule, Distribution, torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """(n,) ``fn(module, px, x)`` per sample, with px decoded from x's posterior mean."""
    module = model.module_

    def block(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return fn(module, module.decode(module.encode(x, c).loc, c, module.library(x)), x)

    return torch.cat(model._map(X, y, layer, block)[1]).cpu().double().numpy()


def _saturated(module: VAEModule, px: Distribution, x: torch.Tensor) -> torch.Tensor:
    """(B,) the saturated log-likelihood over the entries the model counts: with
    ``missing="mask"`` the observed ones, as its ELBO does."""
    return observed_sum(module.likelihood.saturated_log_prob(px, x), module.observed(x))


@dataclass(frozen=True, eq=False)
class Calibration:
    """A threshold on anomaly scores set from control samples, with their sorted scores.

    ``threshold`` is the conformal quantile of the control scores (Vovk et al. 2005): with n
    control scores it is the ceil((n + 1)(1 - fpr))-th smallest, so that a new sample from
    the control distribution scores above it with probability at most ``fpr`` (and at least
    ``fpr - 1 / (n + 1)``). A score is flagged exactly when its p-value is <= ``fpr``.

    Attributes
    ----------
    method : str
        The score it applies to (a key of :data:`SCORES`).
    fpr : float
        The false-positive rate asked for.
    threshold : float
        Scores above it are flagged.
    control_scores : ndarray
        The control samples' scores, sorted ascending (read-only).
    n_samples : int or None
        Posterior draws of the scores; new scores must use the same number.
    """

    method: str
    fpr: float
    threshold: float
    control_scores: np.ndarray = field(repr=False)
    n_samples: int | None = None

    def __post_init__(self) -> None:
        scores = np.sort(np.asarray(self.control_scores, dtype=np.float64).ravel())
        scores.flags.writeable = False  # frozen all the way down: flags must not drift
        object.__setattr__(self, "control_scores", scores)

    @classmethod
    def fit(
        cls, control_scores: np.ndarray, fpr: float, method: str, n_samples: int | None = None
    ) -> Calibration:
        """The calibration of ``control_scores`` at false-positive rate ``fpr``."""
        check_fpr(fpr)
        scores = np.sort(np.asarray(control_scores, dtype=np.float64).ravel())
        if not np.isfinite(scores).all():
            raise ValueError(
                "some control samples have NaN or infinite scores; remove them before calibrating"
            )
        k = _conformal_rank(len(scores), fpr)
        if k > len(scores):
            raise ValueError(
                f"{len(scores)} control samples cannot calibrate fpr={fpr}: the threshold needs "
                f"at least {min_control(fpr)} (about 1/fpr); give more control samples or a "
                "larger fpr"
            )
        return cls(method, float(fpr), float(scores[k - 1]), scores, n_samples)

    @property
    def n_control(self) -> int:
        return len(self.control_scores)

    def flags(self, scores: Any) -> np.ndarray:
        """Boolean array: True where a score is above the threshold."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def p_values(self, scores: Any) -> np.ndarray:
        """Conformal p-values, (1 + #control scores >= score) / (n_control + 1): the share of
        control samples at least as anomalous; small = unusual. In (0, 1]."""
        scores = np.asarray(scores, dtype=np.float64)
        at_least = self.n_control - np.searchsorted(self.control_scores, scores, side="left")
        return (1.0 + at_least) / (self.n_control + 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings and control scores (floats written by ``json`` round-trip)."""
        return {
            "method": self.method,
            "fpr": self.fpr,
            "threshold": self.threshold,
            "n_samples": self.n_samples,
            "control_scores": self.control_scores.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Rebuild from :meth:`to_dict`'s output, checking what it finds."""
        missing = sorted({"method", "fpr", "threshold", "control_scores"} - set(d))
        if missing:
            raise ValueError(f"the stored calibration lacks {missing}; calibrate again")
        get_score(d["method"])
        check_fpr(d["fpr"])
        n = d.get("n_samples")
        return cls(
            str(d["method"]),
            float(d["fpr"]),
            float(d["threshold"]),
            np.asarray(d["control_scores"], dtype=np.float64),
            None if n is None else int(n),
        )


def check_fpr(fpr: float) -> None:
    """Raise unless ``fpr`` is a number strictly between 0 and 1."""
    if isinstance(fpr, bool) or not isinstance(fpr, numbers.Real) or not 0 < fpr < 1:
        raise ValueError(
            f"fpr must be a number between 0 and 1 (exclusive), e.g. 0.05; got {fpr!r}"
        )


# Rounding slack: (19 + 1) * (1 - 0.05) must give rank 19, not 20.
_SLACK = 1e-9


def _conformal_rank(n: int, fpr: float) -> int:
    """1-based rank of the conformal quantile among n control scores (may exceed n)."""
    return math.ceil((n + 1) * (1 - fpr) - _SLACK)


def min_control(fpr: float) -> int:
    """The fewest control samples whose conformal quantile at ``fpr`` exists (rank <= n):
    n >= (1 - fpr) / fpr, 19 for fpr = 0.05."""
    return max(1, math.ceil((1 - fpr) / fpr - _SLACK))


def calibrate(
    model: VAE,
    X_control: Any,
    y: Any = None,
    *,
    fpr: float = 0.05,
    method: str = "elbo",
    layer: str | None = None,
    n_samples: int | None = None,
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
    method, layer, n_samples
        As in :func:`anomaly_score`; the method's default ``n_samples`` is stored, so later
        scores use the same number of draws.

    Returns
    -------
    Calibration

    Examples
    --------
    >>> cal = calibrate(model, X_control, fpr=0.01, method="iwae")  # doctest: +SKIP
    >>> cal.flags(anomaly_score(model, X_new, method="iwae")).mean()  # doctest: +SKIP
    """
    check_fpr(fpr)
    n = get_score(method).n_samples if n_samples is None else n_samples
    scores = anomaly_score(model, X_control, y, method, layer=layer, n_samples=n)
    return Calibration.fit(scores, fpr, method, n)


def contributions(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    layer: str | None = None,
    n_samples: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Per sample and feature, -E_q[log p(x_j | z)] in nats over ``n_samples`` posterior draws:
    the reconstruction part of the anomaly score split by feature (its row sums are the
    ``"reconstruction"`` score). Large values point at the genes or pixels that the model
    finds unlikely for that sample.

    Returns
    -------
    DataFrame, (n_samples_of_X, n_features)
        Columns ``model.features_`` (the modelled features, after preprocessing); the index
        holds X's sample names when it had them.

    Examples
    --------
    >>> c = contributions(model, X_new)  # doctest: +SKIP
    >>> c.loc["S42"].nlargest(10)  # the ten genes that make sample S42 unusual  # doctest: +SKIP
    """
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    module = model.module_

    def per_feature(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        total = torch.zeros_like(x)
        for _ in range(n_samples):
            _, _, px = module(x, c)  # one reparameterised draw from q(z|x)
            total -= px.log_prob(x)  # (B, n_features)
        return total / n_samples

    table, parts = model._map(X, y, layer, per_feature, seed)
    values = torch.cat(parts).cpu().double().numpy()
    return pd.DataFrame(values, index=table.sample_names, columns=list(model.features_))
