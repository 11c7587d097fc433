"""Each likelihood's log-probability and saturated log-probability against scipy.stats or a
closed form; a likelihood defined here, with one registry line, trains, scores deviance and
is accepted or refused by the conv architecture as its ``per_pixel`` says."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch import nn
from torch.distributions import Laplace

import vaekit
from vaekit.likelihoods import LIKELIHOODS, Likelihood, get_likelihood, register

N_HIDDEN, D = 5, 7


def make(name: str, seed: int = 0):
    """A likelihood with random weights and hidden activations, the same whatever ran before."""
    gen = torch.Generator().manual_seed(seed)
    lik = get_likelihood(name)(N_HIDDEN, D).double()
    with torch.no_grad():
        for p in lik.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    h = torch.randn(4, N_HIDDEN, generator=gen, dtype=torch.float64)
    return lik, h


def logits_of(lik, h) -> np.ndarray:
    return lik.out(h).detach().numpy()


# How to sum each registered likelihood over its support: a new one needs a row here.
SUPPORT = {
    "gaussian": "real",
    "isotropic_gaussian": "real",
    "bernoulli": "binary",
    "continuous_bernoulli": "unit",
    "poisson": "counts",
    "nb": "counts",
    "zinb": "counts",
}


def _grid(kind: str, dist) -> tuple[torch.Tensor, torch.Tensor]:
    """(points of the support, (G, 4, D), their weights): sums over a discrete support, the
    trapezoid rule over a continuous one (12 standard deviations each side for the reals)."""
    if kind in ("binary", "counts"):
        k = torch.arange(2 if kind == "binary" else 3000, dtype=torch.float64)
        return k.view(-1, 1, 1).expand(-1, 4, D), torch.ones(len(k), 1, 1, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 20001, dtype=torch.float64).view(-1, 1, 1)
    lo, hi = torch.zeros(1, 4, D, dtype=torch.float64), torch.ones(1, 4, D, dtype=torch.float64)
    if kind == "real":
        sd = dist.stddev.detach().expand(1, 4, D)
        lo, hi = dist.mean.detach() - 12 * sd, dist.mean.detach() + 12 * sd
    x = lo + (hi - lo) * t
    w = torch.full((len(t), 1, 1), 1.0 / (len(t) - 1), dtype=torch.float64)
    w[0] = w[-1] = 0.5 / (len(t) - 1)
    return x, w * (hi - lo)


@pytest.mark.parametrize("name", sorted(SUPPORT))
def test_every_likelihood_is_normalised_and_its_mean_is_its_expectation(name):
    """Summed (or integrated) over its support, each p(x | z) gives 1 and its ``mean`` is
    sum_x x p(x); with small library sizes, the count tails past 3000 are below 1e-15."""
    lik, h = make(name)
    library = torch.tensor([[3.0], [10.0], [20.0], [5.0]], dtype=torch.float64)
    dist = lik(h, library) if SUPPORT[name] == "counts" else lik(h)
    x, w = _grid(SUPPORT[name], dist)
    p = dist.log_prob(x).detach().exp() * w
    np.testing.assert_allclose(p.sum(0).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose((x * p).sum(0).numpy(), dist.mean.detach().numpy(), rtol=1e-6)


def test_the_registry_is_the_table_above_and_names_its_choices():
    assert set(LIKELIHOODS) == set(SUPPORT)
    with pytest.raises(ValueError, match="unknown likelihood 'gamma'.*choose one of"):
        get_likelihood("gamma")


def test_gaussian_matches_scipy():
    lik, h = make("gaussian")
    x = torch.randn(4, D, dtype=torch.float64)
    got = lik(h).log_prob(x).detach().numpy()
    scale = lik.log_scale.exp().detach().numpy()
    np.testing.assert_allclose(got, stats.norm.logpdf(x.numpy(), logits_of(lik, h), scale))


def test_isotropic_gaussian_has_one_scale_and_scores_squared_error():
    lik, h = make("isotropic_gaussian")
    assert lik.log_scale.shape == (1,)
    with torch.no_grad():
        lik.log_scale.fill_(math.log(0.5))
    x = torch.randn(4, D, dtype=torch.float64)
    px = lik(h)
    assert px.scale.shape == (4, D) and torch.all(px.scale == 0.5)
    mean = logits_of(lik, h)
    np.testing.assert_allclose(
        px.log_prob(x).detach().numpy(), stats.norm.logpdf(x.numpy(), mean, 0.5)
    )
    # Summed over features: the squared error over 2 sigma^2, plus a constant.
    error = ((x.numpy() - mean) ** 2).sum(-1)
    constant = -D * np.log(0.5 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(
        px.log_prob(x).sum(-1).detach().numpy(), constant - error / (2 * 0.25)
    )


def test_bernoulli_matches_scipy_and_cross_entropy():
    lik, h = make("bernoulli")
    x = torch.randint(0, 2, (4, D)).double()
    p = special.expit(logits_of(lik, h))
    np.testing.assert_allclose(
        lik(h).log_prob(x).detach().numpy(), stats.bernoulli.logpmf(x.numpy(), p)
    )
    grey = torch.rand(4, D, dtype=torch.float64)  # cross-entropy for values inside [0, 1]
    expected = grey.numpy() * np.log(p) + (1 - grey.numpy()) * np.log1p(-p)
    np.testing.assert_allclose(lik(h).log_prob(grey).detach().numpy(), expected)


def test_continuous_bernoulli_is_normalised_and_matches_closed_form():
    lik, h = make("continuous_bernoulli")
    dist = lik(h)
    lam = special.expit(logits_of(lik, h))
    x = torch.rand(4, D, dtype=torch.float64)
    # C(lam) = 2 artanh(1 - 2 lam) / (1 - 2 lam) (Loaiza-Ganem & Cunningham 2019, eq. 7)
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = log_c + x.numpy() * np.log(lam) + (1 - x.numpy()) * np.log1p(-lam)
    np.testing.assert_allclose(dist.log_prob(x).detach().numpy(), expected, rtol=1e-6)
    one = dist.__class__(logits=dist.logits[0, 0])
    area, _ = integrate.quad(lambda v: one.log_prob(torch.tensor(v)).exp().item(), 0, 1)
    assert area == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["poisson", "nb", "zinb"])
def test_count_means_are_library_times_proportions(name):
    lik, h = make(name)
    library = torch.tensor([[10.0], [100.0], [1000.0], [5.0]], dtype=torch.float64)
    dist = lik(h, library)
    nb_mean = dist.nb.mean if name == "zinb" else dist.mean
    np.testing.assert_allclose(nb_mean.sum(-1).detach().numpy(), library.squeeze(1).numpy())


def test_poisson_matches_scipy():
    lik, h = make("poisson")
    library = torch.full((4, 1), 300.0, dtype=torch.float64)
    x = torch.poisson(torch.full((4, D), 40.0, dtype=torch.float64))
    rate = 300.0 * special.softmax(logits_of(lik, h), axis=-1)
    np.testing.assert_allclose(
        lik(h, library).log_prob(x).detach().numpy(), stats.poisson.logpmf(x.numpy(), rate)
    )


def _nb_params(lik, h, library):
    mu = library.numpy() * special.softmax(logits_of(lik, h), axis=-1)
    theta = lik.log_theta.exp().detach().numpy()
    return mu, theta


def test_negative_binomial_matches_scipy():
    lik, h = make("nb")
    library = torch.full((4, 1), 200.0, dtype=torch.float64)
    x = torch.poisson(torch.full((4, D), 30.0, dtype=torch.float64))
    mu, theta = _nb_params(lik, h, library)
    expected = stats.nbinom.logpmf(x.numpy(), theta, theta / (theta + mu))
    np.testing.assert_allclose(lik(h, library).log_prob(x).detach().numpy(), expected, rtol=1e-6)


def test_zinb_matches_mixture():
    lik, h = make("zinb")
    library = torch.full((4, 1), 50.0, dtype=torch.float64)
    x = torch.poisson(torch.full((4, D), 3.0, dtype=torch.float64))
    x[:, :3] = 0
    mu, theta = _nb_params(lik, h, library)
    pi = special.expit(lik.zi(h).detach().numpy())
    nb = stats.nbinom.pmf(x.numpy(), theta, theta / (theta + mu))
    expected = np.log(np.where(x.numpy() == 0, pi, 0) + (1 - pi) * nb)
    dist = lik(h, library)
    np.testing.assert_allclose(dist.log_prob(x).detach().numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(dist.mean.detach().numpy(), (1 - pi) * mu, rtol=1e-6)
    torch.manual_seed(1)
    draws = dist.sample((4000,))
    # the sample mean within 5 Monte Carlo standard errors of the mixture's mean, entrywise
    se = draws.std(0).numpy() / np.sqrt(len(draws))
    assert (np.abs(draws.mean(0).numpy() - (1 - pi) * mu) < 5 * se + 1e-12).all()


def test_gaussian_scale_has_a_floor() -> None:
    """A feature constant in training must not drive its SD to 0 (then -inf on new data)."""
    lik = get_likelihood("gaussian")(4, 3)
    with torch.no_grad():
        lik.log_scale.fill_(-50.0)
    px = lik(torch.zeros(2, 4))
    assert torch.all(px.scale >= 1e-3 * (1 - 1e-6))
    assert torch.isfinite(px.log_prob(torch.ones(2, 3))).all()


# ----------------------------------------------------------------------------- saturated
X_COUNTS = np.array([[0, 1, 3, 17, 0, 250, 2]] * 4, dtype=np.float64)  # (4, D), with 0 * log 0
X_REAL = np.random.default_rng(3).normal(size=(4, D)) * 3


def _saturated_by_scipy(name: str, px) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, scipy's log-pmf/pdf of x with the family's mean set to x and its other parameters
    those of ``px``), float64; None for a likelihood that has no saturated log-likelihood."""
    grey = np.linspace(0, 1, 4 * D).reshape(4, D)  # 0 and 1 included: 0 * log 0
    if name in ("gaussian", "isotropic_gaussian"):
        return X_REAL, stats.norm.logpdf(X_REAL, X_REAL, px.scale.detach().numpy())
    if name == "bernoulli":  # the cross-entropy of x with itself: -entropy
        return grey, -stats.bernoulli.entropy(grey)
    if name == "poisson":
        return X_COUNTS, stats.poisson.logpmf(X_COUNTS, X_COUNTS)
    if name in ("nb", "zinb"):
        theta = (px.nb if name == "zinb" else px).total_count.detach().numpy()
        nb = stats.nbinom.logpmf(X_COUNTS, theta, theta / (theta + X_COUNTS))
        # zinb: a structural zero explains x = 0 with probability 1
        return X_COUNTS, np.where(X_COUNTS == 0, 0.0, nb) if name == "zinb" else nb
    return None


NO_SATURATED = {"continuous_bernoulli": "grows without bound at 0 and 1"}


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_saturated_log_prob_matches_scipy_at_x_own_mean(name):
    lik, h = make(name)
    library = torch.full((4, 1), 100.0, dtype=torch.float64)
    px = lik(h, library if lik.uses_library else None)
    expected = _saturated_by_scipy(name, px)
    if expected is None:
        assert name in NO_SATURATED, f"add {name!r}'s saturated log-likelihood to this test"
        with pytest.raises(ValueError, match=f"{name}.*{NO_SATURATED[name]}.*method='elbo'"):
            lik.saturated_log_prob(px, torch.zeros(4, D, dtype=torch.float64))
        return
    x, want = expected
    got = type(lik).saturated_log_prob(px, torch.tensor(x)).detach().numpy()
    assert got.dtype == np.float64
    # float64 throughout: lgamma sums of order 1e3 lose about 1e-13 to cancellation
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # No mean fits x better: the decoder's own mean scores at most as well.
    assert (
        lik(h, library if lik.uses_library else None).log_prob(torch.tensor(x))
        <= torch.tensor(got) + 1e-9
    ).all()


def test_per_pixel_marks_the_likelihoods_whose_parameters_all_come_from_the_output_layer():
    assert {n for n, cls in LIKELIHOODS.items() if cls.per_pixel} == {
        "gaussian",
        "isotropic_gaussian",
        "bernoulli",
        "continuous_bernoulli",
    }


# ----------------------------------------------------------------------------- a new likelihood
class ToyLaplace(Likelihood):
    """Laplace(location from the decoder, a learned scale per feature): a likelihood vaekit does
    not ship, defined as a user would."""

    def __init__(
        self, n_hidden: int, n_features: int, batch_norm: bool = False, out: nn.Module | None = None
    ) -> None:
        super().__init__(n_hidden, n_features, batch_norm, out)
        self.log_scale = nn.Parameter(torch.zeros(n_features))

    def forward(self, h: torch.Tensor, library: torch.Tensor | None = None) -> Laplace:
        loc = self.out(h)
        return Laplace(loc, self.log_scale.exp().expand(loc.shape[-1]), validate_args=False)

    @classmethod
    def saturated_log_prob(cls, px: Laplace, x: torch.Tensor) -> torch.Tensor:
        return Laplace(x, px.scale, validate_args=False).log_prob(x)


@contextmanager
def registered_toy(per_pixel: bool) -> Iterator[type[Likelihood]]:
    """The toy likelihood registered (the one line) as "toy_laplace", per-pixel or not; removed
    again afterwards so that the registry is as it was."""
    cls = register("toy_laplace")(type("Toy", (ToyLaplace,), {"per_pixel": per_pixel}))
    try:
        yield cls
    finally:
        del LIKELIHOODS["toy_laplace"]


TOY = dict(likelihood="toy_laplace", n_latent=2, hidden=(16,), epochs=3, seed=0, verbose=False)
NO_COLLAPSE_WARNING = pytest.mark.filterwarnings("ignore::vaekit.train.PosteriorCollapseWarning")


@NO_COLLAPSE_WARNING
def test_a_new_likelihood_needs_one_class_and_one_registry_line(digits):
    X = digits[1][:120]
    with registered_toy(per_pixel=False) as toy:
        model = vaekit.VAE(**TOY).fit(X)
        assert isinstance(model.module_.likelihood, toy)
        deviance = model.anomaly_score(X, method="deviance", seed=4)
        elbo = model.score_samples(X, n_draws=10, seed=4)
    # -ELBO plus the saturated term, sum_j log Laplace(x_j | x_j, b_j) = -sum_j log(2 b_j);
    # the same draws, so they differ by float32 rounding of sums over 64 features
    b = model.module_.likelihood.log_scale.exp().double().detach().numpy()
    np.testing.assert_allclose(deviance, -elbo - np.log(2 * b).sum(), rtol=1e-5, atol=1e-4)


@NO_COLLAPSE_WARNING
@pytest.mark.parametrize("per_pixel", [True, False])
def test_conv_takes_a_new_likelihood_as_its_per_pixel_attribute_says(per_pixel, digits):
    X = digits[1][:120]
    with registered_toy(per_pixel):
        model = vaekit.VAE(**TOY, architecture="conv", image_shape=(8, 8))
        if not per_pixel:
            refused = r"supports the likelihoods \[.*'bernoulli'.*\]; got 'toy_laplace'"
            with pytest.raises(ValueError, match=refused):
                model.fit(X)
            return
        assert model.fit(X).settings_["architecture"] == "conv"
        assert model.reconstruct(X).shape == X.shape


@pytest.mark.parametrize("sparse", [True, False])
def test_mean_dispersion_nb_matches_torch_and_scipy_in_float64(sparse):
    """vaekit's NB log-probability (lgamma terms on the non-zero entries only, on the CPU)
    equals torch's general formula and scipy's, values and gradients, up to float64
    rounding."""
    from torch.distributions import NegativeBinomial

    from vaekit.likelihoods import MeanDispersionNB

    g = torch.Generator().manual_seed(0)
    log_mean = (torch.randn(64, 40, dtype=torch.float64, generator=g) * 2).requires_grad_()
    log_theta = (torch.randn(40, dtype=torch.float64, generator=g) * 1.5).requires_grad_()
    x = torch.poisson(log_mean.detach().exp() * (torch.rand(64, 40, generator=g) < 0.3),
                      generator=g)
    assert 0.5 < float((x == 0).double().mean()) < 0.95  # mostly zeros, as counts are
    ours = MeanDispersionNB(log_mean, log_theta).log_prob_by(x, sparse=sparse)
    theirs = NegativeBinomial(total_count=log_theta.exp(), logits=log_mean - log_theta,
                              validate_args=False).log_prob(x)
    # each value is a sum of a few terms of size ~|x log mu| + lgamma: float64 rounding
    scale = float(theirs.detach().abs().max()) + 1.0
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e3 * np.finfo(np.float64).eps * scale)
    grad_ours = torch.autograd.grad(ours.sum(), (log_mean, log_theta))
    grad_theirs = torch.autograd.grad(theirs.sum(), (log_mean, log_theta))
    for a, b in zip(grad_ours, grad_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    mu, theta = log_mean.detach().exp().numpy(), log_theta.detach().exp().numpy()
    ref = stats.nbinom.logpmf(x.numpy(), theta, theta / (theta + mu))
    np.testing.assert_allclose(ours.detach().numpy(), ref, rtol=1e-9, atol=1e-9)
