"""Bad flags and arguments: unknown options, values out of range, absurd sizes."""

from __future__ import annotations

from corpus import Case

CASES = [
    Case("flags/unknown-command", lambda k: ["trian"], match="no such command"),
    Case("flags/unknown-option", lambda k: ["train", k.table, "-o", k.tmp / "m", "--bogus", "1"],
         match="--bogus"),
    Case("flags/epochs-not-integer",
         lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "1.5"], match="--epochs"),
    Case("flags/train-ok", lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "1", "-q"],
         code=0),
]
