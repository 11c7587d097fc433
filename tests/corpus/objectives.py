"""The training objectives' settings (beta-TC-VAE, capacity annealing): out of range, for
another objective, missing, or damaged in a model file."""

from __future__ import annotations

import json
from collections.abc import Callable

from corpus import Case, Kit


def _train(*flags: str) -> Callable[[Kit], list]:
    """`vaekit train` on the kit's table with ``flags``."""
    return lambda k: ["train", k.table, "-o", k.tmp / "m", "-q", "--epochs", "1", *flags]


def _settings(text: str) -> Callable[[Kit], list]:
    """`vaekit train` with a settings file holding ``text``."""
    return lambda k: ["train", k.table, "-o", k.tmp / "m", "-q", "--epochs", "1", "--config",
                      k.write("settings.yaml", text)]


def _damaged(key: str, value: object) -> Callable[[Kit], list]:
    """`vaekit info` on a copy of the kit's model whose config.json has settings.KEY = value."""

    def make(k: Kit) -> list:
        model = k.copy_model()
        path = model / "config.json"
        config = json.loads(path.read_text())
        config["settings"][key] = value
        path.write_text(json.dumps(config))
        return ["info", model]

    return make


CASES = [
    # flags
    Case("objectives/unknown-objective", _train("--objective", "factorvae"),
         match="factorvae"),
    Case("objectives/tc-weight-negative", _train("--objective", "tcvae", "--tc-weight", "-1"),
         match="tc_weight must be a number >= 0"),
    Case("objectives/mi-weight-nan", _train("--objective", "tcvae", "--mi-weight", "nan"),
         match="mi_weight"),
    Case("objectives/dimension-kl-weight-inf",
         _train("--objective", "tcvae", "--dimension-kl-weight", "inf"),
         match="dimension_kl_weight"),
    Case("objectives/unknown-tc-estimator",
         _train("--objective", "tcvae", "--tc-estimator", "exact"), match="exact"),
    Case("objectives/tc-weight-without-tcvae", _train("--tc-weight", "6"),
         match="read only by objective='tcvae'"),
    Case("objectives/capacity-without-max", _train("--objective", "capacity"),
         match="needs capacity_max"),
    Case("objectives/capacity-max-zero",
         _train("--objective", "capacity", "--capacity-max", "0"), match="capacity_max"),
    Case("objectives/capacity-epochs-zero",
         _train("--objective", "capacity", "--capacity-max", "5", "--capacity-epochs", "0"),
         match="capacity_epochs"),
    Case("objectives/capacity-weight-negative",
         _train("--objective", "capacity", "--capacity-max", "5", "--capacity-weight", "-2"),
         match="capacity_weight"),
    Case("objectives/capacity-max-with-tcvae",
         _train("--objective", "tcvae", "--capacity-max", "5"),
         match="read only by objective='capacity'"),
    Case("objectives/tcvae-with-iwae", _train("--objective", "tcvae", "--iw-samples", "3"),
         match="importance-weighted bound"),
    # settings files
    Case("objectives/settings-objective-number", _settings("objective: 3\n"),
         match="objective"),
    Case("objectives/settings-tc-weight-text", _settings("objective: tcvae\ntc_weight: lots\n"),
         match="tc_weight must be a number"),
    Case("objectives/settings-tc-weight-true", _settings("objective: tcvae\ntc_weight: true\n"),
         match="tc_weight must be a number"),
    Case("objectives/settings-capacity-max-list",
         _settings("objective: capacity\ncapacity_max: [25]\n"), match="capacity_max"),
    Case("objectives/settings-misspelt", _settings("objective: tcvae\ntc_wieght: 6\n"),
         match="did you mean 'tc_weight'"),
    Case("objectives/settings-capacity-none",
         _settings("objective: capacity\ncapacity_max: none\n"), match="needs capacity_max"),
    # damaged model files
    Case("objectives/model-unknown-objective", _damaged("objective", "factorvae"),
         match="settings.objective"),
    Case("objectives/model-negative-tc-weight", _damaged("tc_weight", -6),
         match="settings.tc_weight"),
    # what works
    Case("objectives/tcvae-ok", _train("--objective", "tcvae", "--tc-weight", "6"), code=0),
    Case("objectives/capacity-ok",
         _train("--objective", "capacity", "--capacity-max", "5", "--capacity-epochs", "2"),
         code=0),
    Case("objectives/settings-mss-ok",
         _settings("objective: tcvae\ntc-estimator: mss\ntc_weight: '6'\n"), code=0),
]
