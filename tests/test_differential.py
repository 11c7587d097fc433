"""Differential expression (vaekit.analysis.differential), its volcano plot, its report
section and the `vaekit de` / `vaekit normalize` commands, on planted negative-binomial counts."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from corpus import run
from scipy import stats
from sklearn.metrics import roc_auc_score

from vaekit import VAE
from vaekit.analysis import differential_expression
from vaekit.analysis.differential import (
    _check_draws,
    bayes_factor,
    fdr_calls,
    lfc_summary,
    read_de_table,
    select_groups,
)
from vaekit.plot import save_figure, volcano
from vaekit.train import PosteriorCollapseWarning

N_CELLS, N_GENES, N_DE, N_BATCH_GENES = 500, 80, 16, 8
FOLD, BATCH_FOLD, THETA = 4.0, 3.0, 10.0


@dataclass(frozen=True)
class Planted:
    adata: ad.AnnData
    de: np.ndarray  # (n_genes,) bool: planted between the cell types
    sign: np.ndarray  # (n_genes,) +1 up in type B, -1 down, 0 not planted
    batch_genes: np.ndarray  # (n_genes,) bool: scaled in batch b1 only


def planted_counts(seed: int = 0) -> Planted:
    """NB counts of two cell types, A and B, that differ in N_DE genes by FOLD (half up, half
    down); two batches, confounded 75/25 with the cell type, that differ in N_BATCH_GENES other
    genes by BATCH_FOLD; and a random label ``coin`` (x/y) that changes nothing but the library
    size (y cells are sequenced 1.5x deeper): comparing y with x is a null comparison.

    Changed genes come in pairs of the same base level b, one at (b, FOLD b) and the other at
    (FOLD b, b) in the two states, so that every cell's total is unchanged: the other genes'
    proportions (what normalised expression compares) then do not move, and the planted genes
    are exactly the genes whose proportions differ."""
    rng = np.random.default_rng(seed)
    cell_type = rng.integers(0, 2, N_CELLS)
    batch = (rng.random(N_CELLS) < np.where(cell_type == 1, 0.75, 0.25)).astype(int)
    coin = rng.integers(0, 2, N_CELLS)
    base = rng.gamma(1.0, 1.0, N_GENES) + 0.2  # no gene so rare that it is never seen
    genes = rng.permutation(N_GENES)
    de, batch_genes = genes[:N_DE], genes[N_DE : N_DE + N_BATCH_GENES]
    sign = np.zeros(N_GENES)
    sign[de] = np.resize([1.0, -1.0], N_DE)  # pairs: (up, down)
    log_p = np.log(np.tile(base, (N_CELLS, 1)))  # (n_cells, n_genes)
    _swap_pairs(log_p, de, cell_type, FOLD)
    _swap_pairs(log_p, batch_genes, batch, BATCH_FOLD)
    p = np.exp(log_p)
    p /= p.sum(1, keepdims=True)
    library = rng.lognormal(np.log(800.0), 0.3, N_CELLS) * np.where(coin == 1, 1.5, 1.0)
    mu = library[:, None] * p
    counts = rng.poisson(rng.gamma(THETA, mu / THETA))  # NB(mean mu, dispersion THETA)
    obs = pd.DataFrame(
        {
            "cell_type": np.array(["A", "B"])[cell_type],
            "batch": np.array(["b0", "b1"])[batch],
            "coin": np.array(["x", "y"])[coin],
        },
        index=[f"c{i}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)])
    adata = ad.AnnData(counts.astype(np.float32), obs=obs, var=var)
    is_batch = np.zeros(N_GENES, dtype=bool)
    is_batch[batch_genes] = True
    return Planted(adata, sign != 0, sign, is_batch)


def _swap_pairs(log_p: np.ndarray, genes: np.ndarray, state: np.ndarray, fold: float) -> None:
    """For each pair (u, d) of ``genes``: both at u's base level b; u at b and d at fold b in
    state 0, swapped in state 1. u rises by ``fold`` with the state, d falls by it."""
    up, down = genes[0::2], genes[1::2]
    log_p[:, down] = log_p[:, up]  # the pair shares one base level
    log_p[:, up] += np.log(fold) * state[:, None]
    log_p[:, down] += np.log(fold) * (1 - state[:, None])


@pytest.fixture(scope="module")
def planted() -> Planted:
    return planted_counts()


@pytest.fixture(scope="module")
def model(planted: Planted) -> VAE:
    vae = VAE(
        likelihood="nb",
        n_latent=4,
        hidden=(32,),
        epochs=150,
        lr=3e-3,
        early_stopping=False,
        validation_fraction=0.0,
        seed=0,
        verbose=False,
    )
    with warnings.catch_warnings():  # one latent feature (the cell type) is all there is
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        return vae.fit(planted.adata, ["batch"])


@pytest.fixture(scope="module")
def de_types(model: VAE, planted: Planted) -> pd.DataFrame:
    return differential_expression(model, planted.adata, "cell_type", "B", "A", n_samples=1000)


def auroc_margin(n_pos: int, n_neg: int, z: float = 5.0) -> float:
    """``z`` standard deviations of the AUROC of a random ranking (Mann-Whitney's null)."""
    return z * math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


# ----------------------------------------------------------------------------- planted data
def test_finds_the_planted_genes(de_types: pd.DataFrame, planted: Planted):
    truth = planted.de
    margin = auroc_margin(int(truth.sum()), int((~truth).sum()))
    assert roc_auc_score(truth, de_types["proba_de"]) > 0.5 + margin
    assert roc_auc_score(truth, de_types["lfc_mean"].abs()) > 0.5 + margin
    calls = de_types["is_de_fdr"].to_numpy()
    assert calls.sum() >= N_DE // 4, de_types[truth]  # a real share of them is called...
    false = int((calls & ~truth).sum())
    # ...with few false calls: at most the target share plus 3 binomial SDs of it
    fdr = de_types.attrs["fdr"]
    assert false <= fdr * calls.sum() + 3 * math.sqrt(calls.sum() * fdr * (1 - fdr)) + 1
    # the planted direction: B over A up for sign +1
    called = calls & truth
    assert (np.sign(de_types["lfc_mean"].to_numpy()[called]) == planted.sign[called]).all()


def test_batch_genes_are_not_called(model: VAE, planted: Planted, de_types: pd.DataFrame):
    """Cell types are confounded with batches: batch correction keeps the batch genes out,
    where comparing each cell in its own batch mistakes them for cell-type genes."""
    assert not de_types["is_de_fdr"].to_numpy()[planted.batch_genes].any()
    assert de_types.attrs["batch_correction"]
    own = differential_expression(
        model, planted.adata, "cell_type", "B", "A", n_samples=1000, batch_correction=False
    )
    assert not own.attrs["batch_correction"]
    corrected = de_types["proba_de"][planted.batch_genes].mean()
    assert corrected < own["proba_de"][planted.batch_genes].mean() - 0.2


def test_null_comparison_calls_few_genes(model: VAE, planted: Planted):
    """x and y differ only in library size: the share of genes called stays at or below the
    target FDR, up to 3 binomial standard deviations."""
    fdr = 0.05
    de = differential_expression(model, planted.adata, "coin", "y", "x", fdr=fdr, n_samples=1000)
    bound = fdr + 3 * math.sqrt(fdr * (1 - fdr) / N_GENES)
    assert de["is_de_fdr"].mean() <= bound, de.sort_values("proba_de").tail()
    # library size is normalised away: no systematic shift of the null genes
    assert abs(float(de["lfc_mean"].median())) < 0.25


def test_raw_statistics_and_scales(de_types: pd.DataFrame, planted: Planted):
    a = planted.adata
    b = a.obs["cell_type"].to_numpy() == "B"
    X = np.asarray(a.X, dtype=np.float64)
    np.testing.assert_allclose(de_types["raw_mean1"], X[b].mean(0), rtol=1e-12)
    np.testing.assert_allclose(de_types["nonzero2"], (X[~b] > 0).mean(0), rtol=1e-12)
    for scale in ("scale1", "scale2"):  # proportions: each group's mean sums to 1
        assert abs(de_types[scale].sum() - 1) < 1e-4
    assert list(de_types.index) == list(a.var_names)
    assert de_types.attrs["n_cells1"] == b.sum() and de_types.attrs["n_cells2"] == (~b).sum()


def test_sparse_counts_and_layers_give_the_same_table(model: VAE, planted: Planted):
    a = planted.adata
    dense = differential_expression(model, a, "cell_type", "B", n_samples=100)
    sparse = a.copy()
    sparse.layers["counts"] = sp.csr_matrix(sparse.X)
    sparse.X = sp.csr_matrix(sparse.X.shape, dtype=np.float32)  # X empty: the layer counts
    again = differential_expression(model, sparse, "cell_type", "B", n_samples=100, layer="counts")
    pd.testing.assert_frame_equal(dense, again)


def test_seeded_and_rest(model: VAE, planted: Planted):
    a = planted.adata
    first = differential_expression(model, a, "cell_type", "B", n_samples=200, seed=3)
    again = differential_expression(model, a, "cell_type", "B", n_samples=200, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert first.attrs["group2"] == "rest"
    assert first.attrs["n_cells2"] == (a.obs["cell_type"] == "A").sum()


# ----------------------------------------------------------------------------- the numbers
def test_lfc_summary_against_a_closed_form():
    """log2 h ~ N(m, s^2) in each group, eps = 0: LFC ~ N(m1 - m2, 2 s^2) exactly."""
    rng = np.random.default_rng(1)
    n, s, delta = 20000, 0.4, 0.5
    m1, m2 = np.array([-8.0, -8.0, -6.0]), np.array([-8.0, -7.0, -8.0])
    h1 = 2 ** (m1 + s * rng.standard_normal((n, 3)))
    h2 = 2 ** (m2 + s * rng.standard_normal((n, 3)))
    table = lfc_summary(h1.astype(np.float32), h2.astype(np.float32), delta, 0.0)
    sd = s * math.sqrt(2)
    mean = m1 - m2
    p = stats.norm.sf(delta, mean, sd) + stats.norm.cdf(-delta, mean, sd)
    np.testing.assert_allclose(table["lfc_mean"], mean, atol=5 * sd / math.sqrt(n) + 1e-5)
    np.testing.assert_allclose(table["lfc_std"], sd, rtol=5 / math.sqrt(2 * n))
    error = np.abs(table["proba_de"].to_numpy() - p)
    assert (error <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9).all(), (table["proba_de"], p)
    np.testing.assert_allclose(table["bayes_factor"], bayes_factor(table["proba_de"], n))


def test_bayes_factor_is_clipped_at_half_a_draw():
    bf = bayes_factor(np.array([0.0, 0.5, 1.0]), 100)
    np.testing.assert_allclose(bf, [math.log(0.005 / 0.995), 0.0, math.log(0.995 / 0.005)])


def test_fdr_calls_against_the_definition():
    """The largest set, most probable first, whose mean 1 - p is <= fdr, by brute force."""
    rng = np.random.default_rng(2)
    for _ in range(50):
        p = rng.beta(0.3, 0.3, rng.integers(1, 30))
        fdr = float(rng.uniform(0.01, 0.3))
        order = np.argsort(-p, kind="stable")
        best = max(
            (k for k in range(len(p) + 1) if k == 0 or np.mean(1 - p[order[:k]]) <= fdr),
        )
        calls = fdr_calls(p, fdr)
        assert calls.sum() == best
        assert set(np.flatnonzero(calls)) == set(order[:best])


# ----------------------------------------------------------------------------- errors
def test_group_errors(planted: Planted):
    obs = planted.adata.obs
    with pytest.raises(ValueError, match="no obs column 'kind'"):
        select_groups(obs, "kind", "B")
    with pytest.raises(ValueError, match="no cells have 'cell_type' = 'C'.*'A', 'B'"):
        select_groups(obs, "cell_type", "C")
    with pytest.raises(ValueError, match="no cells have 'cell_type' = 'Z'"):
        select_groups(obs, "cell_type", "A", "Z")
    with pytest.raises(ValueError, match="both 'A'"):
        select_groups(obs, "cell_type", "A", "A")
    one = pd.DataFrame({"t": ["A", "A", None]})
    with pytest.raises(ValueError, match="no other cells"):
        select_groups(one, "t", "A")
    ints = select_groups(pd.DataFrame({"t": [1, 2, 2]}), "t", "2")
    assert ints.rows1.tolist() == [1, 2] and ints.rows2.tolist() == [0]


def test_argument_errors(model: VAE, planted: Planted):
    a = planted.adata
    with pytest.raises(ValueError, match="delta"):
        differential_expression(model, a, "cell_type", "B", delta=-1)
    with pytest.raises(ValueError, match="fdr"):
        differential_expression(model, a, "cell_type", "B", fdr=1.5)
    with pytest.raises(ValueError, match="n_samples"):
        differential_expression(model, a, "cell_type", "B", n_samples=1)
    with pytest.raises(ValueError, match="n_samples must be at most 100,000"):
        differential_expression(model, a, "cell_type", "B", n_samples=2_000_000)
    with pytest.raises(ValueError, match="give at most 50,000 draws"):  # 1e8 values / 2000 genes
        _check_draws(100_000, 2000)
    with pytest.raises(TypeError, match="AnnData"):
        differential_expression(model, np.asarray(a.X), "cell_type", "B")
    with pytest.raises(ValueError, match="conditional on obs column"):
        differential_expression(model, _without(a, "batch"), "cell_type", "B")


def _without(adata: ad.AnnData, column: str) -> ad.AnnData:
    copy = adata.copy()
    del copy.obs[column]
    return copy


def test_a_model_of_other_data_is_refused(planted: Planted):
    gaussian = VAE(n_latent=2, hidden=(8,), epochs=1, seed=0, verbose=False)
    gaussian.fit(np.log1p(planted.adata.X))
    with pytest.raises(ValueError, match="raw counts"):
        differential_expression(gaussian, planted.adata, "cell_type", "B")


# ----------------------------------------------------------------------------- figures, report
def test_volcano(de_types: pd.DataFrame, tmp_path):
    n_called = int(de_types["is_de_fdr"].sum())
    ax = volcano(de_types, top=5).axes[0]
    assert len(ax.texts) == min(5, n_called)  # the calls are named, strongest first
    assert f"{n_called} of {N_GENES}" in ax.get_title()
    called = ax.collections[0].get_facecolors()
    assert len(called) == N_GENES
    path = save_figure(volcano(de_types, y="bayes_factor"), tmp_path / "v.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="lfc_mean"):
        volcano(pd.DataFrame({"proba_de": [0.5]}))


def test_report_section(de_types: pd.DataFrame):
    """The section draws the table it is given, and is left out without one (the whole report
    with --de is built once, in test_cli_de_round_trip)."""
    from vaekit.report.sections import SECTIONS, differential

    assert differential in SECTIONS
    assert differential(SimpleNamespace(de=None)) is None
    section = differential(SimpleNamespace(de=de_types))
    assert [p.title for p in section.panels] == ["Volcano plot"] and not section.notes


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def files(model: VAE, planted: Planted, tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("de-cli")
    model.save(folder / "model")
    planted.adata.write_h5ad(folder / "counts.h5ad")
    return folder / "model", folder / "counts.h5ad", folder


def test_cli_de_round_trip(files: tuple):
    model_dir, counts, folder = files
    out, figure = folder / "de.tsv", folder / "volcano.png"
    result = run(["de", model_dir, counts, "--groupby", "cell_type", "--group1", "B",
                  "--group2", "A", "--draws", "300", "-o", out, "--volcano", figure])
    assert result.code == 0, result.err
    table = read_de_table(out)
    assert len(table) == N_GENES and {"lfc_mean", "proba_de", "is_de_fdr"} <= set(table.columns)
    assert table["proba_de"].is_monotonic_decreasing
    assert figure.stat().st_size > 1000
    assert "genes differ between B" in result.out
    page = folder / "report.html"
    result = run(["report", model_dir, counts, "-o", page, "-k", "0", "--max-rows", "60",
                  "--de", out, "-q"])
    assert result.code == 0, result.err
    assert "Differential expression" in page.read_text()


def test_cli_normalize(files: tuple, model: VAE, planted: Planted):
    model_dir, counts, folder = files
    table = folder / "norm.tsv"
    result = run(["normalize", model_dir, counts, "-o", table, "--library-size", "1"])
    assert result.code == 0, result.err
    values = pd.read_csv(table, sep="\t", index_col=0)
    assert values.shape == (N_CELLS, N_GENES)
    np.testing.assert_allclose(values.sum(1), 1.0, atol=1e-4)  # proportions
    h5ad = folder / "norm.h5ad"
    result = run(["normalize", model_dir, counts, "-o", h5ad, "--batch", "b1", "--draws", "2"])
    assert result.code == 0, result.err
    written = ad.read_h5ad(h5ad)
    layer = np.asarray(written.layers["vaekit_normalized"], dtype=np.float64)
    np.testing.assert_allclose(layer.sum(1), 1e4, rtol=1e-4)
    expected = model.normalized_expression(
        planted.adata, ["batch"], batch="b1", n_draws=2, library_size=1e4
    )
    np.testing.assert_allclose(layer, expected, rtol=1e-5, atol=1e-3)
    assert "as if from batch b1" in result.out
