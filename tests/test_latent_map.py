"""Latent maps: embeddings checked against scikit-learn and numpy, the drawn figure's artists,
atomic figure files, and maps of a fitted model's encodings."""

from __future__ import annotations

import sys
import warnings

import anndata as ad
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from PIL import Image
from sklearn.decomposition import PCA

import vaekit
from vaekit.analysis.latent_map import (
    MISSING_COLOR,
    embed,
    latent_map,
    plot_latent,
    save_figure,
    write_latent_map,
)


@pytest.fixture(scope="module")
def latent() -> np.ndarray:
    """(120, 5) points with clearly unequal spread along their axes."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 5)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1]) + 3.0


@pytest.fixture(scope="module")
def model(digits) -> vaekit.VAE:
    # A few hundred rows and 2 epochs: the map needs a fitted model, not a good one, so the
    # posterior-collapse warning such a model earns is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vaekit.VAE(n_latent=3, epochs=2, seed=0, verbose=False).fit(digits[0][:400])


def scatter_points(ax) -> list[np.ndarray]:
    return [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ----------------------------------------------------------------------------- embed
def test_pca_equals_sklearn_and_the_svd(latent):
    xy = embed(latent, "pca")
    np.testing.assert_allclose(xy, PCA(n_components=2).fit_transform(latent), atol=1e-10)
    # Independently: the centred data's first two left singular vectors times their values.
    u, s, _ = np.linalg.svd(latent - latent.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(xy), np.abs(u[:, :2] * s[:2]), atol=1e-8)
    share = s**2 / (s**2).sum()
    ax = latent_map(latent).axes[0]
    assert ax.get_xlabel() == f"PC 1 ({share[0]:.0%} var)"
    assert ax.get_ylabel() == f"PC 2 ({share[1]:.0%} var)"


def test_one_latent_feature_is_padded_with_zeros_and_says_so(latent):
    with pytest.warns(UserWarning, match="1 feature"):
        xy = embed(latent[:, :1])
    assert xy.shape == (len(latent), 2)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(latent[:, 0] - latent[:, 0].mean()))
    assert not xy[:, 1].any()


def test_tsne_runs_on_fewer_points_than_its_default_perplexity(latent):
    xy = embed(latent[:20], "tsne", max_iter=250)  # perplexity 30 > 20 points: clipped
    assert xy.shape == (20, 2) and np.isfinite(xy).all()


class FakeTSNE:
    """Stands in for sklearn's TSNE where only the wiring around it is under test."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def fit_transform(self, X):
        return X[:, :2]


def test_tsne_maps_have_no_ticks(latent, monkeypatch):
    monkeypatch.setattr("sklearn.manifold.TSNE", FakeTSNE)
    ax = latent_map(latent, method="tsne").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t-SNE 1", "t-SNE 2")
    assert list(ax.get_xticks()) == [] and ax.get_title().startswith("t-SNE")


def test_tsne_warns_for_many_points_and_keeps_them_all(monkeypatch):
    monkeypatch.setattr("sklearn.manifold.TSNE", FakeTSNE)
    big = np.random.default_rng(0).normal(size=(20_001, 3))
    with pytest.warns(UserWarning, match="slow"):
        assert embed(big, "tsne").shape == (20_001, 2)


def test_umap_without_umap_learn_says_how_to_install_it(latent, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
    with pytest.raises(ValueError, match="pip install umap-learn"):
        embed(latent, "umap")


def test_umap_when_installed(latent):
    pytest.importorskip("umap")
    assert embed(latent, "umap").shape == (len(latent), 2)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((10, 3)), "mds"), "unknown embedding method 'mds'.*'pca'"),
        ((np.zeros(10), "pca"), r"2-D array .* got shape \(10,\)"),
        ((np.zeros((2, 3)), "pca"), "at least 3 samples; got 2"),
        ((np.full((5, 2), np.nan), "pca"), "NaN"),
    ],
)
def test_embed_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        embed(*args)


# ----------------------------------------------------------------------------- latent_map
def test_categorical_colours_with_legend_and_missing_counted(latent):
    labels = pd.Series(np.repeat(["b", "a", "c"], 40), name="group", dtype=object)
    labels[[0, 50, 51]] = [None, np.nan, None]
    fig = latent_map(latent, labels)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert sum(len(p) for p in scatter_points(ax)) == len(latent)
    assert legend_texts(ax) == ["a", "b", "c", "missing (3)"]
    assert ax.get_legend().get_title().get_text() == "group"
    grey = [c for c in ax.collections if len(c.get_offsets()) == 3]
    assert np.allclose(grey[0].get_facecolor()[0][:3], mcolors.to_rgb(MISSING_COLOR))
    assert "PCA" in ax.get_title() and "n = 120" in ax.get_title() and "group" in ax.get_title()


def drawn_rows(points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The row of ``xy`` behind each drawn point (points are drawn in shuffled order)."""
    rows = {tuple(p): i for i, p in enumerate(np.round(xy, 9))}
    return np.array([rows[tuple(p)] for p in np.round(np.asarray(points), 9)])


def test_each_level_gets_its_own_colour(latent):
    labels = np.repeat([3, 1, 2], 40)
    ax = latent_map(latent, labels).axes[0]
    (points,) = scatter_points(ax)
    colours = ax.collections[0].get_facecolor()[:, :3]
    drawn = labels[drawn_rows(points, embed(latent))]
    for level in (1, 2, 3):
        assert len(np.unique(colours[drawn == level], axis=0)) == 1
    assert len(np.unique(colours, axis=0)) == 3


def test_more_levels_than_max_categories_keeps_the_most_frequent(latent):
    labels = np.array([f"L{i:02d}" for i in range(30)] * 3 + ["L29"] * 30)  # L29 most frequent
    ax = latent_map(latent, labels, max_categories=4).axes[0]
    texts = legend_texts(ax)
    assert len(texts) == 5 and "L29" in texts
    assert texts[-1] == f"other: 26 levels ({120 - 33 - 3 * 3})"


def test_numeric_colour_gets_a_colorbar_and_missing_counted(latent):
    values = pd.Series(latent[:, 0] * 0.37, name="score")
    values[:7] = np.nan
    values[7] = np.inf  # has no colour on the scale either
    fig = latent_map(latent, values)
    assert len(fig.axes) == 2  # the scatter and its colorbar
    ax, bar = fig.axes
    assert bar.get_ylabel() == "score"
    assert sum(len(p) for p in scatter_points(ax)) == len(latent)
    assert legend_texts(ax) == ["missing (8)"]


def test_without_colour_one_axes_and_no_legend(latent):
    fig = latent_map(latent, title="mine")
    assert len(fig.axes) == 1 and fig.axes[0].get_legend() is None
    assert fig.axes[0].get_title() == "mine"
    assert sum(len(p) for p in scatter_points(fig.axes[0])) == len(latent)


def test_colour_of_the_wrong_length_is_refused(latent):
    with pytest.raises(ValueError, match=r"one value per sample \(120\); got shape \(7,\)"):
        latent_map(latent, np.arange(7))


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".png", ".PNG"])
def test_save_figure_writes_a_valid_png(latent, tmp_path, suffix):
    path = save_figure(latent_map(latent), tmp_path / f"map{suffix}", dpi=50)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100
    assert [p.name for p in tmp_path.iterdir()] == [f"map{suffix}"]


def test_save_figure_vector_formats(latent, tmp_path):
    fig = latent_map(latent)
    assert save_figure(fig, tmp_path / "map.svg").read_text().lstrip().startswith("<?xml")
    assert save_figure(fig, tmp_path / "map.pdf").read_bytes().startswith(b"%PDF")


def test_save_figure_refuses_unknown_suffixes(latent, tmp_path):
    with pytest.raises(ValueError, match=r"map\.jpg.*'\.png', '\.svg', '\.pdf'"):
        save_figure(latent_map(latent), tmp_path / "map.jpg")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_the_old_file_and_no_temp_files(latent, tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    path.write_bytes(b"old")
    fig = latent_map(latent)

    def fail(target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a PNG")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, path)
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]
    assert path.read_bytes() == b"old"


# ----------------------------------------------------------------------------- from a model
def test_plot_latent_of_digits_coloured_by_label(model, digits):
    X, _, y, _ = digits
    fig = plot_latent(model, X, color=y)
    ax = fig.axes[0]
    assert sum(len(p) for p in scatter_points(ax)) == len(X)
    assert legend_texts(ax) == [str(d) for d in range(10)]
    (points,) = scatter_points(ax)
    rows = drawn_rows(points, embed(model.transform(X)))  # the map is of the posterior means
    assert sorted(rows) == list(range(len(X)))


def test_plot_latent_colours_by_an_anndata_obs_column(model, digits, tmp_path):
    X, _, y, _ = digits
    obs = pd.DataFrame(
        {"label": pd.Categorical([f"digit {d}" for d in y])},
        index=[f"s{i}" for i in range(len(y))],
    )
    adata = ad.AnnData(X=X, obs=obs)
    ax = plot_latent(model, adata, color="label", method="pca").axes[0]
    assert ax.get_legend().get_title().get_text() == "label"
    assert legend_texts(ax)[0] == "digit 0" and len(legend_texts(ax)) == 10
    with pytest.raises(ValueError, match=r"no column 'cell_type'.*\['label'\]"):
        plot_latent(model, adata, color="cell_type")
    path = write_latent_map(model, adata, tmp_path / "map.png", color="label")
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_a_column_name_needs_an_anndata(model, digits):
    with pytest.raises(ValueError, match="needs an AnnData"):
        plot_latent(model, digits[0], color="label")


def test_write_latent_map_checks_the_path_before_encoding(tmp_path):
    class Unused:
        def transform(self, X, y=None, layer=None):
            raise AssertionError("encoded before the path was checked")

    with pytest.raises(ValueError, match="figure format"):
        write_latent_map(Unused(), np.zeros((5, 2)), tmp_path / "map.csv")
    with pytest.raises(ValueError, match="does not exist"):
        write_latent_map(Unused(), np.zeros((5, 2)), tmp_path / "no" / "map.png")
