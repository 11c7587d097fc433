"""Interpolation and traversals: ends, norms, shapes and KL order against independent numbers,
and the `interpolate` / `traverse` commands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from test_cli import assert_user_error, cli

import vaekit
from vaekit.analysis.paths import (
    INTERPOLATIONS,
    find_sample,
    interpolate,
    midpoint,
    to_image_grid,
    traversal_values,
    traverse,
)


# ------------------------------------------------------------------ interpolation
@pytest.mark.parametrize("method", sorted(INTERPOLATIONS))
def test_path_ends_decode_to_the_reconstructions_of_the_ends(fitted, digits, method):
    X = digits[1]
    path = interpolate(fitted, X[0], X[1], steps=6, method=method)
    assert path.z.shape == (6, 8) and path.x.shape == (6, 64) and path.t.shape == (6,)
    np.testing.assert_allclose(path.t, np.linspace(0, 1, 6))
    np.testing.assert_allclose(path.z[[0, -1]], fitted.transform(X[:2]), atol=1e-6)
    np.testing.assert_allclose(path.x[[0, -1]], fitted.reconstruct(X[:2]), atol=1e-5)


def test_linear_midpoint_is_the_mean_of_the_ends(fitted, digits):
    X = digits[1]
    z0, z1 = fitted.transform(X[2:4]).astype(float)
    path = interpolate(fitted, X[2], X[3], steps=5)
    np.testing.assert_allclose(path.z[2], (z0 + z1) / 2, atol=1e-6)
    np.testing.assert_allclose(np.diff(path.z, axis=0), np.tile((z1 - z0) / 4, (4, 1)), atol=1e-6)
    expected = fitted.decode(((z0 + z1) / 2)[None], mean=True)[0]
    np.testing.assert_allclose(midpoint(fitted, X[2], X[3]), expected, atol=1e-5)


def test_a_dataframe_row_and_a_series_are_samples_too(fitted, digits):
    frame = pd.DataFrame(digits[1][:2], columns=[f"x{i}" for i in range(64)])
    by_row = interpolate(fitted, frame.iloc[[0]], frame.iloc[1], steps=3)
    by_array = interpolate(fitted, digits[1][0], digits[1][1], steps=3)
    np.testing.assert_allclose(by_row.x, by_array.x, atol=1e-6)


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    cos = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.arccos(np.clip(cos, -1, 1)))


def test_slerp_norms_stay_between_the_ends_and_angles_are_uniform(fitted):
    rng = np.random.default_rng(0)
    for _ in range(20):
        z0, z1 = rng.normal(size=8) * rng.uniform(0.1, 3), rng.normal(size=8) * rng.uniform(0.1, 3)
        path = interpolate(fitted, z0, z1, steps=9, method="slerp", latent=True)
        np.testing.assert_array_equal(path.z[0], z0)
        np.testing.assert_array_equal(path.z[-1], z1)
        norms = np.linalg.norm(path.z, axis=1)
        lo, hi = sorted([np.linalg.norm(z0), np.linalg.norm(z1)])
        assert np.all(norms >= lo - 1e-9) and np.all(norms <= hi + 1e-9)
        # On the great circle through both ends, the angle from z0 grows as t * the full angle.
        full = _angle(z0, z1)
        angles = [_angle(z0, z) for z in path.z]
        np.testing.assert_allclose(angles, path.t * full, atol=1e-6)


def test_slerp_falls_back_to_linear_for_parallel_or_zero_ends(fitted):
    z = np.linspace(-1, 1, 8)
    for z0, z1 in [(z, 3 * z), (z, -z), (np.zeros(8), z)]:
        slerp = interpolate(fitted, z0, z1, steps=5, method="slerp", latent=True)
        linear = interpolate(fitted, z0, z1, steps=5, latent=True)
        np.testing.assert_allclose(slerp.z, linear.z)


def test_conditional_paths_take_one_condition_as_value_or_text(conditional, digits):
    X = digits[1]
    by_text = interpolate(conditional, X[0], X[1], steps=4, y="3")
    by_value = interpolate(conditional, X[0], X[1], steps=4, y=3)
    np.testing.assert_array_equal(by_text.x, by_value.x)
    expected = conditional.reconstruct(X[:2], np.array([3, 3]))
    np.testing.assert_allclose(by_value.x[[0, -1]], expected, atol=1e-5)
    with pytest.raises(ValueError, match="conditional on"):
        interpolate(conditional, X[0], X[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 1}, "steps must be an integer >= 2"),
        ({"steps": 2.5}, "steps must be an integer >= 2"),
        ({"method": "cubic"}, "unknown interpolation method 'cubic'"),
        ({"y": 3}, "not conditional"),
        ({"a": np.zeros(3), "latent": True}, "latent point of 8 finite values; got shape (3,)"),
        ({"a": np.zeros((2, 64))}, "one sample"),
    ],
)
def test_bad_interpolation_arguments_say_what_to_do(fitted, digits, kwargs, match):
    args = {"a": digits[1][0], "b": digits[1][1], **kwargs}
    if args.get("latent"):
        args["b"] = np.zeros(8)
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        interpolate(fitted, **args)


# ------------------------------------------------------------------ traversals
def test_traversal_shapes_and_only_the_traversed_feature_moves(fitted, digits):
    X = digits[1]
    values = [-2.0, 0.0, 1.5]
    tr = traverse(fitted, X[0], features=3, values=values)
    assert tr.z.shape == (3, 3, 8) and tr.x.shape == (3, 3, 64) and len(tr.features) == 3
    base = fitted.transform(X[:1])[0]
    for row, feature in enumerate(tr.features):
        offset = tr.z[row] - base  # (n_values, n_latent)
        others = np.delete(offset, feature, axis=1)
        np.testing.assert_allclose(others, 0, atol=1e-6)
        np.testing.assert_allclose(offset[:, feature], values, atol=1e-6)
    # The zero offset is the sample itself: its reconstruction.
    np.testing.assert_allclose(tr.x[:, 1], np.repeat(fitted.reconstruct(X[:1]), 3, 0), atol=1e-5)


def test_kl_order_is_decreasing_and_sums_to_the_models_kl(fitted, digits):
    X = digits[1]
    tr = traverse(fitted, data=X)
    assert sorted(tr.features) == list(range(8)) and tr.ordered_by == "kl over data"
    assert np.all(np.diff(tr.kl) <= 0)
    # torch's analytic KL of the whole posterior, independent of the per-feature formula here.
    assert tr.kl.sum() == pytest.approx(fitted.elbo_terms(X)["kl"].mean(), rel=1e-4)
    top = traverse(fitted, features=2, data=X)
    assert top.features == tr.features[:2]
    # Around the origin, each row's only non-zero coordinate is the offset: -3..3 by default.
    np.testing.assert_allclose(top.z.sum(axis=2), np.tile(traversal_values(), (2, 1)))


def test_traversal_orders_by_the_sample_or_else_by_index(fitted, digits):
    assert traverse(fitted, digits[1][0]).ordered_by == "kl of the sample"
    tr = traverse(fitted, features=[5, 1])
    assert tr.ordered_by == "index" and tr.kl is None and tr.features == [5, 1]
    assert traverse(fitted, features=100).features == list(range(8))  # all when k >= n_latent


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": 0}, "positive number"),
        ({"features": [8]}, "numbered 0..7"),
        ({"values": []}, "non-empty"),
        ({"values": [0, np.nan]}, "finite"),
    ],
)
def test_bad_traversal_arguments_say_what_to_do(fitted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        traverse(fitted, **kwargs)


def test_image_grids_have_a_row_per_feature(fitted, digits):
    tr = traverse(fitted, features=3, values=[-1, 0, 1, 2])
    assert to_image_grid(tr, (8, 8)).shape == (3 * 10 + 2, 4 * 10 + 2)
    path = interpolate(fitted, digits[1][0], digits[1][1], steps=5)
    picture = to_image_grid(path, (8, 8))
    assert picture.shape == (12, 52) and picture.dtype == np.uint8
    with pytest.raises(ValueError, match="write a table"):
        to_image_grid(path, (7, 7))


# ------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """120 digit images in class folders, and two image models saved from them."""
    folder = tmp_path_factory.mktemp("paths")
    d = load_digits()
    for i in range(120):
        target = folder / "images" / str(d.target[i])
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(target / f"{i}.png")
    adata = vaekit.read(folder / "images")
    settings = {"n_latent": 3, "hidden": (32,), "likelihood": "bernoulli", "epochs": 3}
    vaekit.VAE(**settings, seed=0, verbose=False).fit(adata).save(folder / "m")
    vaekit.VAE(**settings, seed=0, verbose=False).fit(adata, "label").save(folder / "c")
    return folder


def test_interpolate_writes_a_row_of_frames_or_a_table(images, tmp_path, capsys):
    code, out, err = cli(capsys, "interpolate", images / "m", images / "images", "--from", "0",
                         "--to", "7/7.png", "--steps", "6", "-o", tmp_path / "p.png")
    assert code == 0, err
    assert "6 steps" in out
    with Image.open(tmp_path / "p.png") as image:
        image.verify()
    with Image.open(tmp_path / "p.png") as image:  # 6 frames in one row, 2 px padding, doubled
        assert image.size == ((6 * 10 + 2) * 2, (10 + 2) * 2)
    code, _, err = cli(capsys, "interpolate", images / "m", images / "images", "--from", "0",
                       "--to", "7/7.png", "--method", "slerp", "-o", tmp_path / "p.tsv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t", index_col=0)
    assert table.shape == (8, 65) and table.columns[0] == "t"
    np.testing.assert_allclose(table["t"], np.linspace(0, 1, 8))
    model, adata = vaekit.load(images / "m"), vaekit.read(images / "images")
    ends = model.reconstruct(adata[[0, int(np.flatnonzero(adata.obs_names == "7/7.png")[0])]])
    np.testing.assert_allclose(table.iloc[[0, -1], 1:], ends, atol=1e-5)


def test_traverse_writes_a_grid_or_a_long_table(images, tmp_path, capsys):
    code, out, err = cli(capsys, "traverse", images / "m", images / "images", "--sample", "4",
                         "--features", "2", "--steps", "5", "-o", tmp_path / "t.png")
    assert code == 0, err
    assert "kl over data" in out
    with Image.open(tmp_path / "t.png") as image:
        image.verify()
    with Image.open(tmp_path / "t.png") as image:  # 2 features x 5 values
        assert image.size == ((5 * 10 + 2) * 2, (2 * 10 + 2) * 2)
    code, out, err = cli(capsys, "traverse", images / "c", "--condition", "3", "--range", "2",
                         "-o", tmp_path / "t.csv")
    assert code == 0, err
    assert "index" in out
    table = pd.read_csv(tmp_path / "t.csv", index_col=0)
    assert table.shape == (3 * 7, 66) and list(table.columns[:2]) == ["feature", "value"]
    assert table["value"].min() == -2 and table["value"].max() == 2


def test_bad_path_and_traversal_commands_are_one_line(images, tmp_path, capsys):
    m, data = images / "m", images / "images"
    ends = ["--from", "0", "--to", "1"]
    assert_user_error(cli(capsys, "interpolate", m, data, "--from", "nope", "--to", "1", "-o",
                          tmp_path / "p.png"), "no sample 'nope'")
    assert_user_error(cli(capsys, "interpolate", m, data, *ends, "--from", "120", "-o",
                          tmp_path / "p.png"), "row number 0..119")
    assert_user_error(cli(capsys, "interpolate", m, data, *ends, "--steps", "1", "-o",
                          tmp_path / "p.png"), "steps must be an integer >= 2")
    assert_user_error(cli(capsys, "interpolate", m, data, *ends, "--method", "cubic", "-o",
                          tmp_path / "p.png"), "unknown interpolation method")
    assert_user_error(cli(capsys, "interpolate", images / "c", data, *ends, "-o",
                          tmp_path / "p.png"), "--condition")
    assert_user_error(cli(capsys, "interpolate", m, data, *ends, "-o", tmp_path / "p.xlsx"),
                      "cannot tell the table format")
    assert_user_error(cli(capsys, "traverse", m, "--sample", "3", "-o", tmp_path / "t.png"),
                      "give DATA")
    assert_user_error(cli(capsys, "traverse", m, "--range", "0", "-o", tmp_path / "t.png"),
                      "range must be a positive number")
    assert_user_error(cli(capsys, "traverse", images / "c", "-o", tmp_path / "t.png"),
                      "conditional on ['label']")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_find_sample_prefers_ids_to_row_numbers():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=["x", "2", "y"])
    assert find_sample(frame, "2").index[0] == "2"
    assert find_sample(frame, 2).index[0] == "2"  # an ID first, a row number only otherwise
    assert find_sample(frame, "0").index[0] == "x"
