"""Settings files and flags for `vaekit train`."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epochs: 1.7\n", "epochs must be a positive integer; got 1.7"),  # not 1 epoch
        ("latent: true\n", "n_latent must be a positive integer; got True"),
        ("lr: yes\n", "lr must be a number > 0; got True"),  # float(True) would be 1.0
        ("lr: abc\n", "lr must be a number > 0; got 'abc'"),
        ("hidden: [8.5, 4]\n", r"hidden must be a tuple of positive integers; got \[8.5, 4\]"),
        ("condition: 5\n", "condition must be text; got 5"),
        ("epochs: {a: 1}\n", "epochs must be a positive integer"),
    ],
)
def test_values_of_the_wrong_kind_are_refused_not_converted(tmp_path, text, match):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        vae_arguments(read_settings(path))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "holds no settings"),
        ("# nothing but a comment\n", "holds no settings"),
        ("just text\n", "must hold a mapping of name: value lines; got a str"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", r"is not text \(UTF-8 YAML\)"),
        ("epochs: 3\x00\n", "is binary"),
        ("a: [1,\n", "is not valid YAML at line 2"),
        ("x: !!python/object/apply:os.system ['touch {pwned}']\n", "uses a YAML tag"),
        ("epochs: !!python/name:os.system\n", "uses a YAML tag"),
    ],
    ids=["empty", "comment-only", "a-string", "binary", "nul", "invalid", "python-apply",
         "python-name"],
)
def test_files_that_are_no_settings_are_refused(tmp_path, content, match):
    path = tmp_path / "s.yaml"
    pwned = tmp_path / "pwned"
    if isinstance(content, str):
        content = content.format(pwned=pwned).encode()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_settings(path)
    assert not pwned.exists()  # the tag was refused, never run


def test_settings_files_that_are_not_regular_files_are_refused_unread(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")  # reading it would block for ever
    with pytest.raises(ValueError, match="not a regular file"):
        read_settings(tmp_path / "fifo.yaml")
    with pytest.raises(ValueError, match="not a regular file"):
        read_settings(tmp_path)
    (tmp_path / "big.yaml").write_text("# " + "x" * 1_000_000)
    with pytest.raises(ValueError, match="at most 1,000,000 bytes"):
        read_settings(tmp_path / "big.yaml")


def test_a_byte_order_mark_and_flag_values_are_read(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes("\ufeffepochs: 2\nannotations: a.tsv\n".encode())
    assert read_settings(path) == {"epochs": 2, "annotations": "a.tsv"}
    assert vae_arguments({"epochs": 2, "annotations": Path("a.tsv")}) == {"epochs": 2}


def test_the_recommended_preset_does_not_warn_about_its_own_design():
    """The expression preset's L1 penalty on the loadings switches off the latent features the
    data do not need (8 of 100 stay active on TCGA): collapse is then what was asked for, and
    the warning, which the user could only act on by dropping the penalty, is not raised.
    Without the penalty, or with no feature left, it still is."""
    import warnings

    from vaekit.config import TrainConfig
    from vaekit.presets import PRESETS
    from vaekit.train import PosteriorCollapseWarning, _warn_if_collapsed

    l1 = PRESETS["expression"]["loadings_l1"]
    assert l1 > 0
    cases = [(8, l1, False), (8, 0.0, True), (0, l1, True), (60, 0.0, False)]
    for active, penalty, warned in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _warn_if_collapsed({"active_units": active}, 100, TrainConfig(loadings_l1=penalty))
        found = [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]
        assert bool(found) == warned, (active, penalty)
