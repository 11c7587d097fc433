"""Model files: a folder with ``config.json`` and ``weights.safetensors``. Nothing is pickled.

Reading checks the files before trusting them: the folder and files are what they should be
(regular files, of bounded size), the JSON parses to an object of a known format, and the
weights file is safetensors (never a pickle: one disguised as weights is named as such and
never run) whose tensors have the names, shapes and dtypes the model expects and hold finite
values. Writing refuses weights that are not finite: vaekit never writes a NaN model.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vaekit._version import __version__
from vaekit.atomic import atomic_dir, check_parent

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
# A config.json holds settings, names and history (kilobytes to megabytes for an atlas);
# anything near this bound is not one, and reading it whole would be the attack.
MAX_CONFIG_BYTES = 256 * 2**20
# The first bytes of what must never be loaded: a pickle (protocol 2 and later start with
# 0x80) and torch.save's zip archive.
PICKLE_MAGIC = {b"\x80": "a Python pickle", b"PK": "a zip archive (as torch.save writes)"}
AGAIN = "save the model again"
# safetensors' names of the dtypes a model file may hold.
DTYPES = {
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.bool: "BOOL",
}
# What a tensor of a model file should be: (shape, safetensors dtype); None admits any
# (a preprocessing step's fitted array, whose length its step checks).
Spec = tuple[tuple[int, ...] | None, str | None]


def write_model_dir(
    path: str | os.PathLike, config: dict[str, Any], weights: dict[str, torch.Tensor]
) -> Path:
    """Write ``config`` and ``weights`` atomically into the folder ``path``.

    An existing folder is replaced only if it holds a vaekit model (or nothing). Weights that
    hold NaN or infinite values are refused: such a model computes nothing but NaN.
    """
    path = Path(path)
    check_finite(weights, "refusing to save a model whose weights")
    check_parent(path)  # a name too long for the file system fails here, not in exists()
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
    except (OSError, ValueError, RecursionError, TypeError):
        return False


def read_model_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model folder; return its config and weights (safetensors, no pickle).

    The weights are checked for being safetensors and finite, not against the config:
    :func:`vaekit.saving.read` does that, before building anything.
    """
    config = read_config(path)
    return config, read_weights(path)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in the model folder's ``config.json``, of this format version; raise
    ValueError naming the file and what is wrong with it (its keys are checked by
    :mod:`vaekit.schema`)."""
    file = model_file(path, CONFIG_FILE)
    size = file.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{file} has {size} bytes; a model's config.json has at most "
            f"{MAX_CONFIG_BYTES} ({AGAIN})"
        )
    try:
        config = json.loads(file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not valid JSON ({err}); {AGAIN}") from None
    except RecursionError:
        raise ValueError(f"{file} nests its values too deeply to be a model's; {AGAIN}") from None
    if not isinstance(config, dict):
        raise ValueError(
            f"{file} holds {_json_type(config)}, not a JSON object with the model's "
            f"settings; {AGAIN}"
        )
    version = config.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        writer = config.get("vaekit_version", "unknown")
        raise ValueError(
            f"{file} has format version {_short(version)}; this vaekit {__version__} reads "
            f"version {FORMAT_VERSION}. Use the vaekit version that wrote it "
            f"({_short(writer) if not isinstance(writer, str) else writer[:40]}), or {AGAIN}"
        )
    return config


def read_weights(
    path: str | os.PathLike, expected: Mapping[str, Spec] | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of the model folder's ``weights.safetensors``, checked finite; with
    ``expected``, its names, shapes and dtypes are checked (from the file's header, before
    any tensor is read) against it. Never unpickles anything."""
    file = model_file(path, WEIGHTS_FILE)
    _refuse_pickle(file)
    try:
        with safe_open(file, "pt") as f:
            header = {k: _spec_of(f.get_slice(k)) for k in f.keys()}  # noqa: SIM118
        if expected is not None:
            check_weights(expected, header, str(file))
        weights = load_file(file)
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{file} is not a readable safetensors file ({err}); the file is damaged or "
            f"incomplete: {AGAIN}"
        ) from None
    check_finite(weights, f"{file}: the model's weights", loading=True)
    return weights


def model_file(path: str | os.PathLike, name: str) -> Path:
    """``path/name``, checked to be a regular file in a folder; raise ValueError otherwise."""
    path = Path(path)
    if not path.is_dir():  # also a symlink loop, or a file given for the folder
        what = (
            "a file" if path.is_file()
            else "a broken link or a link loop" if path.is_symlink()
            else "nothing" if not os.path.lexists(path)
            else "not a folder"
        )
        raise ValueError(
            f"no vaekit model at {path} ({what} there): expected a folder holding {CONFIG_FILE} "
            f"and {WEIGHTS_FILE}"
        )
    file = path / name
    try:
        mode = file.stat().st_mode
    except OSError:
        raise ValueError(f"the model folder {path} lacks {name}; {AGAIN}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{file} is not a regular file (a folder, a pipe or a device); {AGAIN}")
    return file


def check_weights(expected: Mapping[str, Any], got: Mapping[str, Any], source: str) -> None:
    """Raise when ``got`` does not have exactly the names, shapes and dtypes of ``expected``
    (tensors or :data:`Spec` tuples; a None in a spec admits any shape or dtype)."""
    expected = {k: _spec(v) for k, v in expected.items()}
    got = {k: _spec(v) for k, v in got.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {got[k][0]} vs {shape}"
        for k, (shape, _) in expected.items()
        if k in got and shape is not None and got[k][0] != shape
    ]
    dtypes = [
        f"{k}: {got[k][1]} vs {dtype}"
        for k, (_, dtype) in expected.items()
        if k in got and dtype is not None and got[k][1] != dtype
    ]
    if missing or extra or shapes or dtypes:
        raise ValueError(
            f"{source} does not match its config.json: missing {missing[:5]}, unexpected "
            f"{[k[:60] for k in extra[:5]]}, wrong shapes (file vs config) {shapes[:5]}, "
            f"wrong dtypes {dtypes[:5]}; the files come from different models, {AGAIN}"
        )


def check_finite(weights: Mapping[str, torch.Tensor], what: str, loading: bool = False) -> None:
    """Raise ValueError when a floating-point tensor of ``weights`` holds NaN or infinity:
    the training diverged, and such a model computes NaN."""
    bad = [
        k for k, v in weights.items() if v.is_floating_point() and not bool(v.isfinite().all())
    ]
    if not bad:
        return
    kind = "NaN" if any(bool(weights[k].isnan().any()) for k in bad) else "infinite values"
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    then = f"; {AGAIN} from a good run" if loading else ""
    raise ValueError(
        f"{what} hold {kind} ({', '.join(bad[:3])}{more}); the training diverged: retrain "
        f"with a lower lr (--lr), a grad clip (--grad-clip) or scaled data{then}"
    )


def _refuse_pickle(file: Path) -> None:
    with open(file, "rb") as f:
        start = f.read(9)
    # safetensors' layout first: an 8-byte little-endian header length, then the JSON header.
    # Its first byte is the length's lowest, which is 0x80 for 1 header size in 32 (they are
    # multiples of 8), so the pickle's magic alone would refuse such a model.
    header = int.from_bytes(start[:8], "little")
    if len(start) == 9 and start[8:9] == b"{" and header <= file.stat().st_size - 8:
        return
    for magic, what in PICKLE_MAGIC.items():
        if start.startswith(magic):
            raise ValueError(
                f"{file} is {what}, not safetensors; vaekit never unpickles a file (it could "
                f"run any code), so nothing in it was run. Use a model saved by vaekit"
            )


def _spec_of(tensor_slice: Any) -> Spec:
    return tuple(tensor_slice.get_shape()), tensor_slice.get_dtype()


def _spec(value: Any) -> Spec:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), DTYPES.get(value.dtype, str(value.dtype))
    shape, dtype = value
    return (None if shape is None else tuple(shape)), dtype


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}
    return names.get(type(value), "a number")


def _short(value: Any, n: int = 60) -> str:
    """repr(value), cut to ``n`` characters: a hostile value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."

