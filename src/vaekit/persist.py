"""Model files: a folder with ``config.json`` and ``weights.safetensors``. Nothing is pickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vaekit._version import __version__
from vaekit.atomic import atomic_dir

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


def write_model_dir(
    path: str | os.PathLike, config: dict[str, Any], weights: dict[str, torch.Tensor]
) -> Path:
    """Write ``config`` and ``weights`` atomically into the folder ``path``.

    An existing folder is replaced only if it holds a vaekit model (or nothing).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save the model to {path}: a file of that name exists")
    if path.is_dir() and any(path.iterdir()) and not _is_model_dir(path):
        raise ValueError(
            f"cannot save the model to {path}: the folder holds files but no vaekit model; "
            "choose a new or empty folder"
        )
    header = {"format_version": FORMAT_VERSION, "vaekit_version": __version__}
    with atomic_dir(path) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps({**header, **config}, indent=2))
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / WEIGHTS_FILE
        )
    return path


def _is_model_dir(path: Path) -> bool:
    """Only a folder holding exactly a vaekit model's files may be replaced."""
    if {p.name for p in path.iterdir()} - {CONFIG_FILE, WEIGHTS_FILE}:
        return False
    try:
        return "format_version" in json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False


def read_model_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model folder; return its config and weights (safetensors, no pickle)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"no vaekit model at {path}: expected a folder holding {CONFIG_FILE}")
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    for f in (config_file, weights_file):
        if not f.is_file():
            raise ValueError(f"the model folder {path} lacks {f.name}; save the model again")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_file} is not valid JSON ({err}); save the model again") from None
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{config_file} has format version {version!r}; this vaekit {__version__} reads "
            f"version {FORMAT_VERSION}. Use the vaekit version that wrote it "
            f"({config.get('vaekit_version', 'unknown')})"
        )
    try:
        weights = load_file(weights_file)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights_file} is not a readable safetensors file: {err}") from None
    return config, weights


def check_weights(
    expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source: str
) -> None:
    """Raise when ``got`` does not have exactly the names and shapes of ``expected``."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {tuple(got[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and got[k].shape != v.shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"{source} does not match its config.json: missing {missing[:5]}, unexpected "
            f"{extra[:5]}, wrong shapes (file vs config) {shapes[:5]}; the files come from "
            "different models, save the model again"
        )
