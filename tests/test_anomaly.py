"""Anomaly scores, calibration against control samples, contributions, and `vaekit score`."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import special
from test_cli import assert_user_error, cli
from torch.distributions import Normal

import vaekit
from vaekit.analysis.anomaly import SCORES, default_method
from vaekit.calibration import Calibration, min_control
from vaekit.likelihoods import LIKELIHOODS

N_FEATURES, RANK, NOISE = 20, 3, 0.1
SHIFTED = [4, 11]  # the features moved off the manifold in planted outliers
N_OUTLIERS = 6


def low_rank(n: int, seed: int, outliers: int = 0) -> pd.DataFrame:
    """Rows of a rank-3 Gaussian table (one fixed loading matrix, fresh latent draws and noise
    per ``seed``); the last ``outliers`` rows have SHIFTED features moved by 1.0 (10 noise SDs),
    mostly off the 3-D subspace that the normal rows span."""
    W = np.random.default_rng(12345).normal(size=(RANK, N_FEATURES))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, RANK)) @ W + NOISE * rng.normal(size=(n, N_FEATURES))
    if outliers:
        X[n - outliers :, SHIFTED] += 1.0
    names = pd.Index([f"s{seed}_{i}" for i in range(n)], name="sample")
    return pd.DataFrame(X, index=names, columns=[f"f{j}" for j in range(N_FEATURES)])


@pytest.fixture(scope="module")
def model() -> vaekit.VAE:
    """A Gaussian VAE trained on normal rows only; tests that calibrate it work on a copy."""
    return vaekit.VAE(n_latent=3, hidden=(32,), epochs=60, lr=3e-3, seed=0, verbose=False).fit(
        low_rank(2000, seed=0)
    )


@pytest.fixture(scope="module")
def with_outliers() -> pd.DataFrame:
    return low_rank(300, seed=3, outliers=N_OUTLIERS)


@pytest.mark.parametrize("method", list(SCORES))
def test_every_score_ranks_the_planted_outliers_first(model, with_outliers, method):
    """The planted outliers sit 10 noise SDs off the manifold: each scores above the 95th
    percentile of the normal rows (a normal row's score is a draw of the same noise), and
    together they rank above nearly all of them (AUC >= 0.99), whatever the seed."""
    scores = model.anomaly_score(with_outliers, method=method)
    normal, outlier = scores[:-N_OUTLIERS], scores[-N_OUTLIERS:]
    assert (outlier > np.quantile(normal, 0.95)).all(), method
    auc = (outlier[:, None] > normal[None, :]).mean()
    assert auc >= 0.99, (method, auc)


def _log_weights(model: vaekit.VAE, X: pd.DataFrame, n: int, seed: int):
    """(n, rows) log importance weights log p(x|z) + log p(z) - log q(z|x) of n draws from
    q(z|x) per row, and the (n, rows) ELBO of each draw, computed here in float64 from the
    module's encoder and decoder."""
    module = copy.deepcopy(model.module_).double().eval()
    x = torch.as_tensor(model.preprocessor_.transform(X.to_numpy()), dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        qz = module.encode(x)
        z = qz.loc + qz.scale * torch.randn((n, *qz.loc.shape), generator=gen, dtype=x.dtype)
        log_px = module.decode(z.reshape(-1, z.shape[-1])).log_prob(x.repeat(n, 1)).sum(-1)
        log_px = log_px.view(n, len(x))
        log_ratio = (Normal(0.0, 1.0).log_prob(z) - qz.log_prob(z)).sum(-1)  # (n, rows)
        kl = torch.distributions.kl_divergence(qz, Normal(0.0, 1.0)).sum(-1)  # closed form
    return (log_px + log_ratio).numpy(), (log_px - kl).numpy()


def test_elbo_and_iwae_scores_match_monte_carlo_by_hand(model, with_outliers):
    """Both scores against estimates computed here from the module in float64: "elbo" is
    -ELBO averaged over draws, "iwae" is -log mean_k w_k over 100 draws (Burda et al.
    2016). Each per-row gap lies within 5 Monte Carlo standard errors of the two estimates."""
    X = with_outliers.iloc[:50]
    elbo = model.anomaly_score(X, method="elbo", n_draws=200, seed=1)
    iwae = model.anomaly_score(X, method="iwae", seed=1)  # 100 importance samples by default
    log_w, per_draw = _log_weights(model, X, 2000, seed=7)
    by_hand = -per_draw.mean(0)
    se = per_draw.std(0, ddof=1) * np.sqrt(1 / len(per_draw) + 1 / 200)
    assert (np.abs(elbo - by_hand) < 5 * se).all()
    # 20 independent IWAE estimates with k = 100: their mean, and the spread of one of them
    k100 = -(special.logsumexp(log_w.reshape(20, 100, -1), axis=1) - np.log(100))  # (20, rows)
    se = k100.std(0, ddof=1) * np.sqrt(1 / 20 + 1)
    assert (np.abs(iwae - k100.mean(0)) < 5 * se).all()
    # The importance-sampled log p(x) lies above the ELBO (Burda et al. 2016), by its own
    # estimates and by the scores
    assert k100.mean() < by_hand.mean() and iwae.mean() < elbo.mean()


def test_deviance_removes_the_entropy_of_grey_pixels(fitted, digits):
    """Bernoulli cross-entropy on grey values costs at least their entropy H(x), however good
    the fit: the deviance is -ELBO - H(x), and >= 0 for every posterior draw."""
    X = digits[1][:100]  # pixels in [0, 1], many grey
    p = np.clip(X.astype(np.float64), 1e-300, 1)
    q = np.clip(1 - X.astype(np.float64), 1e-300, 1)
    entropy = -(X * np.log(p) + (1 - X) * np.log(q)).sum(1)
    elbo = fitted.anomaly_score(X, method="elbo", n_draws=3, seed=4)
    deviance = fitted.anomaly_score(X, method="deviance", n_draws=3, seed=4)
    np.testing.assert_allclose(deviance, elbo - entropy, rtol=1e-5, atol=1e-3)
    assert (deviance > 0).all() and entropy.min() > 1  # grey pixels: a correction that matters
    binary = (X > 0.5).astype(np.float32)  # no entropy: the deviance is the -ELBO
    np.testing.assert_allclose(
        fitted.anomaly_score(binary, method="deviance"),
        fitted.anomaly_score(binary, method="elbo"),
        atol=1e-4,
    )


def test_bernoulli_and_count_models_score_by_mean_deviance_by_default(fitted, model, digits):
    """-ELBO ranks grey images by their ink and cells by their depth; the deviance of the
    posterior mean's reconstruction removes what the saturated fit charges, so it is the
    default score (and calibration) of Bernoulli and count models; Gaussian models, whose
    deviance ranks as -ELBO does, keep -ELBO."""
    defaults = {name: cls.anomaly_score for name, cls in LIKELIHOODS.items()}
    assert set(defaults.values()) <= set(SCORES)
    assert {n for n, m in defaults.items() if m == "mean_deviance"} == {
        "bernoulli", "poisson", "nb", "zinb"
    }  # fmt: skip
    X = digits[1][:60]
    np.testing.assert_array_equal(
        fitted.anomaly_score(X), fitted.anomaly_score(X, method="mean_deviance")
    )
    assert copy.deepcopy(fitted).calibrate(X, fpr=0.1).calibration_.method == "mean_deviance"
    table = low_rank(50, seed=5)
    assert default_method(model) == "elbo"
    np.testing.assert_array_equal(
        model.anomaly_score(table, seed=2), model.anomaly_score(table, method="elbo", seed=2)
    )
    counts = np.random.default_rng(0).poisson(3.0, size=(200, 12)).astype(np.float32)
    nb = vaekit.VAE(likelihood="nb", epochs=1, hidden=(8,), verbose=False).fit(counts)
    np.testing.assert_array_equal(
        nb.anomaly_score(counts[:20]), nb.anomaly_score(counts[:20], method="mean_deviance")
    )


def test_mean_deviance_is_the_deviance_of_the_posterior_mean_reconstruction(fitted, model, digits):
    """No draws: the same for every seed. Bernoulli: sum_j KL(Bern(x_j) || Bern(p_j)) with p
    decoded from E_q[z]; Gaussian: squared error over twice the variance."""
    X = digits[1][:50]
    score = fitted.anomaly_score(X, method="mean_deviance", seed=1)
    np.testing.assert_array_equal(score, fitted.anomaly_score(X, method="mean_deviance", seed=2))
    module = fitted.module_.eval()
    with torch.no_grad():
        x = torch.as_tensor(X)
        p = module.decode(module.encode(x).loc).mean.double().numpy()
    x = X.astype(np.float64)
    by_hand = (
        np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / p), 0)
        + np.where(x < 1, (1 - x) * np.log(np.where(x < 1, 1 - x, 1) / (1 - p)), 0)
    ).sum(1)
    np.testing.assert_allclose(score, by_hand, rtol=1e-4, atol=1e-3)
    table = low_rank(40, seed=7)
    module = model.module_.eval()
    with torch.no_grad():
        z = torch.as_tensor(model.preprocessor_.transform(table.to_numpy()), dtype=torch.float32)
        px = module.decode(module.encode(z).loc)
        squared = ((z - px.mean) ** 2 / (2 * px.scale**2)).sum(1).double().numpy()
    np.testing.assert_allclose(
        model.anomaly_score(table, method="mean_deviance"), squared, rtol=1e-4
    )


def test_contributions_point_at_the_shifted_features(model, with_outliers):
    parts = model.anomaly_contributions(with_outliers, n_draws=5)
    assert parts.shape == (300, N_FEATURES)
    assert list(parts.index) == list(with_outliers.index)
    assert list(parts.columns) == list(with_outliers.columns)
    for _, row in parts.iloc[-N_OUTLIERS:].iterrows():
        assert set(row.nlargest(2).index) == {f"f{j}" for j in SHIFTED}
    # Summed over features they are the reconstruction score (same draws for the same seed).
    np.testing.assert_allclose(
        parts.sum(axis=1),
        model.anomaly_score(with_outliers, method="reconstruction", n_draws=5),
        rtol=1e-4,
    )


def test_a_conditional_model_scores_given_y(conditional, digits):
    _, X_test, _, y_test = digits
    calibrated = copy.deepcopy(conditional).calibrate(X_test[:200], y_test[:200], fpr=0.1)
    assert calibrated.is_anomaly(X_test[200:], y_test[200:]).shape == (len(X_test) - 200,)
    parts = conditional.anomaly_contributions(X_test[:5], y_test[:5])
    assert parts.shape == (5, 64)
    # The wrong condition makes a digit less likely: scores rise on average.
    wrong = (y_test[:200] + 1) % 10
    right = conditional.anomaly_score(X_test[:200], y_test[:200])
    assert conditional.anomaly_score(X_test[:200], wrong).mean() > right.mean()
    with pytest.raises(ValueError, match="pass y"):
        conditional.anomaly_score(X_test[:5])


@pytest.mark.parametrize(
    ("fpr", "method"), [(0.05, "elbo"), (0.2, "elbo"), (0.05, "mean_deviance")]
)
def test_calibrated_false_positive_rate_holds_on_fresh_control_samples(
    model, with_outliers, fpr, method
):
    calibrated = copy.deepcopy(model).calibrate(low_rank(1000, seed=1), fpr=fpr, method=method)
    flagged = calibrated.is_anomaly(low_rank(4000, seed=2)).mean()
    # The rate given one calibration set varies by Beta(n_cal) and the count by Binomial(n_new).
    sd = np.sqrt(fpr * (1 - fpr) * (1 / 1000 + 1 / 4000))
    assert abs(flagged - fpr) < 4 * sd, (flagged, fpr)
    assert calibrated.is_anomaly(with_outliers)[-N_OUTLIERS:].all()


def test_conformal_threshold_guarantee_by_simulation():
    """Independent of any model: over many calibration sets from one distribution, the share
    of new samples above the threshold lies in [fpr - 1/(n+1), fpr]."""
    rng = np.random.default_rng(0)
    n, fpr, rates = 40, 0.1, []
    for _ in range(2000):
        cal = Calibration.fit(rng.standard_normal(n), fpr, "elbo")
        rates.append(cal.flags(rng.standard_normal(50)).mean())
    mean, se = np.mean(rates), np.std(rates) / np.sqrt(len(rates))
    assert fpr - 1 / (n + 1) - 3 * se <= mean <= fpr + 3 * se


def test_threshold_is_the_conformal_order_statistic():
    scores = np.random.default_rng(1).permutation(100).astype(float)  # 0..99
    # ceil(101 * 0.9) = 91: the 91st smallest of 0..99 is 90.
    assert Calibration.fit(scores, 0.1, "elbo").threshold == 90.0
    assert Calibration.fit(scores[:19], 0.05, "elbo").threshold == scores[:19].max()


def test_p_values_match_a_hand_computation():
    cal = Calibration("elbo", 0.5, 3.0, np.array([5.0, 1.0, 2.0, 2.0, 3.0]))
    np.testing.assert_array_equal(cal.control_scores, [1, 2, 2, 3, 5])
    # (1 + number of control scores >= s) / (5 + 1)
    np.testing.assert_allclose(cal.p_values([0, 2, 2.5, 5, 6]), [6 / 6, 5 / 6, 3 / 6, 2 / 6, 1 / 6])
    # Rank ceil(6 * 0.5) = 3 is a tied 2: a score equal to the threshold is not flagged.
    fitted = Calibration.fit([5.0, 1.0, 2.0, 2.0, 3.0], 0.5, "elbo")
    assert fitted.threshold == 2.0
    np.testing.assert_array_equal(fitted.flags([2.0, 2.5]), [False, True])


def test_p_values_are_monotone_in_0_1_and_agree_with_the_flags():
    rng = np.random.default_rng(2)
    cal = Calibration.fit(rng.normal(size=200), 0.05, "elbo")
    scores = np.sort(rng.normal(scale=2, size=1000))
    p = cal.p_values(scores)
    assert ((p > 0) & (p <= 1)).all()
    assert (np.diff(p) <= 0).all()  # a higher score is never less surprising
    np.testing.assert_array_equal(cal.flags(scores), p <= cal.fpr)


def test_too_small_control_set_says_how_many_are_needed(model):
    assert min_control(0.05) == 19 and min_control(0.01) == 99
    with pytest.raises(
        ValueError, match="18 control samples cannot calibrate fpr=0.05.*at least 19"
    ):
        copy.deepcopy(model).calibrate(low_rank(18, seed=1), fpr=0.05)
    copy.deepcopy(model).calibrate(low_rank(19, seed=1), fpr=0.05)  # just enough


@pytest.mark.parametrize("fpr", [0, 1, 1.5, -0.1, float("nan"), "0.05", True])
def test_fpr_out_of_range(model, fpr):
    with pytest.raises(ValueError, match="fpr must be a number between 0 and 1"):
        copy.deepcopy(model).calibrate(low_rank(100, seed=1), fpr=fpr)


def test_unknown_method_names_the_choices(model, with_outliers):
    choices = r"\['elbo', 'iwae', 'reconstruction', 'deviance', 'mean_deviance'\]"
    match = rf"unknown anomaly score 'nll'; choose one of {choices}"
    with pytest.raises(ValueError, match=match):
        model.anomaly_score(with_outliers, method="nll")
    with pytest.raises(ValueError, match=match):
        copy.deepcopy(model).calibrate(low_rank(100, seed=1), method="nll")


def test_is_anomaly_before_calibrate(model, with_outliers):
    with pytest.raises(ValueError, match=r"call calibrate\(X_control\) before is_anomaly"):
        copy.deepcopy(model).is_anomaly(with_outliers)


def test_calibration_survives_save_and_load(model, with_outliers, tmp_path):
    calibrated = copy.deepcopy(model).calibrate(low_rank(200, seed=1), fpr=0.1, method="iwae")
    calibrated.save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    cal, back = calibrated.calibration_, loaded.calibration_
    assert (back.method, back.fpr, back.threshold, back.n_draws) == (
        "iwae",
        0.1,
        cal.threshold,
        100,
    )
    np.testing.assert_array_equal(back.control_scores, cal.control_scores)
    np.testing.assert_array_equal(
        loaded.is_anomaly(with_outliers), calibrated.is_anomaly(with_outliers)
    )


def test_a_folder_without_calibration_still_loads(model, tmp_path):
    model.save(tmp_path / "m")
    assert not hasattr(vaekit.load(tmp_path / "m"), "calibration_")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["calibration"]  # as written before calibrations were saved
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert not hasattr(vaekit.load(tmp_path / "m"), "calibration_")


def test_a_calibration_saved_under_its_old_key_still_loads(model, tmp_path):
    calibrated = copy.deepcopy(model).calibrate(low_rank(100, seed=1), fpr=0.1, n_draws=3)
    calibrated.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["calibration"]["n_draws"] == 3
    config["calibration"]["n_samples"] = config["calibration"].pop("n_draws")  # before renaming
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    back = vaekit.load(tmp_path / "m").calibration_
    assert back.n_draws == 3 and back.threshold == calibrated.calibration_.threshold


@pytest.mark.parametrize(
    "method",
    ["elbo_terms", "score_samples", "log_likelihood", "anomaly_score", "anomaly_contributions"],
)
def test_the_old_draws_keyword_warns_and_still_counts_draws(model, method):
    X = low_rank(20, seed=3)
    expected = getattr(model, method)(X, n_draws=2, seed=7)
    with pytest.warns(FutureWarning, match=rf"{method}\(\): .*n_samples=.*renamed n_draws="):
        got = getattr(model, method)(X, n_samples=2, seed=7)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    # One draw differs from two: the keyword reached the computation.
    assert not np.array_equal(np.asarray(getattr(model, method)(X, n_draws=1, seed=7)), expected)
    with pytest.raises(TypeError, match="got both n_samples= and n_draws="):
        getattr(model, method)(X, n_samples=2, n_draws=2)


def test_calibrate_and_calibration_take_the_old_draws_name(model):
    with pytest.warns(FutureWarning, match="n_draws"):
        calibrated = copy.deepcopy(model).calibrate(low_rank(100, seed=1), fpr=0.1, n_samples=3)
    with pytest.warns(FutureWarning, match="n_draws"):
        assert calibrated.calibration_.n_samples == calibrated.calibration_.n_draws == 3


# ---------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(model, with_outliers, tmp_path_factory):
    """The model's folder, data with outliers, and control samples, as the CLI reads them."""
    folder = tmp_path_factory.mktemp("score")
    model.save(folder / "model")
    with_outliers.to_csv(folder / "data.csv")
    low_rank(200, seed=1).to_csv(folder / "control.csv")
    low_rank(10, seed=1).to_csv(folder / "few.csv")
    return folder


@pytest.fixture
def model_dir(files, tmp_path):
    """A copy of the model folder that a test may calibrate."""
    shutil.copytree(files / "model", tmp_path / "model")
    return tmp_path / "model"


def test_cli_scores_without_calibration(files, tmp_path, capsys):
    code, out, err = cli(
        capsys, "score", files / "model", files / "data.csv", "-o", tmp_path / "s.tsv"
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t", index_col=0)
    assert list(table.columns) == ["score"] and table.index[0] == "s3_0"
    assert table.index.name == "sample"
    np.testing.assert_allclose(
        table["score"],
        vaekit.load(files / "model").anomaly_score(pd.read_csv(files / "data.csv", index_col=0)),
        rtol=1e-6,
    )
    assert "not calibrated" in out


def test_cli_calibrates_with_control_and_stores_it(files, model_dir, tmp_path, capsys):
    code, out, err = cli(
        capsys,
        "score",
        model_dir,
        files / "data.csv",
        "-o",
        tmp_path / "s.tsv",
        "--control",
        files / "control.csv",
        "--fpr",
        "0.1",
        "--save-calibration",
        "--contributions",
        tmp_path / "c.tsv",
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t", index_col=0)
    assert list(table.columns) == ["score", "flag", "p_value"]
    assert table["flag"].iloc[-N_OUTLIERS:].all()
    assert ((table["p_value"] > 0) & (table["p_value"] <= 1)).all()
    parts = pd.read_csv(tmp_path / "c.tsv", sep="\t", index_col=0)
    assert parts.shape == (300, N_FEATURES) and parts.index[0] == "s3_0"
    cal = vaekit.load(model_dir).calibration_
    assert (cal.method, cal.fpr, cal.n_control) == ("elbo", 0.1, 200)  # a Gaussian model's
    # A later run flags with the stored calibration, without --control.
    code, out, err = cli(
        capsys, "score", model_dir, files / "data.csv", "-o", tmp_path / "again.tsv"
    )
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again.tsv", sep="\t", index_col=0), table)
    # Another method's scores cannot use it: scores only, and the reason.
    code, out, err = cli(
        capsys,
        "score",
        model_dir,
        files / "data.csv",
        "-o",
        tmp_path / "r.tsv",
        "--method",
        "reconstruction",
    )
    assert code == 0, err
    assert list(pd.read_csv(tmp_path / "r.tsv", sep="\t", index_col=0).columns) == ["score"]
    assert "calibrated for elbo scores" in out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--method", "nll"], "unknown anomaly score 'nll'"),
        (["--control", "few.csv", "--save-calibration"], "10 control samples cannot calibrate"),
        (["--control", "control.csv", "--fpr", "1.5"], "fpr must be a number between 0 and 1"),
        (["--fpr", "0.1"], "give the control samples with --control"),
        (["--save-calibration"], "give --control"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    files, model_dir, tmp_path, capsys, args, match
):
    before = (model_dir / "config.json").read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = [str(files / a) if a.endswith(".csv") else a for a in args]
    result = cli(
        capsys,
        "score",
        model_dir,
        files / "data.csv",
        "-o",
        out_dir / "s.tsv",
        "--contributions",
        out_dir / "c.tsv",
        *args,
    )
    assert_user_error(result, match)
    assert list(out_dir.iterdir()) == []  # no output, no temporary file
    assert (model_dir / "config.json").read_bytes() == before


def test_refitting_drops_the_old_calibration(digits) -> None:
    X_train, X_test = digits[0], digits[1]
    model = vaekit.VAE(n_latent=2, epochs=2, likelihood="bernoulli", seed=0, verbose=False)
    model.fit(X_train).calibrate(X_test, fpr=0.1)
    assert hasattr(model, "calibration_")
    model.fit(X_train)
    assert not hasattr(model, "calibration_")
    with pytest.raises(Exception, match="calibrate"):
        model.is_anomaly(X_test)


@pytest.fixture(scope="module")
def mask_aware() -> vaekit.VAE:
    return vaekit.VAE(
        n_latent=3,
        hidden=(32,),
        epochs=60,
        lr=3e-3,
        missing="mask",
        mask_rate=0.3,
        seed=0,
        verbose=False,
    ).fit(low_rank(2000, seed=0))


@pytest.mark.parametrize("method", list(SCORES))
def test_a_mask_aware_model_scores_rows_with_missing_entries(mask_aware, with_outliers, method):
    """With missing="mask" every score counts the observed entries only, as the ELBO does:
    finite for rows with NaN (the saturated term of a NaN entry would make the sum NaN), and
    the planted outliers still stand out with other features hidden (not all first: an
    encoder missing a quarter of a row sometimes misreads a normal one)."""
    hidden = with_outliers.copy()
    hidden.iloc[:, 15:] = np.nan  # none of SHIFTED
    scores = mask_aware.anomaly_score(hidden, method=method)
    assert np.isfinite(scores).all()
    assert np.median(scores[-N_OUTLIERS:]) > np.quantile(scores[:-N_OUTLIERS], 0.95)
