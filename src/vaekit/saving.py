"""A fitted :class:`vaekit.VAE` to and from its model folder (see :mod:`vaekit.persist`).

``config.json`` holds the architecture, the parameters and settings, feature names, the
preprocessing and condition encodings and the training history; ``weights.safetensors`` holds
the module's weights and the preprocessing steps' fitted arrays (prefixed ``preprocess.``).
An anomaly-score calibration (``calibration_``), when the model has one, is stored in
``config.json`` under ``calibration``; folders written without it load as uncalibrated models.
The rows training held out (``validation_rows_``) are stored under
``training.validation_rows``; folders written without them load without the attribute. Where
training resumed from checkpoints (``resumes_``) is under ``training.resumes``. The classes
of a label classifier (``labels_``) are under ``labels``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vaekit import persist, schema
from vaekit.atomic import atomic_file
from vaekit.calibration import Calibration
from vaekit.covariates import CovariateEncoder
from vaekit.data.preprocess import Preprocessor
from vaekit.model import VAEModule, check_values
from vaekit.options import NEUTRAL

PREPROCESS_PREFIX = "preprocess."


def write(model: Any, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write a fitted model's folder atomically; ``metadata`` (JSON) is stored alongside."""
    config = {
        "model": model.module_.config.to_dict(),
        "params": _jsonable(model.get_params()),
        "settings": _jsonable(model.settings_),
        "n_features_in": model.n_features_in_,
        "feature_names": _names(model),
        "features": list(model.features_),
        "image_shape": None if model.image_shape_ is None else list(model.image_shape_),
        "preprocess": model.preprocessor_.to_config(),
        "covariates": None if model.covariates_ is None else model.covariates_.to_dict(),
        "training": {
            "seed": model.seed_,
            "best_epoch": model.best_epoch_,
            "seconds": model.training_seconds_,
            "history": model.history_.reset_index().to_dict(orient="list"),
            **_validation_rows(model),
            "resumes": list(getattr(model, "resumes_", None) or []),
        },
        "metadata": metadata or {},
        "calibration": _calibration(model),
        "labels": _labels(model),
    }
    weights = dict(model.module_.state_dict())
    persist.check_finite(weights, "refusing to save a model whose weights")
    check_values(weights, "refusing to save the model")
    for key, value in model.preprocessor_.state().items():
        weights[PREPROCESS_PREFIX + key] = torch.from_numpy(np.atleast_1d(value).copy())
    persist.write_model_dir(path, config, weights)


def read(cls: type, path: str | os.PathLike) -> Any:
    """Rebuild a fitted ``cls`` (:class:`vaekit.VAE`) from its folder, checking what it finds:
    the config against its schema (:mod:`vaekit.schema`) before anything is built, the
    module's size against the memory available before it is allocated, the weights file's
    names, shapes and dtypes from its header before its tensors are read, then their values."""
    config = persist.read_config(path)
    model_config = schema.check_config(config, str(path))
    params = dict(config["params"])
    params["device"] = _device(params.get("device", "cpu"))
    model = cls(**_tuples(params))
    try:
        module = VAEModule(model_config)  # checks its size against the memory available
    except ValueError as err:
        raise ValueError(f"{path}/{persist.CONFIG_FILE}: {err}") from None
    pre_names = schema.preprocess_names(config["preprocess"])
    expected = {**module.state_dict(), **{PREPROCESS_PREFIX + k: (None, None) for k in pre_names}}
    weights = persist.read_weights(path, expected)
    pre_state = {
        k[len(PREPROCESS_PREFIX) :]: v.numpy()
        for k, v in weights.items()
        if k.startswith(PREPROCESS_PREFIX)
    }
    weights = {k: v for k, v in weights.items() if not k.startswith(PREPROCESS_PREFIX)}
    check_values(weights, f"{path}/{persist.WEIGHTS_FILE}")
    module.load_state_dict(weights)
    model.module_ = module.to(torch.device(model.device)).eval()
    # Settings added later read their defaults, which describe the models saved before.
    model.settings_ = {**NEUTRAL, **_tuples(config["settings"])}
    model.preprocessor_ = schema.check_preprocessor(config, pre_state, str(path))
    model.features_ = list(config["features"])
    model.n_features_in_ = int(config["n_features_in"])
    if config.get("feature_names") is not None:
        model.feature_names_in_ = np.asarray(config["feature_names"], dtype=object)
    shape = config.get("image_shape")
    model.image_shape_ = None if shape is None else tuple(shape)
    cov = config.get("covariates")
    model.covariates_ = None if cov is None else CovariateEncoder.from_dict(cov)
    training = config["training"]
    model.seed_ = training["seed"]
    model.best_epoch_ = training["best_epoch"]
    model.training_seconds_ = training["seconds"]
    model.history_ = pd.DataFrame(training["history"]).set_index("epoch")
    if training.get("validation_rows") is not None:  # older folders lack it
        model.validation_rows_ = np.asarray(training["validation_rows"], dtype=np.int64)
    model.resumes_ = list(training.get("resumes") or [])  # older folders lack it
    model.metadata_ = config.get("metadata") or {}
    if config.get("calibration") is not None:
        model.calibration_ = Calibration.from_dict(config["calibration"])
    labels = config.get("labels")  # older folders lack it
    model.labels_ = None if labels is None else np.asarray(labels, dtype=object)
    return model


def _device(device: str) -> str:
    """The saved device, or the CPU (with a warning) when this machine has no such device."""
    kind = torch.device(device)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (kind.index is None or kind.index < torch.cuda.device_count()),
        "mps": torch.backends.mps.is_available(),
    }
    if available.get(kind.type, False):
        return device
    warnings.warn(
        f"model was trained on {kind.type.upper()} ({device}), which is not available here; "
        "using the CPU",
        stacklevel=4,
    )
    return "cpu"


def write_calibration(path: str | os.PathLike, calibration: Calibration | None) -> None:
    """Store ``calibration`` (a :class:`vaekit.calibration.Calibration`, or None to remove
    it) in the model folder ``path``, replacing ``config.json`` atomically; the weights are
    left as they are."""
    config = persist.read_config(path)  # checks that the folder holds a model
    schema.check_config(config, str(path))
    config["calibration"] = None if calibration is None else calibration.to_dict()
    with atomic_file(Path(path) / persist.CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2))


def _labels(model: Any) -> list | None:
    labels = getattr(model, "labels_", None)
    return None if labels is None else [v.item() if hasattr(v, "item") else v for v in labels]


def _calibration(model: Any) -> dict[str, Any] | None:
    calibration = getattr(model, "calibration_", None)
    return None if calibration is None else calibration.to_dict()


def _validation_rows(model: Any) -> dict[str, list[int]]:
    """``{"validation_rows": [...]}``, or nothing for a model loaded from an older folder."""
    rows = getattr(model, "validation_rows_", None)
    return {} if rows is None else {"validation_rows": np.asarray(rows).tolist()}


def _names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, paths (a checkpoint_dir) as text, preprocessing steps as configs."""
    out = {
        k: list(v) if isinstance(v, tuple) else os.fspath(v) if isinstance(v, os.PathLike) else v
        for k, v in params.items()
    }
    if out.get("preprocess") is not None:
        out["preprocess"] = Preprocessor(out["preprocess"]).to_config()
    return out


def _tuples(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for key in ("hidden", "decoder_hidden", "image_shape"):
        if out.get(key) is not None:
            out[key] = tuple(out[key])
    return out
