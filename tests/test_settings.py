"""Settings files and flags for `vaekit train`."""

from __future__ import annotations

import pytest

from vaekit.data.preprocess import Log1p, MinMax, SelectVariable
from vaekit.options import parse_sizes
from vaekit.settings import merge, read_settings, vae_arguments


def test_file_then_flags(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("latent: 5\nhidden: 64,32\nepochs: 3\nbatch-size: 16\nlog1p: true\n")
    settings = merge(read_settings(path), {"epochs": 7, "lr": None})
    kwargs = vae_arguments(settings)
    assert kwargs == {"n_latent": 5, "hidden": (64, 32), "epochs": 7, "batch_size": 16,
                      "preprocess": [Log1p()]}


def test_python_names_and_the_short_aliases_are_the_same_setting(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("n_latent: 5\nkl_warmup: 2\nloadings_l1: 0.1\ndropout: 0.1\npatience: 5\n")
    python_names = vae_arguments(read_settings(path))
    path.write_text("latent: 5\nwarmup: 2\nl1: 0.1\ndropout: 0.1\npatience: 5\n")
    assert vae_arguments(read_settings(path)) == python_names == {
        "n_latent": 5, "kl_warmup": 2, "loadings_l1": 0.1, "dropout": 0.1, "patience": 5}
    path.write_text("latent: 5\nn_latent: 6\n")
    with pytest.raises(ValueError, match="gives n_latent twice"):
        read_settings(path)


def test_every_kind_of_setting_is_read_from_a_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "batch_norm: true\nearly_stopping: 'no'\ngrad_clip: 5\nlr_patience: none\n"
        "decoder_hidden: 32,64\nimage_shape: 8,8\nactivation: tanh\npreset: tybalt\n"
        "validation_fraction: 0.2\nweight_decay: 1e-4\nseed: 3\ndevice: cpu\n"
        "preprocess: [log1p, minmax]\n"
    )
    assert vae_arguments(read_settings(path)) == {
        "batch_norm": True, "early_stopping": False, "grad_clip": 5.0, "lr_patience": None,
        "decoder_hidden": (32, 64), "image_shape": (8, 8), "activation": "tanh",
        "preset": "tybalt", "validation_fraction": 0.2, "weight_decay": 1e-4, "seed": 3,
        "device": "cpu", "preprocess": ["log1p", "minmax"]}


def test_preset_preprocessing_is_overridden_step_by_step():
    kwargs = vae_arguments({"preset": "tybalt", "select": 1000})
    assert kwargs["preprocess"] == [Log1p(base=2), SelectVariable(1000, "mad"), MinMax()]
    assert "preprocess" not in vae_arguments({"preset": "tybalt"})
    # a file's own steps come before the preset's
    kwargs = vae_arguments({"preset": "tybalt", "preprocess": ["minmax"], "log1p": True})
    assert kwargs["preprocess"] == [Log1p(), MinMax()]


def test_bad_settings_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("latnet: 5\n")
    with pytest.raises(ValueError, match=r"unknown key 'latnet' \(did you mean 'latent'\?\)"):
        read_settings(path)
    path.write_text("dorpout: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key 'dorpout' \(did you mean 'dropout'\?\)"):
        read_settings(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_settings(path)
    path.write_text("a: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_settings(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_settings(tmp_path / "none.yaml")
    path.write_text("verbose: false\n")  # the command line's --quiet
    with pytest.raises(ValueError, match="unknown key 'verbose'"):
        read_settings(path)


def test_numbers_written_as_yaml_text_are_read_as_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("lr: 1e-3\nlatent: '4'\n")  # YAML 1.1 reads 1e-3 as text
    assert vae_arguments(read_settings(path)) == {"lr": 1e-3, "n_latent": 4}
    path.write_text("epochs: many\n")
    with pytest.raises(ValueError, match="epochs must be a positive integer; got 'many'"):
        vae_arguments(read_settings(path))
    path.write_text("hidden: big\n")
    with pytest.raises(ValueError, match="hidden must be a tuple of positive integers; got 'big'"):
        vae_arguments(read_settings(path))


def test_parse_sizes():
    assert parse_sizes("400,200") == (400, 200) and parse_sizes([64]) == (64,)
    assert parse_sizes("") == () and parse_sizes("none") == () and parse_sizes(None) is None
    with pytest.raises(ValueError, match="integers like 400,200"):
        parse_sizes("big")
