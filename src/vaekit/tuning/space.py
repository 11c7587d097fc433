"""The search space: which settings a tuner varies, over which values.

A default space per kind of data (:func:`default_space`, from :func:`vaekit.auto.profile`),
overridden in a YAML file keyed by the settings' own names (:func:`read_space`)::

    n_latent: [2, 32]                          # integers from 2 to 32
    lr: {low: 1.0e-4, high: 1.0e-2, log: true}  # a number, on a log scale
    hidden: {choices: ["", "128", "256,128"]}  # one of these values
    beta: 1.0                                  # not tuned: fixed at this value

Settings fixed by the caller (``fixed=``, ``--config``) pass through to every trial untouched
and leave the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaekit.auto import Profile
from vaekit.options import Integer, OrNone, Sizes
from vaekit.settings import (
    ROWS,
    VAE_KEYS,
    _settings_text,
    canonical,
    typed,
    yaml_mapping,
)


@dataclass(frozen=True)
class Param:
    """One tuned setting: a range of integers or numbers (``low``..``high``, on a log scale
    when ``log``), or a list of ``choices`` (written as in a settings file)."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """The value ``trial`` (an :class:`optuna.trial.Trial`) draws, as the setting takes it."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    @property
    def integer(self) -> bool:
        constraint = ROWS[self.name].constraint
        inner = constraint.inner if isinstance(constraint, OrNone) else constraint
        return isinstance(inner, Integer)

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        return f"{self.low:g} to {self.high:g}" + (" (log scale)" if self.log else "")


# Layer sizes are drawn as text ("256,128"): optuna's choices must be plain values.
_HIDDEN = ("", "128", "256", "256,128")
# Likelihoods that fit each kind of data (vaekit.auto.KINDS), tuned where several fit and
# their log-likelihoods are comparable: probabilities of the same counts, densities of the same
# values. Not bernoulli against continuous_bernoulli on values in [0, 1]: Bernoulli's
# cross-entropy is no density there, and the continuous Bernoulli's density can exceed 1, so
# its "log-likelihood" would win by hundreds of nats while modelling nothing better.
LIKELIHOODS: dict[str, tuple[str, ...]] = {
    "counts": ("nb", "zinb", "poisson"),
    "binary": ("bernoulli",),
    "unit": ("bernoulli",),
    "skewed": ("gaussian", "isotropic_gaussian"),
    "real": ("gaussian", "isotropic_gaussian"),
}


def default_space(profile: Profile) -> dict[str, Param]:
    """The settings tuned by default on data of ``profile``: latent size, hidden sizes, beta,
    KL warm-up, learning rate, batch size, dropout, and the likelihood where several fit."""
    largest = max(16, profile.n_samples // 4)  # a batch of at most a quarter of the rows
    batches = tuple(b for b in (32, 64, 128, 256) if b <= largest) or (16,)
    space = [
        Param("n_latent", 2, 32, log=True),
        Param("hidden", choices=_HIDDEN),
        Param("beta", 0.25, 2.0, log=True),
        Param("kl_warmup", 0, 20),
        Param("lr", 1e-4, 1e-2, log=True),
        Param("batch_size", choices=batches),
        Param("dropout", 0.0, 0.3),
    ]
    likelihoods = LIKELIHOODS.get(profile.kind, ())
    if len(likelihoods) > 1:
        space.append(Param("likelihood", choices=likelihoods))
    return {p.name: p for p in space}


def read_space(
    space: str | Path | dict | None,
) -> tuple[dict[str, Param], dict[str, Any]]:
    """(the tuned settings, the fixed ones) of a space file, or of a mapping written as one
    (``{"n_latent": [2, 16], "beta": 1.0}``); ``({}, {})`` for None.

    Raises
    ------
    ValueError
        Naming the file and the setting, for an unknown or untunable name, a range whose
        ends the setting does not take, or a malformed entry.
    """
    if space is None:
        return {}, {}
    if isinstance(space, dict):
        source, mapping = "space", space
    else:
        source = f"space file {space}"
        mapping = yaml_mapping(_settings_text(Path(space)), source)
    entries = canonical(mapping, source)
    tuned, fixed = {}, {}
    for name, entry in entries.items():
        if name not in VAE_KEYS or name in UNTUNABLE:
            raise ValueError(
                f"{source}: {name} cannot be tuned (it is not a setting of the model); "
                f"tunable: {[k for k in VAE_KEYS if k not in UNTUNABLE]}"
            )
        if isinstance(entry, (list, dict)):
            tuned[name] = _param(name, entry, source)
        else:
            fixed[name] = typed({name: entry})[name]
    return tuned, fixed


# Settings that say where or how a fit runs, not what the model is: a tuner leaves them alone.
UNTUNABLE = frozenset(
    {"checkpoint_dir", "checkpoint_minutes", "keep_checkpoints", "device", "seed", "cuda_graph"}
)


def _param(name: str, entry: list | dict, source: str) -> Param:
    """The :class:`Param` of one entry: ``[low, high]``, ``{low, high, log}`` or ``{choices}``."""
    if isinstance(entry, list):
        entry = {"low": entry[0], "high": entry[1]} if len(entry) == 2 else {"bad": entry}
    keys = set(entry)
    if keys == {"choices"} and isinstance(entry["choices"], list) and entry["choices"]:
        return Param(name, choices=tuple(_choice(name, v, source) for v in entry["choices"]))
    if {"low", "high"} <= keys <= {"low", "high", "log"}:
        low, high = (_end(name, entry[k], source) for k in ("low", "high"))
        if not low < high:
            raise ValueError(f"{source}: {name} needs low < high; got {low} and {high}")
        log = entry.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):
            raise ValueError(f"{source}: {name}'s log must be true or false, true only for low > 0")
        return Param(name, low, high, log=log)
    raise ValueError(
        f"{source}: {name} must be a value (fixed), [low, high], {{low, high, log}} or "
        f"{{choices: [...]}}; got {entry!r}"
    )


def _end(name: str, value: Any, source: str) -> float:
    """One end of a range: a value the setting itself takes."""
    constraint = ROWS[name].constraint
    inner = constraint.inner if isinstance(constraint, OrNone) else constraint
    if isinstance(inner, Sizes) or not hasattr(inner, "low"):
        raise ValueError(f"{source}: {name} takes no range; list its {{choices: [...]}}")
    try:
        parsed = typed({name: value})[name]
        inner.check(name, parsed)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    return parsed


def _choice(name: str, value: Any, source: str) -> Any:
    """A choice as optuna keeps it (text, a number or a flag), checked as the setting reads it."""
    try:
        as_setting(name, value)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    if isinstance(value, list):  # layer sizes: kept as text, optuna's choices are plain
        return ",".join(str(v) for v in value)
    return value


def as_setting(name: str, value: Any) -> Any:
    """A drawn value as the setting takes it (``"256,128"`` -> (256, 128)), checked."""
    parsed = typed({name: value})[name]
    ROWS[name].constraint.check(name, parsed)
    return parsed


def merged(
    default: dict[str, Param], tuned: dict[str, Param], fixed: dict[str, Any]
) -> dict[str, Param]:
    """The default space, overridden by a file's ranges; the fixed settings leave it."""
    return {k: p for k, p in {**default, **tuned}.items() if k not in fixed}
