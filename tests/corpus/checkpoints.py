"""Checkpoint folders and --resume: bad flags, folders that are not a run's own, damaged
checkpoints, and a resume with other data or settings."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from corpus import Case, Kit, run

TRAIN = ["--epochs", "1", "--seed", "0", "--latent", "2", "--hidden", "4", "-q"]


def _train(k: Kit, *extra: object) -> list:
    return ["train", k.table, "-o", k.tmp / "m", *TRAIN, *extra]


def _trained(k: Kit) -> None:
    """A checkpoint folder ``ckpt`` of a one-epoch run on ``kit.table``."""
    result = run(["train", k.table, "-o", k.tmp / "first", *TRAIN, "--checkpoint-dir",
                  k.tmp / "ckpt"])
    assert result.code == 0, result.err


def _resume_with(change: Callable[[Kit], list]) -> Callable[[Kit], list]:
    def make(k: Kit) -> list:
        _trained(k)
        return change(k)

    return make


def _other_rows(k: Kit) -> list:
    table = pd.read_csv(k.table, index_col=0)
    other = k.tmp / "other.csv"
    table.iloc[::-1].to_csv(other)
    return ["train", other, "-o", k.tmp / "m", *TRAIN, "--epochs", "2",
            "--checkpoint-dir", k.tmp / "ckpt", "--resume"]


def _damaged(k: Kit) -> list:
    _trained(k)
    for state in (k.tmp / "ckpt").glob("*/state.json"):
        state.write_text("{")
    return _train(k, "--epochs", "2", "--checkpoint-dir", k.tmp / "ckpt", "--resume")


CASES = [
    Case("checkpoints/resume-without-dir", lambda k: _train(k, "--resume"),
         match="--resume needs --checkpoint-dir"),
    Case("checkpoints/dir-is-a-file",
         lambda k: _train(k, "--checkpoint-dir", k.write("ckpt", "x")), match="is a file"),
    Case("checkpoints/dir-holds-other-files",
         lambda k: _train(k, "--checkpoint-dir", k.write("mine/notes.txt", "x").parent),
         match="holds other files"),
    Case("checkpoints/dir-empty-name", lambda k: _train(k, "--checkpoint-dir", ""),
         match="checkpoint_dir must be a folder path"),
    Case("checkpoints/minutes-zero", lambda k: _train(k, "--checkpoint-minutes", "0"),
         match="checkpoint_minutes"),
    Case("checkpoints/minutes-negative", lambda k: _train(k, "--checkpoint-minutes", "-1"),
         match="checkpoint_minutes"),
    Case("checkpoints/minutes-inf", lambda k: _train(k, "--checkpoint-minutes", "inf"),
         match="checkpoint_minutes"),
    Case("checkpoints/keep-zero", lambda k: _train(k, "--keep-checkpoints", "0"),
         match="keep_checkpoints"),
    Case("checkpoints/keep-text", lambda k: _train(k, "--keep-checkpoints", "two"),
         match="--keep-checkpoints"),
    Case("checkpoints/resume-other-data", _resume_with(_other_rows),
         match="training data differ"),
    Case("checkpoints/resume-other-lr", _resume_with(
        lambda k: _train(k, "--lr", "0.01", "--checkpoint-dir", k.tmp / "ckpt", "--resume")),
         match="lr 0.001 (checkpoint) vs 0.01 (now)"),
    Case("checkpoints/resume-other-latent", _resume_with(
        lambda k: _train(k, "--latent", "3", "--checkpoint-dir", k.tmp / "ckpt", "--resume")),
         match="n_latent"),
    Case("checkpoints/resume-other-seed", _resume_with(
        lambda k: _train(k, "--seed", "1", "--checkpoint-dir", k.tmp / "ckpt", "--resume")),
         match="seed 0 (checkpoint) vs 1 (now)"),
    Case("checkpoints/resume-all-damaged", _damaged, match="no readable checkpoint"),
    # these succeed
    Case("checkpoints/resume-more-epochs", _resume_with(
        lambda k: _train(k, "--epochs", "2", "--checkpoint-dir", k.tmp / "ckpt", "--resume")),
         code=0),
    Case("checkpoints/resume-in-an-empty-dir",
         lambda k: _train(k, "--checkpoint-dir", k.tmp / "new", "--resume"), code=0),
]
