"""The training objectives (vaekit.objectives): beta-TC-VAE's decomposition of the KL against
its identities and closed forms, capacity annealing's schedule, and both as settings."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.distributions import Normal

import vaekit
from vaekit.cli import main
from vaekit.config import ModelConfig, TrainConfig
from vaekit.model import VAEModule, prior_kl
from vaekit.objectives import (
    OBJECTIVES,
    TC_ESTIMATORS,
    Capacity,
    TotalCorrelation,
    capacity,
    tc_terms,
)
from vaekit.options import DEFAULTS, NEUTRAL

pytestmark = pytest.mark.filterwarnings("ignore::vaekit.train.PosteriorCollapseWarning")
EPS = torch.finfo(torch.float64).eps
TERMS = ("mutual_info", "total_correlation", "dimension_kl")


def posterior(mu, sigma) -> Normal:
    mu = torch.as_tensor(mu, dtype=torch.float64)
    return Normal(mu, torch.as_tensor(sigma, dtype=torch.float64).expand_as(mu))


def random_posterior(b: int, d: int, seed: int) -> Normal:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64) * 2
    sigma = torch.rand(b, d, generator=g, dtype=torch.float64) + 0.2
    return Normal(mu, sigma)


@pytest.mark.parametrize("estimator", sorted(TC_ESTIMATORS))
def test_the_three_terms_add_up_to_the_single_draw_kl(estimator):
    """MI + TC + dimension-wise KL telescopes to log q(z|x) - log p(z) for each sample,
    whatever q(z)'s estimate (torch's own log densities; rounding only)."""
    qz = random_posterior(32, 5, seed=1)
    z = qz.sample(torch.Size())
    terms = tc_terms(qz, z, n_data=1000, estimator=estimator)
    expected = (qz.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
    total = sum(terms[t] for t in TERMS)
    scale = sum(terms[t].abs() for t in TERMS) + expected.abs()
    # logsumexp over 32 rows of 5 features: a few hundred roundings of values of this size
    assert (total - expected).abs().max() <= 1e3 * EPS * scale.max()


def test_in_expectation_the_terms_sum_to_the_closed_form_kl():
    """Averaged over draws of z, MI + TC + dimension-wise KL is KL(q(z|x) || N(0, I)): the
    mean of 4,000 draws lies within 6 of its standard errors of the closed form (a false
    alarm once in 5e8)."""
    qz = random_posterior(8, 3, seed=2)
    g = torch.Generator().manual_seed(3)
    draws = torch.stack([
        sum(tc_terms(qz, qz.loc + qz.scale * torch.randn(qz.loc.shape, generator=g,
                                                          dtype=torch.float64), 500).values())
        for _ in range(4000)
    ])  # (4000, 8)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert ((mean - prior_kl(qz)).abs() <= 6 * se).all()


def grid_posterior(k: int, spacing: float, sigma: float, diagonal: bool) -> Normal:
    """k * k posteriors at every pair of k values (q(z) factorises exactly), or k on the
    diagonal z_1 = z_2 (the two features are one)."""
    values = torch.arange(k, dtype=torch.float64) * spacing
    pairs = [(a, a) for a in values] if diagonal else list(itertools.product(values, values))
    return posterior(torch.tensor(pairs), sigma)


@pytest.mark.parametrize("estimator", sorted(TC_ESTIMATORS))
def test_total_correlation_is_zero_for_a_factorised_posterior(estimator):
    """With the whole data set in the batch (N = M) both estimators weigh each row 1 / M, so
    q(z) is the mixture itself; on a full grid of means it is the product of its marginals,
    and TC is 0 up to rounding, wherever z lies."""
    qz = grid_posterior(4, spacing=1.0, sigma=0.7, diagonal=False)
    g = torch.Generator().manual_seed(0)
    z = qz.loc + qz.scale * torch.randn(qz.loc.shape, generator=g, dtype=torch.float64)
    tc = tc_terms(qz, z, n_data=len(z), estimator=estimator)["total_correlation"]
    assert tc.abs().max() <= 100 * EPS * 16


def test_total_correlation_is_log_k_for_two_copies_of_one_feature():
    """k well separated means on the diagonal: q(z) near z_i is q(z | x_i) / k, each marginal
    q(z_j | x_i) / k, so TC = log(1/k) - 2 log(1/k) = log k, and MI = log k (the overlap of
    posteriors 20 SDs apart, exp(-200), is far below rounding)."""
    k = 6
    qz = grid_posterior(k, spacing=20.0, sigma=1.0, diagonal=True)
    z = qz.loc + qz.scale * 0.5
    terms = tc_terms(qz, z, n_data=k)
    torch.testing.assert_close(terms["total_correlation"], torch.full((k,), math.log(k),
                               dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(terms["mutual_info"], torch.full((k,), math.log(k),
                               dtype=torch.float64), rtol=0, atol=1e-12)


def test_stratified_sampling_estimates_q_z_without_bias():
    """The stratified estimate of q(z_i), averaged over every batch of M rows that holds
    row i, is q(z_i) = (1/N) sum_n q(z_i | x_n) exactly (enumerated, not sampled)."""
    n, m = 6, 3
    qz = random_posterior(n, 1, seed=4)
    z = qz.loc + qz.scale * 0.3
    exact = qz.log_prob(z[:, None, :]).squeeze(-1).exp().mean(1)  # (N,) mixture at z_i
    for i in range(n):
        estimates = []
        for others in itertools.combinations([j for j in range(n) if j != i], m - 1):
            rows = [i, *others]
            sub = Normal(qz.loc[rows], qz.scale[rows])
            weights = TC_ESTIMATORS["mss"](m, n)[0]
            estimates.append((weights * sub.log_prob(z[i]).squeeze(-1).exp()).sum())
        torch.testing.assert_close(torch.stack(estimates).mean(), exact[i], rtol=1e-12, atol=0)


def test_estimator_weights_are_probabilities():
    for name, weights in TC_ESTIMATORS.items():
        for m, n in [(1, 1), (2, 2), (7, 7), (16, 1000)]:
            w = weights(m, n)
            assert w.shape == (m, m) and (w > 0).all(), name
            torch.testing.assert_close(w.sum(1), torch.ones(m, dtype=torch.float64))


def module(**kw) -> VAEModule:
    torch.manual_seed(0)
    return VAEModule(ModelConfig(n_input=12, n_latent=3, hidden=(8,), likelihood="bernoulli"))


def test_weights_one_one_one_are_the_elbo_with_a_sampled_kl():
    """With weights 1, 1, 1 the beta-TC-VAE loss is the negative ELBO whose KL is estimated
    from the same draw of z: mean(reconstruction + log q(z|x) - log p(z)), in float64."""
    m = module().double().eval()
    x = torch.rand(20, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = (x > 0.5).double()
    reg = TotalCorrelation(1.0, 1.0, 1.0, 1.0, n_data=100)
    out = m.loss(x, generator=torch.Generator().manual_seed(5), regulariser=reg)
    z = VAEModule.reparameterize(out.posterior, torch.Generator().manual_seed(5))
    sampled_kl = (out.posterior.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
    expected = (out.reconstruction + sampled_kl).mean()
    torch.testing.assert_close(out.loss, expected, rtol=1e-12, atol=1e-12)
    assert set(out.terms) == set(TERMS)
    # and the plain ELBO from the same draw has the same reconstruction, the closed-form KL
    plain = m.loss(x, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(plain.reconstruction, out.reconstruction)
    torch.testing.assert_close(plain.kl, out.kl)


def test_weights_scale_their_terms():
    m = module().double().eval()
    x = (torch.rand(16, 12, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    base = m.loss(x, generator=torch.Generator().manual_seed(2),
                  regulariser=TotalCorrelation(1.0, 1.0, 1.0, 1.0, n_data=50))
    heavy = m.loss(x, generator=torch.Generator().manual_seed(2),
                   regulariser=TotalCorrelation(2.0, 0.5, 6.0, 1.0, n_data=50))
    t = base.terms
    expected = (base.reconstruction + 2 * (0.5 * t["mutual_info"] + 6 * t["total_correlation"]
                                           + t["dimension_kl"])).mean()
    torch.testing.assert_close(heavy.loss, expected, rtol=1e-12, atol=1e-12)


def test_capacity_schedule_rises_linearly_then_holds():
    c = TrainConfig(objective="capacity", capacity_max=20.0, capacity_epochs=4, epochs=10)
    assert [capacity(c, e) for e in range(7)] == [0.0, 5.0, 10.0, 15.0, 20.0, 20.0, 20.0]
    # by default C reaches its maximum in the last epoch
    c = TrainConfig(objective="capacity", capacity_max=9.0, epochs=4)
    assert [capacity(c, e) for e in range(4)] == [0.0, 3.0, 6.0, 9.0]


def test_capacity_loss_is_gamma_times_the_distance_of_the_mean_kl_to_c():
    rec = torch.tensor([3.0, 5.0], dtype=torch.float64)
    kl = torch.tensor([1.0, 2.0], dtype=torch.float64)
    loss, terms = Capacity(weight=100.0, capacity=4.0)(rec, None, None, kl)
    assert float(loss) == 4.0 + 100.0 * 2.5 and terms == {}


def binary_rows(n: int, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) * 2
    return (rng.random((n, d)) < 1 / (1 + np.exp(-logits))).astype(np.float32)


SMALL = dict(n_latent=3, hidden=(8,), likelihood="bernoulli", epochs=3, batch_size=32,
             seed=0, verbose=False)


def test_tcvae_history_holds_its_terms_and_they_add_up():
    model = vaekit.VAE(**SMALL, objective="tcvae", tc_weight=6.0).fit(binary_rows(200))
    h = model.history_
    assert {f"train_{t}" for t in TERMS} <= set(h.columns)
    assert np.isfinite(h[[f"train_{t}" for t in TERMS]].to_numpy()).all()
    # minibatch-weighted q(z_i) >= q(z_i | x_i) / M, so each sample's MI is at most log M
    assert (h["train_mutual_info"] <= math.log(32) + 1e-5).all()


def test_capacity_history_holds_the_schedule():
    model = vaekit.VAE(**SMALL, objective="capacity", capacity_max=4.0).fit(binary_rows(200))
    assert model.history_["capacity"].tolist() == [0.0, 2.0, 4.0]


def test_objective_settings_round_trip_through_save_and_load(tmp_path):
    model = vaekit.VAE(**SMALL, objective="tcvae", tc_weight=6.0, tc_estimator="mss")
    model.fit(binary_rows(200)).save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.settings_["objective"] == "tcvae" and loaded.settings_["tc_weight"] == 6.0
    assert loaded.get_params()["tc_estimator"] == "mss"
    assert loaded.history_.columns.tolist() == model.history_.columns.tolist()


def test_a_model_saved_before_the_objectives_loads_with_the_elbo(tmp_path):
    vaekit.VAE(**SMALL).fit(binary_rows(100)).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    for key in NEUTRAL:
        del config["settings"][key], config["params"][key]
    path.write_text(json.dumps(config))
    loaded = vaekit.load(tmp_path / "m")
    assert {k: loaded.settings_[k] for k in NEUTRAL} == {k: DEFAULTS[k] for k in NEUTRAL}
    assert loaded.settings_["objective"] == "elbo"


def test_the_command_line_and_a_settings_file_take_the_objectives(tmp_path, capsys):
    table = tmp_path / "x.csv"
    frame = pd.DataFrame(binary_rows(60).astype(int), columns=[f"g{j}" for j in range(12)])
    frame.index = pd.Index([f"s{i}" for i in range(60)], name="sample")
    frame.to_csv(table)
    common = ["--latent", "2", "--hidden", "8", "--likelihood", "bernoulli", "--epochs", "2",
              "--seed", "0", "-q"]
    with pytest.raises(SystemExit) as done:
        main(["train", str(table), "-o", str(tmp_path / "a"), *common, "--objective", "tcvae",
              "--tc-weight", "6", "--tc-estimator", "mss"])
    assert done.value.code == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "a" / "config.json").read_text())["settings"]
    assert (settings["objective"], settings["tc_weight"], settings["tc_estimator"]) == (
        "tcvae", 6.0, "mss")
    yaml = tmp_path / "s.yaml"
    yaml.write_text("objective: capacity\ncapacity_max: 3\ncapacity-epochs: 1\n")
    with pytest.raises(SystemExit) as done:
        main(["train", str(table), "-o", str(tmp_path / "b"), *common, "--config", str(yaml)])
    assert done.value.code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["settings"]["capacity_max"] == 3.0
    assert config["training"]["history"]["capacity"] == [0.0, 3.0]


@pytest.mark.parametrize("bad, match", [
    (dict(tc_weight=-1.0), "tc_weight must be a number >= 0; got -1.0"),
    (dict(objective="tcvae", mi_weight=-0.5), "mi_weight must be a number >= 0"),
    (dict(objective="capacity"), "objective='capacity' needs capacity_max"),
    (dict(objective="capacity", capacity_max=-3.0), "capacity_max must be a number > 0"),
    (dict(objective="capacity", capacity_max=5.0, capacity_weight=0.0), "capacity_weight"),
    (dict(tc_weight=6.0), "tc_weight=6.0 is read only by objective='tcvae'"),
    (dict(objective="tcvae", capacity_max=5.0), "read only by objective='capacity'"),
    (dict(objective="tcvae", iw_samples=5), "cannot train on the importance-weighted bound"),
    (dict(objective="factorvae"), "unknown objective 'factorvae'; choose one of"),
    (dict(objective="tcvae", tc_estimator="exact"), "unknown tc_estimator 'exact'"),
])
def test_bad_objective_settings_are_refused_before_training(bad, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        vaekit.VAE(**SMALL, **bad).fit(binary_rows(50))


def test_the_module_refuses_a_regulariser_with_the_importance_weighted_bound():
    reg = TotalCorrelation(1.0, 1.0, 1.0, 1.0, n_data=10)
    with pytest.raises(ValueError, match="iw_samples=3"):
        module().loss(torch.zeros(4, 12), iw_samples=3, regulariser=reg)


def test_every_objective_names_settings_of_the_table():
    for objective in OBJECTIVES.values():
        assert set(objective.required) <= set(objective.settings) <= set(NEUTRAL)


def test_a_checkpoint_written_before_the_objectives_resumes(tmp_path):
    """A checkpoint whose run identity lacks the objectives' settings trained at their
    defaults: resuming it with those defaults is the same run."""
    settings = {**SMALL, "checkpoint_dir": tmp_path / "c"}
    vaekit.VAE(**{**settings, "epochs": 2}).fit(binary_rows(100))
    states = sorted((tmp_path / "c").glob("*/state.json"))
    assert states
    for path in states:
        meta = json.loads(path.read_text())
        for key in NEUTRAL:
            del meta["identity"]["settings"][key]
        path.write_text(json.dumps(meta))
    resumed = vaekit.VAE(**{**settings, "epochs": 3}).fit(binary_rows(100), resume=True)
    assert len(resumed.history_) == 3 and resumed.resumes_
    with pytest.raises(ValueError, match="objective 'elbo' \\(checkpoint\\) vs 'tcvae'"):
        vaekit.VAE(**{**settings, "epochs": 4, "objective": "tcvae"}).fit(
            binary_rows(100), resume=True)
