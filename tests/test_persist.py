"""Model files: round trips, atomic writes, and clear errors for broken folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import vaekit
from vaekit import persist


def test_save_load_gives_identical_outputs(fitted, digits, tmp_path):
    X = digits[1][:30]
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "weights.safetensors",
    ]
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.encode(X)[1], fitted.encode(X)[1])
    np.testing.assert_array_equal(loaded.reconstruct(X), fitted.reconstruct(X))
    np.testing.assert_array_equal(loaded.sample(5, seed=2), fitted.sample(5, seed=2))
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    pd.testing.assert_frame_equal(loaded.history_, fitted.history_)
    assert loaded.best_epoch_ == fitted.best_epoch_


def test_a_shared_scale_round_trips(digits, tmp_path):
    """isotropic_gaussian keeps one SD, of shape (1,), through safetensors."""
    X = digits[1][:120]
    model = vaekit.VAE(
        n_latent=2, likelihood="isotropic_gaussian", epochs=3, seed=0, verbose=False
    ).fit(X)
    model.save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.module_.likelihood.log_scale.shape == (1,)
    assert type(loaded.module_.likelihood).__name__ == "IsotropicGaussianLikelihood"
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


def test_config_holds_versions_and_feature_names(digits, tmp_path):
    frame = pd.DataFrame(digits[0][:100], columns=[f"g{i}" for i in range(64)])
    model = vaekit.VAE(n_latent=2, likelihood="bernoulli", epochs=1, seed=0, verbose=False)
    model.fit(frame, y=np.arange(100) % 3).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format_version"] == persist.FORMAT_VERSION
    assert config["vaekit_version"] == vaekit.__version__
    assert config["feature_names"] == [f"g{i}" for i in range(64)]
    loaded = vaekit.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.sample(4, y=2, seed=0), model.sample(4, y=2, seed=0))
    with pytest.raises(ValueError, match="lacks 1 of the model's 64"):
        loaded.transform(frame.drop(columns=["g5"]), y=np.zeros(100, dtype=int))


def test_loading_never_unpickles(fitted, tmp_path, monkeypatch):
    import pickle

    fitted.save(tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    vaekit.load(tmp_path / "m")


def test_a_crash_mid_save_leaves_the_old_model_intact(fitted, digits, tmp_path, monkeypatch):
    target = tmp_path / "m"
    fitted.save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    other = vaekit.VAE(n_latent=3, likelihood="bernoulli", epochs=1, seed=1, verbose=False)
    other.fit(digits[0])

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persist, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        other.save(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left behind


def test_saving_over_a_model_replaces_it(fitted, digits, tmp_path):
    target = tmp_path / "m"
    fitted.save(target)
    other = vaekit.VAE(n_latent=3, likelihood="bernoulli", epochs=1, seed=1, verbose=False)
    other.fit(digits[0]).save(target)
    assert vaekit.load(target).n_latent == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_to_overwrite_a_folder_that_is_not_a_model(fitted, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="holds files but no vaekit model"):
        fitted.save(tmp_path / "notes")
    other = tmp_path / "other_tool"  # another program's config.json is no vaekit model
    other.mkdir()
    (other / "config.json").write_text('{"other": "tool"}')
    with pytest.raises(ValueError, match="holds files but no vaekit model"):
        fitted.save(other)
    assert (other / "config.json").read_text() == '{"other": "tool"}'


def test_saved_files_follow_the_umask(fitted, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        fitted.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "m" / "config.json").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="folder .* does not exist"):
        fitted.save(tmp_path / "missing" / "m")


@pytest.fixture
def saved(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    return tmp_path / "m"


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def test_unknown_format_version_is_a_clear_error(saved):
    _edit_config(saved, format_version=99)
    with pytest.raises(ValueError, match="format version 99; this vaekit .* reads version 1"):
        vaekit.load(saved)


@pytest.mark.parametrize("name", ["config.json", "weights.safetensors"])
def test_missing_file_is_a_clear_error(saved, name):
    (saved / name).unlink()
    with pytest.raises(ValueError, match=f"lacks {name}"):
        vaekit.load(saved)


def test_config_without_its_keys_is_a_clear_error(saved):
    config = json.loads((saved / "config.json").read_text())
    del config["training"]
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"lacks \['training'\]; save the model again"):
        vaekit.load(saved)


def test_missing_folder_and_corrupt_files(saved, tmp_path):
    with pytest.raises(ValueError, match="no vaekit model at"):
        vaekit.load(tmp_path / "nowhere")
    (saved / "weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        vaekit.load(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        vaekit.load(saved)


def test_weights_that_do_not_match_the_config(saved):
    config = json.loads((saved / "config.json").read_text())
    model, settings = config["model"], config["settings"]
    _edit_config(saved, model={**model, "n_latent": 5}, settings={**settings, "n_latent": 5})
    with pytest.raises(ValueError, match=r"does not match its config.json.*wrong shapes"):
        vaekit.load(saved)
    _edit_config(saved, model=model, settings=settings)
    weights = load_file(saved / "weights.safetensors")
    del weights["z_mean.bias"]
    save_file(weights, saved / "weights.safetensors")
    with pytest.raises(ValueError, match=r"missing \['z_mean.bias'\]"):
        vaekit.load(saved)
