"""Training settings as a person writes them: a YAML file and command-line flags.

Names follow the flags (``latent``, ``warmup``, ``select``...). Values from the file come first,
flags override them, and :func:`vae_arguments` turns the result into :class:`vaekit.VAE`
arguments and :func:`vaekit.read` options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vaekit.data.preprocess import override
from vaekit.presets import PRESETS

# setting name -> VAE argument
MODEL_KEYS = {
    "likelihood": "likelihood",
    "latent": "n_latent",
    "hidden": "hidden",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "beta": "beta",
    "warmup": "kl_warmup",
    "preset": "preset",
    "decoder": "decoder",
    "architecture": "architecture",
    "l1": "loadings_l1",
    "iw_samples": "iw_samples",
    "lr_patience": "lr_patience",
    "max_minutes": "max_minutes",
    "missing": "missing",
    "mask_rate": "mask_rate",
    "seed": "seed",
}
PREPROCESS_KEYS = ("normalize", "log1p", "select", "select_by", "scale")
READ_KEYS = ("transpose", "annotations", "layer")
OTHER_KEYS = ("condition",)
KNOWN = (*MODEL_KEYS, *PREPROCESS_KEYS, *READ_KEYS, *OTHER_KEYS)


def read_settings(path: str | Path | None) -> dict[str, Any]:
    """Settings from a YAML file (``{}`` for None), with unknown keys refused."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"settings file {path} does not exist")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"settings file {path} is not valid YAML: {err}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"settings file {path} must hold a mapping of name: value")
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    unknown = sorted(set(settings) - set(KNOWN))
    if unknown:
        raise ValueError(f"settings file {path} has unknown keys {unknown}; known: {list(KNOWN)}")
    return settings


def merge(file_settings: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """File settings overridden by the flags that were given (not None)."""
    return {**file_settings, **{k: v for k, v in flags.items() if v is not None}}


def parse_hidden(value: str | list | tuple | None) -> tuple[int, ...] | None:
    """``"400,200"`` -> (400, 200); ``""`` or ``"none"`` -> () (no hidden layer)."""
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else tuple(int(v) for v in value)
    text = str(value).strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"hidden must be sizes like 400,200; got {value!r}") from None


INTEGERS = ("latent", "epochs", "batch_size", "warmup", "seed", "select")
NUMBERS = ("lr", "beta", "l1", "mask_rate")


def _typed(settings: dict[str, Any]) -> dict[str, Any]:
    """Numbers as numbers: YAML 1.1 reads ``1e-3`` as text, and a file may quote values."""
    out = dict(settings)
    for keys, kind in ((INTEGERS, int), (NUMBERS, float)):
        for key in keys:
            if out.get(key) is None:
                continue
            try:
                value = kind(out[key]) if kind is float else int(str(out[key]))
            except ValueError:
                raise ValueError(
                    f"{key} must be {'an integer' if kind is int else 'a number'}; got {out[key]!r}"
                ) from None
            out[key] = value
    return out


def vae_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """:class:`vaekit.VAE` keyword arguments for ``settings``."""
    settings = _typed(settings)
    kwargs = {MODEL_KEYS[k]: v for k, v in settings.items() if k in MODEL_KEYS}
    if "hidden" in kwargs:
        kwargs["hidden"] = parse_hidden(kwargs["hidden"])
    flags = {k: settings[k] for k in PREPROCESS_KEYS if k in settings}
    if flags:
        preset = settings.get("preset")
        base = PRESETS.get(preset, {}).get("preprocess", ()) if preset else ()
        kwargs["preprocess"] = override(base, **flags)
    return kwargs


def read_options(settings: dict[str, Any]) -> dict[str, Any]:
    """:func:`vaekit.read` options for ``settings``."""
    return {k: settings[k] for k in READ_KEYS if settings.get(k) is not None}
