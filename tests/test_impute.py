"""Missing values: training with missing="mask", model.impute, and `vaekit impute`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from synthetic import counts
from test_cli import assert_user_error, cli
from torch.distributions import Normal

import vaekit
from vaekit.analysis import imputation
from vaekit.config import ModelConfig
from vaekit.data.preprocess import Preprocessor, SelectVariable
from vaekit.model import VAEModule


def low_rank(n: int = 500, d: int = 20, rank: int = 3, noise: float = 0.1, seed: int = 0):
    """Rows near a rank-3 nonlinear surface: each feature is predictable from the others."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, rank))
    return (np.tanh(z @ rng.normal(size=(rank, d))) + noise * rng.normal(size=(n, d))).astype(
        np.float32
    )


def hide(X: np.ndarray, rate: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(X with a random share ``rate`` of its entries set to NaN, the mask of hidden ones)."""
    mask = np.random.default_rng(seed).random(X.shape) < rate
    hidden = X.copy()
    hidden[mask] = np.nan
    return hidden, mask


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(((a - b)[mask] ** 2).mean()))


def small(**kw) -> vaekit.VAE:
    settings = dict(n_latent=3, hidden=(64,), epochs=400, batch_size=128, patience=10, seed=0,
                    verbose=False)
    return vaekit.VAE(**{**settings, **kw})


@pytest.fixture(scope="module")
def data():
    X = low_rank()
    return X[:400], X[400:]


@pytest.fixture(scope="module")
def masked(data):
    """A mask-aware model trained on data with 20% of the entries missing."""
    train, _ = data
    return small(missing="mask", mask_rate=0.5).fit(hide(train, 0.2)[0])


@pytest.fixture(scope="module")
def plain(data):
    """A model trained on complete data, without a mask-aware encoder."""
    return small().fit(data[0])


# ---------------------------------------------------------------------------- impute
@pytest.mark.parametrize("wrap", [np.asarray, pd.DataFrame, torch.as_tensor])
def test_fully_observed_input_comes_back_unchanged(masked, data, wrap):
    X = wrap(data[1])
    out = masked.impute(X)
    assert type(out) is type(X)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(X))
    draws = masked.impute(X, n_imputations=2)
    assert len(draws) == 2 and all(np.array_equal(np.asarray(d), np.asarray(X)) for d in draws)


@pytest.mark.parametrize("model", ["masked", "plain"])
@pytest.mark.parametrize("method", ["importance", "gibbs"])
def test_imputations_beat_column_means_and_keep_observed_entries(request, data, model, method):
    train, test = data
    model = request.getfixturevalue(model)
    X, mask = hide(test.astype(np.float64), 0.3)
    out = model.impute(X, method=method, n_draws=300)
    np.testing.assert_array_equal(out[~mask], X[~mask])  # exactly, float64 in and out
    assert out.dtype == np.float64 and not np.isnan(out).any()
    means = np.broadcast_to(train.mean(0), test.shape)
    assert rmse(out, test, mask) < 0.5 * rmse(means, test, mask)


def test_importance_weighting_is_at_least_as_good_as_pseudo_gibbs(masked, plain, data):
    """MIWAE's claim (Mattei & Frellsen 2019), on three masks and both kinds of model: per
    test row, the squared error of the importance-weighted imputation minus that of the
    pseudo-Gibbs chain, pooled over the masks; its mean over the rows may not exceed 4 of
    its standard errors (rows are independent; a mean that close to 0 is a tie)."""
    test = data[1]
    for model in (masked, plain):
        diff, count = np.zeros(len(test)), np.zeros(len(test))
        for seed in (1, 2, 3):
            X, mask = hide(test, 0.3, seed)
            iw = model.impute(X, method="importance", n_draws=2000)
            gibbs = model.impute(X, method="gibbs")
            diff += np.where(mask, (iw - test) ** 2 - (gibbs - test) ** 2, 0).sum(1)
            count += mask.sum(1)
        d = diff[count > 0] / count[count > 0]
        se = d.std(ddof=1) / np.sqrt(len(d))
        assert d.mean() <= 4 * se, (model.settings_["missing"], d.mean(), se)


@pytest.mark.parametrize("method", ["importance", "gibbs"])
def test_multiple_imputations_vary_only_where_data_are_missing(masked, data, method):
    X, mask = hide(data[1], 0.3)
    draws = np.stack(masked.impute(X, n_imputations=8, method=method, seed=3))
    assert (np.ptp(draws, axis=0)[~mask] == 0).all()  # identical, not merely close
    spread = draws.std(0)
    assert (spread[mask] > 0).mean() > 0.9
    # Draws scatter around the point estimate by about the model's noise, not wildly.
    point = masked.impute(X, method=method)
    assert rmse(draws.mean(0), point, mask) < 0.5 * spread[mask].mean() + 0.1


def exact_posterior_mean(module: VAEModule, x: torch.Tensor) -> torch.Tensor:
    """(B, L) E[z | x_obs] of a linear-Gaussian decoder, in closed form (factor analysis):
    precision I + W_o' S_o^-1 W_o, mean its inverse times W_o' S_o^-1 (x_o - b_o)."""
    W = module.likelihood.out.weight.double()
    b = module.likelihood.out.bias.double()
    var = (2 * module.likelihood.log_scale.double()).exp()
    rows = []
    for row in x.double():
        o = ~row.isnan()
        Wo = W[o] / var[o, None]
        precision = torch.eye(W.shape[1], dtype=W.dtype) + W[o].T @ Wo
        rows.append(torch.linalg.solve(precision, Wo.T @ (row[o] - b[o])))
    return torch.stack(rows).float()


@pytest.fixture(scope="module")
def factor():
    """A linear-Gaussian VAE (a factor model), its held-out rows, those rows with half their
    entries hidden, and the mask of hidden entries."""
    X = low_rank(n=600, d=30, rank=4, seed=2)
    model = small(n_latent=4, hidden=(), likelihood="gaussian", preprocess=()).fit(X[:500])
    hidden, mask = hide(X[500:], 0.5, seed=4)
    return model, X[500:], hidden, mask


def test_refined_proposal_reaches_the_exact_posterior_of_a_linear_model(factor):
    """Semi-amortised inference closes the amortisation gap: on a factor model, whose
    posterior given the observed entries is known in closed form, the refined means land on
    it while the encoder's (fitted to complete rows) are far off with half the entries hidden;
    and the imputation is better for it."""
    model, test, hidden, mask = factor
    module = model.module_.eval()
    x = torch.as_tensor(model.preprocessor_.transform(hidden))
    before = [p.detach().clone() for p in module.parameters()]
    module.zero_grad(set_to_none=True)  # training's last gradients
    with torch.no_grad():
        encoded = module.encode(torch.nan_to_num(x))
        observed = module.batch(x, None, ~x.isnan())  # scores the entries that are not NaN
        refined = imputation.refine(module, observed, encoded, steps=300)
    exact = exact_posterior_mean(module, x)
    gap = (encoded.loc - exact).norm(dim=1).mean()
    assert (refined.loc - exact).norm(dim=1).mean() < 0.1 * gap
    # The module is untouched: same weights, no gradients left behind.
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), before, strict=True))
    assert all(p.grad is None for p in module.parameters())
    errors = [rmse(model.impute(hidden, refine_steps=s), test, mask) for s in (0, 100)]
    assert errors[1] < errors[0], errors


def test_refinement_and_draws_in_small_chunks_give_the_same_imputation(factor, monkeypatch):
    """Rows are refined and drawn in chunks that bound memory, and each row's draws come from
    its own generator: chunks of 5-7 rows give the imputation of one chunk of all 100, equal
    up to float32 rounding (a matrix product may sum in another order for another number of
    rows), not merely within Monte Carlo noise."""
    model, test, hidden, mask = factor
    whole = model.impute(hidden)
    monkeypatch.setattr(imputation, "MAX_REFINE_VALUES", imputation.REFINE_DRAWS * 30 * 7)
    monkeypatch.setattr(imputation, "MAX_DRAW_VALUES", 1000 * 30 * 5)
    chunked = model.impute(hidden)
    np.testing.assert_array_equal(chunked[~mask], hidden[~mask])
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5)
    assert rmse(model.impute(hidden, seed=1), whole, mask) > 1e-3  # the seed does matter


def test_refine_takes_no_steps_or_refuses_negative_ones(factor):
    module = factor[0].module_
    qz = Normal(torch.zeros(2, 4), torch.ones(2, 4))
    x = torch.zeros(2, 30)
    same = imputation.refine(module, module.batch(x), qz, steps=0)
    assert torch.equal(same.loc, qz.loc) and torch.equal(same.scale, qz.scale)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        imputation.refine(module, module.batch(x), qz, steps=-1)


def test_imputation_is_reproducible_with_a_seed(masked, data):
    X, _ = hide(data[1], 0.3)
    np.testing.assert_array_equal(masked.impute(X, seed=5), masked.impute(X, seed=5))


def test_values_come_back_in_the_input_space_through_the_preprocessing():
    """log1p and z-scoring are inverted: imputations are in the user's units (counts-like),
    better than the columns' means there."""
    X = np.expm1(2 + 2 * low_rank(seed=4)).astype(np.float32)
    model = small(preprocess=["log1p", "zscore"], missing="mask", mask_rate=0.5).fit(X[:400])
    hidden, mask = hide(X[400:], 0.3)
    out = model.impute(hidden)
    test = X[400:]
    assert rmse(out, test, mask) < 0.7 * rmse(
        np.broadcast_to(X[:400].mean(0), test.shape), test, mask
    )


def test_preprocessing_inverse_round_trips_and_keeps_unselected_columns():
    X = np.abs(low_rank(n=50, seed=5)) * 10
    pre = Preprocessor(["normalize_total", "log1p", SelectVariable(5), "center"])
    Y = pre.fit_transform(X, [f"g{i}" for i in range(X.shape[1])])
    np.testing.assert_allclose(pre.inverse_transform(Y, X), X, rtol=1e-4, atol=1e-4)


def test_nan_aware_statistics_match_pandas():
    X, _ = hide(low_rank(n=60, seed=6), 0.3)
    frame = pd.DataFrame(X.astype(np.float64))
    pre = Preprocessor(["zscore"])
    out = pre.fit_transform(X, list("abcdefghijklmnopqrst"))
    np.testing.assert_allclose(pre.steps[0].mean_, frame.mean(), rtol=1e-5)
    np.testing.assert_allclose(pre.steps[0].std_, frame.std(ddof=0), rtol=1e-5)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(X))  # NaN stay where they were
    select = Preprocessor([SelectVariable(4, "variance")])
    select.fit_transform(X, list("abcdefghijklmnopqrst"))
    np.testing.assert_array_equal(
        select.steps[0].index_, np.sort(np.argsort(-frame.var(ddof=0).to_numpy())[:4])
    )


# ---------------------------------------------------------------------------- training
def test_masked_entries_change_nothing_in_the_loss_or_its_gradients():
    """The values under the mask never reach the encoder or the likelihood: three versions of
    x that differ only there (NaN, and two sets of values) give the same loss and gradients."""
    torch.manual_seed(0)
    module = VAEModule(ModelConfig(n_input=8, n_latent=2, missing="mask")).double()
    x = torch.randn(16, 8, dtype=torch.float64)
    observed = torch.rand(16, 8) > 0.3

    def loss_and_grads(values: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        module.zero_grad()
        qz = module.encode(values, observed=mask)
        z = module.reparameterize(qz, torch.Generator().manual_seed(1))
        loss = -module.log_px(module.decode(z), values, mask).sum() + qz.loc.pow(2).sum()
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in module.parameters()]

    with_nan = torch.where(observed, x, torch.tensor(float("nan"), dtype=torch.float64))
    reference = loss_and_grads(with_nan, None)  # the mask the module reads from NaN
    for fill in (0.0, 100.0):
        other = torch.where(observed, x, torch.tensor(fill, dtype=torch.float64))
        for a, b in zip(reference, loss_and_grads(other, observed), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.isfinite(reference[0])


def test_training_with_missing_entries_is_reproducible_and_finite(data):
    X, _ = hide(data[0], 0.3)
    a = small(missing="mask", epochs=5).fit(X)
    b = small(missing="mask", epochs=5).fit(X)
    for key, value in a.module_.state_dict().items():
        torch.testing.assert_close(value, b.module_.state_dict()[key], rtol=0, atol=0)
    assert np.isfinite(a.history_["val_loss"]).all()
    assert np.isfinite(a.score_samples(X)).all() and np.isfinite(a.transform(X)).all()
    assert np.isfinite(a.log_likelihood(X[:10], n_draws=20)).all()


def test_iwae_training_and_count_likelihoods_take_missing_entries():
    X, _ = hide(counts(n=120, d=12), 0.2)
    for kw in ({"likelihood": "poisson"}, {"likelihood": "gaussian", "iw_samples": 4}):
        model = small(missing="mask", epochs=5, **kw).fit(X)
        out = model.impute(X, n_draws=50)
        assert np.isfinite(out).all()


def test_impute_takes_the_old_draws_keyword_with_a_warning(masked, data):
    X, _ = hide(data[1][:10], 0.3)
    expected = masked.impute(X, n_draws=5, refine_steps=0)
    with pytest.warns(FutureWarning, match=r"impute\(\): .*renamed n_draws="):
        got = masked.impute(X, n_samples=5, refine_steps=0)
    np.testing.assert_array_equal(got, expected)


def test_conv_models_read_the_mask_as_extra_channels(digits):
    X = digits[0][:300]
    model = small(
        missing="mask",
        architecture="conv",
        image_shape=(8, 8),
        hidden=(32,),
        likelihood="bernoulli",
        epochs=3,
    )
    model.fit(hide(X, 0.2)[0])
    assert model.module_.encoder.image_shape == (2, 8, 8)
    X_test, mask = hide(digits[1][:20], 0.3)
    out = model.impute(X_test, n_draws=20)
    assert np.isfinite(out).all() and ((out[mask] >= 0) & (out[mask] <= 1)).all()


def test_missing_setting_round_trips_and_old_configs_load(masked, tmp_path, data):
    masked.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["missing"] == "mask" and config["model"]["mask_rate"] == 0.5
    X, _ = hide(data[1], 0.3)
    np.testing.assert_array_equal(vaekit.load(tmp_path / "m").impute(X), masked.impute(X))
    old = {k: v for k, v in config["model"].items() if k not in ("missing", "mask_rate")}
    assert ModelConfig.from_dict(old).missing == "error"


# ---------------------------------------------------------------------------- bad input
def test_nan_without_missing_mask_is_refused_with_the_fix():
    X, _ = hide(low_rank(n=50), 0.1)
    with pytest.raises(ValueError, match=r"NaN .*missing='mask'"):
        small(epochs=1).fit(X)


def test_nan_at_transform_of_a_model_without_mask_suggests_impute(plain, data):
    X, _ = hide(data[1], 0.1)
    with pytest.raises(ValueError, match=r"fitted without missing='mask'.*model\.impute"):
        plain.transform(X)


def test_all_nan_rows_and_columns_are_named(masked, data):
    X = data[0].copy()
    X[5] = np.nan
    frame = pd.DataFrame(X, index=[f"s{i}" for i in range(len(X))])
    with pytest.raises(ValueError, match=r"no observed value .* row 5 \(sample 's5'\)"):
        small(missing="mask", epochs=1).fit(frame)
    with pytest.raises(ValueError, match=r"row 5 \(sample 's5'\)"):
        masked.impute(frame)
    X = data[0].copy()
    X[:, 3] = np.nan
    frame = pd.DataFrame(X, columns=[f"g{i}" for i in range(X.shape[1])])
    with pytest.raises(
        ValueError, match=r"feature\(s\) with no observed value .* column 3 \('g3'\)"
    ):
        small(missing="mask", epochs=1).fit(frame)


def test_a_feature_missing_everywhere_is_imputed_from_the_others(masked, data):
    X = data[1].copy()
    X[:, 3] = np.nan
    out = masked.impute(X)
    assert not np.isnan(out).any()


def test_nan_in_features_the_model_does_not_model_is_an_error():
    X = low_rank(n=200)
    names = [f"g{i}" for i in range(X.shape[1])]
    model = small(preprocess=[SelectVariable(10)], epochs=5).fit(pd.DataFrame(X, columns=names))
    left_out = next(n for n in names if n not in model.features_)
    frame = pd.DataFrame(X[:5].copy(), columns=names)
    frame.loc[0, left_out] = np.nan
    with pytest.raises(ValueError, match=rf"does not model, e\.g\. \['{left_out}'\]"):
        model.impute(frame)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "mcmc"}, "unknown imputation method 'mcmc'"),
        ({"n_imputations": 0}, "n_imputations must be a positive integer"),
        ({"n_iter": 1.5}, "n_iter must be a positive integer"),
        ({"refine_steps": -1}, "refine_steps must be an integer >= 0"),
        ({"refine_steps": True}, "refine_steps must be an integer >= 0"),
    ],
)
def test_bad_arguments(masked, data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        masked.impute(hide(data[1], 0.1)[0], **kwargs)


def test_bad_settings():
    with pytest.raises(ValueError, match="missing must be one of"):
        small(missing="drop").fit(low_rank(n=20))
    with pytest.raises(ValueError, match="mask_rate must be .* only with missing='mask'"):
        small(mask_rate=0.3).fit(low_rank(n=20))


def test_sparse_input_keeps_its_type(masked, data):
    X, mask = hide(data[1], 0.2)
    out = masked.impute(sp.csr_matrix(X))
    assert sp.issparse(out) and out.format == "csr"
    np.testing.assert_array_equal(out.toarray()[~mask], X[~mask])


# ---------------------------------------------------------------------------- command line
def table(X: np.ndarray, path) -> pd.DataFrame:
    """X as a CSV with sample IDs and gene names (NaN written as empty cells)."""
    names = [f"g{i}" for i in range(X.shape[1])]
    index = pd.Index([f"s{i}" for i in range(len(X))], name="sample")
    frame = pd.DataFrame(X, columns=names, index=index)
    frame.to_csv(path)
    return frame


def test_cli_trains_with_missing_entries_and_writes_the_completed_table(data, tmp_path, capsys):
    table(hide(data[0], 0.2)[0], tmp_path / "train.csv")
    (tmp_path / "settings.yaml").write_text("mask_rate: 0.5\nlatent: 3\nhidden: '64'\n")
    train = ("train", tmp_path / "train.csv", "-o", tmp_path / "m", "--missing", "mask")
    code, _, err = cli(capsys, *train, "--config", tmp_path / "settings.yaml", "--quiet")
    assert code == 0, err
    model = vaekit.load(tmp_path / "m")
    assert model.module_.config.missing == "mask" and model.module_.config.mask_rate == 0.5
    X, mask = hide(data[1], 0.3)
    frame = table(X, tmp_path / "in.csv")
    command = ("impute", tmp_path / "m", tmp_path / "in.csv")
    code, out, err = cli(capsys, *command, "-o", tmp_path / "out.tsv")
    assert code == 0, err
    assert f"imputed {int(mask.sum())} missing entries" in out
    written = pd.read_csv(tmp_path / "out.tsv", sep="\t", index_col=0)
    assert list(written.columns) == list(frame.columns)
    assert list(written.index) == list(frame.index)
    np.testing.assert_allclose(written.to_numpy(), model.impute(frame).to_numpy(), rtol=1e-6)
    code, _, err = cli(capsys, *command, "-o", tmp_path / "raw.tsv", "--refine-steps", "0")
    assert code == 0, err
    raw = pd.read_csv(tmp_path / "raw.tsv", sep="\t", index_col=0).to_numpy()
    np.testing.assert_allclose(raw, model.impute(frame, refine_steps=0).to_numpy(), rtol=1e-6)
    assert not np.allclose(raw, written.to_numpy())
    extra = ("--imputations", "3", "--method", "gibbs")
    code, _, err = cli(capsys, *command, "-o", tmp_path / "draws.csv", *extra)
    assert code == 0, err
    draws = pd.read_csv(tmp_path / "draws.csv", index_col=0)
    assert list(draws["imputation"].unique()) == [1, 2, 3] and len(draws) == 3 * len(X)


def test_cli_bad_input_is_one_line_and_exit_2(masked, data, tmp_path, capsys):
    masked.save(tmp_path / "m")
    X = data[1].copy()
    X[2] = np.nan
    pd.DataFrame(X, index=[f"s{i}" for i in range(len(X))]).to_csv(tmp_path / "in.csv")
    command = ("impute", tmp_path / "m", tmp_path / "in.csv", "-o", tmp_path / "o.tsv")
    assert_user_error(cli(capsys, *command), "sample 's2'")
    assert not (tmp_path / "o.tsv").exists()
    assert_user_error(cli(capsys, *command, "--method", "mcmc"), "unknown imputation method")


def test_cli_draws_flag_and_its_hidden_old_name(masked, data, tmp_path, capsys):
    masked.save(tmp_path / "m")
    frame = table(hide(data[1][:10], 0.3)[0], tmp_path / "in.csv")
    command = ("impute", tmp_path / "m", tmp_path / "in.csv", "--refine-steps", "0")
    expected = masked.impute(frame, n_draws=7, refine_steps=0).to_numpy()
    for flag in ("--draws", "--samples"):
        code, _, err = cli(capsys, *command, flag, "7", "-o", tmp_path / "out.tsv")
        assert code == 0, err
        written = pd.read_csv(tmp_path / "out.tsv", sep="\t", index_col=0).to_numpy()
        np.testing.assert_allclose(written, expected, rtol=1e-6)
    code, out, _ = cli(capsys, "impute", "--help")
    assert "--draws" in out and "--samples" not in out
