"""Training settings as a person writes them: a YAML file and command-line flags.

The keys are the names of :class:`vaekit.VAE`'s arguments (:data:`vaekit.options.SETTINGS`);
the command line's short names (``latent``, ``warmup``, ``l1``) are aliases. A file may also
hold the preprocessing flags, the reading options and the condition (:data:`EXTRA`). Values
from the file come first, flags override them, and :func:`vae_arguments` turns the result
into ``VAE`` arguments and :func:`read_options` into :func:`vaekit.read` options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from vaekit.data.preprocess import override
from vaekit.options import (
    ALIASES,
    SETTINGS,
    Flag,
    Integer,
    OrNone,
    Setting,
    Sizes,
    Text,
    suggest,
)
from vaekit.presets import PRESETS

# What `vaekit train` reads besides the VAE's settings; feeds says where each goes.
EXTRA: tuple[Setting, ...] = (
    Setting("condition", None, Text(), "Annotation column(s) to condition on, a,b.", "fit",
            ("batch",)),
    Setting("labels", None, Text(),
            "Annotation column of labels to learn (empty or 'unknown': unlabelled).", "fit"),
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
    Setting("backed", None, Flag(), "Stream an .h5ad's matrix from the file.", "read",
            cli=False),
)
# verbose is the command line's --quiet, not a setting of the model.
ROWS: dict[str, Setting] = {s.name: s for s in (*SETTINGS, *EXTRA) if s.name != "verbose"}
PREPROCESS_KEYS = tuple(s.name for s in EXTRA if s.feeds == "preprocess")
READ_KEYS = tuple(s.name for s in EXTRA if s.feeds == "read")
VAE_KEYS = tuple(s.name for s in SETTINGS if s.name in ROWS)


# A settings file is a few dozen lines; anything much larger is the wrong file.
MAX_SETTINGS_BYTES = 1_000_000


def read_settings(path: str | Path | None) -> dict[str, Any]:
    """Settings from a YAML file (``{}`` for None), keyed by Python names, unknown keys refused.

    The file is read with YAML's safe loader: a tag such as ``!!python/object`` is refused,
    never run. A file that is not text, holds no settings or is not a mapping is refused.
    """
    if path is None:
        return {}
    path = Path(path)
    settings = yaml_mapping(_settings_text(path), f"settings file {path}")
    return canonical(settings, f"settings file {path}")


def _settings_text(path: Path) -> str:
    """The text of a settings file: a regular file, small, UTF-8."""
    if not path.exists():
        raise ValueError(f"settings file {path} does not exist")
    if not path.is_file():  # a folder, a FIFO (which would block) or a device
        raise ValueError(f"settings file {path} is not a regular file; give a YAML file")
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise ValueError(
            f"settings file {path} is {path.stat().st_size:,} bytes; a settings file holds a "
            f"few lines of name: value (at most {MAX_SETTINGS_BYTES:,} bytes); is it the right "
            "file?"
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"settings file {path} is not text (UTF-8 YAML); is it the right file?"
        ) from None
    if "\x00" in text:
        raise ValueError(f"settings file {path} is binary, not YAML text; is it the right file?")
    return text


def yaml_mapping(text: str, source: str) -> dict[Any, Any]:
    """The mapping of name: value in YAML ``text``, read safely; raise ValueError naming
    ``source`` for a tag, invalid YAML, no settings at all, or anything but a mapping."""
    try:
        settings = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:  # !!python/object and other tags
        raise ValueError(
            f"{source} uses a YAML tag vaekit does not read ({err.problem}); write plain "
            "name: value lines"
        ) from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or err
        raise ValueError(f"{source} is not valid YAML{line}: {problem}") from None
    if settings is None:
        raise ValueError(f"{source} holds no settings; write name: value lines, e.g. epochs: 50")
    if not isinstance(settings, dict):
        raise ValueError(
            f"{source} must hold a mapping of name: value lines; got a {type(settings).__name__}"
        )
    return settings


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
            if not _plain(key, value):
                raise TypeError(value)
            out[key] = constraint.parse(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be {constraint.text}; got {value!r}") from None
    return out


def _plain(key: str, value: Any) -> bool:
    """Whether ``value`` is of a kind the setting ``key`` may be written as, before parsing:
    YAML's ``true`` is no number (``float(True)`` would be 1.0), ``[1.5]`` no layer size
    (``int(1.5)`` would be 1), and a text setting takes text."""
    constraint = ROWS[key].constraint
    inner = constraint.inner if isinstance(constraint, OrNone) else constraint
    if isinstance(value, bool):
        return isinstance(inner, Flag)
    if isinstance(inner, Sizes) and isinstance(value, (list, tuple)):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if isinstance(inner, Text) and key != "preprocess":  # preprocess: steps, checked by VAE
        return isinstance(value, (str, os.PathLike))  # --annotations gives a Path
    return isinstance(value, (str, int, float, list, tuple)) or key == "preprocess"


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
