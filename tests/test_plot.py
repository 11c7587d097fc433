"""vaekit.plot: every figure's axes and artists checked against numbers computed here (closed
forms, numpy, scipy, scikit-learn), and figure files written atomically."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import vaekit
from vaekit import plot
from vaekit.analysis import associate
from vaekit.plot._style import INACTIVE
from vaekit.plot.tables import HEXBIN_FROM

SHAPE = (8, 8)


@dataclass
class Calibration:
    """A stand-in for ``model.calibration_``: what the histogram reads of it."""

    method: str
    fpr: float
    threshold: float
    control_scores: np.ndarray


@pytest.fixture(scope="module")
def genes():
    """200 samples x 40 genes: a planted two-level factor on 6 genes, and the table."""
    rng = np.random.default_rng(1)
    n = 200
    group = rng.choice(["a", "b"], n)
    X = rng.normal(size=(n, 40))
    X[:, :6] += 3 * (group == "b")[:, None]
    names = ["XIST|7503", "RPS4Y1|6192"] + [f"G{i}|{i}" for i in range(38)]
    frame = pd.DataFrame(X, columns=names, index=[f"s{i}" for i in range(n)])
    return frame, pd.Series(group, index=frame.index, name="group")


@pytest.fixture(scope="module")
def gene_model(genes):
    frame, _ = genes
    # The table as it is (no automatic z-scores): the figures compare values in model space.
    return vaekit.VAE(n_latent=3, hidden=(16,), likelihood="gaussian", preprocess=(), epochs=40,
                      lr=3e-3, seed=0, verbose=False).fit(frame)


def picture(fig: Figure) -> np.ndarray:
    """The one image drawn on a figure's first axes."""
    images = fig.axes[0].get_images()
    assert len(images) == 1
    return np.asarray(images[0].get_array())


def tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


def kl_closed_form(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean KL(N(mu, s^2) || N(0, 1)) per feature (Kingma & Welling 2014, appendix B) and the
    variance of the posterior means over X."""
    mean, logvar = model.encode(X)
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1 - logvar).mean(0)
    return kl, mean.var(0)


# ----------------------------------------------------------------------------- training
def test_training_curves_draw_the_history_and_mark_the_best_epoch(fitted):
    fig = plot.training_curves(fitted)
    history = fitted.history_
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # loss, reconstruction, KL and the KL weight's second axis
    loss = fig.axes[0]
    train, val, best = loss.get_lines()
    np.testing.assert_allclose(train.get_ydata(), history["train_loss"])
    np.testing.assert_allclose(val.get_ydata(), history["val_loss"])
    assert best.get_xdata()[0] == fitted.best_epoch_
    assert tick_texts(loss.get_legend().get_texts()) == ["train", "validation", "best epoch"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["Loss (nats)", "Reconstruction (nats)"]
    np.testing.assert_allclose(fig.axes[3].get_lines()[0].get_ydata(), history["kl_weight"])


def test_training_curves_add_the_learning_rate_when_it_changed(fitted):
    history = fitted.history_.copy()
    history["lr"] = 1e-3 * 0.5 ** (np.arange(len(history)) // 10)
    fig = plot.training_curves(history, best_epoch=3)
    assert len(fig.axes) == 5
    lr_axes = fig.axes[3]
    assert lr_axes.get_yscale() == "log" and lr_axes.get_title() == "Learning rate"
    assert fig.axes[0].get_lines()[2].get_xdata()[0] == 3
    with pytest.raises(TypeError, match="fitted VAE or its history_"):
        plot.training_curves(np.zeros(3))


def test_kl_per_feature_bars_match_the_closed_form_and_grey_the_inactive(fitted, digits):
    X_test = digits[1]
    fig = plot.kl_per_feature(fitted, X_test)
    kl, variance = kl_closed_form(fitted, X_test)
    bars = fig.axes[0].patches
    assert len(bars) == fitted.n_latent
    np.testing.assert_allclose([b.get_height() for b in bars], np.sort(kl)[::-1], rtol=1e-4)
    grey = [b for b in bars if np.allclose(b.get_facecolor()[:3], _rgb(INACTIVE))]
    active = int(re.search(r"(\d+) of 8 active", fig.axes[0].get_title()).group(1))
    assert active == fitted.n_latent - len(grey)
    # A variance within float32 rounding of the 0.01 threshold may fall either way.
    near = np.isclose(variance, 0.01, rtol=1e-4)
    above = variance > 0.01
    assert int(above[~near].sum()) <= active <= int(above.sum() + near.sum())
    heatmap = fig.axes[1].get_images()[0].get_array()
    assert heatmap.shape == (fitted.n_latent, len(fitted.history_))


def test_kl_per_feature_without_data_reads_the_best_epoch(fitted):
    fig = plot.kl_per_feature(fitted)
    recorded = fitted.history_.iloc[fitted.best_epoch_][[f"kl_z{j}" for j in range(8)]]
    heights = [b.get_height() for b in fig.axes[0].patches]
    np.testing.assert_allclose(heights, np.sort(recorded.to_numpy(dtype=float))[::-1])
    assert f"best epoch {fitted.best_epoch_}" in fig.axes[0].get_title()


def _rgb(color: str) -> tuple[float, ...]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


# ----------------------------------------------------------------------------- images
def test_reconstruction_pairs_show_the_pixels_above_their_reconstructions(fitted, digits):
    X_test = digits[1]
    fig = plot.reconstruction_pairs(fitted, X_test, n=12, image_shape=SHAPE)
    grid = picture(fig)
    assert grid.shape == (4 * 10 + 2, 10 * 10 + 2)  # 2 x (originals, reconstructions) x 10
    labels = tick_texts(fig.axes[0].get_yticklabels())
    assert labels == ["original", "reconstruction"] * 2
    np.testing.assert_array_equal(grid[2:10, 2:10], np.round(X_test[0].reshape(8, 8) * 255))
    rebuilt = fitted.reconstruct(X_test[:1])[0].reshape(8, 8)
    np.testing.assert_array_equal(grid[12:20, 2:10], np.round(rebuilt * 255))
    with pytest.raises(ValueError, match="not whole images"):
        plot.reconstruction_pairs(fitted, X_test)  # a model of rows with no image shape


def test_prior_samples_have_a_row_per_class_or_a_square(conditional, fitted):
    fig = plot.prior_samples(conditional, 5, image_shape=SHAPE)
    assert picture(fig).shape == (10 * 10 + 2, 5 * 10 + 2)
    assert tick_texts(fig.axes[0].get_yticklabels()) == [str(d) for d in range(10)]
    fig = plot.prior_samples(fitted, 9, image_shape=SHAPE, seed=3)
    grid = picture(fig)
    assert grid.shape == (3 * 10 + 2, 3 * 10 + 2)
    first = fitted.sample(9, seed=3, mean=True)[0].reshape(8, 8)
    np.testing.assert_array_equal(grid[2:10, 2:10], np.round(first * 255))


def test_interpolation_grid_starts_at_the_reconstruction_of_its_first_sample(fitted, digits):
    X_test = digits[1]
    fig = plot.interpolation_grid(fitted, X_test, [(0, 1), (2, 3)], steps=5, image_shape=SHAPE)
    grid = picture(fig)
    assert grid.shape == (2 * 10 + 2, 5 * 10 + 2)
    assert tick_texts(fig.axes[0].get_xticklabels()) == ["0", "0.25", "0.5", "0.75", "1"]
    assert len(fig.axes[0].get_yticklabels()) == 2
    # t = 0 decodes the posterior mean of sample 0: its reconstruction; t = 1 that of sample 1.
    for row, col, sample in ((0, 0, 0), (0, 4, 1), (1, 0, 2)):
        tile = grid[2 + row * 10 : 10 + row * 10, 2 + col * 10 : 10 + col * 10]
        expected = fitted.reconstruct(X_test[sample : sample + 1])[0].reshape(8, 8)
        np.testing.assert_allclose(tile, np.round(expected * 255), atol=1)


def test_traversal_grid_orders_features_by_their_kl(fitted, digits):
    X_test = digits[1]
    fig = plot.traversal_grid(fitted, X_test, row=0, features=3, image_shape=SHAPE)
    assert picture(fig).shape == (3 * 10 + 2, 7 * 10 + 2)
    kl, _ = kl_closed_form(fitted, X_test)
    labels = tick_texts(fig.axes[0].get_yticklabels())
    assert [label.split()[0] for label in labels] == [f"z{j}" for j in np.argsort(-kl)[:3]]
    assert tick_texts(fig.axes[0].get_xticklabels()) == ["-3", "-2", "-1", "+0", "+1", "+2", "+3"]
    with pytest.raises(ValueError, match="pass X too"):
        plot.traversal_grid(fitted, row=0, image_shape=SHAPE)


# ----------------------------------------------------------------------------- tables
def test_column_correlation_equals_scipy_pearson():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    b[:, 1] += 2 * a[:, 1]
    a[:, 3] = 1.0  # constant: no correlation
    r = plot.column_correlation(a, b)
    for j in range(3):
        assert r[j] == pytest.approx(stats.pearsonr(a[:, j], b[:, j])[0], abs=1e-12)
    assert np.isnan(r[3])


def test_reconstruction_scatter_compares_every_value_and_every_feature(gene_model, genes):
    frame, _ = genes
    fig = plot.reconstruction_scatter(gene_model, frame)
    scatter_ax, histogram_ax = fig.axes
    rebuilt = gene_model.reconstruct(frame).to_numpy()
    r = np.corrcoef(frame.to_numpy().ravel(), rebuilt.ravel())[0, 1]
    shown = float(re.search(r"r = (-?[\d.]+)", scatter_ax.get_title()).group(1))
    assert abs(shown - r) <= 5e-4 + 1e-6  # three decimals, whichever way float32 rounds
    assert frame.size > HEXBIN_FROM  # many values: drawn as a density
    assert any(isinstance(c, PolyCollection) for c in scatter_ax.collections)
    counts = [p.get_height() for p in histogram_ax.patches]
    assert len(counts) == 40 and sum(counts) == frame.shape[1]
    median = np.median([stats.pearsonr(frame.iloc[:, j], rebuilt[:, j])[0] for j in range(40)])
    # the figure's correlations are of float32 values: ~1e-7 relative rounding
    assert histogram_ax.get_lines()[0].get_xdata()[0] == pytest.approx(median, abs=1e-6)


def test_sample_moments_put_a_point_per_feature_at_the_data_moments(gene_model, genes):
    frame, _ = genes
    fig = plot.sample_moments(gene_model, frame, seed=0)
    means_ax, sds_ax = fig.axes
    points = means_ax.collections[0].get_offsets()
    assert len(points) == frame.shape[1]
    np.testing.assert_allclose(points[:, 0], frame.mean().to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        sds_ax.collections[0].get_offsets()[:, 0], frame.std(ddof=0), rtol=1e-5
    )
    drawn = gene_model.sample(len(frame), seed=0)
    np.testing.assert_allclose(points[:, 1], drawn.mean(0), rtol=1e-4, atol=1e-6)


def test_column_correlation_skips_missing_entries_pairwise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    b += a
    a[rng.random(a.shape) < 0.2] = np.nan
    b[rng.random(b.shape) < 0.2] = np.nan
    r = plot.column_correlation(a, b)
    for j in range(3):
        seen = ~(np.isnan(a[:, j]) | np.isnan(b[:, j]))
        assert r[j] == pytest.approx(stats.pearsonr(a[seen, j], b[seen, j])[0], abs=1e-12)


def test_table_figures_of_a_mask_aware_model_take_data_with_missing_entries(genes):
    """The figures prepare X as the model does: a model fitted with missing="mask" is plotted
    on the data it was fitted to, NaN and all, comparing the known entries."""
    frame, _ = genes
    holes = frame.mask(np.random.default_rng(2).random(frame.shape) < 0.2)
    model = vaekit.VAE(n_latent=3, hidden=(16,), likelihood="gaussian", preprocess=(), epochs=5,
                       missing="mask", seed=0, verbose=False)
    model.fit(holes)
    seen = ~np.isnan(holes.to_numpy())
    fig = plot.reconstruction_scatter(model, holes)
    rebuilt = model.reconstruct(holes).to_numpy()
    r = np.corrcoef(holes.to_numpy()[seen], rebuilt[seen])[0, 1]
    assert f"r = {r:.3f}" in fig.axes[0].get_title()
    assert sum(p.get_height() for p in fig.axes[1].patches) == frame.shape[1]
    fig = plot.sample_moments(model, holes, seed=0)
    means, sds = (ax.collections[0].get_offsets()[:, 0] for ax in fig.axes)
    np.testing.assert_allclose(means, holes.mean().to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sds, holes.std(ddof=0).to_numpy(), rtol=1e-5)


# ----------------------------------------------------------------------------- genes
def test_gene_weights_show_the_heaviest_genes_by_symbol_coloured_by_sign():
    rng = np.random.default_rng(0)
    loadings = pd.DataFrame(rng.normal(size=(3, 30)), columns=[f"S{i}|{i}" for i in range(30)])
    fig = plot.gene_weights(loadings, [0, 2], k=5, titles=["group (+0.90)"])
    assert len(fig.axes) == 2
    for ax, feature in zip(fig.axes, [0, 2], strict=True):
        w = loadings.loc[feature].to_numpy()
        heaviest = np.argsort(-np.abs(w))[:5]
        assert tick_texts(ax.get_yticklabels())[::-1] == [f"S{i}" for i in heaviest]
        bars = ax.patches
        widths = [b.get_width() for b in bars][::-1]
        np.testing.assert_allclose(widths, w[heaviest])
        reds = [b.get_width() > 0 for b in bars if b.get_facecolor()[0] > b.get_facecolor()[2]]
        assert all(reds) and len(reds) == int((w[heaviest] > 0).sum())
    assert fig.axes[0].get_title() == "z0\ngroup (+0.90)" and fig.axes[1].get_title() == "z2"


def test_association_heatmap_colours_each_feature_by_its_effect(gene_model, genes):
    frame, group = genes
    latent = gene_model.transform(frame)
    annotations = pd.DataFrame({"group": group.to_numpy(), "noise": np.arange(len(frame)) % 7})
    found = associate(latent, annotations)
    fig = plot.association_heatmap(found, max_features=2)
    ax = fig.axes[0]
    grid = ax.get_images()[0].get_array()
    assert grid.shape == (2, 2)  # the two strongest features x two annotations
    assert len(ax.texts) == 4
    top = int(tick_texts(ax.get_yticklabels())[0][1:])
    auroc = roc_auc_score(group.to_numpy() == "b", latent[:, top])
    column = tick_texts(ax.get_xticklabels()).index("group\n(b +)")
    assert grid[0, column] == pytest.approx(2 * auroc - 1, abs=1e-9)
    shown = [int(t.get_text()[1:]) for t in ax.get_yticklabels()]
    strong = [t for t in ax.texts if t.get_fontweight() == "bold"]
    assert len(strong) == int((found[found.feature.isin(shown)].q < 0.05).sum()) > 0
    with pytest.raises(ValueError, match="no associations"):
        plot.association_heatmap(found.iloc[:0])


# ----------------------------------------------------------------------------- anomaly
def test_anomaly_histogram_marks_the_threshold_and_counts_the_flagged():
    rng = np.random.default_rng(0)
    controls = np.sort(rng.normal(size=500))
    threshold = float(np.quantile(controls, 0.95))
    scores = np.concatenate([rng.normal(size=90), rng.normal(5, 1, size=10)])
    fig = plot.anomaly_histogram(scores, Calibration("elbo", 0.05, threshold, controls))
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_xdata()[0] == threshold
    flagged = int((scores > threshold).sum())
    assert f"{flagged} above the threshold" in ax.get_title()
    legend = tick_texts(ax.get_legend().get_texts())
    threshold_entry = [text for text in legend if text.startswith("threshold")]
    assert len(threshold_entry) == 1 and "FPR 5%" in threshold_entry[0]
    assert sorted(legend) == sorted(["samples", "controls (500)", threshold_entry[0]])
    assert "elbo" in ax.get_xlabel()
    bare = plot.anomaly_histogram(scores)
    assert not bare.axes[0].get_lines() and len(bare.axes[0].patches) == 50
    with pytest.raises(ValueError, match="finite"):
        plot.anomaly_histogram([1.0, np.nan])


# ----------------------------------------------------------------------------- latent, files
def test_plot_latent_draws_the_principal_components_of_the_posterior_means(fitted, digits):
    """vaekit.plot's latent map: its points are the first two principal components of the
    posterior means, checked against scikit-learn up to each axis's sign."""
    X = digits[1][:150]
    fig = plot.plot_latent(fitted, X, method="pca")
    (points,) = [c.get_offsets() for c in fig.axes[0].collections if len(c.get_offsets())]
    expected = PCA(n_components=2).fit_transform(fitted.transform(X).astype(np.float64))
    assert points.shape == expected.shape
    for axis in range(2):  # drawn in any order and with either sign
        np.testing.assert_allclose(
            np.sort(np.abs(points[:, axis])), np.sort(np.abs(expected[:, axis])), atol=1e-4
        )


def test_figures_are_written_atomically(tmp_path, monkeypatch, fitted):
    path = tmp_path / "curves.png"
    plot.save_figure(plot.training_curves(fitted), path)
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"

    def half_written(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        plot.save_figure(plot.training_curves(fitted), path)
    with pytest.raises(OSError, match="disk full"):
        plot.save_figure(plot.training_curves(fitted), tmp_path / "new.svg")
    assert path.read_bytes() == before  # the old file, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no leftovers


def test_no_vaekit_module_imports_pyplot():
    """pyplot keeps global state (the current figure, a GUI backend); vaekit never needs it."""
    imported = []
    for path in Path(vaekit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            imported += [f"{path.name}: {n}" for n in names if n.startswith("matplotlib.pyplot")]
    assert imported == []
