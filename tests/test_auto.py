"""Automatic settings: chosen from the data, deterministic, recorded, and never over a setting
the user or a preset gave; on a small low-rank table, as good as PCA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA

import vaekit
from vaekit import auto

README = Path(__file__).resolve().parents[1] / "README.md"


def low_rank(n: int, d: int = 20, rank: int = 3, noise: float = 0.5, seed: int = 0):
    """Rows x = W z + noise (z ~ N(0, I)), with features on different scales and offsets."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(rank, d))
    X = rng.normal(size=(n, rank)) @ w + noise * rng.normal(size=(n, d))
    return X * rng.uniform(0.5, 20, d) + rng.uniform(-5, 50, d)


@pytest.mark.parametrize(
    ("X", "kind"),
    [
        (np.random.default_rng(0).poisson(3, (50, 8)).astype(float), "counts"),
        (sp.random(50, 8, density=0.3, format="csr", random_state=0, data_rvs=lambda k: np.ones(k)),
         "binary"),
        (np.random.default_rng(0).random((50, 8)), "unit"),
        (np.random.default_rng(0).lognormal(0, 2, (200, 8)), "skewed"),
        (np.random.default_rng(0).normal(size=(50, 8)), "real"),
        # positive and symmetric (|normal| + 2 was not: a half-normal's skewness is 0.995)
        (np.random.default_rng(0).normal(10, 1, (50, 8)), "real"),
    ],
)
def test_the_kind_of_values(X, kind):
    assert auto.profile(X).kind == kind


def test_missing_entries_do_not_decide_the_kind():
    X = np.random.default_rng(0).poisson(3, (50, 8)).astype(float)
    X[::3, 2] = np.nan
    assert auto.profile(X).kind == "counts"


def test_settings_follow_the_data_and_are_recorded(tmp_path):
    X = low_rank(300)
    a = vaekit.VAE(seed=0, epochs=20, verbose=False).fit(X)  # (the rest chosen: faster)
    s = a.settings_
    again = vaekit.VAE(seed=1, epochs=1, verbose=False).fit(X).settings_["auto"]
    assert [n for n in s["auto"] if not n.startswith("patience")] == [
        n for n in again if not n.startswith("patience")
    ]  # deterministic: the same data, the same choices
    assert s["hidden"] == () and s["preprocess"] == ("zscore",)
    assert s["likelihood"] == "isotropic_gaussian" and s["n_latent"] == 3  # the planted rank
    assert any(note.startswith("hidden = ()") for note in s["auto"])
    # linear maps and an isotropic Gaussian: probabilistic PCA's solution is the start
    assert s["init"] == "pca" and any(note.startswith("init = 'pca'") for note in s["auto"])
    assert s["lr"] == 1e-3  # 0.2 / 20 features is above the default
    assert s["batch_size"] == auto._batch(auto.profile(X)) < 128
    a.save(tmp_path / "m")
    assert vaekit.load(tmp_path / "m").settings_["auto"] == s["auto"]


def test_explicit_settings_and_presets_win():
    X = low_rank(300)
    given = vaekit.VAE(hidden=(32,), likelihood="gaussian", epochs=3, preprocess=(), seed=0,
                       verbose=False).fit(X)
    assert given.settings_["hidden"] == (32,) and given.settings_["epochs"] == 3
    assert given.settings_["preprocess"] == ()
    assert not any(n.split(" =")[0] in ("hidden", "epochs", "preprocess", "likelihood")
                   for n in given.settings_["auto"])
    counts = np.random.default_rng(0).poisson(2, (300, 30)).astype(np.float32)
    preset = vaekit.VAE(preset="single_cell", epochs=2, seed=0, verbose=False).fit(counts)
    assert preset.settings_["hidden"] == (128,) and preset.settings_["batch_norm"]
    assert preset.settings_["patience"] == 20 and preset.settings_["n_latent"] == 10


def test_counts_get_a_count_likelihood_and_large_data_a_wider_layer():
    p = auto.Profile(60_000, 784, "unit")
    chosen, notes = auto.choose(auto.RULES, p, set())
    assert chosen["hidden"] == (392,) and chosen["likelihood"] == "bernoulli"
    assert 20 <= chosen["epochs"] <= 1000 and len(notes) == len(chosen)
    chosen, _ = auto.choose(auto.RULES, auto.Profile(5_000, 2_000, "counts"), set())
    assert chosen["likelihood"] == "nb" and "hidden" not in chosen  # the default (128,)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_small_low_rank_table_is_reconstructed_as_well_as_by_pca(seed):
    """200 samples of a rank-3 table (20 features): held-out reconstruction error within 5% of
    PCA's with as many components, on the data's own scale."""
    X_all = low_rank(1200, seed=seed)  # one W for the training and the test rows
    X, X_test = X_all[:200], X_all[200:]
    model = vaekit.VAE(seed=0, verbose=False).fit(X)
    # Both in the space the model sees (z-scores of the training rows, chosen automatically)
    prep = model.preprocessor_
    A, B = prep.transform(X.astype(np.float32)), prep.transform(X_test.astype(np.float32))
    pca = PCA(model.settings_["n_latent"]).fit(A)
    pca_error = ((B - pca.inverse_transform(pca.transform(B))) ** 2).mean()
    vae_error = ((B - model.reconstruct(X_test)) ** 2).mean()
    assert vae_error <= 1.05 * pca_error, (vae_error, pca_error)


def test_the_readme_lists_every_rule():
    text = README.read_text()
    for row in auto.table():
        assert row["rule"] in text, row


def test_a_pca_start_only_where_it_fits():
    """The automatic init="pca" and its learning rate follow the features; with conditions it
    falls back to random weights (and says so); an explicit one that cannot apply is refused
    before anything is trained."""
    chosen, _ = auto.choose(auto.RULES, auto.Profile(300, 20_000, "real"), set())
    assert chosen["init"] == "pca" and chosen["lr"] == pytest.approx(0.2 / 20_000, rel=1e-12)
    chosen, notes = auto.choose(auto.RULES, auto.Profile(300, 50, "unit"), set())
    assert "init" not in chosen and "lr" not in chosen  # bernoulli: no PCA start
    X = low_rank(120)
    batch = np.repeat(["a", "b"], 60)
    model = vaekit.VAE(seed=0, epochs=2, verbose=False).fit(X, y=batch)
    assert model.settings_["init"] == "random" and model.settings_["lr"] == 1e-3
    assert any(n.startswith("init = 'random': pca would need no conditions")
               for n in model.settings_["auto"])
    with pytest.raises(ValueError, match=r"init='pca'.*lacks: hidden=\(\)"):
        vaekit.VAE(init="pca", hidden=(8,), epochs=1, verbose=False).fit(X)
    assert not hasattr(vaekit.VAE(), "module_")
