"""Checkpoints, exact resume, signals and divergence roll-back (vaekit.checkpoint, vaekit.train).

Exactness is checked bit for bit: a run stopped anywhere and resumed must end with the very
weights and history (all but the wall-clock ``seconds``) of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits

import vaekit
from vaekit import train as train_module
from vaekit.checkpoint import NAME
from vaekit.report.summary import interruptions, rollback_epochs
from vaekit.train import DivergenceWarning, TrainingDiverged, TrainingInterrupted

SETTINGS = dict(
    n_latent=3,
    hidden=(32,),
    likelihood="bernoulli",
    batch_size=64,
    lr=3e-3,
    dropout=0.1,  # draws from torch's global generator: its state must be restored
    lr_patience=1,  # the scheduler's state must be restored
    patience=3,
    seed=0,
    verbose=False,
)


@pytest.fixture(scope="module")
def X():
    return (load_digits().data[:600] / 16).astype(np.float32)


def same_run(a: vaekit.VAE, b: vaekit.VAE) -> None:
    """Bit-identical weights, history (but for wall-clock seconds) and best epoch."""
    wa, wb = a.module_.state_dict(), b.module_.state_dict()
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ha, hb = (m.history_.drop(columns="seconds") for m in (a, b))
    assert ha.equals(hb), (ha, hb)
    assert a.best_epoch_ == b.best_epoch_


def interrupt_at(monkeypatch, calls: int, signum: int = signal.SIGINT) -> None:
    """Send ``signum`` to this process during optimisation step number ``calls`` (0-based)."""
    original, count = train_module._Step.__call__, [0]

    def step(self, idx):
        out = original(self, idx)
        if count[0] == calls:
            os.kill(os.getpid(), signum)
        count[0] += 1
        return out

    monkeypatch.setattr(train_module._Step, "__call__", step)


@pytest.fixture(scope="module")
def uninterrupted(X):
    return vaekit.VAE(epochs=8, **SETTINGS).fit(X)


def test_checkpoints_are_written_each_epoch_and_pruned_to_the_newest(X, tmp_path):
    model = vaekit.VAE(epochs=4, checkpoint_dir=tmp_path, keep_checkpoints=2, **SETTINGS).fit(X)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"checkpoint-{e:06d}-0000000" for e in (len(model.history_) - 1,
                                                               len(model.history_))]
    state = json.loads((tmp_path / names[-1] / "state.json").read_text())
    assert state["epoch"] == len(model.history_) and state["identity"]["seed"] == 0
    assert {"rows", "shape", "features", "samples"} <= set(state["identity"]["data"])


@pytest.mark.parametrize("when", [3, 9, 20, 31])  # steps: within and at the ends of epochs
def test_a_signal_checkpoints_and_resume_is_bit_identical(X, tmp_path, monkeypatch, when,
                                                          uninterrupted):
    # 540 training rows in batches of 64: 9 steps per epoch (the last of 28 rows)
    interrupt_at(monkeypatch, when)
    model = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(TrainingInterrupted) as err:
        model.fit(X)
    assert err.value.exit_code == 130 and "resume" in str(err.value)
    epoch, step = divmod(when + 1, 9)
    assert err.value.checkpoint.name == f"checkpoint-{epoch:06d}-{step:07d}"
    monkeypatch.undo()
    resumed = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS).fit(X, resume=True)
    same_run(resumed, uninterrupted)
    assert resumed.resumes_ == [{"epoch": epoch, "step": step}]


def test_checkpoints_within_epochs_resume_exactly(X, tmp_path, monkeypatch, uninterrupted):
    monkeypatch.setattr("vaekit.checkpoint.Checkpoints.due", lambda self: True)
    interrupt_at(monkeypatch, 13, signal.SIGTERM)
    model = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, keep_checkpoints=50, **SETTINGS)
    with pytest.raises(TrainingInterrupted) as err:
        model.fit(X)
    assert err.value.exit_code == 143
    # every step wrote one: resume from an older one, as after a kill
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 15  # 9 + 5 steps, and the end of epoch 0
    for name in names[-3:]:
        os.replace(tmp_path / name, tmp_path.parent / f"removed-{name}")
    monkeypatch.undo()
    resumed = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS).fit(X, resume=True)
    same_run(resumed, uninterrupted)


def test_resume_without_a_checkpoint_starts_afresh(X, tmp_path, uninterrupted):
    with pytest.warns(UserWarning, match="no checkpoint"):
        model = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS).fit(X, resume=True)
    same_run(model, uninterrupted)


def test_more_epochs_on_resume_are_allowed_and_recorded(X, tmp_path, uninterrupted):
    short = {**SETTINGS, "patience": 100}
    vaekit.VAE(epochs=2, checkpoint_dir=tmp_path, **short).fit(X)
    longer = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **short).fit(X, resume=True)
    straight = vaekit.VAE(epochs=8, **short).fit(X)
    same_run(longer, straight)
    assert longer.resumes_ == [{"epoch": 2, "step": 0, "epochs": [2, 8]}]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"lr": 1e-2}, "lr 0.003 (checkpoint) vs 0.01 (now)"),
        ({"n_latent": 4}, "n_latent"),
        ({"seed": 1}, "seed 0 (checkpoint) vs 1 (now)"),
    ],
)
def test_resume_refuses_settings_that_change_the_model(X, tmp_path, change, named):
    vaekit.VAE(epochs=1, checkpoint_dir=tmp_path, **SETTINGS).fit(X)
    with pytest.raises(ValueError, match="cannot resume") as err:
        vaekit.VAE(epochs=2, checkpoint_dir=tmp_path, **{**SETTINGS, **change}).fit(X, resume=True)
    assert named in str(err.value)


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (lambda X: X[:-1], "shape [600, 64] (checkpoint) vs [599, 64] (now)"),
        (lambda X: np.roll(X, 1, axis=0), "rows"),
        (lambda X: np.where(X == 0, 1e-3, X).astype(np.float32), "rows"),
    ],
)
def test_resume_refuses_other_data(X, tmp_path, other, named):
    vaekit.VAE(epochs=1, checkpoint_dir=tmp_path, **SETTINGS).fit(X)
    with pytest.raises(ValueError, match="training data differ") as err:
        vaekit.VAE(epochs=2, checkpoint_dir=tmp_path, **SETTINGS).fit(other(X), resume=True)
    assert named in str(err.value)


def test_resume_needs_a_checkpoint_dir(X):
    with pytest.raises(ValueError, match="resume needs checkpoint_dir"):
        vaekit.VAE(epochs=1, **SETTINGS).fit(X, resume=True)


def test_checkpoint_dir_must_be_a_folder_of_its_own(X, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        vaekit.VAE(epochs=1, checkpoint_dir=tmp_path / "file", **SETTINGS).fit(X)
    with pytest.raises(ValueError, match="holds other files"):
        vaekit.VAE(epochs=1, checkpoint_dir=tmp_path, **SETTINGS).fit(X)


def test_debris_of_a_killed_write_is_cleared(X, tmp_path):
    (tmp_path / ".checkpoint-000001-0000000.abc.tmp").mkdir()
    (tmp_path / ".checkpoint-000001-0000000.abc.tmp" / "state.json").write_text("{")
    vaekit.VAE(epochs=1, checkpoint_dir=tmp_path, **SETTINGS).fit(X)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-000001-0000000"]


# ---------------------------------------------------------------------------- divergence
def plant_nan(monkeypatch, at_calls: set[int]) -> None:
    """Turn a weight to NaN right after the optimisation steps numbered ``at_calls``."""
    original, count = train_module._Step.__call__, [0]

    def step(self, idx):
        out = original(self, idx)
        if count[0] in at_calls:
            with torch.no_grad():
                next(self.module.parameters()).view(-1)[0] = math.nan
        count[0] += 1
        return out

    monkeypatch.setattr(train_module._Step, "__call__", step)


def test_a_planted_nan_rolls_back_with_half_the_learning_rate(X, monkeypatch, tmp_path):
    plant_nan(monkeypatch, {20})  # epoch 2 (9 steps an epoch)
    with pytest.warns(DivergenceWarning, match="rolled back"):
        model = vaekit.VAE(epochs=5, checkpoint_dir=tmp_path, **{**SETTINGS, "lr_patience": None}
                           ).fit(X)
    h = model.history_
    assert list(h.index) == [0, 1, 2, 3, 4]  # epoch 2 was done again
    assert list(h["rollbacks"]) == [0, 0, 1, 1, 1]
    assert list(h["lr"]) == [3e-3, 3e-3, 1.5e-3, 1.5e-3, 1.5e-3]
    assert all(torch.isfinite(p).all() for p in model.module_.parameters())
    assert np.isfinite(h.drop(columns="seconds").to_numpy(float)).all()
    # the report says so
    assert rollback_epochs(h) == [2]
    text = interruptions({"rollback_epochs": [2], "resumes": [{"epoch": 1, "step": 4}]})
    assert "diverged 1 time(s)" in text and "epoch(s) 2" in text and "epoch 1 step 4" in text


def test_divergence_that_persists_stops_with_the_best_weights(X, monkeypatch):
    plant_nan(monkeypatch, set(range(20, 10_000)))  # from epoch 2 on, every step
    with pytest.warns(DivergenceWarning), pytest.raises(TrainingDiverged, match="halving") as err:
        vaekit.VAE(epochs=8, **SETTINGS).fit(X)
    assert len(err.value.history) == 2 and err.value.best_state is not None
    assert all(torch.isfinite(v).all() for v in err.value.best_state.values())


def test_a_non_finite_validation_loss_rolls_back(X, monkeypatch):
    original, calls = train_module.validation_loss, [0]

    def nan_once(*args, **kwargs):
        val, usage = original(*args, **kwargs)
        calls[0] += 1
        return ({**val, "loss": math.nan} if calls[0] == 2 else val), usage

    monkeypatch.setattr(train_module, "validation_loss", nan_once)
    with pytest.warns(DivergenceWarning, match="epoch 1"):
        model = vaekit.VAE(epochs=3, **SETTINGS).fit(X)
    assert list(model.history_["rollbacks"]) == [0, 1, 1]


# ---------------------------------------------------------------------------- processes
def vaekit_process(*args, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [Path(vaekit.__file__).parents[1],
                                                                os.environ.get("PYTHONPATH", "")]))}
    return subprocess.Popen([sys.executable, "-m", "vaekit.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def write_digits(path: Path, n: int) -> None:
    X = load_digits().data[:n] / 16
    index = pd.Index([f"s{i}" for i in range(n)], name="sample")
    pd.DataFrame(X, columns=[f"px{i}" for i in range(64)], index=index).to_csv(path)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Wait for ``proc``; its exit code and stderr."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for_checkpoint(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if folder.is_dir() and any(NAME.match(p.name) for p in folder.iterdir()):
            return
        time.sleep(0.02)


def weights_and_history(model_dir: Path) -> tuple[dict, dict]:
    config = json.loads((model_dir / "config.json").read_text())
    history = config["training"]["history"]
    history.pop("seconds")
    return load_file(model_dir / "weights.safetensors"), history


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    write_digits(tmp_path / "digits.csv", 600)
    flags = ["--likelihood", "bernoulli", "--latent", "3", "--hidden", "64", "--batch-size",
             "32", "--epochs", "10", "--dropout", "0.1", "--seed", "0", "--quiet",
             "--checkpoint-minutes", "0.001"]  # within epochs too: about every 60 ms
    data = tmp_path / "digits.csv"
    # the uninterrupted run, in a process like the others (the same threads: a matrix
    # product's rounding may depend on how many share it)
    tic = time.perf_counter()
    code, err = finish(vaekit_process("train", data, "-o", tmp_path / "straight", *flags))
    assert code == 0, err
    seconds = max(time.perf_counter() - tic - 2, 0.5)  # less the time to start and load
    ckpt, out = tmp_path / "ckpt", tmp_path / "resumed"
    rng, moments = random.Random(), []
    for _ in range(2):
        proc = vaekit_process("train", data, "-o", out, "--checkpoint-dir", ckpt, "--resume",
                              *flags)
        wait_for_checkpoint(ckpt, proc)
        moments.append(round(rng.uniform(0, seconds), 3))  # anywhere in a run's training
        time.sleep(moments[-1])
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        # the model folder is absent, or whole (the kill came after the save)
        assert not out.exists() or vaekit.load(out).history_ is not None
    proc = vaekit_process("train", data, "-o", out, "--checkpoint-dir", ckpt, "--resume", *flags)
    code, err = finish(proc)
    assert code == 0, (moments, err)
    # a save the kill cut short left a temporary folder; the next save removed it
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], moments
    wa, ha = weights_and_history(tmp_path / "straight")
    wb, hb = weights_and_history(out)
    assert ha == hb, f"history differs after kills at {moments} s"
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after kills at {moments} s"


def test_sigterm_exits_143_with_one_line_saying_how_to_resume(tmp_path):
    write_digits(tmp_path / "digits.csv", 1797)
    ckpt = tmp_path / "ckpt"
    proc = vaekit_process("train", tmp_path / "digits.csv", "-o", tmp_path / "m", "--epochs",
                          "500", "--no-early-stopping", "--checkpoint-dir", ckpt, "--quiet")
    wait_for_checkpoint(ckpt, proc)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, timeout=60)
    assert code == 143, err
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training interrupted by SIGTERM"), err
    assert err[0].endswith("--checkpoint-dir " + str(ckpt) + " --quiet --resume"), err
    assert not (tmp_path / "m").exists()


def test_a_damaged_newest_checkpoint_is_skipped_for_the_one_before(X, tmp_path, monkeypatch,
                                                                   uninterrupted):
    interrupt_at(monkeypatch, 20)
    with pytest.raises(TrainingInterrupted):
        vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS).fit(X)
    monkeypatch.undo()
    newest = sorted(tmp_path.iterdir())[-1]
    (newest / "tensors.safetensors").write_bytes(b"\0" * 100)  # damaged on disk
    with pytest.warns(UserWarning, match=f"skipping {newest}"):
        resumed = vaekit.VAE(epochs=8, checkpoint_dir=tmp_path, **SETTINGS).fit(X, resume=True)
    same_run(resumed, uninterrupted)
    assert resumed.resumes_ == [{"epoch": 2, "step": 0}]
