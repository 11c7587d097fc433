"""The schema of a model folder's ``config.json``, checked before anything is built.

:func:`check_config` checks every key :mod:`vaekit.saving` reads: its type, its range and
its size, and that the parts agree (as many feature names as inputs, conditions as wide as
the model's, a best epoch in the history). The values of settings are checked by their rows
of :mod:`vaekit.options`, names of likelihoods, activations, architectures and preprocessing
steps by their registries, so a path-like or unknown name never reaches a lookup. Every error
is a ValueError naming the file, the key path and the value, and asking to save the model
again. The preprocessing's fitted arrays, which live in the weights file, are checked by
:func:`check_preprocessor` once they are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from vaekit import _memory
from vaekit.calibration import Calibration
from vaekit.config import ModelConfig
from vaekit.covariates import CovariateEncoder
from vaekit.data.preprocess import STEPS, Preprocessor
from vaekit.model import BYTES_PER_VALUE
from vaekit.nn import get_architecture
from vaekit.options import (
    BY_NAME,
    DEFAULTS,
    Choice,
    Constraint,
    Integer,
    Number,
    OrNone,
    Sizes,
    feeding,
    suggest,
)
from vaekit.persist import AGAIN, CONFIG_FILE

# Keys of config.json: those every folder has, and those older folders may lack.
REQUIRED = (
    "format_version",
    "model",
    "params",
    "settings",
    "n_features_in",
    "feature_names",
    "features",
    "preprocess",
    "covariates",
    "training",
)
OPTIONAL = ("vaekit_version", "image_shape", "metadata", "calibration", "labels")
# The fields of ModelConfig: the settings that feed it, by their own rows, and the others.
MODEL: dict[str, Constraint] = {
    **{name: BY_NAME[name].constraint for name in feeding("model")},
    "architecture": BY_NAME["architecture"].constraint.inner,  # a module has one
    "n_input": Integer(1),
    "n_covariates": Integer(0),
    "n_labels": Integer(0),
    "image_shape": OrNone(Sizes()),
    "conv_channels": Sizes(),
}
# Settings the library reads from a loaded model's settings_ (older folders may lack others).
SETTINGS_READ = ("n_latent", "hidden", "likelihood", "validation_fraction")
# Devices a model may name: anything else (a "tpu:99", a "meta") cannot run it.
DEVICES = ("cpu", "cuda", "mps")
# Bytes per input feature a preprocessing dry run may take (one row, a few copies).
DRY_RUN_BYTES = 16 * BYTES_PER_VALUE


class _Config:
    """Checks of one config.json: each raises a ValueError naming the file and key path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, text: str, value: Any, shown: str | None = None) -> ValueError:
        """The error for ``key``: it must be ``text``; got ``value`` (or ``shown``)."""
        got = _short(value) if shown is None else shown
        return ValueError(f"{self.file}: {key} must be {text}; got {got}; {AGAIN}")

    def check(self, key: str, constraint: Constraint, value: Any) -> None:
        if not constraint.ok(value):
            raise self.fail(key, constraint.text, value)

    def object(
        self, key: str, value: Any, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """``value``, checked to be a JSON object with the ``required`` keys and only ``known``
        ones."""
        if not isinstance(value, dict):
            raise self.fail(key, "a JSON object", value)
        for name in value:
            if name not in known:
                raise ValueError(
                    f"{self.file}: {_join(key, name)[:80]!s} is not a key vaekit "
                    f"knows{suggest(str(name), known)}; {AGAIN}"
                )
        missing = [name for name in required if name not in value]
        if missing:
            raise ValueError(f"{self.file}: {key or 'the file'} lacks {missing}; {AGAIN}")
        return value

    def names(self, key: str, value: Any, n: int | None) -> list[str]:
        """A list of ``n`` strings (any length when None)."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of names (strings)", value)
        if n is not None and len(value) != n:
            raise self.fail(key, f"a list of {n} names", None, f"{len(value)} names")
        return value

    def numbers(self, key: str, value: Any, finite: bool = True) -> None:
        """A list of numbers (NaN and None allowed unless ``finite``)."""
        number = Number(-math.inf)
        ok = isinstance(value, list) and all(
            number.ok(v) or (not finite and (v is None or _is_real(v))) for v in value
        )
        if not ok:
            raise self.fail(key, "a list of finite numbers" if finite else "a list of numbers",
                            value)

    def built(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``, with its ValueError or TypeError naming the file and key."""
        try:
            return build()
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{self.file}: {key}: {_text(err)}; {AGAIN}") from None


def check_config(config: dict[str, Any], source: str) -> ModelConfig:
    """Check a model folder's config (``config.json`` parsed, from ``source``, the folder)
    against the schema; return the module's configuration, checked as the architecture
    checks it. Raise ValueError naming the file, the key and the value.

    Examples
    --------
    >>> check_config([], "m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: m/config.json:  must be a JSON object; got []; save the model again
    """
    c = _Config(f"{source}/{CONFIG_FILE}")
    c.object("", config, REQUIRED + OPTIONAL, REQUIRED)
    model = _model(c, config["model"])
    _params(c, config["params"])
    _settings(c, config["settings"], model)
    _features(c, config, model)
    _preprocess(c, "preprocess", config["preprocess"])
    _covariates(c, config["covariates"], model.n_covariates)
    _training(c, config["training"])
    _metadata(c, config.get("metadata"))
    _calibration(c, config.get("calibration"))
    _labels(c, config.get("labels"), model.n_labels)
    if config.get("vaekit_version") is not None and not isinstance(config["vaekit_version"], str):
        raise c.fail("vaekit_version", "text", config["vaekit_version"])
    return model


def check_preprocessor(
    config: dict[str, Any], state: dict[str, np.ndarray], source: str
) -> Preprocessor:
    """The fitted preprocessing of a checked config with its arrays from the weights file
    (``state``, keyed as :meth:`Preprocessor.state`), run once on a row of zeros: arrays of
    the wrong length or kind, or selected features other than the config's, are refused."""
    c = _Config(f"{source}/{CONFIG_FILE}")
    n_in = config["n_features_in"]
    free = _memory.available_memory()
    if free is not None and n_in * DRY_RUN_BYTES > free:
        raise c.fail("n_features_in", "a number of features whose rows fit in memory", n_in)
    pre = c.built("preprocess", lambda: Preprocessor.from_config(config["preprocess"], state))
    names = config["feature_names"] or [f"x{i}" for i in range(n_in)]
    try:
        out = pre.transform(np.zeros((1, n_in), dtype=np.float32))
        selected = pre.output_features(list(names))
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(
            f"{source}: the preprocessing's fitted arrays in the weights file do not fit its "
            f"{n_in} input features ({_text(err)}); {AGAIN}"
        ) from None
    if np.shape(out) != (1, len(config["features"])) or selected != config["features"]:
        raise ValueError(
            f"{source}: the preprocessing's fitted arrays select other features than "
            f"config.json's 'features'; {AGAIN}"
        )
    pre.features_ = selected
    return pre


def preprocess_names(config: list[dict[str, Any]]) -> list[str]:
    """Names of the fitted arrays of a checked ``preprocess`` list, as
    :meth:`Preprocessor.state` keys them (``"{position}.{attribute}"``)."""
    steps = [STEPS[spec["name"]] for spec in config]
    return [f"{i}.{key}" for i, step in enumerate(steps) for key in step.state_keys]


def check_device(value: Any, key: str = "device", file: str = "") -> str:
    """``value`` as a device name torch reads, of a kind vaekit runs on (:data:`DEVICES`)."""
    text = f"a device such as 'cpu' or 'cuda' (one of {list(DEVICES)}, with an index)"
    where = f"{file}: " if file else ""
    again = f"; {AGAIN}" if file else ""
    if not isinstance(value, str):
        raise ValueError(f"{where}{key} must be {text}; got {_short(value)}{again}")
    try:
        device = torch.device(value)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICES:
        raise ValueError(f"{where}{key} must be {text}; got {_short(value)}{again}")
    return value


# ---------------------------------------------------------------------------- the sections
def _model(c: _Config, value: Any) -> ModelConfig:
    known = tuple(f.name for f in fields(ModelConfig))
    model = c.object("model", value, known, ("n_input",))
    for name, item in model.items():
        c.check(f"model.{name}", MODEL[name], item)
    config = c.built("model", lambda: ModelConfig.from_dict(model))
    c.built("model", lambda: get_architecture(config.architecture).check(config))
    return config


def _params(c: _Config, value: Any) -> None:
    params = c.object("params", value, tuple(BY_NAME))
    for name, item in params.items():
        if name == "preprocess":
            if item is not None:
                _preprocess(c, "params.preprocess", item)
        elif name == "device":
            check_device(item, "params.device", c.file)
        elif item is not None or not BY_NAME[name].resolved:
            c.check(f"params.{name}", BY_NAME[name].constraint, item)


def _settings(c: _Config, value: Any, model: ModelConfig) -> None:
    settings = c.object("settings", value, (*DEFAULTS, "auto"), SETTINGS_READ)
    for name, item in settings.items():
        if name == "preprocess":
            _preprocess(c, "settings.preprocess", item)
        elif name == "auto":  # the automatic settings' notes (vaekit.auto)
            ok = isinstance(item, list) and all(isinstance(v, str) for v in item)
            if not ok:
                raise c.fail("settings.auto", "a list of strings", item)
        else:
            c.check(f"settings.{name}", BY_NAME[name].constraint, item)
    for name in feeding("model"):  # the module was built from these
        if name in settings and _frozen(settings[name]) != getattr(model, name):
            raise c.fail(f"settings.{name}", f"equal to model.{name}, {getattr(model, name)!r}",
                         settings[name])


def _features(c: _Config, config: dict[str, Any], model: ModelConfig) -> None:
    c.check("n_features_in", Integer(1), config["n_features_in"])
    n_in = config["n_features_in"]
    if config["feature_names"] is not None:
        c.names("feature_names", config["feature_names"], n_in)
    c.names("features", config["features"], model.n_input)
    shape = config.get("image_shape")
    if shape is not None and (not Sizes().ok(shape) or len(shape) not in (2, 3)):
        raise c.fail("image_shape", "(H, W) or (C, H, W), positive integers, or null", shape)
    sizes = {n_in, model.n_input}  # the images read, or the pixels modelled
    if shape is not None and math.prod(shape) not in sizes:
        raise c.fail("image_shape", f"the shape of images of {' or '.join(map(str, sorted(sizes)))}"
                     " pixels", shape)


def _preprocess(c: _Config, key: str, value: Any) -> None:
    if not isinstance(value, list):
        raise c.fail(key, "a list of preprocessing steps", value)
    steps = Choice(lambda: STEPS)
    for i, spec in enumerate(value):
        if not isinstance(spec, dict) or "name" not in spec:
            raise c.fail(f"{key}[{i}]", "a JSON object with the step's 'name'", spec)
        c.check(f"{key}[{i}].name", steps, spec["name"])
        for name, item in spec.items():
            if isinstance(item, (dict, list)):  # steps take numbers, text and flags
                raise c.fail(f"{key}[{i}].{name}", "a number, text or true/false", item)
    c.built(key, lambda: Preprocessor(value))


def _labels(c: _Config, value: Any, n_labels: int) -> None:
    """The label classes: as many distinct texts or integers as the classifier's outputs."""
    if value is None and not n_labels:
        return
    ok = isinstance(value, list) and all(
        isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value
    )
    if not ok or len(value) != n_labels or len(set(value)) != len(value):
        raise c.fail("labels", f"a list of {n_labels} distinct label classes (model.n_labels)",
                     value)


def _covariates(c: _Config, value: Any, width: int) -> None:
    if value is None:
        if width:
            raise c.fail("covariates", f"the {width} conditions' encoding", value)
        return
    if not isinstance(value, list) or not value:
        raise c.fail("covariates", "a list of the conditions' columns, or null", value)
    for i, column in enumerate(value):
        _covariate(c, f"covariates[{i}]", column)
    encoder = c.built("covariates", lambda: CovariateEncoder.from_dict(value))
    names = [column.name for column in encoder.columns]
    if len(set(names)) != len(names):
        raise c.fail("covariates", "columns of distinct names", names)
    if encoder.width != width:
        raise c.fail("covariates", f"columns {width} wide in all (model.n_covariates)", None,
                     f"{encoder.width} wide")


def _covariate(c: _Config, key: str, value: Any) -> None:
    column = c.object(key, value, ("name", "kind", "categories", "mean", "std"), ("name", "kind"))
    if not isinstance(column["name"], str):
        raise c.fail(f"{key}.name", "text", column["name"])
    c.check(f"{key}.kind", Choice(lambda: ("categorical", "continuous")), column["kind"])
    if column["kind"] == "continuous":
        c.check(f"{key}.mean", Number(-math.inf), column.get("mean"))
        c.check(f"{key}.std", Number(0, above=True), column.get("std"))
        return
    categories = column.get("categories")
    scalar = (str, int, float, bool)
    if not isinstance(categories, list) or not categories:
        raise c.fail(f"{key}.categories", "a list of the categories", categories)
    if not all(isinstance(v, scalar) for v in categories):
        raise c.fail(f"{key}.categories", "a list of names or numbers", categories)
    if len({(type(v), v) for v in categories}) != len(categories):
        raise c.fail(f"{key}.categories", "distinct categories", categories)


def _training(c: _Config, value: Any) -> None:
    known = ("seed", "best_epoch", "seconds", "history", "validation_rows", "resumes")
    training = c.object("training", value, known, ("seed", "best_epoch", "seconds", "history"))
    c.check("training.seed", OrNone(Integer(0)), training["seed"])
    c.check("training.seconds", Number(0), training["seconds"])
    history = training["history"]
    if not isinstance(history, dict) or not history:
        raise c.fail("training.history", "a JSON object of columns (lists)", history)
    c.object("training.history", history, tuple(history), ("epoch",))
    for name, column in history.items():
        c.numbers(f"training.history.{name}", column, finite=False)
    lengths = {len(column) for column in history.values()}
    epochs = len(history["epoch"])
    if len(lengths) > 1 or epochs == 0:
        raise c.fail("training.history", "columns of one length, at least 1", None,
                     f"lengths {sorted(lengths)}")
    if history["epoch"] != list(range(epochs)):
        raise c.fail("training.history.epoch", f"0, 1, ..., {epochs - 1}", history["epoch"])
    best = training["best_epoch"]
    if not Integer(0).ok(best) or best >= epochs:
        raise c.fail("training.best_epoch", f"an epoch of the history, 0 to {epochs - 1}", best)
    rows = training.get("validation_rows")
    if rows is not None and (not isinstance(rows, list) or not all(
        Integer(0).ok(v) for v in rows
    )):
        raise c.fail("training.validation_rows", "a list of row numbers", rows)
    resumes = training.get("resumes")
    if resumes is not None and not (
        isinstance(resumes, list)
        and all(isinstance(r, dict) and Integer(0).ok(r.get("epoch")) for r in resumes)
    ):
        raise c.fail("training.resumes", "a list of {epoch, step, ...} objects", resumes)


def _metadata(c: _Config, value: Any) -> None:
    if value is None:
        return
    metadata = c.object("metadata", value, tuple(value) if isinstance(value, dict) else ())
    for key in ("command", "data"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise c.fail(f"metadata.{key}", "text", metadata[key])
    if metadata.get("settings") is not None and not isinstance(metadata["settings"], dict):
        raise c.fail("metadata.settings", "a JSON object", metadata["settings"])
    shape = metadata.get("shape")
    if shape is not None and not (isinstance(shape, list) and all(
        Integer(0).ok(v) for v in shape
    )):
        raise c.fail("metadata.shape", "a list of sizes", shape)


def _calibration(c: _Config, value: Any) -> None:
    if value is None:
        return
    known = ("method", "fpr", "threshold", "n_draws", "n_samples", "control_scores")
    calibration = c.object("calibration", value, known, ("method", "fpr", "threshold",
                                                         "control_scores"))
    method = calibration["method"]
    if not isinstance(method, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", method):
        raise c.fail("calibration.method", "the name of an anomaly score", method)
    if not Number(0, 1, above=True).ok(calibration["fpr"]):
        raise c.fail("calibration.fpr", "a number between 0 and 1", calibration["fpr"])
    c.check("calibration.threshold", Number(-math.inf), calibration["threshold"])
    c.numbers("calibration.control_scores", calibration["control_scores"])
    if not calibration["control_scores"]:
        raise c.fail("calibration.control_scores", "the control samples' scores", [])
    for key in ("n_draws", "n_samples"):
        c.check(f"calibration.{key}", OrNone(Integer(1)), calibration.get(key))
    c.built("calibration", lambda: Calibration.from_dict(calibration))


# ---------------------------------------------------------------------------- helpers
def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def _text(err: Exception) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text if len(text) <= 300 else text[:297] + "..."


def _short(value: Any, n: int = 80) -> str:
    """repr(value), cut to ``n`` characters: a hostile value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


__all__ = ["check_config", "check_device", "check_preprocessor", "preprocess_names"]
