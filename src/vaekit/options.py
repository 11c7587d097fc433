"""Every setting of :class:`vaekit.VAE`, one row each: its name, default, constraint, one line
of help, command-line aliases and the configuration it feeds.

Everything else about a setting is derived from its row: :data:`DEFAULTS`, the checks of
:func:`check_settings` and their messages, the keys of a settings file (the Python names, plus
the aliases), the options of ``vaekit train``, and what :func:`vaekit.fitting.model_config` and
:func:`~vaekit.fitting.train_config` copy. Adding a setting is adding a row here, a keyword to
``VAE.__init__`` (scikit-learn's ``get_params`` reads it from there) and its docstring entry,
and a field to the configuration it feeds; tests/test_options.py checks that they agree.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vaekit.config import DECODERS, INITS, MISSING, PRECISIONS


# ---------------------------------------------------------------------------- constraints
class Constraint:
    """What values a setting takes: ``ok`` tests one, ``text`` says which in an error
    message, ``parse`` reads one from a settings file or the command line, and ``cli_type`` is
    the type the command line reads before ``parse``."""

    cli_type: ClassVar[type] = str

    @property
    def text(self) -> str:
        raise NotImplementedError

    def ok(self, value: Any) -> bool:
        return True

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming the setting, the values allowed and the value received."""
        if not self.ok(value):
            raise ValueError(f"{name} must be {self.text}; got {value!r}")

    def parse(self, value: Any) -> Any:
        return value

    def choices(self) -> list[str]:
        """The values allowed, when they are a list of names (for ``--help``)."""
        return []


@dataclass(frozen=True)
class Integer(Constraint):
    low: int
    cli_type: ClassVar[type] = int

    @property
    def text(self) -> str:
        return "a positive integer" if self.low == 1 else f"an integer >= {self.low}"

    def ok(self, value: Any) -> bool:
        return _is_int(value) and value >= self.low

    def parse(self, value: Any) -> Any:
        return int(str(value))  # int("1.5") fails, as it should; int(1.5) would not


@dataclass(frozen=True)
class Number(Constraint):
    """A number >= low (> low when ``above``), and < high when high is given."""

    low: float
    high: float | None = None
    above: bool = False
    cli_type: ClassVar[type] = float

    @property
    def text(self) -> str:
        if self.high is not None:
            return f"a number in [{self.low:g}, {self.high:g})"
        return f"a number {'>' if self.above else '>='} {self.low:g}"

    def ok(self, value: Any) -> bool:
        if not _is_number(value) or not math.isfinite(value):  # inf passes >= low, NaN fails it
            return False
        low = value > self.low if self.above else value >= self.low
        return low and (self.high is None or value < self.high)

    def parse(self, value: Any) -> Any:
        return float(value)  # YAML 1.1 reads 1e-3 as text


@dataclass(frozen=True)
class Choice(Constraint):
    """One of the keys of a registry, read when checked (registries import torch).
    ``unknown`` keeps the registry's own wording: "unknown likelihood 'x'; choose one of"."""

    values: Callable[[], Iterable[str]]
    unknown: bool = False

    @property
    def text(self) -> str:
        return f"one of {self.choices()}"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in list(self.values())

    def check(self, name: str, value: Any) -> None:
        if self.unknown and not self.ok(value):
            raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(self.values())}")
        super().check(name, value)

    def parse(self, value: Any) -> Any:
        return str(value)

    def choices(self) -> list[str]:
        return list(self.values())


@dataclass(frozen=True)
class Sizes(Constraint):
    """Layer sizes (or an image shape): ``(400, 200)``, written ``400,200`` on the command line."""

    @property
    def text(self) -> str:
        return "a tuple of positive integers"

    def ok(self, value: Any) -> bool:
        try:
            return not isinstance(value, str) and all(Integer(1).ok(v) for v in value)
        except TypeError:  # not iterable
            return False

    def parse(self, value: Any) -> Any:
        return parse_sizes(value)


@dataclass(frozen=True)
class Flag(Constraint):
    cli_type: ClassVar[type] = bool

    @property
    def text(self) -> str:
        return "True or False"

    def ok(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def parse(self, value: Any) -> Any:
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        return words.get(str(value).lower(), value)


@dataclass(frozen=True)
class Text(Constraint):
    """Any value the estimator checks itself (a device name, preprocessing steps)."""

    @property
    def text(self) -> str:
        return "text"


@dataclass(frozen=True)
class OrNone(Constraint):
    """The inner constraint, or None (written ``none`` in a file or on the command line)."""

    inner: Constraint

    @property
    def cli_type(self) -> type:  # type: ignore[override]
        return self.inner.cli_type

    @property
    def text(self) -> str:
        return f"{self.inner.text} or None"

    def ok(self, value: Any) -> bool:
        return value is None or self.inner.ok(value)

    def check(self, name: str, value: Any) -> None:
        if value is not None:
            try:
                self.inner.check(name, value)
            except ValueError:
                raise ValueError(f"{name} must be {self.text}; got {value!r}") from None

    def parse(self, value: Any) -> Any:
        if value is None or str(value).lower() in ("none", "null"):
            return None
        return self.inner.parse(value)

    def choices(self) -> list[str]:
        return self.inner.choices()


@dataclass(frozen=True)
class Folder(Constraint):
    """A folder's path: non-empty text or a path object."""

    @property
    def text(self) -> str:
        return "a folder path"

    def ok(self, value: Any) -> bool:
        text = str(value) if isinstance(value, (str, os.PathLike)) else ""
        return text.strip() != "" and "\0" not in text

    def parse(self, value: Any) -> Any:
        return str(value)


def _registry(module: str, name: str) -> Callable[[], Iterable[str]]:
    return lambda: getattr(importlib.import_module(module), name)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def parse_sizes(value: Any) -> tuple[int, ...] | None:
    """``"400,200"`` -> (400, 200); ``""``, ``"none"`` or ``"0"`` -> () (no hidden layer)."""
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else tuple(int(v) for v in value)
    text = str(value).strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"sizes must be integers like 400,200; got {value!r}") from None


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Setting:
    """One setting.

    Parameters
    ----------
    name : str
        The ``VAE`` keyword, the settings-file key and (with ``-`` for ``_``) the flag.
    default
        The value used when neither the argument nor the preset gives one.
    constraint : Constraint
        The values allowed.
    help : str
        One line for ``vaekit train --help``.
    feeds : str
        ``"model"`` (a :class:`~vaekit.config.ModelConfig` field), ``"train"`` (a
        :class:`~vaekit.config.TrainConfig` field) or ``"estimator"`` (read by ``fit``).
    aliases : tuple of str
        Other names, accepted on the command line and in a settings file.
    resolved : bool
        Whether the value comes from the argument, else the preset, else ``default``, and is
        recorded in ``settings_`` (``VAE.__init__`` then defaults it to None); otherwise the
        argument is used as given, and ``VAE.__init__`` defaults it to ``default``.
    cli : bool
        Whether ``vaekit train`` has a flag and a settings file a key for it.
    resumable : bool
        Whether it may change when training resumes from a checkpoint (it changes how long
        or where training goes on, not the model); the others must stay as they were.
    neutral : bool
        Whether its default is what models saved before the setting existed did: a model
        loaded from such a folder reads the default (:data:`NEUTRAL`).
    """

    name: str
    default: Any
    constraint: Constraint
    help: str
    feeds: str
    aliases: tuple[str, ...] = ()
    resolved: bool = True
    cli: bool = True
    resumable: bool = False
    neutral: bool = False

    @property
    def flags(self) -> tuple[str, ...]:
        """Command-line flags: ``--name`` and one per alias (``--name/--no-name`` for a flag)."""
        flag = "--" + self.name.replace("_", "-")
        if isinstance(self.constraint, Flag):
            return (f"{flag}/--no-{flag[2:]}",)
        return (flag, *("--" + a.replace("_", "-") for a in self.aliases))

    @property
    def api_default(self) -> Any:
        """The default of the ``VAE.__init__`` keyword."""
        return None if self.resolved else self.default


_LIKELIHOODS = _registry("vaekit.likelihoods", "LIKELIHOODS")
_ARCHITECTURES = _registry("vaekit.nn", "ARCHITECTURES")
_ACTIVATIONS = _registry("vaekit.nn", "ACTIVATIONS")
_PRESETS = _registry("vaekit.presets", "PRESETS")
_OBJECTIVES = _registry("vaekit.objectives", "OBJECTIVES")
_TC_ESTIMATORS = _registry("vaekit.objectives", "TC_ESTIMATORS")
_NONNEGATIVE, _POSITIVE, _SHARE = Number(0), Number(0, above=True), Number(0, 1)

# In the order of VAE.__init__'s keywords.
SETTINGS: tuple[Setting, ...] = (
    Setting("n_latent", 10, Integer(1), "Number of latent features.", "model", ("latent",)),
    Setting("hidden", (128,), Sizes(), "Encoder hidden layers, e.g. 400,200 ('' for none).",
            "model"),
    Setting("likelihood", "gaussian", Choice(_LIKELIHOODS, unknown=True),
            "p(x|z); count likelihoods (poisson, nb, zinb) take raw counts.", "model"),
    Setting("beta", 1.0, _NONNEGATIVE, "Weight of the KL term (beta-VAE).", "train"),
    Setting("kl_warmup", 0, Integer(0), "Epochs over which the KL weight rises from 0 to beta.",
            "train", ("warmup",)),
    Setting("epochs", 100, Integer(1), "Most epochs to train.", "train", resumable=True),
    Setting("batch_size", 128, Integer(1), "Samples per minibatch.", "train"),
    Setting("lr", 1e-3, _POSITIVE, "Adam learning rate.", "train"),
    Setting("objective", "elbo", Choice(_OBJECTIVES, unknown=True),
            "elbo (beta-VAE), tcvae (beta-TC-VAE) or capacity (annealed KL capacity).", "train",
            neutral=True),
    Setting("mi_weight", 1.0, _NONNEGATIVE,
            "tcvae: weight of the index-code mutual information (alpha).", "train", neutral=True),
    Setting("tc_weight", 1.0, _NONNEGATIVE,
            "tcvae: weight of the total correlation (Chen et al.'s beta, e.g. 6).", "train",
            neutral=True),
    Setting("dimension_kl_weight", 1.0, _NONNEGATIVE,
            "tcvae: weight of the dimension-wise KL (gamma).", "train", neutral=True),
    Setting("tc_estimator", "mws", Choice(_TC_ESTIMATORS, unknown=True),
            "tcvae: q(z) from the minibatch, mws (weighted) or mss (stratified).", "train",
            neutral=True),
    Setting("capacity_max", None, OrNone(_POSITIVE),
            "capacity: the KL target C reached at the end, in nats (e.g. 25).", "train",
            neutral=True),
    Setting("capacity_epochs", None, OrNone(Integer(1)),
            "capacity: epochs over which C rises from 0 (default: all).", "train",
            neutral=True),
    Setting("capacity_weight", 1000.0, _POSITIVE, "capacity: weight gamma of |KL - C|.",
            "train", neutral=True),
    Setting("preset", None, OrNone(Choice(_PRESETS)), "Named settings the others override.",
            "estimator", resolved=False),
    Setting("preprocess", (), Text(),
            "Steps fitted with the model; on the command line --normalize, --log1p, --select, "
            "--select-by, --scale.", "estimator", cli=False),
    Setting("weight_decay", 0.0, _NONNEGATIVE, "Adam weight decay.", "train"),
    Setting("decoder_hidden", None, OrNone(Sizes()),
            "Decoder hidden layers ('' for none; default: hidden, mirrored).", "model"),
    Setting("decoder", "mlp", Choice(lambda: DECODERS),
            "mlp, or linear: exact gene loadings (LDVAE).", "model"),
    Setting("architecture", None, OrNone(Choice(_ARCHITECTURES)),
            "Networks (default: conv for images it can model, else mlp).", "model"),
    Setting("image_shape", None, OrNone(Sizes()),
            "(H, W) or (C, H, W) of rows that are flattened images, e.g. 28,28.", "estimator",
            resolved=False),
    Setting("activation", "relu", Choice(_ACTIVATIONS, unknown=True),
            "Activation of the hidden layers.", "model"),
    Setting("batch_norm", False, Flag(), "Batch norm in every hidden layer.", "model"),
    Setting("posterior_batch_norm", False, Flag(),
            "Batch norm on the encoder's mean and log-variance (Tybalt).", "model"),
    Setting("dropout", 0.0, _SHARE, "Dropout rate in every hidden layer.", "model"),
    Setting("validation_fraction", 0.1, _SHARE, "Share of samples held out to monitor the loss.",
            "train"),
    Setting("early_stopping", True, Flag(),
            "Stop when the validation loss stalls for `patience` epochs.", "train"),
    Setting("patience", 10, Integer(1), "Epochs without progress before early stopping.",
            "train", resumable=True),
    Setting("grad_clip", None, OrNone(_POSITIVE), "Clip the gradient norm (default: no clipping).",
            "train"),
    Setting("loadings_l1", 0.0, _NONNEGATIVE, "L1 penalty on the loadings (sparse features).",
            "train", ("l1",)),
    Setting("iw_samples", 1, Integer(1),
            "Train on the importance-weighted bound (IWAE) with K draws.", "train"),
    Setting("lr_patience", None, OrNone(Integer(1)),
            "Halve the learning rate after N epochs without progress.", "train"),
    Setting("init", "random", Choice(lambda: INITS),
            "Starting weights: random, or pca (probabilistic PCA's solution; linear "
            "isotropic Gaussian models).", "train"),
    Setting("max_minutes", None, OrNone(_POSITIVE),
            "Stop after the epoch that crosses M minutes (of this run).", "train",
            resumable=True),
    Setting("missing", "error", Choice(lambda: MISSING),
            "error (NaN refused), or mask: NaN entries are missing.", "model"),
    Setting("mask_rate", 0.0, _SHARE,
            "With missing=mask: hide up to this share of entries from the encoder in training.",
            "model"),
    Setting("condition_scale", 20.0, _POSITIVE,
            "Factor on the condition where the decoder reads it (samples obey their label).",
            "model"),
    Setting("encode_covariates", True, Flag(),
            "Conditions enter the encoder too (off: only the decoder, as scVI's default).",
            "model"),
    Setting("classification_weight", 50.0, _NONNEGATIVE,
            "Weight of the label classifier's cross-entropy (with labels).", "train"),
    Setting("precision", "fp32", Choice(lambda: PRECISIONS),
            "Training arithmetic: fp32, or bf16 (autocast; evaluation stays fp32).", "train",
            resumable=True),
    Setting("cuda_graph", False, Flag(),
            "On CUDA, replay each training step as one captured CUDA graph.", "train",
            resumable=True),
    Setting("checkpoint_dir", None, OrNone(Folder()),
            "Write a checkpoint here after every epoch; --resume continues from the newest.",
            "train", resumable=True),
    Setting("checkpoint_minutes", 10.0, OrNone(_POSITIVE),
            "Also checkpoint within an epoch every M minutes (none: only between epochs).",
            "train", resumable=True),
    Setting("keep_checkpoints", 2, Integer(1), "Checkpoints kept (the newest).", "train",
            resumable=True),
    Setting("seed", None, OrNone(Integer(0)), "Random seed: identical runs on one machine.",
            "train", resolved=False),
    Setting("device", "cpu", Text(), "cpu or cuda.", "estimator", resolved=False),
    Setting("verbose", True, Flag(), "Show a progress bar (the command line's --quiet).",
            "estimator", resolved=False, cli=False),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# Short names (the command line's first ones) -> the Python names.
ALIASES: dict[str, str] = {a: s.name for s in SETTINGS for a in s.aliases}
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS if s.resolved}


RESUMABLE: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.resumable)
# Settings added after models were first saved, whose defaults describe those models.
NEUTRAL: dict[str, Any] = {s.name: s.default for s in SETTINGS if s.neutral}


def feeding(config: str) -> tuple[str, ...]:
    """Names of the resolved settings that feed ``config``: "model", "train" or "estimator"."""
    return tuple(s.name for s in SETTINGS if s.feeds == config and s.resolved)


def check_settings(s: dict[str, Any]) -> None:
    """Raise ValueError for the first setting out of range, naming the value received."""
    for name in DEFAULTS:
        BY_NAME[name].constraint.check(name, s[name])
    if s["mask_rate"] and s["missing"] != "mask":
        raise ValueError(
            "mask_rate must be a number in [0, 1), and above 0 only with missing='mask'; "
            f"got {s['mask_rate']!r} with missing={s['missing']!r}"
        )
    check_objective(s)


def check_objective(s: dict[str, Any]) -> None:
    """Raise ValueError when the objective's settings do not fit together: one it needs is
    not given, another objective's setting is set (it would be ignored), or the objective
    cannot train on the importance-weighted bound that ``iw_samples`` asks for."""
    objectives = _OBJECTIVES()
    name, chosen = s["objective"], objectives[s["objective"]]
    for needed in chosen.required:
        if s[needed] is None:
            raise ValueError(
                f"objective={name!r} needs {needed} to be set "
                f"({BY_NAME[needed].help.rstrip('.')}); got None"
            )
    for other, objective in objectives.items():
        for key in set(objective.settings) - set(chosen.settings):
            if s[key] != DEFAULTS[key]:
                raise ValueError(
                    f"{key}={s[key]!r} is read only by objective={other!r}, but objective is "
                    f"{name!r}: set objective={other!r}, or leave {key} at {DEFAULTS[key]!r}"
                )
    if s["iw_samples"] > 1 and not chosen.importance_weighted:
        raise ValueError(
            f"objective={name!r} estimates its terms from one draw per sample; it cannot "
            f"train on the importance-weighted bound (iw_samples={s['iw_samples']}): set "
            "iw_samples=1, or objective='elbo'"
        )


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'dropout'?)`` for the nearest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
