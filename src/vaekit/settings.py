"""Training settings as a person writes them: a YAML file and command-line flags.

The keys are the names of :class:`vaekit.VAE`'s arguments (:data:`vaekit.options.SETTINGS`);
the command line's short names (``latent``, ``warmup``, ``l1``) are aliases. A file may also
hold the preprocessing flags, the reading options and the condition (:data:`EXTRA`). Values
from the file come first, flags override them, and :func:`vae_arguments` turns the result
into ``VAE`` arguments and :func:`read_options` into :func:`vaekit.read` options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vaekit.data.preprocess import override
from vaekit.options import ALIASES, SETTINGS, Flag, Integer, Setting, Text, suggest
from vaekit.presets import PRESETS

# What `vaekit train` reads besides the VAE's settings; feeds says where each goes.
EXTRA: tuple[Setting, ...] = (
    Setting("condition", None, Text(), "Annotation column(s) to condition on, a,b.", "fit"),
    Setting("normalize", None, Flag(), "Library-size normalisation first.", "preprocess"),
    Setting("log1p", None, Flag(), "log(1 + x) first.", "preprocess"),
    Setting("select", None, Integer(0), "Keep the N most variable features (0: all).",
            "preprocess"),
    Setting("select_by", None, Text(), "variance or mad.", "preprocess"),
    Setting("scale", None, Text(), "minmax, zscore, center or none.", "preprocess"),
    # the reading options: the shared flags of every command that reads data
    Setting("transpose", None, Flag(), "The file has genes as rows.", "read", cli=False),
    Setting("annotations", None, Text(), "Sample annotation table.", "read", cli=False),
    Setting("layer", None, Text(), "AnnData layer to use instead of X.", "read", cli=False),
)
# verbose is the command line's --quiet, not a setting of the model.
ROWS: dict[str, Setting] = {s.name: s for s in (*SETTINGS, *EXTRA) if s.name != "verbose"}
PREPROCESS_KEYS = tuple(s.name for s in EXTRA if s.feeds == "preprocess")
READ_KEYS = tuple(s.name for s in EXTRA if s.feeds == "read")
VAE_KEYS = tuple(s.name for s in SETTINGS if s.name in ROWS)


def read_settings(path: str | Path | None) -> dict[str, Any]:
    """Settings from a YAML file (``{}`` for None), keyed by Python names, unknown keys refused."""
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
    return canonical(settings, f"settings file {path}")


def canonical(settings: dict[Any, Any], source: str) -> dict[str, Any]:
    """``settings`` keyed by Python names (``batch-size`` and ``latent`` are read as
    ``batch_size`` and ``n_latent``); an unknown key is refused with the nearest known one."""
    out: dict[str, Any] = {}
    known = (*ROWS, *ALIASES)
    for key, value in settings.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ValueError(
                f"{source} has unknown key {name!r}{suggest(name, known)}; known: {list(ROWS)}"
            )
        name = ALIASES.get(name, name)
        if name in out:
            raise ValueError(f"{source} gives {name} twice (as {key!r} and another name)")
        out[name] = value
    return out


def merge(file_settings: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """File settings overridden by the flags that were given (not None)."""
    return {**file_settings, **{k: v for k, v in flags.items() if v is not None}}


def typed(settings: dict[str, Any]) -> dict[str, Any]:
    """Values read as their setting's type: numbers from text (YAML 1.1 reads ``1e-3`` as
    text, and a file may quote values), ``400,200`` as layer sizes, ``none`` as None."""
    out = dict(settings)
    for key, value in settings.items():
        if value is None:
            continue
        constraint = ROWS[key].constraint
        try:
            out[key] = constraint.parse(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be {constraint.text}; got {value!r}") from None
    return out


def vae_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """:class:`vaekit.VAE` keyword arguments for ``settings``: the preprocessing flags replace
    steps of the file's ``preprocess``, else of the preset's."""
    settings = typed(settings)
    kwargs = {k: v for k, v in settings.items() if k in VAE_KEYS}
    flags = {k: settings[k] for k in PREPROCESS_KEYS if k in settings}
    if flags:
        preset = settings.get("preset")
        preset_steps = PRESETS.get(preset, {}).get("preprocess", ()) if preset else ()
        kwargs["preprocess"] = override(settings.get("preprocess", preset_steps), **flags)
    return kwargs


def read_options(settings: dict[str, Any]) -> dict[str, Any]:
    """:func:`vaekit.read` options for ``settings``."""
    return {k: settings[k] for k in READ_KEYS if settings.get(k) is not None}
