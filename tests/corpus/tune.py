"""`vaekit tune` with hostile inputs: search-space files, storage URLs, durations, output
folders. Each fails before any trial runs; one tiny run succeeds."""

from __future__ import annotations

from collections.abc import Callable

from corpus import Case, Kit


def _tune(*extra: object) -> Callable[[Kit], list]:
    return lambda k: ["tune", k.table, "-o", k.tmp / "t", "-q", *extra]


def _space(text: str) -> Callable[[Kit], list]:
    """`vaekit tune` with a search-space file holding ``text``."""
    return lambda k: ["tune", k.table, "-o", k.tmp / "t", "-q", "--space",
                      k.write("space.yaml", text)]


def _config(text: str) -> Callable[[Kit], list]:
    return lambda k: ["tune", k.table, "-o", k.tmp / "t", "-q", "--config",
                      k.write("fixed.yaml", text)]


def _out_is_file(k: Kit) -> list:
    return ["tune", k.table, "-o", k.write("t", "not a folder"), "-q"]


def _out_has_user_files(k: Kit) -> list:
    k.write("t/notes.txt", "mine")
    return ["tune", k.table, "-o", k.tmp / "t", "-q"]


def _ok(k: Kit) -> list:
    fixed = k.write("fixed.yaml", "epochs: 1\nhidden: ''\n")
    return ["tune", k.table, "-o", k.tmp / "t", "-q", "--trials", "1", "--config", fixed,
            "--draws", "2", "--space", k.write("space.yaml", "n_latent: [2, 3]\n")]


CASES = [
    # the search space
    Case("tune/space-unknown-setting", _space("n_latnt: [2, 8]\n"), match="n_latnt"),
    Case("tune/space-untunable", _space("seed: [0, 3]\n"), match="seed cannot be tuned"),
    Case("tune/space-not-a-model-setting", _space("condition: batch\n"),
         match="condition cannot be tuned"),
    Case("tune/space-reversed-range", _space("n_latent: [8, 2]\n"), match="low < high"),
    Case("tune/space-range-out-of-bounds", _space("dropout: [0.1, 1.5]\n"), match="dropout"),
    Case("tune/space-range-on-a-choice", _space("likelihood: [1, 2]\n"), match="no range"),
    Case("tune/space-bad-choice", _space("likelihood: {choices: [gaussian, nope]}\n"),
         match="nope"),
    Case("tune/space-malformed-entry", _space("n_latent: {between: 2}\n"), match="n_latent"),
    Case("tune/space-log-of-zero", _space("dropout: {low: 0.0, high: 0.2, log: true}\n"),
         match="log"),
    Case("tune/space-not-yaml", _space("n_latent: [\n"), match="not valid YAML"),
    Case("tune/space-empty", _space(""), match="holds no settings"),
    Case("tune/space-missing", _tune("--space", "nowhere.yaml"), match="does not exist"),
    # the fixed settings
    Case("tune/config-unknown-setting", _config("bogus: 1\n"), match="bogus"),
    Case("tune/config-bad-value", _config("n_latent: 0\n"), match="n_latent"),
    # the study database
    Case("tune/storage-not-a-url", _tune("--storage", "study.db"), match="database URL"),
    Case("tune/storage-unknown-scheme", _tune("--storage", "mongodb://h/db"),
         match="database URL"),
    Case("tune/storage-unreachable",
         _tune("--storage", "postgresql://nobody:pw@127.0.0.1:1/none"),
         match="cannot open the study storage"),
    Case("tune/storage-password-not-shown",
         _tune("--storage", "postgresql://nobody:s3cret@127.0.0.1:1/none"), match="***@"),
    # durations and counts
    Case("tune/timeout-words", _tune("--timeout", "ten minutes"), match="timeout"),
    Case("tune/timeout-zero", _tune("--timeout", "0"), match="timeout"),
    Case("tune/timeout-negative", _tune("--timeout", "-5m"), match="timeout"),
    Case("tune/trials-zero", _tune("--trials", "0"), match="--trials"),
    Case("tune/objective-unknown", _tune("--objective", "aic"), match="unknown objective"),
    Case("tune/objective-no-such-column", _tune("--objective", "separation:cohort"),
         match="'cohort'"),
    # the output folder
    Case("tune/out-is-a-file", _out_is_file, match="a file of that name exists"),
    Case("tune/out-holds-user-files", _out_has_user_files, match="did not write"),
    Case("tune/data-missing", lambda k: ["tune", k.tmp / "no.csv", "-o", k.tmp / "t"],
         match="no.csv"),
    Case("tune/ok", _ok, code=0),
]
