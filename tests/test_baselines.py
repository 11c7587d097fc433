"""vaekit.analysis.baselines and the commands that print them: PCA's held-out error on a planted
low-rank table is the noise it cannot explain (derived below), the flags appear exactly when the
baseline wins, the commands print the lines, and inputs too small give a stated skip or one
clear error."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_cli import assert_user_error, cli, main_args

import vaekit
from vaekit.analysis.baselines import (
    BaselineSkipped,
    anomaly_baseline,
    cross_fitted_errors,
    flags,
    imputation_baseline,
    min_rows,
    pca_errors,
    reconstruction_baseline,
    separation_baseline,
)

N, D, K, SIGMA = 300, 12, 2, 0.3


def low_rank(n: int, d: int, k: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Z): X = Z W + sigma * noise, Z (n, k) standard normal, W (k, d) with entries of SD 2."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, k))
    return Z @ (2 * rng.normal(size=(k, d))) + sigma * rng.normal(size=(n, d)), Z


@pytest.fixture(scope="module")
def planted():
    return low_rank(N, D, K, SIGMA, seed=0)


@pytest.fixture(scope="module")
def untrained(planted):
    """A VAE after one epoch: it reconstructs little more than the mean, so PCA must win."""
    X = planted[0]
    return vaekit.VAE(n_latent=K, hidden=(8,), epochs=1, preprocess=[], seed=0,
                      verbose=False).fit(X)  # fmt: skip


# ----------------------------------------------------------------------------- known answers
def test_pca_error_on_a_planted_low_rank_table_is_the_noise_it_cannot_explain():
    # X = Z W + sigma e with rank-k signal: PCA with k components keeps the signal's subspace
    # S, so a held-out row's residual is the noise outside S, (I - P) e, whose squared norm
    # averages sigma^2 (d - k); per entry sigma^2 (d - k) / d. Its mean over n rows has SD
    # sigma^2 sqrt(2 (d - k) / n) / d (a chi-square with d - k degrees per row). Estimating S
    # and the mean from n_fit rows adds a positive bias of order sigma^2 (k + 1) / n_fit.
    n, d, k, sigma = 3000, 20, 3, 0.5
    X, _ = low_rank(n, d, k, sigma, seed=1)
    error = cross_fitted_errors(X, k, folds=5, seed=0).mean()
    expected = sigma**2 * (d - k) / d
    sd = sigma**2 * math.sqrt(2 * (d - k) / n) / d
    bias = 2 * sigma**2 * (k + 1) / (0.8 * n)
    assert expected - 5 * sd < error < expected + 5 * sd + bias


def test_pca_with_as_many_components_as_features_reconstructs_exactly(planted):
    X = planted[0][:50, :3]
    assert pca_errors(X[:40], X[40:], k=3).max() < 1e-20 * max(1.0, float((X**2).max()))


def test_cross_fitting_needs_enough_rows_and_says_how_many():
    X, _ = low_rank(40, 6, 2, 0.1, seed=2)
    n = min_rows(2, folds=5)
    assert n - math.ceil(n / 5) >= 3  # every fit keeps k + 1 rows
    assert n == 5 or (n - 1) - math.ceil((n - 1) / 5) < 3  # and no fewer rows would do
    assert np.isfinite(cross_fitted_errors(X[:n], 2)).all()
    with pytest.raises(BaselineSkipped, match=f"give at least {n} samples"):
        cross_fitted_errors(X[: n - 1], 2)


def test_pca_beats_an_untrained_vae_and_the_flag_says_so(planted, untrained):
    X = planted[0]
    table = reconstruction_baseline(untrained, X[200:], train=X[:200])
    row = table.iloc[0]
    truth = ((X[200:] - np.asarray(untrained.reconstruct(X[200:]), np.float64)) ** 2).mean()
    assert row.vaekit == pytest.approx(truth, rel=1e-6)  # the VAE's figure, recomputed here
    assert row.baseline == f"PCA ({K} components)" and not row.higher_is_better
    assert row.better == row.baseline and row.baseline_value < row.vaekit
    assert row.metric == "MSE on the model's input scale"
    (flag,) = flags(table)
    assert flag.startswith("PCA beats the VAE on held-out reconstruction")
    assert "a linear model fits these data as well" in flag
    assert "PCA fitted on 200 samples of the training data" in table.attrs["evaluated_on"]
    crossed = reconstruction_baseline(untrained, X[200:])  # no training rows: cross-fitted
    assert "5-fold cross-fitted" in crossed.attrs["evaluated_on"]
    assert crossed.iloc[0].better == crossed.iloc[0].baseline


def test_no_flag_when_the_vae_wins(planted, untrained):
    # A score that is the truth itself ranks every anomaly first (AUROC 1); the baselines see
    # anomalies drawn from the normal distribution and cannot reach 1, so the VAE side wins.
    X = planted[0]
    truth = np.arange(len(X)) < 60
    scores = truth + 1e-3 * np.random.default_rng(0).normal(size=len(X))
    table = anomaly_baseline(untrained, X, scores, truth)
    assert (table.vaekit == 1.0).all() and (table.baseline_value < 1.0).all()
    assert set(table.better) == {"vaekit"} and flags(table) == []
    assert list(table.baseline) == ["PCA reconstruction error", "IsolationForest"]


def test_anomalies_off_the_planted_subspace_are_found_by_pca(planted, untrained):
    X = planted[0].copy()
    rng = np.random.default_rng(3)
    X[:30] += 10 * SIGMA * rng.normal(size=(30, D))  # far outside the rank-2 subspace
    truth = np.arange(len(X)) < 30
    useless = rng.normal(size=len(X))  # a score that knows nothing
    table = anomaly_baseline(untrained, X, useless, truth)
    assert table.set_index("baseline").loc["PCA reconstruction error", "baseline_value"] > 0.99
    assert any(f.startswith("PCA reconstruction error beats the VAE") for f in flags(table))
    # the same samples as the scored set against controls: every scored sample an anomaly
    controls = anomaly_baseline(untrained, X[:30], useless[:30], control=X[30:],
                                control_scores=useless[30:])  # fmt: skip
    assert "30 anomalies and 270 normal samples" in controls.attrs["evaluated_on"]
    assert controls.baseline_value.iloc[0] > 0.99


def test_separation_of_an_annotation_planted_on_the_first_factor(planted, untrained):
    X, Z = planted
    annotations = pd.DataFrame({
        "side": np.where(Z[:, 0] > 0, "up", "down"),
        "age": np.random.default_rng(0).uniform(20, 80, N),
        "sample": [f"s{i}" for i in range(N)],
        "batch": ["b1"] * N,
    })  # fmt: skip
    table = separation_baseline(untrained, X, annotations)
    (row,) = table.itertuples()
    assert row.what == "side" and row.metric == "5-fold kNN AUROC" and row.higher_is_better
    assert row.baseline_value > 0.9  # PCA's first components hold the planted factor
    skipped = table.attrs["skipped"]
    assert set(skipped) == {"age", "sample", "batch"} and "one class" in skipped["batch"]
    with pytest.raises(BaselineSkipped, match="one class"):
        separation_baseline(untrained, X, annotations["batch"])
    with pytest.raises(ValueError, match="annotations have 10 rows but the data has 300"):
        separation_baseline(untrained, X, annotations.iloc[:10])


def test_imputation_hides_observed_entries_and_knn_beats_an_untrained_vae(planted, untrained):
    X = planted[0][:100].copy()
    X[0, :4] = np.nan  # entries missing already are not scored
    table = imputation_baseline(untrained, X, share=0.1, n_draws=20, refine_steps=0)
    observed = int(np.isfinite(X).sum())
    assert table.attrs["evaluated_on"].startswith(f"{round(0.1 * observed)} observed entries")
    row = table.iloc[0]
    assert row.metric == "RMSE in the data's units" and row.better.startswith("KNNImputer")
    assert flags(table)[0].startswith("KNNImputer beats the VAE at imputing hidden entries")
    with pytest.raises(ValueError, match="share must be in"):
        imputation_baseline(untrained, X, share=1.0)
    with pytest.raises(BaselineSkipped, match="too few"):
        imputation_baseline(untrained, X[:1], share=0.5)


def test_missing_entries_and_bad_anomaly_inputs_are_refused_plainly(planted, untrained):
    X = planted[0][:40].copy()
    X[0, 0] = np.nan
    masked = vaekit.VAE(n_latent=K, hidden=(8,), epochs=1, missing="mask", seed=0,
                        verbose=False).fit(X)  # fmt: skip
    with pytest.raises(BaselineSkipped, match="missing entries"):
        reconstruction_baseline(masked, X)
    Xc = planted[0]
    with pytest.raises(ValueError, match="give the known anomalies"):
        anomaly_baseline(untrained, Xc, np.zeros(N))
    with pytest.raises(BaselineSkipped, match="normal samples and 0 anomalies"):
        anomaly_baseline(untrained, Xc, np.zeros(N), np.zeros(N, bool))


def test_counts_are_compared_on_log1p_counts_per_10k():
    rng = np.random.default_rng(5)
    counts = rng.poisson(np.exp(rng.normal(1, 0.5, size=(60, 1)) + rng.normal(size=(1, 15))))
    counts[:, 0] += 1  # every cell a positive total
    model = vaekit.VAE(n_latent=2, hidden=(8,), epochs=1, likelihood="poisson", seed=0,
                       verbose=False).fit(counts)  # fmt: skip
    row = reconstruction_baseline(model, counts).iloc[0]
    rec = np.asarray(model.reconstruct(counts), np.float64)

    def per_10k(v: np.ndarray) -> np.ndarray:
        return np.log1p(v / v.sum(1, keepdims=True) * 1e4)

    assert row.metric == "MSE on log1p counts per 10,000"
    assert row.vaekit == pytest.approx(((per_10k(counts) - per_10k(rec)) ** 2).mean(), rel=1e-5)


def test_the_report_shows_the_baseline_and_flags_its_win(planted, untrained, tmp_path):
    from vaekit.report import build_report

    report = build_report(untrained, planted[0][:120], importance_samples=0, max_rows=120)
    rows = {key: text for key, _, text in report.summary}
    assert rows["baselines_on_0"].startswith("DATA as given (120 samples): 120 samples; PCA 5-")
    assert "PCA beats the VAE; a linear model fits" in rows["baseline_reconstruction_0"]
    assert report.flagged == {"baseline_reconstruction_0"}
    assert '<tr data-key="baseline_reconstruction_0" class="flag">' in report.to_html()
    assert report.numbers["baselines"][0]["flags"]


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A planted table with a NaN-holed copy and annotations, and a model trained on it by
    `vaekit train` (which records the shape, so evaluate uses its validation rows)."""
    folder = tmp_path_factory.mktemp("baselines")
    X, Z = low_rank(120, 10, 2, 0.3, seed=4)
    index = pd.Index([f"s{i}" for i in range(120)], name="sample")
    columns = [f"g{j}" for j in range(10)]
    pd.DataFrame(X, index=index, columns=columns).to_csv(folder / "t.csv")
    pd.DataFrame(X[:4], index=index[:4], columns=columns).to_csv(folder / "few.csv")
    holed = X.copy()
    holed[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan
    pd.DataFrame(holed, index=index, columns=columns).to_csv(folder / "holed.csv")
    pd.DataFrame({
        "sample": index, "grp": np.where(Z[:, 0] > 0, "a", "b"),
        "odd": (np.arange(120) < 10).astype(int), "same": "x", "word": "maybe",
    }).to_csv(folder / "ann.csv", index=False)  # fmt: skip
    args = ["train", folder / "t.csv", "-o", folder / "m", "--latent", "2", "--hidden", "8"]
    assert main_args([*args, "--epochs", "2", "--seed", "0", "-q"]) == 0
    return folder


def test_evaluate_prints_pca_on_the_validation_rows(files, capsys):
    code, out, err = cli(capsys, "evaluate", files / "m", files / "t.csv", "-k", "0")
    assert code == 0, err
    assert "baselines on the validation samples held out in training: 12 samples; PCA " in out
    assert "held-out reconstruction, MSE on the model's input scale (lower is better): " in out
    code, out, err = cli(capsys, "evaluate", files / "m", files / "t.csv", "-k", "0", "--json")
    result = json.loads(out)["baselines"]
    (row,) = result["comparisons"]
    assert row["baseline"] == "PCA (2 components)" and row["task"] == "reconstruction"
    assert set(result) == {"evaluated_on", "comparisons", "flags", "skipped"}
    assert (row["better"] != "vaekit") == bool(result["flags"])


def test_evaluate_on_too_few_rows_states_the_skip(files, capsys):
    code, out, err = cli(capsys, "evaluate", files / "m", files / "few.csv", "-k", "0")
    assert code == 0, err
    assert "baselines: skipped (4 samples are too few for 5-fold cross-fitting" in out


def test_score_prints_the_auroc_beside_the_baselines(files, capsys):
    ann = ["--annotations", files / "ann.csv"]
    code, out, err = cli(capsys, "score", files / "m", files / "t.csv", "-o",
                         files / "s.tsv", *ann, "--anomalies", "odd")  # fmt: skip
    assert code == 0, err
    assert "baselines on 10 labelled anomalies and 110 normal samples" in out
    assert "AUROC (higher is better): VAE " in out and ", IsolationForest " in out
    result = cli(capsys, "score", files / "m", files / "t.csv", "-o", files / "x.tsv", *ann,
                 "--anomalies", "word")  # fmt: skip
    assert_user_error(result, "mark anomalies 1/true/yes/anomaly")
    assert not (files / "x.tsv").exists()


def test_impute_and_interpret_print_their_baselines(files, capsys):
    code, out, err = cli(capsys, "impute", files / "m", files / "holed.csv", "-o",
                         files / "i.tsv", "--draws", "20", "--refine-steps", "0")  # fmt: skip
    assert code == 0, err
    assert "hidden entries, RMSE in the data's units (lower is better): VAE " in out
    assert "KNNImputer (5 neighbours)" in out
    code, out, err = cli(capsys, "interpret", files / "m", files / "t.csv", "-o", files / "int",
                         "--annotations", files / "ann.csv")  # fmt: skip
    assert code == 0, err
    assert "grp, 5-fold kNN AUROC (higher is better): VAE " in out
    assert "same: no baseline (one class" in out
