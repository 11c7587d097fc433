"""The pure-torch module: KL, ELBO and the importance-sampled log-likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import Normal

from vaekit import iwae
from vaekit.config import ModelConfig
from vaekit.model import VAEModule


def test_kl_matches_closed_form_and_monte_carlo():
    torch.manual_seed(0)
    module = VAEModule(ModelConfig(n_input=6, n_latent=3, likelihood="gaussian")).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    out = module.loss(x)
    qz = module.encode(x)
    mu, var = qz.loc, qz.scale**2
    closed = 0.5 * (var + mu**2 - 1 - var.log()).sum(-1)  # Kingma & Welling 2014, appendix B
    torch.testing.assert_close(out.kl, closed)
    z = qz.sample((200_000,))
    mc = (qz.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(mc, closed, atol=0.02, rtol=0.02)


def test_loss_parts_match_scipy_for_the_same_noise():
    """Reconstruction and loss recomputed outside the module: z from the same eps, the
    Bernoulli log-probability from scipy."""
    from scipy import stats

    torch.manual_seed(0)
    module = VAEModule(ModelConfig(n_input=6, n_latent=3, likelihood="bernoulli")).double()
    x = torch.randint(0, 2, (8, 6)).double()
    out = module.loss(x, kl_weight=0.3, generator=torch.Generator().manual_seed(1))
    qz = module.encode(x)
    eps = torch.randn(qz.loc.shape, generator=torch.Generator().manual_seed(1))
    z = qz.loc + qz.scale * eps
    p = torch.sigmoid(module.likelihood.out(module.decoder(z))).detach().numpy()
    expected = -stats.bernoulli.logpmf(x.numpy(), p).sum(1)
    np.testing.assert_allclose(out.reconstruction.detach().numpy(), expected, rtol=1e-10)
    mu, var = qz.loc.detach().numpy(), qz.scale.detach().numpy() ** 2
    kl = 0.5 * (var + mu**2 - 1 - np.log(var)).sum(1)
    assert out.loss.item() == pytest.approx(float(np.mean(expected + 0.3 * kl)), rel=1e-10)


def test_conditioning_changes_every_decoder_layer_input():
    module = VAEModule(ModelConfig(n_input=6, n_latent=2, hidden=(8, 4), n_covariates=3))
    widths = [layer[0].in_features for layer in module.decoder.layers]
    assert widths == [2 + 3, 4 + 3]
    assert module.likelihood.out.in_features == 8 + 3
    assert module.encoder.layers[0][0].in_features == 6 + 3


def mean_and_se(d: np.ndarray) -> tuple[float, float]:
    """Mean over images and its standard error: each image's estimate has its own draws."""
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def test_elbo_is_below_importance_sampled_estimate_which_rises_with_k(fitted, digits):
    """E[log p_k] rises with k (Burda et al. 2016, theorem 1), but the estimates are noisy,
    so each step is checked on the per-image differences against their standard error (se):
    the ELBO -> k = 10 step (about 0.2 nats, 10 se on 200 images) must be resolved by 4 se;
    the later steps (0.04 and 0.01 nats, 2 se) may not fall by more than 4 se."""
    X_test = digits[1][:200]
    elbo = fitted.score_samples(X_test, n_draws=100)
    ll = {k: fitted.log_likelihood(X_test, n_draws=k) for k in (1, 10, 100, 1000)}
    # k = 1 is the ELBO with one draw: the same expectation as score_samples' one draw
    mean, se = mean_and_se(ll[1] - fitted.score_samples(X_test, n_draws=1, seed=5))
    assert abs(mean) < 4 * se, (mean, se)
    mean, se = mean_and_se(ll[10] - elbo)
    assert mean > 4 * se, (mean, se)
    for low, high in ((ll[10], ll[100]), (ll[100], ll[1000])):
        mean, se = mean_and_se(high - low)
        assert mean > -4 * se, (mean, se)
    assert ll[1000].mean() - elbo.mean() < 10  # a tight bound on a trained model


def test_iwae_converges_to_the_closed_form_of_a_linear_gaussian_model():
    """Linear decoder, Gaussian noise: p(x) = N(b, W W^T + diag(s^2)) is known exactly. The
    (untrained) encoder is a poor proposal, so this also shows IWAE's bound tightening."""
    torch.manual_seed(0)
    module = VAEModule(ModelConfig(n_input=4, n_latent=2, hidden=(), likelihood="gaussian"))
    module = module.double().eval()
    W = module.likelihood.out.weight.detach().numpy()
    b = module.likelihood.out.bias.detach().numpy()
    s2 = np.exp(2 * module.likelihood.log_scale.detach().numpy())
    cov = W @ W.T + np.diag(s2)
    x = torch.randn(6, 4, dtype=torch.float64)
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(mean=b, cov=cov).logpdf(x.numpy())
    for max_rows in (16384, 6 * 7, 4):  # one chunk; chunks of 7 draws; blocks of 4 samples
        gen = torch.Generator().manual_seed(0)
        est = iwae.log_likelihood(
            module, module.batch(x), n_draws=20000, max_rows=max_rows, generator=gen
        )
        assert np.all(est.numpy() <= exact + 0.05)
        np.testing.assert_allclose(est.numpy(), exact, atol=0.5)


def test_scores_of_samples_far_outside_the_training_data_stay_finite_and_ordered():
    """A feature constant in training is not scaled down, so a new sample can hold it at 1e6:
    the linear encoder's log-variance then passed float32's exp, sigma became infinite and the
    scores NaN (seen on TCGA's 11-sample DLBC cohort). The log-variance is capped: scores stay
    finite and fall the further the sample lies."""
    import warnings

    from vaekit import VAE

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # random weights: PCA's start has log-variance weights of 0, which never overflow
        model = VAE(likelihood="isotropic_gaussian", hidden=(), n_latent=3, epochs=30,
                    preprocess=[], seed=0, verbose=False, init="random").fit(X)
    far = np.repeat(X[:1], 5, axis=0)
    far[:, 0] = 1e6 * np.arange(1, 6)
    scores = model.score_samples(far)
    assert np.isfinite(scores).all()
    assert (np.diff(scores) < 0).all()
    sigma = model.module_.encode(torch.from_numpy(far)).scale
    assert float(sigma.max()) <= np.exp(10.0) * (1 + 1e-6)


# --------------------------------------------------------------------------- init_ppca


def _ppca_module(d: int, k: int, **config) -> VAEModule:
    settings = {"likelihood": "isotropic_gaussian", "hidden": (), **config}
    return VAEModule(ModelConfig(n_input=d, n_latent=k, **settings)).double()


@pytest.mark.parametrize("k", [3, 12])  # below the data's rank, and beyond the planted rank
def test_init_ppca_is_probabilistic_pca(k):
    """After init_ppca every importance weight equals log N(x; mean, WW' + s2 I) (the
    posterior is exact), and that covariance is PPCA's maximum-likelihood one: the top k
    eigenvalues of the sample covariance (divisor n) and their mean beyond, in float64."""
    rng = np.random.default_rng(0)
    n, d = 60, 40
    X = rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) * 2 + rng.normal(size=(n, d)) + 3
    m = _ppca_module(d, k)
    m.init_ppca(torch.tensor(X))
    draws = m.importance_draws(m.batch(torch.tensor(X)), 5)
    log_w = (draws.log_px - draws.log_ratio).detach().numpy()  # (5, n)
    W = m.likelihood.out.weight.detach().numpy()
    s2 = float(m.likelihood.log_scale.detach().exp() ** 2)
    cov = W @ W.T + s2 * np.eye(d)
    expected = multivariate_normal(X.mean(0), cov).logpdf(X)
    np.testing.assert_allclose(log_w, np.broadcast_to(expected, log_w.shape), rtol=0, atol=1e-8)
    sample = np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1]
    np.testing.assert_allclose(np.linalg.eigvalsh(cov)[::-1][:k], sample[:k], rtol=1e-10)
    np.testing.assert_allclose(s2, sample[k:].mean(), rtol=1e-10)


def test_init_ppca_refuses_a_non_linear_model():
    m = _ppca_module(8, 2, hidden=(4,))
    with pytest.raises(ValueError, match=r"init='pca'.*lacks: hidden=\(\)"):
        m.init_ppca(torch.zeros(5, 8, dtype=torch.float64))
