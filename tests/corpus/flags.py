"""Bad flags and arguments: unknown options, values out of range, absurd sizes."""

from __future__ import annotations

import os
from collections.abc import Callable

from corpus import Case, Kit

CASES = [
    Case("flags/unknown-command", lambda k: ["trian"], match="no such command"),
    Case("flags/unknown-option", lambda k: ["train", k.table, "-o", k.tmp / "m", "--bogus", "1"],
         match="--bogus"),
    Case("flags/epochs-not-integer",
         lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "1.5"], match="--epochs"),
    Case("flags/train-ok", lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "1", "-q"],
         code=0),
]


def _settings(text: str | bytes) -> Callable[[Kit], list]:
    """`vaekit train` with a settings file holding ``text``."""
    return lambda k: ["train", k.table, "-o", k.tmp / "m", "-q", "--config",
                      k.write("settings.yaml", text)]


def _data(k: Kit) -> list:
    return [k.model, k.table]


def _fifo(k: Kit) -> list:
    os.mkfifo(k.tmp / "settings.yaml")
    return ["train", k.table, "-o", k.tmp / "m", "--config", k.tmp / "settings.yaml"]


CASES += [
    # usage errors: one line, exit 2
    Case("flags/encode-unknown-option", lambda k: ["encode", *_data(k), "-o", k.tmp / "z.tsv",
                                                   "--bogus"], match="--bogus"),
    Case("flags/missing-argument", lambda k: ["encode", k.model], match="missing argument"),
    Case("flags/extra-argument", lambda k: ["info", k.model, "extra"], match="extra"),
    Case("flags/generate-n-not-a-number",
         lambda k: ["generate", k.model, "-n", "abc", "-o", k.tmp / "g.tsv"], match="-n"),
    Case("flags/epochs-text", lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "x"],
         match="--epochs"),
    Case("flags/missing-option-value", lambda k: ["train", k.table, "-o"], match="-o"),
    Case("flags/plot-unknown-command", lambda k: ["plot", "nope"], match="no such command"),
    # values out of range, refused before any work
    Case("flags/evaluate-k-negative", lambda k: ["evaluate", *_data(k), "-k", "-1"],
         match="-k must be an integer >= 0"),
    Case("flags/evaluate-k-absurd", lambda k: ["evaluate", *_data(k), "-k", "1000000000"],
         match="at most 100,000"),
    Case("flags/report-k-negative",
         lambda k: ["report", *_data(k), "-o", k.tmp / "r.html", "-k", "-1"],
         match="-k must be an integer >= 0"),
    Case("flags/report-max-rows-zero",
         lambda k: ["report", *_data(k), "-o", k.tmp / "r.html", "--max-rows", "0"],
         match="--max-rows"),
    Case("flags/interpret-sd-negative",
         lambda k: ["interpret", *_data(k), "-o", k.tmp / "i", "--sd", "-1"],
         match="--sd must be a positive number"),
    Case("flags/interpret-sd-nan",
         lambda k: ["interpret", *_data(k), "-o", k.tmp / "i", "--sd", "nan"], match="--sd"),
    Case("flags/interpret-sd-inf",
         lambda k: ["interpret", *_data(k), "-o", k.tmp / "i", "--sd", "inf"], match="--sd"),
    Case("flags/interpret-top-zero",
         lambda k: ["interpret", *_data(k), "-o", k.tmp / "i", "--top", "0"], match="--top"),
    Case("flags/generate-n-absurd",
         lambda k: ["generate", k.model, "-n", "2000000000", "-o", k.tmp / "g.tsv"],
         match="at most 100,000,000"),
    Case("flags/generate-n-zero",
         lambda k: ["generate", k.model, "-n", "0", "-o", k.tmp / "g.tsv"], match="-n"),
    Case("flags/traverse-steps-absurd",
         lambda k: ["traverse", k.model, "--steps", "100000000", "-o", k.tmp / "t.tsv"],
         match="at most 100,000"),
    Case("flags/traverse-range-negative",
         lambda k: ["traverse", k.model, "--range", "-1", "-o", k.tmp / "t.tsv"], match="range"),
    Case("flags/interpolate-steps-absurd",
         lambda k: ["interpolate", *_data(k), "--from", "s0", "--to", "s1", "--steps",
                    "100000000", "-o", k.tmp / "p.tsv"], match="at most 100,000"),
    Case("flags/interpolate-unknown-sample",
         lambda k: ["interpolate", *_data(k), "--from", "s0", "--to", "nobody", "-o",
                    k.tmp / "p.tsv"], match="nobody"),
    Case("flags/impute-draws-absurd",
         lambda k: ["impute", *_data(k), "-o", k.tmp / "i.tsv", "--draws", "2000000000"],
         match="--draws must be at most"),
    Case("flags/impute-n-iter-negative",
         lambda k: ["impute", *_data(k), "-o", k.tmp / "i.tsv", "--n-iter", "-1"],
         match="--n-iter"),
    Case("flags/impute-imputations-absurd",
         lambda k: ["impute", *_data(k), "-o", k.tmp / "i.tsv", "--imputations", "1000000"],
         match="--imputations must be at most"),
    Case("flags/impute-refine-steps-negative",
         lambda k: ["impute", *_data(k), "-o", k.tmp / "i.tsv", "--refine-steps", "-1"],
         match="--refine-steps"),
    Case("flags/plot-reconstructions-n-zero",
         lambda k: ["plot", "reconstructions", *_data(k), "-o", k.tmp / "r.png", "-n", "0"],
         match="-n"),
    Case("flags/score-fpr-above-one",
         lambda k: ["score", *_data(k), "-o", k.tmp / "s.tsv", "--control", k.table,
                    "--fpr", "2"], match="fpr"),
    Case("flags/score-fpr-without-control",
         lambda k: ["score", *_data(k), "-o", k.tmp / "s.tsv", "--fpr", "0.1"], match="--control"),
    Case("flags/train-lr-inf", lambda k: ["train", k.table, "-o", k.tmp / "m", "--lr", "inf"],
         match="lr"),
    Case("flags/train-epochs-zero",
         lambda k: ["train", k.table, "-o", k.tmp / "m", "--epochs", "0"], match="epochs"),
    Case("flags/demo-epochs-zero", lambda k: ["demo", "-o", k.tmp / "d", "--epochs", "0"],
         match="epochs"),
    # settings files
    Case("flags/settings-epochs-fraction", _settings("epochs: 1.7\n"), match="epochs"),
    Case("flags/settings-latent-true", _settings("latent: true\n"), match="n_latent"),
    Case("flags/settings-lr-text", _settings("lr: abc\n"), match="lr must be a number"),
    Case("flags/settings-lr-true", _settings("lr: yes\n"), match="lr must be a number"),
    Case("flags/settings-hidden-fraction", _settings("hidden: [8.5]\n"), match="hidden"),
    Case("flags/settings-condition-number", _settings("condition: 5\n"),
         match="condition must be text"),
    Case("flags/settings-a-list", _settings("- epochs\n- 3\n"), match="mapping"),
    Case("flags/settings-a-string", _settings("epochs 3\n"), match="mapping"),
    Case("flags/settings-empty", _settings(""), match="holds no settings"),
    Case("flags/settings-binary", _settings(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"),
         match="not text"),
    Case("flags/settings-nul-bytes", _settings("epochs: 1\x00\n"), match="binary"),
    Case("flags/settings-invalid-yaml", _settings("epochs: [1,\n"), match="not valid YAML"),
    Case("flags/settings-python-tag",
         lambda k: _settings(f"epochs: !!python/object/apply:os.system "
                             f"['touch {k.tmp / 'PWNED'}']\n")(k), match="YAML tag"),
    Case("flags/settings-unknown-key", _settings("dorpout: 0.1\n"),
         match="did you mean 'dropout'"),
    Case("flags/settings-missing", lambda k: ["train", k.table, "-o", k.tmp / "m", "--config",
                                              k.tmp / "none.yaml"], match="does not exist"),
    Case("flags/settings-a-folder", lambda k: ["train", k.table, "-o", k.tmp / "m",
                                               "--config", k.tmp], match="not a regular file"),
    Case("flags/settings-fifo", _fifo, match="not a regular file"),
    Case("flags/settings-huge", _settings("# " + "x" * 1_100_000 + "\n"), match="bytes"),
    # what must succeed
    Case("flags/no-arguments-is-help", lambda k: [], code=0),
    Case("flags/version", lambda k: ["--version"], code=0),
    Case("flags/plot-alone-is-help", lambda k: ["plot"], code=0),
    Case("flags/evaluate-k-zero", lambda k: ["evaluate", *_data(k), "-k", "0", "--json"],
         code=0),
    Case("flags/settings-comments-and-numbers-as-text",
         _settings("# tiny\nepochs: '1'\nlr: 1e-3\nhidden: 8,4\n"), code=0),
]
