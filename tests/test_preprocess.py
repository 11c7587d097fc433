"""Preprocessing steps: what each computes, persistence through save/load, and presets."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from synthetic import counts

import vaekit
from vaekit.data import preprocess
from vaekit.data.preprocess import (
    Center,
    Log1p,
    MinMax,
    NormalizeTotal,
    Preprocessor,
    SelectVariable,
    ZScore,
    override,
)
from vaekit.presets import DEFAULTS, PRESETS, resolve

RNG = np.random.default_rng(0)


def test_each_step_against_numpy_and_pandas():
    X = RNG.gamma(2.0, 3.0, size=(50, 8)).astype(np.float32)
    normed = NormalizeTotal(1e4).fit(X).transform(X)
    np.testing.assert_allclose(normed.sum(1), 1e4, rtol=1e-5)
    median = NormalizeTotal().fit(X)
    assert median.target_[0] == pytest.approx(np.median(X.sum(1)))
    np.testing.assert_allclose(Log1p(base=2).transform(X), np.log2(X + 1), rtol=1e-6)
    frame = pd.DataFrame(X)
    mad = (frame - frame.mean()).abs().mean()  # pandas' old mad(), as Tybalt used
    chosen = SelectVariable(3, "mad").fit(X)
    assert set(chosen.index_) == set(mad.nlargest(3).index)
    by_var = SelectVariable(3, "variance").fit(X)
    assert set(by_var.index_) == set(frame.var().nlargest(3).index)
    scaled = MinMax().fit(X).transform(X)
    np.testing.assert_allclose(scaled.min(0), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(0), 1, atol=1e-6)
    z = ZScore().fit(X).transform(X)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    c = Center().fit(X).transform(X)
    np.testing.assert_allclose(c.mean(0), 0, atol=1e-5)
    assert c.var(0).mean() == pytest.approx(1.0, rel=1e-4)  # one common scale...
    np.testing.assert_allclose(c.var(0) / c.var(0)[0], X.var(0) / X.var(0)[0], rtol=1e-4)


def test_sparse_input_gives_the_same_as_dense():
    X = counts(60, 10)
    S = sp.csr_matrix(X)
    for steps in (["normalize_total", "log1p"], [SelectVariable(4, "variance")],
                  [SelectVariable(4, "mad"), "zscore"]):
        dense = Preprocessor(steps).fit_transform(X, list("abcdefghij"))
        sparse = Preprocessor(steps).fit_transform(S, list("abcdefghij"))
        sparse = sparse.toarray() if sp.issparse(sparse) else sparse
        np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)


def test_steps_run_in_the_order_given_and_new_values_are_clipped():
    X = RNG.gamma(2.0, 3.0, size=(40, 5)).astype(np.float32)
    x = X.astype(np.float64)
    minmax = (x - x.min(0)) / (x.max(0) - x.min(0))
    first = Preprocessor(["minmax", "log1p"])
    assert [s.name for s in first.steps] == ["minmax", "log1p"]
    np.testing.assert_allclose(first.fit_transform(X, list("abcde")), np.log1p(minmax), atol=1e-6)
    logged = np.log1p(x)
    by_hand = (logged - logged.min(0)) / (logged.max(0) - logged.min(0))
    np.testing.assert_allclose(
        Preprocessor(["log1p", "minmax"]).fit_transform(X, list("abcde")), by_hand, atol=1e-6
    )
    np.testing.assert_allclose(first.inverse_transform(first.transform(X), X), X, rtol=1e-5)
    pre = Preprocessor(["log1p", SelectVariable(2), "minmax"])
    X = np.array([[0.0, 1, 5], [3, 9, 5], [1, 4, 5]], dtype=np.float32)
    out = pre.fit_transform(X, ["a", "b", "c"])
    assert pre.features_ == ["a", "b"] and out.shape == (3, 2)
    new = pre.transform(np.array([[100.0, -0.5, 5]], dtype=np.float32))
    assert new.min() >= 0 and new.max() <= 1
    with pytest.raises(ValueError, match="more than one step of kind"):
        Preprocessor(["minmax", "zscore"])
    with pytest.raises(ValueError, match="unknown preprocess step 'sqrt'"):
        Preprocessor(["sqrt"])


@pytest.mark.parametrize(
    "steps, match",
    [
        (["zscore", "log1p"], r"runs log1p after zscore.*negative.*\['log1p', 'zscore'\]"),
        (["center", "log1p"], r"runs log1p after center.*negative.*\['log1p', 'center'\]"),
        (
            ["log1p", "normalize_total"],
            r"runs normalize_total after log1p.*counts.*\['normalize_total', 'log1p'\]",
        ),
        (
            ["minmax", "normalize_total"],
            r"runs normalize_total after minmax.*counts.*\['normalize_total', 'minmax'\]",
        ),
        (
            ["zscore", SelectVariable(3)],
            r"select_variable after zscore.*unit variance.*\['select_variable', 'zscore'\]",
        ),
    ],
)
def test_an_order_that_makes_no_sense_is_refused_naming_the_steps(steps, match):
    with pytest.raises(ValueError, match=match):
        Preprocessor(steps)
    X = RNG.gamma(2.0, 3.0, size=(30, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        vaekit.VAE(preprocess=steps, epochs=1, verbose=False).fit(X)


@pytest.mark.filterwarnings("ignore::vaekit.train.PosteriorCollapseWarning")
def test_a_model_keeps_its_order_of_steps(tmp_path):
    X = RNG.gamma(2.0, 3.0, size=(60, 6)).astype(np.float32)
    model = vaekit.VAE(n_latent=2, likelihood="bernoulli", epochs=1, seed=0, verbose=False,
                       preprocess=["minmax", "log1p"]).fit(X)
    assert model.preprocessor_.transform(X).max() == pytest.approx(np.log(2), rel=1e-6)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [p["name"] for p in config["preprocess"]] == ["minmax", "log1p"]
    np.testing.assert_array_equal(vaekit.load(tmp_path / "m").transform(X), model.transform(X))


def test_override_replaces_steps_by_kind():
    base = PRESETS["tybalt"]["preprocess"]
    steps = override(base, select=2000, scale="zscore")
    assert steps == [Log1p(base=2), SelectVariable(2000, "mad"), ZScore()]
    assert override(base, log1p=False, select=0) == [MinMax()]
    assert override((), normalize=True, log1p=True) == [NormalizeTotal(), Log1p()]
    # Steps keep their places; a new kind goes before the first step of a later kind.
    assert override(["minmax", "log1p"], select=3) == [SelectVariable(3), MinMax(), Log1p()]
    assert override(["minmax", "log1p"], scale="center", log1p=False) == [Center()]
    with pytest.raises(ValueError, match="runs log1p after zscore"):
        override(["minmax", "log1p"], scale="zscore")


def test_preprocessing_travels_with_the_model(tmp_path):
    X = pd.DataFrame(RNG.gamma(2.0, 50.0, size=(120, 30)).astype(np.float32),
                     columns=[f"g{i}" for i in range(30)])
    model = vaekit.VAE(n_latent=2, likelihood="bernoulli", epochs=2, seed=0, verbose=False,
                       preprocess=["normalize_total", "log1p", SelectVariable(10, "mad"),
                                   "minmax"]).fit(X)
    assert len(model.features_) == 10 and model.module_.config.n_input == 10
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [p["name"] for p in config["preprocess"]] == [
        "normalize_total", "log1p", "select_variable", "minmax"]
    loaded = vaekit.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    assert loaded.features_ == model.features_
    shuffled = X[X.columns[::-1]]  # matched by name
    np.testing.assert_allclose(loaded.transform(shuffled), model.transform(X), atol=1e-6)
    rec = loaded.reconstruct(X)
    assert list(rec.columns) == model.features_


def test_count_likelihoods_refuse_steps_that_change_counts():
    X = counts(80, 12)
    with pytest.raises(ValueError, match=r"'nb' models raw counts, but preprocess .*log1p"):
        vaekit.VAE(likelihood="nb", preprocess=["log1p"], epochs=1, verbose=False).fit(X)
    model = vaekit.VAE(n_latent=2, likelihood="nb", preprocess=[SelectVariable(6)], epochs=1,
                       seed=0, verbose=False).fit(X)
    assert model.module_.config.n_input == 6
    with pytest.raises(ValueError, match="negative or non-integer.*raw counts"):
        vaekit.VAE(likelihood="poisson", epochs=1, verbose=False).fit(np.log1p(X))


def test_expression_preset_resolves_and_trains_on_a_small_table():
    s = resolve({}, "expression")
    assert s["loadings_l1"] > 0 and s["likelihood"] == "bernoulli" and s["n_latent"] == 100
    X = pd.DataFrame(RNG.gamma(2.0, 50.0, size=(60, 1200)).astype(np.float32),
                     columns=[f"G{i}|{i}" for i in range(1200)])
    model = vaekit.VAE(preset="expression", epochs=2, seed=0, verbose=False).fit(X)
    assert len(model.features_) == 1000 and model.settings_["loadings_l1"] == s["loadings_l1"]
    assert override(s["preprocess"], scale="center")[-1] == Center()


def test_presets_fill_what_is_not_given_and_arguments_override():
    assert resolve({}, None) == DEFAULTS
    tybalt = resolve({"lr": 1e-3, "n_latent": None}, "tybalt")
    assert tybalt["lr"] == 1e-3 and tybalt["n_latent"] == 100 and tybalt["batch_size"] == 50
    with pytest.raises(ValueError, match="unknown preset 'scvi'"):
        resolve({}, "scvi")
    X = RNG.gamma(2.0, 50.0, size=(100, 40)).astype(np.float32)
    model = vaekit.VAE(preset="tybalt", epochs=2, lr=1e-3, seed=0, verbose=False).fit(X)
    s = model.settings_
    assert (s["epochs"], s["lr"], s["n_latent"], s["likelihood"]) == (2, 1e-3, 100, "bernoulli")
    assert model.module_.config.posterior_batch_norm and model.module_.config.hidden == ()
    assert model.features_ == [f"x{i}" for i in range(40)]  # 40 < 5000: all kept
    clone = vaekit.VAE(**model.get_params())  # what sklearn.base.clone does
    assert clone.get_params()["lr"] == 1e-3


def test_anndata_input_with_layers_and_obs_conditions(tmp_path):
    X = counts(100, 12)
    adata = ad.AnnData(
        X=np.log1p(X), obs=pd.DataFrame({"batch": ["a", "b"] * 50},
                                        index=[f"c{i}" for i in range(100)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(12)]),
    )
    adata.layers["counts"] = sp.csr_matrix(X)
    model = vaekit.VAE(n_latent=2, likelihood="nb", epochs=2, seed=0, verbose=False)
    model.fit(adata, y="batch", layer="counts")
    assert list(model.feature_names_in_) == [f"g{i}" for i in range(12)]
    assert [c.name for c in model.covariates_.columns] == ["batch"]
    assert model.transform(adata, "batch", layer="counts").shape == (100, 2)
    rec = model.reconstruct(adata, "batch", layer="counts")
    assert list(rec.index) == list(adata.obs_names)
    with pytest.raises(ValueError, match=r"no layer 'raw' \(layer=\); its layers: \['counts'\]$"):
        model.transform(adata, "batch", layer="raw")
    with pytest.raises(ValueError, match=r"obs has no column \['donor'\]"):
        model.transform(adata, "donor", layer="counts")
    with pytest.raises(TypeError, match="names a column, which needs an AnnData"):
        model.transform(X, "batch")
    with pytest.raises(ValueError, match="negative or non-integer"):
        model.transform(adata, "batch")  # X holds log values, not counts


def test_sparse_variance_is_exact_for_large_means():
    """E[x^2] - E[x]^2 in float32 loses everything when the mean dwarfs the spread."""
    spread = np.r_[np.ones(40), np.full(10, 3.0)]
    X = (3000 + RNG.normal(size=(200, 50)) * spread).astype(np.float32)
    dense = SelectVariable(10, "variance").fit(X).index_
    sparse = SelectVariable(10, "variance").fit(sp.csr_matrix(X)).index_
    np.testing.assert_array_equal(sparse, dense)
    np.testing.assert_array_equal(dense, np.arange(40, 50))


def test_a_model_with_missing_preprocessing_state_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    X = RNG.normal(size=(60, 5)).astype(np.float32)
    vaekit.VAE(n_latent=2, epochs=1, preprocess=["zscore"], seed=0, verbose=False).fit(X).save(
        tmp_path / "m")
    weights = load_file(tmp_path / "m" / "weights.safetensors")
    del weights["preprocess.0.std_"]
    save_file(weights, tmp_path / "m" / "weights.safetensors")
    with pytest.raises(ValueError, match=r"missing \['preprocess.0.std_'\]"):
        vaekit.load(tmp_path / "m")


def _sparse_with_nan(n: int, d: int) -> sp.csr_matrix:
    """Counts as CSR, a few stored NaN (missing entries) among them."""
    X = counts(n, d).astype(np.float32)
    X[RNG.random(X.shape) < 0.03] = np.nan
    return sp.csr_matrix(X)


def _by_numpy(X: np.ndarray, step: str, center: bool) -> np.ndarray:
    """zscore or center of X in float64 over the observed entries, by numpy."""
    mean = np.nanmean(X, 0) if center else 0.0
    spread = np.nanstd(X, 0) if step == "zscore" else np.sqrt(np.nanvar(X, 0).mean())
    return (X - mean) / spread


@pytest.mark.parametrize("step", ["zscore", "center"])
@pytest.mark.parametrize("center", [True, False])
def test_sparse_input_is_scaled_without_densifying_it(step, center, monkeypatch):
    S = _sparse_with_nan(200, 12)
    dense_calls = []
    toarray = sp.csr_matrix.toarray

    def counted(self, *args, **kwargs):
        dense_calls.append(self.shape[0])
        return toarray(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", counted)
    monkeypatch.setattr(preprocess, "BLOCK_VALUES", 30 * 12)  # blocks of 30 rows
    pre = Preprocessor([{"name": step, "center": center}])
    out = pre.fit_transform(S, list("abcdefghijkl"))
    assert max(dense_calls, default=0) <= 30  # never more than a block of rows at a time
    if center:  # centring fills in the zeros: dense output
        assert isinstance(out, np.ndarray) and len(dense_calls) == 7
    else:
        assert sp.issparse(out) and out.nnz == S.nnz and not dense_calls
        out = toarray(out)
    assert out.dtype == np.float32
    monkeypatch.undo()
    want = _by_numpy(S.toarray().astype(np.float64), step, center)
    # float32 output: a few units of rounding in values of order max|x| / spread
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6 * np.nanmax(np.abs(want)) * 10)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(S.toarray()))
    back = pre.inverse_transform(np.nan_to_num(out), S)
    observed = ~np.isnan(S.toarray())
    np.testing.assert_allclose(back[observed], S.toarray()[observed], rtol=1e-5, atol=1e-4)


def test_scaling_without_centring_is_saved_and_a_default_step_writes_no_new_key(tmp_path):
    X = sp.csr_matrix(counts(80, 10).astype(np.float32))
    kw = dict(n_latent=2, epochs=1, seed=0, verbose=False)
    model = vaekit.VAE(**kw, preprocess=[{"name": "zscore", "center": False}]).fit(X)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["preprocess"] == [{"name": "zscore", "center": False}]
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.preprocessor_.steps == [ZScore(center=False)]
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    # The default, centring, keeps the model file as older vaekit versions wrote it.
    vaekit.VAE(**kw, preprocess=["zscore"]).fit(X).save(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["preprocess"] == [{"name": "zscore"}]
    with pytest.raises(ValueError, match=r"'zscore': center must be true or false; got 'no'"):
        Preprocessor([{"name": "zscore", "center": "no"}])
