"""Settings files and flags for `vaekit train`."""

from __future__ import annotations

import pytest

from vaekit.data.preprocess import Log1p, MinMax, SelectVariable
from vaekit.settings import merge, parse_hidden, read_settings, vae_arguments


def test_file_then_flags(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("latent: 5\nhidden: 64,32\nepochs: 3\nbatch-size: 16\nlog1p: true\n")
    settings = merge(read_settings(path), {"epochs": 7, "lr": None})
    kwargs = vae_arguments(settings)
    assert kwargs == {"n_latent": 5, "hidden": (64, 32), "epochs": 7, "batch_size": 16,
                      "preprocess": [Log1p()]}


def test_preset_preprocessing_is_overridden_step_by_step():
    kwargs = vae_arguments({"preset": "tybalt", "select": 1000})
    assert kwargs["preprocess"] == [Log1p(base=2), SelectVariable(1000, "mad"), MinMax()]
    assert "preprocess" not in vae_arguments({"preset": "tybalt"})


def test_bad_settings_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("latnet: 5\n")
    with pytest.raises(ValueError, match=r"unknown keys \['latnet'\]"):
        read_settings(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_settings(path)
    path.write_text("a: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_settings(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_settings(tmp_path / "none.yaml")


def test_numbers_written_as_yaml_text_are_read_as_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("lr: 1e-3\nlatent: '4'\n")  # YAML 1.1 reads 1e-3 as text
    assert vae_arguments(read_settings(path)) == {"lr": 1e-3, "n_latent": 4}
    path.write_text("epochs: many\n")
    with pytest.raises(ValueError, match="epochs must be an integer; got 'many'"):
        vae_arguments(read_settings(path))


def test_parse_hidden():
    assert parse_hidden("400,200") == (400, 200)
    assert parse_hidden("") == () and parse_hidden("none") == ()
    with pytest.raises(ValueError, match="sizes like 400,200"):
        parse_hidden("big")
