"""Likelihoods p(x | z): each maps the decoder's last layer to a ``torch.distributions`` object.

A new likelihood is one subclass of :class:`Likelihood` with ``@register("name")``: what the
rest of vaekit needs to know of it (the values it scores, whether a conv decoder's per-pixel
output layer can serve it, its saturated log-likelihood for the deviance scores) are its
attributes, not tables elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.distributions import (
    Bernoulli,
    ContinuousBernoulli,
    Distribution,
    NegativeBinomial,
    Normal,
    Poisson,
    constraints,
)
from torch.distributions.utils import lazy_property
from torch.special import xlogy

LIKELIHOODS: dict[str, type[Likelihood]] = {}
MIN_LOG_SCALE = math.log(1e-3)  # Gaussian SD floor, for data of order 1


class Support(NamedTuple):
    """The values a likelihood can score; the estimator checks data against it before training.

    Attributes
    ----------
    name : str
        ``"real"``, ``"unit_interval"``, ``"counts"``...
    outside : callable or None
        ``values (ndarray, NaN = missing) -> boolean mask of the values outside, or None when
        every value is inside``; None when every real value is.
    what, fix : str
        The values outside, and what to do about them, for the error message.
    raw_counts : bool
        Only raw counts are scored: preprocessing that changes them is refused, and every
        sample needs a positive total.
    """

    name: str
    outside: Callable[[np.ndarray], np.ndarray | None] | None = None
    what: str = ""
    fix: str = ""
    raw_counts: bool = False


def _outside_unit_interval(v: np.ndarray) -> np.ndarray | None:
    # min/max first: the full mask is only built when there is something to report; the
    # nan-aware ones skip missing entries (NaN compares False, so never counts as bad)
    outside = v.size and not np.isnan(v).all() and (np.nanmin(v) < 0 or np.nanmax(v) > 1)
    return (v < 0) | (v > 1) if outside else None


def _not_counts(v: np.ndarray) -> np.ndarray | None:
    bad = ((v < 0) | (v != np.round(v))) & ~np.isnan(v)  # NaN (missing) is not a bad count
    return bad if bad.any() else None


REAL = Support("real")
UNIT_INTERVAL = Support(
    "unit_interval",
    _outside_unit_interval,
    "values outside [0, 1]",
    "scale the data to [0, 1] (for example divide by the maximum) or use likelihood='gaussian'",
)
COUNTS = Support(
    "counts",
    _not_counts,
    "negative or non-integer values",
    "it needs raw counts, not normalised, scaled or log-transformed values; pass the raw "
    "counts or use likelihood='gaussian'",
    raw_counts=True,
)


def register(name: str):
    """Class decorator: make a :class:`Likelihood` available as ``likelihood=name``."""

    def add(cls: type[Likelihood]) -> type[Likelihood]:
        cls.name = name
        LIKELIHOODS[name] = cls
        return cls

    return add


def get_likelihood(name: str) -> type[Likelihood]:
    """The likelihood class registered as ``name``."""
    try:
        return LIKELIHOODS[name]
    except KeyError:
        raise ValueError(
            f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}"
        ) from None


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when autocast made it bfloat16 or float16; float32 and float64 as
    they are (float64 models check the numerics)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class Likelihood(nn.Module):
    """Output layer of the decoder: hidden activations -> distribution over x.

    Parameters
    ----------
    n_hidden, n_features : int
        Width of the decoder's last layer (with the condition) and of x.
    batch_norm : bool
        Batch norm after the output layer (the linear decoder of LDVAE, Svensson et al. 2020).
    out : Module, optional
        The output layer, when the architecture brings its own (the conv decoder's per-pixel
        1x1 convolution) instead of ``Linear(n_hidden, n_features)``.

    Attributes
    ----------
    support : Support
        The values x may take (:data:`REAL`, :data:`UNIT_INTERVAL`, :data:`COUNTS`); the
        estimator checks data against it before training.
    uses_library : bool
        Count likelihoods predict proportions that are scaled by each sample's library size
        (its total count), as scVI does (Lopez et al. 2018).
    per_pixel : bool
        All its parameters come from the output layer, so the conv decoder's per-pixel output
        layer can replace that layer (``architecture="conv"`` is refused otherwise).
    """

    name: ClassVar[str]
    support: ClassVar[Support] = REAL
    uses_library: ClassVar[bool] = False
    per_pixel: ClassVar[bool] = False
    _no_saturated: ClassVar[str] = ""  # why it has no saturated log-likelihood, for the message
    # The score `anomaly_score` uses when none is named (vaekit.analysis.anomaly.SCORES): -ELBO
    # unless the family charges each sample for its own randomness (below).
    anomaly_score: ClassVar[str] = "elbo"

    def __init__(
        self, n_hidden: int, n_features: int, batch_norm: bool = False, out: nn.Module | None = None
    ) -> None:
        super().__init__()
        if out is None:
            linear = nn.Linear(n_hidden, n_features)
            out = nn.Sequential(linear, nn.BatchNorm1d(n_features)) if batch_norm else linear
        self.out = out

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        raise NotImplementedError

    def params(self, h: torch.Tensor) -> torch.Tensor:
        """The output layer's values in float32: under bfloat16 autocast (``precision="bf16"``)
        the layer's product runs in bfloat16, the likelihood's arithmetic does not."""
        return full_precision(self.out(h))

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of x (count models see log1p counts, as scVI)."""
        return x

    @classmethod
    def saturated_log_prob(cls, px: Distribution, x: torch.Tensor) -> torch.Tensor:
        """(B, n_features) log p(x | the parameters that fit x best): ``px``'s family with its
        mean set to x (the maximum-likelihood fit of one value for these exponential
        families), keeping the parameters the decoder does not set per sample (a Gaussian's
        scale, a dispersion). The ``"deviance"`` anomaly scores subtract it.

        Raises
        ------
        ValueError
            For a likelihood that does not define it.
        """
        raise ValueError(
            f"the 'deviance' scores need the saturated log-likelihood of likelihood "
            f"{cls.name!r}, which it does not define{cls._no_saturated}; use method='elbo'"
        )


@register("gaussian")
class GaussianLikelihood(Likelihood):
    """Normal(mean from the decoder, a learned standard deviation per feature, at least 1e-3)."""

    per_pixel = True
    shared_scale: ClassVar[bool] = False

    def __init__(
        self, n_hidden: int, n_features: int, batch_norm: bool = False, out: nn.Module | None = None
    ) -> None:
        super().__init__(n_hidden, n_features, batch_norm, out)
        self.log_scale = nn.Parameter(torch.zeros(1 if self.shared_scale else n_features))

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        # The floor stops a feature that is (nearly) constant in training from shrinking its SD
        # towards 0 until one new value scores -inf and the loss diverges.
        scale = self.log_scale.clamp(min=MIN_LOG_SCALE).exp()
        mean = self.params(h)
        return Normal(mean, scale.expand(mean.shape[-1]), validate_args=False)

    @classmethod
    def saturated_log_prob(cls, px: Normal, x: torch.Tensor) -> torch.Tensor:
        return Normal(x, px.scale, validate_args=False).log_prob(x)


@register("isotropic_gaussian")
class IsotropicGaussianLikelihood(GaussianLikelihood):
    """Normal(mean from the decoder, one learned standard deviation for all features): the
    log-likelihood is the squared error over 2 sigma^2, so every feature's error counts alike
    (a per-feature SD lets the model become so sure of a feature, the background of an image
    say, that one unusual value there outweighs everything else)."""

    shared_scale = True


@register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Bernoulli(logits); on values inside [0, 1] its log-probability is the cross-entropy."""

    support = UNIT_INTERVAL
    per_pixel = True
    # A grey pixel costs its entropy however well it is rebuilt, so -ELBO ranks images by ink.
    anomaly_score = "mean_deviance"

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        # validate_args=False: grey values in [0, 1] are scored by cross-entropy, as is usual.
        return Bernoulli(logits=self.params(h), validate_args=False)

    @classmethod
    def saturated_log_prob(cls, px: Bernoulli, x: torch.Tensor) -> torch.Tensor:
        return xlogy(x, x) + xlogy(1 - x, 1 - x)  # -entropy of x in [0, 1]


@register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """The normalised Bernoulli for values in [0, 1] (Loaiza-Ganem & Cunningham 2019)."""

    support = UNIT_INTERVAL
    per_pixel = True
    _no_saturated = " (its density grows without bound at 0 and 1)"

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        return ContinuousBernoulli(logits=self.params(h), validate_args=False)


class _CountLikelihood(Likelihood):
    """Decoder predicts log-proportions over features; the mean is library * proportion."""

    support = COUNTS
    uses_library = True
    # A deep sample costs more nats whatever its type, so -ELBO ranks cells by depth.
    anomaly_score = "mean_deviance"

    def log_mean(self, h: torch.Tensor, library: torch.Tensor | None) -> torch.Tensor:
        if library is None:
            raise ValueError(f"the {self.name!r} likelihood needs each sample's library size")
        # (B, D): log(library) + log_softmax keeps the mean positive without an epsilon.
        return library.log() + F.log_softmax(self.params(h), dim=-1)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)


@register("poisson")
class PoissonLikelihood(_CountLikelihood):
    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        return Poisson(self.log_mean(h, library).exp(), validate_args=False)

    @classmethod
    def saturated_log_prob(cls, px: Poisson, x: torch.Tensor) -> torch.Tensor:
        return xlogy(x, x) - x - torch.lgamma(x + 1)


class MeanDispersionNB(NegativeBinomial):
    """torch's negative binomial, given by its log mean and log inverse dispersion theta
    (torch counts successes before ``total_count`` failures with mean
    ``total_count * exp(logits)``, so ``logits = log(mu) - log(theta)``), with a ``log_prob``
    that spends per entry only what depends on both x and theta.

    log NB(x | mu, theta) = theta log(theta / (theta + mu)) + x log(mu / (theta + mu))
    + lgamma(x + theta) - lgamma(theta) - lgamma(x + 1). The three lgamma terms (and their
    digamma gradients) were most of a training step on single-cell counts; together they are 0
    at x = 0, which is most entries, so on the CPU they are computed for the non-zero entries
    only (on a GPU, finding those would stall the device, so there every entry is computed,
    with lgamma(theta) once per feature). Equal to torch's ``log_prob`` up to rounding
    (tests/test_likelihoods.py).
    """

    def __init__(self, log_mean: torch.Tensor, log_theta: torch.Tensor) -> None:
        # torch's __init__ would compute the (batch x features) logits now and keep them for
        # the whole step; the log-probability does not need them, so they are made on demand.
        self.log_mean, self.log_theta = log_mean, log_theta
        self.total_count = log_theta.exp().expand_as(log_mean)
        Distribution.__init__(self, batch_shape=log_mean.shape, validate_args=False)

    @lazy_property
    def logits(self) -> torch.Tensor:
        return self.log_mean - self.log_theta

    @property
    def _param(self) -> torch.Tensor:
        return self.logits

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_prob_by(value, sparse=value.device.type == "cpu")

    def log_prob_by(self, value: torch.Tensor, sparse: bool) -> torch.Tensor:
        """``log_prob``, with the lgamma terms for the non-zero entries only (``sparse``) or
        for all."""
        if value.shape != self.log_mean.shape or value.requires_grad:
            return super().log_prob(value)  # broadcasting, or a gradient for x: torch's
        return _NBLogProb.apply(value, self.log_mean, self.log_theta, sparse)


class _NBLogProb(torch.autograd.Function):
    """log NB(x | mu = exp(m), theta = exp(t)) with its gradients in closed form.

    Autograd through the formula keeps about ten (batch x features) intermediates alive for
    the backward pass, the largest memory of a training step on counts; this keeps x, m and t
    and recomputes the rest. With p = mu / (theta + mu) and s = log(theta + mu):
    d/dm = x - (x + theta) p; d/dt = theta (t - s + 1) - (x + theta)(1 - p)
    + theta (digamma(x + theta) - digamma(theta)), the last term 0 at x = 0.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, m: torch.Tensor, t: torch.Tensor, sparse: bool):
        ctx.save_for_backward(x, m, t)
        ctx.sparse = sparse
        theta = t.exp()
        s = torch.logaddexp(t, m)
        out = (m - s).mul_(x)
        out.add_(s.neg_().add_(t).mul_(theta))  # + theta (t - s)
        del s
        return _plus_lgamma_terms(out, x, theta, sparse, _lgamma_terms)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        # In-place steps, in an order that keeps at most five (batch x features) tensors.
        x, m, t = ctx.saved_tensors
        theta = t.exp()
        p = torch.sigmoid(m - t)
        x_theta = x + theta
        grad_t = None
        if ctx.needs_input_grad[2]:
            per_entry = torch.logaddexp(t, m).neg_().add_(t).add_(1.0).mul_(theta)
            per_entry.sub_(torch.sub(1.0, p).mul_(x_theta))
            per_entry = _plus_lgamma_terms(per_entry, x, theta, ctx.sparse, _digamma_terms)
            grad_t = per_entry.mul_(grad).sum_to_size(t.shape)
            del per_entry
        grad_m = None
        if ctx.needs_input_grad[1]:
            grad_m = x_theta.mul_(p).neg_().add_(x).mul_(grad)  # (x - (x + theta) p) grad
        return None, grad_m, grad_t, None


def _plus_lgamma_terms(out, x, theta, sparse: bool, terms) -> torch.Tensor:
    """out + terms(x, theta) where x > 0 only (``sparse``: the terms are 0 at x = 0), or
    everywhere, with the terms of theta alone once per feature."""
    if not sparse:
        return out.add_(terms(x, theta))
    where = (x > 0).nonzero(as_tuple=True)
    return out.index_put_(where, terms(x[where], theta.expand_as(x)[where]), accumulate=True)


def _lgamma_terms(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return (torch.lgamma(x + theta) - torch.lgamma(x + 1)).sub_(torch.lgamma(theta))


def _digamma_terms(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return torch.digamma(x + theta).sub_(torch.digamma(theta)).mul_(theta)


def _negative_binomial(log_mean: torch.Tensor, log_theta: torch.Tensor) -> NegativeBinomial:
    return MeanDispersionNB(log_mean, log_theta)


@register("nb")
class NegativeBinomialLikelihood(_CountLikelihood):
    """Negative binomial with mean library * proportion and a learned dispersion per feature."""

    def __init__(
        self, n_hidden: int, n_features: int, batch_norm: bool = False, out: nn.Module | None = None
    ) -> None:
        super().__init__(n_hidden, n_features, batch_norm, out)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        return _negative_binomial(self.log_mean(h, library), self.log_theta)

    @classmethod
    def saturated_log_prob(cls, px: NegativeBinomial, x: torch.Tensor) -> torch.Tensor:
        return _nb_saturated(px, x)


def _nb_saturated(px: NegativeBinomial, x: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean x, inverse dispersion theta), 0 * log 0 taken as 0."""
    theta = px.total_count
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + theta * (theta.log() - (theta + x).log())
        + xlogy(x, x)
        - xlogy(x, theta + x)
    )


class ZeroInflatedNegativeBinomial(Distribution):
    """Mixture of a point mass at zero (probability sigmoid(zi_logits)) and a negative binomial.

    Parameters
    ----------
    nb : NegativeBinomial
    zi_logits : Tensor
        Logits of the probability that a value is a structural zero.
    """

    arg_constraints = {"zi_logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, nb: NegativeBinomial, zi_logits: torch.Tensor) -> None:
        self.nb = nb
        self.zi_logits = zi_logits
        super().__init__(batch_shape=zi_logits.shape, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(-self.zi_logits) * self.nb.mean

    @property
    def variance(self) -> torch.Tensor:
        keep = torch.sigmoid(-self.zi_logits)
        mu = self.nb.mean
        return keep * (self.nb.variance + mu**2) - (keep * mu) ** 2

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_zero = F.logsigmoid(self.zi_logits)
        log_keep = F.logsigmoid(-self.zi_logits)
        log_nb = self.nb.log_prob(value)
        at_zero = torch.logaddexp(log_zero, log_keep + log_nb)
        return torch.where(value == 0, at_zero, log_keep + log_nb)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            counts = self.nb.sample(sample_shape)
            keep = torch.bernoulli(torch.sigmoid(-self.zi_logits).expand_as(counts))
            return counts * keep


@register("zinb")
class ZeroInflatedNegativeBinomialLikelihood(NegativeBinomialLikelihood):
    """ZINB as scVI's: per-sample, per-feature dropout logits from the decoder."""

    def __init__(
        self, n_hidden: int, n_features: int, batch_norm: bool = False, out: nn.Module | None = None
    ) -> None:
        super().__init__(n_hidden, n_features, batch_norm, out)
        self.zi = nn.Linear(n_hidden, n_features)

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        nb = _negative_binomial(self.log_mean(h, library), self.log_theta)
        return ZeroInflatedNegativeBinomial(nb, full_precision(self.zi(h)))

    @classmethod
    def saturated_log_prob(
        cls, px: ZeroInflatedNegativeBinomial, x: torch.Tensor
    ) -> torch.Tensor:
        # a structural zero explains x = 0 with probability 1
        return torch.where(x == 0, torch.zeros_like(x), _nb_saturated(px.nb, x))
