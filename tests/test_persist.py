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
    assert (tmp_path / "m" / "weights.safetensors").stat().st_mode & 0o777 == 0o644
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


# ---------------------------------------------------------------------------- the schema
def _config(path):
    return json.loads((path / "config.json").read_text())


@pytest.mark.parametrize(
    ("change", "key", "shown"),
    [
        (lambda c: c["model"].update(n_latent=-1), "model.n_latent", "-1"),
        (lambda c: c["model"].update(likelihood="../../etc/passwd"), "model.likelihood",
         "'../../etc/passwd'"),
        (lambda c: c["params"].update(device="tpu:99"), "params.device", "'tpu:99'"),
        (lambda c: c["training"].update(best_epoch=10**6), "training.best_epoch", "1000000"),
        (lambda c: c["training"].update(history=[1]), "training.history", "[1]"),
        (lambda c: c.update(preprocess=[{"name": "a/b"}]), "preprocess[0].name", "'a/b'"),
        (lambda c: c.update(feature_names=["g"]), "feature_names", "1 names"),
        (lambda c: c.update(covariates="batch"), "covariates", "'batch'"),
    ],
)
def test_config_errors_name_the_file_key_and_value(saved, change, key, shown):
    config = _config(saved)
    change(config)
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        vaekit.load(saved)
    message = str(err.value)
    assert str(saved / "config.json") in message
    assert f"{key} must be" in message and f"got {shown}" in message
    assert message.endswith("save the model again")


@pytest.mark.parametrize("content", ["[]", '"model"', "null", "[" * 100_000 + "]" * 100_000])
def test_a_config_that_is_no_object_is_refused(saved, content):
    (saved / "config.json").write_text(content)
    with pytest.raises(ValueError, match="config.json (holds|nests)"):
        vaekit.load(saved)


def test_the_schema_covers_every_model_field():
    from dataclasses import fields

    from vaekit import schema
    from vaekit.config import ModelConfig

    assert set(schema.MODEL) == {f.name for f in fields(ModelConfig)}


def test_a_model_is_checked_before_it_is_built(saved, monkeypatch):
    """A config error is found before any module is allocated."""
    import vaekit.saving

    def refuse(*args, **kwargs):
        raise AssertionError("built before the config was checked")

    monkeypatch.setattr(vaekit.saving, "VAEModule", refuse)
    config = _config(saved)
    config["model"]["hidden"] = [200_000]
    config["settings"]["hidden"] = [100]
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="settings.hidden must be equal to model.hidden"):
        vaekit.load(saved)


# ---------------------------------------------------------------------------- size bound
MODELS = [
    dict(n_input=20, hidden=(16, 8), likelihood=lik, batch_norm=bn, posterior_batch_norm=bn,
         decoder=dec, n_covariates=cov, missing=missing)
    for lik in ("gaussian", "isotropic_gaussian", "bernoulli", "nb", "zinb")
    for bn, dec, cov, missing in [(False, "mlp", 0, "error"), (True, "linear", 3, "mask")]
] + [
    dict(n_input=c * h * w, hidden=hidden, likelihood=lik, batch_norm=bn, n_covariates=cov,
         missing=missing, architecture="conv", image_shape=(c, h, w), conv_channels=channels)
    for lik in ("gaussian", "continuous_bernoulli")
    for (c, h, w), channels, hidden, bn, cov, missing in [
        ((1, 8, 8), (8,), (), False, 0, "error"),
        ((3, 9, 10), (8, 16), (16,), True, 2, "mask"),
        ((2, 33, 40), (4, 8, 16), (12, 6), False, 1, "error"),
    ]
]


@pytest.mark.parametrize("settings", MODELS)
def test_the_size_is_counted_without_building(settings):
    from vaekit.config import ModelConfig
    from vaekit.model import VAEModule, n_values

    config = ModelConfig(n_latent=4, **settings)
    module = VAEModule(config)
    built = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
    assert n_values(config) == built


def test_a_model_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    from vaekit import _memory, model
    from vaekit.config import ModelConfig

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**30)
    config = ModelConfig(n_input=12, n_latent=3, hidden=(300_000_000,))
    need = model.COPIES * model.BYTES_PER_VALUE * model.n_values(config)
    with pytest.raises(ValueError, match=f"needs {need:,} bytes .* {2**30:,} bytes"):
        model.VAEModule(config)
    model.VAEModule(ModelConfig(n_input=12, n_latent=3, hidden=(8,)))  # small ones are built


def test_training_a_model_too_large_is_refused(monkeypatch, tmp_path):
    from corpus import run, training_table

    from vaekit import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**30)
    table = training_table(tmp_path)
    result = run(["train", table, "-o", tmp_path / "m", "--hidden", "300000000", "--epochs", "1"])
    assert result.code == 2, result.err
    assert "bytes" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "m").exists()


def test_available_memory_reads_meminfo(tmp_path, monkeypatch):
    from vaekit import _memory as model

    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert model._meminfo_available(str(tmp_path / "meminfo")) == 2048 * 1024
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert model._cgroup_room(str(tmp_path)) == 600000
    (tmp_path / "memory.max").write_text("max\n")
    assert model._cgroup_room(str(tmp_path)) is None
    monkeypatch.setattr(model, "_cgroup_room", lambda: 10)
    assert model.available_memory() == 10


# ---------------------------------------------------------------------------- the weights
class _Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_disguised_as_weights_never_runs(saved, tmp_path):
    import pickle

    marker = tmp_path / "PAYLOAD_RAN"
    payload = pickle.dumps(_Marker(marker))
    pickle.loads(payload)  # the payload works: loading it creates the marker
    assert marker.exists()
    marker.unlink()
    (saved / "weights.safetensors").write_bytes(payload)
    with pytest.raises(ValueError, match="is a Python pickle, not safetensors.*nothing in it"):
        vaekit.load(saved)
    assert not marker.exists()


def test_a_safetensors_header_whose_length_starts_with_0x80_is_not_a_pickle(saved):
    """safetensors begins with its header's length, little-endian: for 1 size in 32 the first
    byte is 0x80, a pickle's magic. Such a file (the same weights, the header padded to 0x280
    bytes) still loads."""
    import json
    import struct

    path = saved / "weights.safetensors"
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header).encode()
    size = 0x80 + 0x100 * ((len(text) + 0x7F) // 0x100 + 1)  # 0x..80, room for the header
    padded = text + b" " * (size - len(text))
    path.write_bytes(struct.pack("<Q", size) + padded + raw[8 + n :])
    assert path.read_bytes()[0] == 0x80
    vaekit.load(saved)


def test_weights_of_another_dtype_are_refused(saved):
    weights = load_file(saved / "weights.safetensors")
    weights["z_mean.bias"] = weights["z_mean.bias"].double()
    save_file(weights, saved / "weights.safetensors")
    with pytest.raises(ValueError, match=r"wrong dtypes \['z_mean.bias: F64 vs F32'\]"):
        vaekit.load(saved)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("z_mean.weight", float("nan"), r"hold NaN \(z_mean.weight\); the training diverged"),
        ("likelihood.out.bias", float("-inf"), "hold infinite values"),
        ("library_log_std", -1.0, "library_log_std holds -1"),
    ],
)
def test_weights_that_compute_nan_are_refused_at_load(saved, name, value, match):
    weights = load_file(saved / "weights.safetensors")
    weights[name].view(-1)[0] = value
    save_file(weights, saved / "weights.safetensors")
    with pytest.raises(ValueError, match=match):
        vaekit.load(saved)


def test_an_overflowing_scale_is_refused(digits, tmp_path):
    model = vaekit.VAE(n_latent=2, hidden=(8,), likelihood="gaussian", epochs=1, seed=0,
                       verbose=False)
    model.fit(digits[1][:60]).save(tmp_path / "m")
    weights = load_file(tmp_path / "m" / "weights.safetensors")
    weights["likelihood.log_scale"][0] = 100.0  # finite, but exp(100) is inf in float32
    assert torch.isinf(weights["likelihood.log_scale"].exp()).any()
    save_file(weights, tmp_path / "m" / "weights.safetensors")
    with pytest.raises(ValueError, match="log_scale holds 100"):
        vaekit.load(tmp_path / "m")


def test_a_nan_model_is_never_written(fitted, tmp_path):
    import copy

    broken = copy.deepcopy(fitted)
    with torch.no_grad():
        broken.module_.z_mean.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="refusing to save a model whose weights hold NaN"):
        broken.save(tmp_path / "m")
    with torch.no_grad():
        broken.module_.z_mean.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="hold infinite values"):
        broken.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- atomic writes
def test_temporaries_carry_the_pid(tmp_path):
    import os

    from vaekit.atomic import atomic_dir, atomic_file

    with atomic_dir(tmp_path / "m") as tmp:
        assert tmp.name.startswith(f".m.{os.getpid()}.") and tmp.name.endswith(".tmp")
    with atomic_file(tmp_path / "f.txt") as tmp:
        assert tmp.name.startswith(f".f.txt.{os.getpid()}.")
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "m"]


def test_a_dead_writers_temporaries_are_removed(fitted, tmp_path, monkeypatch):
    from vaekit import atomic

    dead, alive = 999_999_991, 999_999_992
    monkeypatch.setattr(atomic, "_pid_alive", lambda pid: pid != dead)
    stale = tmp_path / f".m.{dead}.abcd1234.tmp"  # a save killed midway
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    running = tmp_path / f".m.{alive}.abcd1234.tmp"  # another process, still writing
    running.mkdir()
    mine = tmp_path / f".m.{dead}.notes"  # the user's own file, of a similar name
    mine.write_text("keep")
    other = tmp_path / f".n.{dead}.abcd1234.tmp"  # another target's
    other.mkdir()
    fitted.save(tmp_path / "m")
    assert not stale.exists()
    assert running.is_dir() and mine.read_text() == "keep" and other.is_dir()
    assert vaekit.load(tmp_path / "m").n_latent == fitted.n_latent


def test_a_model_moved_aside_by_a_killed_save_is_put_back(fitted, tmp_path, monkeypatch):
    """Killed between the two renames: the old model sits in .m.old-PID.*; the next write
    to the same target restores it before writing."""
    from vaekit import atomic

    dead = 999_999_991
    monkeypatch.setattr(atomic, "_pid_alive", lambda pid: pid != dead)
    fitted.save(tmp_path / "m")
    aside = tmp_path / f".m.old-{dead}.abcd1234"
    aside.mkdir()
    (tmp_path / "m").rename(aside / "m")
    assert atomic.remove_stale(tmp_path / "m") == [aside]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert vaekit.load(tmp_path / "m").n_latent == fitted.n_latent


@pytest.mark.parametrize(("name", "match"), [("", "give the name"), (".", "give the name"),
                                             ("x" * 300, "more than the")])
def test_unwritable_names_are_refused(fitted, tmp_path, monkeypatch, name, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=match):
        fitted.save(tmp_path / name if name not in ("", ".") else name)
    assert list(tmp_path.iterdir()) == []
