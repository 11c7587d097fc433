"""Likelihoods p(x | z): each maps the decoder's last layer to a ``torch.distributions`` object.

A new likelihood is one subclass of :class:`Likelihood` with ``@register("name")``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Bernoulli,
    ContinuousBernoulli,
    Distribution,
    NegativeBinomial,
    Normal,
    Poisson,
    constraints,
)

LIKELIHOODS: dict[str, type[Likelihood]] = {}
MIN_LOG_SCALE = math.log(1e-3)  # Gaussian SD floor, for data of order 1


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
    support : str
        The values x may take: ``"real"``, ``"unit_interval"`` or ``"counts"``; the estimator
        checks data against it before training.
    uses_library : bool
        Count likelihoods predict proportions that are scaled by each sample's library size
        (its total count), as scVI does (Lopez et al. 2018).
    """

    name: ClassVar[str]
    support: ClassVar[str] = "real"
    uses_library: ClassVar[bool] = False

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

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of x (count models see log1p counts, as scVI)."""
        return x


@register("gaussian")
class GaussianLikelihood(Likelihood):
    """Normal(mean from the decoder, a learned standard deviation per feature, at least 1e-3)."""

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
        mean = self.out(h)
        return Normal(mean, scale.expand(mean.shape[-1]), validate_args=False)


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

    support = "unit_interval"

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        # validate_args=False: grey values in [0, 1] are scored by cross-entropy, as is usual.
        return Bernoulli(logits=self.out(h), validate_args=False)


@register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """The normalised Bernoulli for values in [0, 1] (Loaiza-Ganem & Cunningham 2019)."""

    support = "unit_interval"

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        return ContinuousBernoulli(logits=self.out(h), validate_args=False)


class _CountLikelihood(Likelihood):
    """Decoder predicts log-proportions over features; the mean is library * proportion."""

    support = "counts"
    uses_library = True

    def log_mean(self, h: torch.Tensor, library: torch.Tensor | None) -> torch.Tensor:
        if library is None:
            raise ValueError(f"the {self.name!r} likelihood needs each sample's library size")
        # (B, D): log(library) + log_softmax keeps the mean positive without an epsilon.
        return library.log() + F.log_softmax(self.out(h), dim=-1)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)


@register("poisson")
class PoissonLikelihood(_CountLikelihood):
    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Distribution:
        return Poisson(self.log_mean(h, library).exp(), validate_args=False)


def _negative_binomial(log_mean: torch.Tensor, log_theta: torch.Tensor) -> NegativeBinomial:
    # torch counts successes before `total_count` failures with mean total_count * exp(logits),
    # so mean mu and inverse dispersion theta give logits = log(mu) - log(theta).
    return NegativeBinomial(
        total_count=log_theta.exp(), logits=log_mean - log_theta, validate_args=False
    )


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
        return ZeroInflatedNegativeBinomial(nb, self.zi(h))
