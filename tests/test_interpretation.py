"""Loadings read from the decoder, top genes, and associations with annotations, on data with
planted structure; statistics checked against scipy and scikit-learn."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import roc_auc_score

import vaekit
from vaekit.analysis import associate, heaviest, high_weight_genes, top_genes
from vaekit.analysis.associations import _bh


def linear_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x = W' z + noise: three factors on disjoint genes with distinct strengths, so their
    loadings are orthogonal and the principal axes of the data are W's rows."""
    rng = np.random.default_rng(seed)
    W = np.zeros((3, 30))
    for k, scale in enumerate((2.0, 1.4, 1.0)):
        genes = slice(5 * k, 5 * k + 5)
        W[k, genes] = scale * rng.choice([-1.0, 1.0], 5) * rng.uniform(0.8, 1.0, 5)
    Z = rng.normal(size=(n, 3))
    return (Z @ W + rng.normal(size=(n, 30))).astype(np.float32), W


def matched_correlations(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|correlation| of each true loading row with the found row matched to it (Hungarian)."""
    corr = np.abs(np.corrcoef(truth, found)[: len(truth), len(truth) :])
    rows, cols = linear_sum_assignment(-corr)
    return corr[rows, cols]


def spanned(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """R^2 of each true loading row regressed on the found rows: 1 when the found loadings
    span the same space, whatever their rotation."""
    coef, *_ = np.linalg.lstsq(found.T, truth.T, rcond=None)
    residual = truth.T - found.T @ coef
    return 1 - (residual**2).sum(0) / ((truth.T - truth.T.mean(0)) ** 2).sum(0)


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray]:
    return linear_data()


def test_deep_decoder_loadings_recover_each_planted_factor(planted) -> None:
    """A nonlinear decoder breaks the rotation symmetry of the latent space: each feature's
    Jacobian loadings match one planted factor."""
    X, W = planted
    model = vaekit.VAE(n_latent=3, hidden=(32,), epochs=60, lr=3e-3, seed=0, verbose=False)
    loadings = model.fit(X).loadings(X)
    assert loadings.shape == (3, 30) and loadings.attrs["method"] == "jacobian"
    assert list(loadings.index) == [0, 1, 2] and list(loadings.columns) == model.features_
    assert matched_correlations(loadings.to_numpy(), W).min() > 0.95


@pytest.mark.parametrize(
    ("settings", "method"),
    [({"decoder": "linear", "hidden": (32,)}, "linear"), ({"hidden": ()}, "weights")],
)
def test_linear_decoder_loadings_span_the_planted_factors(planted, settings, method) -> None:
    """A linear decoder's likelihood is the same under any rotation of z (probabilistic PCA),
    so its loadings are checked for the space they span, not feature by feature."""
    X, W = planted
    model = vaekit.VAE(n_latent=3, epochs=60, lr=3e-3, seed=0, verbose=False, **settings)
    loadings = model.fit(X).loadings()
    assert loadings.attrs["method"] == method
    assert spanned(loadings.to_numpy(), W).min() > 0.95


def test_linear_loadings_equal_the_decoder_response_with_batch_norm(planted) -> None:
    """Folding the batch norm must give exactly how the output layer moves per unit of z."""
    X, _ = planted
    model = vaekit.VAE(n_latent=3, decoder="linear", epochs=3, seed=0, verbose=False).fit(X)
    out = model.module_.eval().likelihood.out
    assert isinstance(out[1], torch.nn.BatchNorm1d)  # the batch norm is really there
    with torch.no_grad():
        base = out(torch.zeros(1, 3))
        response = torch.cat([out(torch.eye(3)[j : j + 1]) - base for j in range(3)])
    np.testing.assert_allclose(model.loadings().to_numpy(), response.numpy(), atol=1e-5)


def test_jacobian_loadings_match_finite_differences() -> None:
    """The float32 Jacobian against central differences of a float64 copy of the decoder at
    the same latent points: with h = 1e-6 in float64 both the truncation error (~h^2) and the
    rounding error (~1e-16 * |mu| / h) stay below 1e-9, so the only gap left is float32
    rounding in the model's own pass, a few eps32 * |mu|."""
    rng = np.random.default_rng(1)
    X = rng.poisson(5, size=(300, 12)).astype(np.float32)
    model = vaekit.VAE(n_latent=2, likelihood="nb", hidden=(16,), epochs=3, seed=0, verbose=False)
    model.fit(X)
    loadings = model.loadings(X, n_samples=300)  # all 300 rows: the points below
    module = model.module_.eval()
    x = torch.from_numpy(X)
    with torch.no_grad():
        z, library = module.encode(x).loc.double(), module.library(x).double()
        decoder = copy.deepcopy(module).double()
        h = 1e-6
        diffs = [
            (
                decoder.decode(z + h * e, None, library).mean
                - decoder.decode(z - h * e, None, library).mean
            ).mean(0)
            / (2 * h)
            for e in torch.eye(2, dtype=torch.float64)
        ]
        scale = decoder.decode(z, None, library).mean.abs().max().item()
    tol = 64 * np.finfo(np.float32).eps * scale
    np.testing.assert_allclose(loadings.to_numpy(), torch.stack(diffs).numpy(), rtol=0, atol=tol)


def test_deep_decoder_loadings_without_data_average_over_the_prior(planted) -> None:
    X, _ = planted
    model = vaekit.VAE(n_latent=3, hidden=(16,), epochs=2, seed=0, verbose=False).fit(X)
    a, b = model.loadings(seed=1), model.loadings(seed=1)
    assert a.attrs["method"] == "jacobian" and np.array_equal(a.to_numpy(), b.to_numpy())
    with pytest.raises(ValueError, match="n_samples"):
        model.loadings(n_samples=0)


def test_loadings_survive_save_and_load(planted, tmp_path) -> None:
    X, _ = planted
    model = vaekit.VAE(n_latent=3, decoder="linear", epochs=2, seed=0, verbose=False).fit(X)
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(vaekit.load(tmp_path / "m").loadings(), model.loadings())


def test_loadings_l1_makes_loadings_sparse_and_reaches_the_loss(planted) -> None:
    X, W = planted
    kw = dict(n_latent=3, hidden=(), epochs=40, lr=3e-3, seed=0, verbose=False)
    dense = vaekit.VAE(**kw).fit(X).loadings().abs().to_numpy()
    sparse_model = vaekit.VAE(loadings_l1=0.5, **kw).fit(X)
    sparse = sparse_model.loadings().abs().to_numpy()
    off_support = W == 0  # genes a factor does not touch, after matching features
    corr = np.abs(np.corrcoef(W, sparse)[:3, 3:])
    rows, cols = linear_sum_assignment(-corr)
    matched = sparse[cols]
    assert np.median(matched[off_support[rows]]) < 0.2 * np.median(dense)
    assert sparse_model.settings_["loadings_l1"] == 0.5
    assert sparse_model.history_["train_loss"].notna().all()
    with pytest.raises(ValueError, match="loadings_l1 must be a number >= 0"):
        vaekit.VAE(loadings_l1=-1.0, epochs=1, verbose=False).fit(X)


def test_linear_decoder_refuses_hidden_layers() -> None:
    X = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError, match="linear decoder has no hidden layers"):
        vaekit.VAE(decoder="linear", decoder_hidden=(8,), epochs=1, verbose=False).fit(X)
    with pytest.raises(ValueError, match="decoder must be one of"):
        vaekit.VAE(decoder="transformer", epochs=1, verbose=False).fit(X)


# ---------------------------------------------------------------------------- top genes
def small_loadings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.1, size=(2, 40))
    W[0, 3], W[0, 7], W[1, 5] = 2.0, -3.0, 1.5
    return pd.DataFrame(W, columns=[f"G{i}|{100 + i}" for i in range(40)])


def test_top_genes_rank_each_sign_and_flag_high_weight_genes() -> None:
    table = top_genes(small_loadings(), k=5)
    assert len(table) == 2 * 2 * 5
    first = table[(table.feature == 0) & (table["rank"] == 1)].set_index("sign")
    assert first.loc["+", "gene"] == "G3|103" and first.loc["-", "gene"] == "G7|107"
    assert table[table.high_weight].gene.tolist() == ["G3|103", "G7|107", "G5|105"]
    assert (table[table.sign == "+"].groupby("feature").weight.is_monotonic_decreasing).all()
    assert list(heaviest(small_loadings(), 0, 2).index) == ["G7|107", "G3|103"]
    assert high_weight_genes(small_loadings()) == {
        "feature 0 +": ["G3|103"],
        "feature 0 -": ["G7|107"],
        "feature 1 +": ["G5|105"],
    }
    with pytest.raises(ValueError, match="k must be a positive integer"):
        top_genes(small_loadings(), k=0)


# ---------------------------------------------------------------------------- associations
def planted_annotations(n: int = 200, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    cohort = rng.choice(["A", "B", "C"], n)
    age = rng.uniform(20, 80, n)
    Z = rng.normal(size=(n, 5))
    Z[:, 1] += 4.0 * (sex == "male")
    Z[:, 3] += 0.05 * age
    Z[:, 4] += 3.0 * (cohort == "C")
    annotations = pd.DataFrame({"sex": sex, "cohort": cohort, "age": age})
    return Z, annotations


def test_planted_factors_are_found_with_tiny_q_values() -> None:
    Z, annotations = planted_annotations()
    result = associate(Z, annotations)
    assert len(result) == 5 * 3 and result.q.is_monotonic_increasing
    best = result.groupby("annotation").head(1).set_index("annotation")
    assert best.loc["sex", "feature"] == 1 and best.loc["sex", "auroc"] > 0.97
    assert best.loc["sex", "level"] == "male" and best.loc["sex", "q"] < 1e-20
    assert best.loc["cohort", "feature"] == 4 and best.loc["cohort", "level"] == "C"
    assert best.loc["age", "feature"] == 3 and best.loc["age", "test"] == "spearman"
    assert (best.q < 1e-6).all()


def test_statistics_agree_with_scipy_and_sklearn() -> None:
    Z, annotations = planted_annotations(n=120, seed=3)
    result = associate(Z, annotations).set_index(["annotation", "feature"])
    male = annotations.sex.to_numpy() == "male"
    for j in range(5):
        row = result.loc[("sex", j)]
        u = stats.mannwhitneyu(Z[male, j], Z[~male, j], alternative="two-sided")
        assert row.statistic == pytest.approx(u.statistic) and row.p == pytest.approx(u.pvalue)
        assert row.auroc == pytest.approx(roc_auc_score(male, Z[:, j]))
        groups = [Z[annotations.cohort.to_numpy() == c, j] for c in "ABC"]
        h = stats.kruskal(*groups)
        row = result.loc[("cohort", j)]
        assert row.statistic == pytest.approx(h.statistic) and row.p == pytest.approx(h.pvalue)
        aurocs = [roc_auc_score(annotations.cohort == c, Z[:, j]) for c in "ABC"]
        assert row.auroc == pytest.approx(max(aurocs, key=lambda a: abs(a - 0.5)))
        rho = stats.spearmanr(Z[:, j], annotations.age)
        row = result.loc[("age", j)]
        assert row.statistic == pytest.approx(rho.statistic) and row.p == pytest.approx(rho.pvalue)
        assert np.isnan(row.auroc)


def test_benjamini_hochberg_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.5 times m / rank = 0.04, 0.06, 0.0533, 0.5; then running min
    np.testing.assert_allclose(_bh(p)[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(_bh(p)[4])


def test_pure_noise_gives_no_discoveries_in_most_runs() -> None:
    runs_with_a_discovery = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        Z = rng.normal(size=(150, 10))
        annotations = pd.DataFrame(
            {
                "group": rng.choice(["a", "b"], 150),
                "batch": rng.choice(["x", "y", "z", "w"], 150),
                "dose": rng.uniform(size=150),
            }
        )
        runs_with_a_discovery += bool((associate(Z, annotations).q < 0.05).any())
    assert runs_with_a_discovery <= 4  # BH keeps this near 5% under the global null


def test_missing_values_are_skipped_and_counted_and_useless_columns_noted() -> None:
    Z, annotations = planted_annotations(n=100)
    annotations["sex"] = annotations.sex.where(np.arange(100) % 10 != 0)  # 10 missing
    annotations.loc[:4, "age"] = np.nan
    annotations["patient"] = [f"P{i // 2}" for i in range(100)]  # tumour + normal per patient
    annotations["species"] = "human"
    annotations["treated"] = np.arange(100) % 2  # numeric with two values: categorical
    result = associate(Z, annotations)
    by = result.groupby("annotation").first()
    assert by.loc["sex", "n_missing"] == 10 and by.loc["sex", "n"] == 90
    assert by.loc["age", "n_missing"] == 5
    assert by.loc["treated", "test"] == "mann-whitney"
    assert set(result.annotation) == {"sex", "cohort", "age", "treated"}
    assert set(result.attrs["skipped"]) == {"patient", "species"}
    assert "identifier" in result.attrs["skipped"]["patient"]


def test_latent_frame_is_matched_to_annotations_by_index() -> None:
    Z, annotations = planted_annotations(n=80)
    annotations.index = [f"s{i}" for i in range(80)]
    latent = pd.DataFrame(Z, index=annotations.index)
    shuffled = annotations.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(associate(latent, shuffled), associate(Z, annotations))


def test_bad_inputs_are_refused_clearly() -> None:
    Z, annotations = planted_annotations(n=50)
    with pytest.raises(ValueError, match="latent has 49 rows but annotations have 50"):
        associate(Z[:49], annotations)
    with pytest.raises(TypeError, match="DataFrame"):
        associate(Z, annotations.to_numpy())
    Z[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        associate(Z, annotations)
