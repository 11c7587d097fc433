"""Outputs: tables by suffix, AnnData files, PNG image grids and folders, each written
atomically, and the checks every command makes of its output before any work."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaekit.atomic import atomic_dir, atomic_file, check_parent

# Bytes kept free below the file system's name limit, a margin for the names vaekit.atomic
# derives from the output's (it also shortens long names in its temporaries).
TEMP_NAME_BYTES = 16


def _delimited(sep: str, compression: str | None = None) -> Callable[[pd.DataFrame, Path], None]:
    def write(df: pd.DataFrame, path: Path) -> None:
        df.to_csv(path, sep=sep, compression=compression)

    return write


TABLE_WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    ".tsv": _delimited("\t"),
    ".txt": _delimited("\t"),
    ".csv": _delimited(","),
    ".tsv.gz": _delimited("\t", "gzip"),
    ".csv.gz": _delimited(",", "gzip"),
    ".parquet": lambda df, path: df.to_parquet(path),
}


def table_suffix(path: str | Path) -> str:
    """The table format of ``path``; raise for one vaekit cannot write."""
    name = Path(path).name.lower()
    for suffix in sorted(TABLE_WRITERS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise ValueError(
        f"cannot tell the table format of {path}; end the name with one of {list(TABLE_WRITERS)}"
    )


def check_output(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """Raise before any work when the file ``path`` cannot be written or has the wrong suffix
    (a table suffix when ``suffixes`` is None)."""
    path = check_output_name(path)
    if suffixes is None:
        table_suffix(path)
    elif not path.name.lower().endswith(suffixes):
        raise ValueError(f"{path}: the output must end with one of {list(suffixes)}")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    check_parent(path)
    return path


def check_output_name(path: str | os.PathLike) -> Path:
    """Raise when ``path`` cannot name a new file or folder: empty, ``.``, ``..`` or ``/``
    (folders that exist), or a name longer than the file system allows."""
    path = Path(path)
    if path.name in ("", ".", ".."):  # Path("") is Path("."); Path("/").name is ""
        raise ValueError(
            f"cannot write to {str(path)!r}: it names an existing folder (the current, parent "
            "or root folder), not a new file or folder; give a name such as out/result"
        )
    name_max = _name_max(path.parent)
    limits = [(part, name_max) for part in path.parts[:-1]]  # folders: as the system allows
    for part, limit in [*limits, (path.name, name_max - TEMP_NAME_BYTES)]:
        size = len(os.fsencode(part))
        if size > limit:
            raise ValueError(
                f"cannot write {_shorten(str(path))}: the name {_shorten(part)!r} is {size} "
                f"bytes long and this file system allows names of at most {limit} bytes here "
                "(vaekit writes through a temporary name first); give a shorter name"
            )
    if len(os.fsencode(os.path.abspath(path))) >= _path_max():
        raise ValueError(
            f"cannot write {_shorten(str(path))}: the path is longer than this system allows "
            f"({_path_max()} bytes); give a shorter path"
        )
    return path


def check_output_dir(path: str | os.PathLike, names: Collection[str]) -> Path:
    """Raise before any work when the folder ``path`` cannot be written, as :func:`output_dir`
    would write it: a file (or a link) of that name exists, or a folder that holds anything
    besides ``names`` (what the command writes there; the user's own files are never replaced).
    An empty folder, or one a previous run of the command wrote, may be replaced."""
    path = check_output_name(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        kind = "a link" if path.is_symlink() else "a file"
        raise ValueError(
            f"cannot write the folder {path}: {kind} of that name exists; give a new name"
        )
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in names)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ValueError(
                f"cannot write the folder {path}: it exists and holds files vaekit did not "
                f"write there ({shown}); give a new or empty folder"
            )
        if not os.access(path, os.W_OK):
            raise ValueError(f"cannot replace the folder {path}: it is not writable")
    check_parent(path)
    return path


@contextmanager
def output_dir(path: str | os.PathLike, names: Collection[str]) -> Iterator[Path]:
    """Check the folder ``path`` (:func:`check_output_dir`), then yield a temporary folder that
    takes its place only when the block succeeds: a failing run leaves nothing, and what was at
    ``path`` stays as it was."""
    check_output_dir(path, names)
    with atomic_dir(path) as tmp:
        yield tmp


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or the nearest existing
    folder above it) allows; 255 where it cannot be asked."""
    for candidate in (folder, *folder.parents, Path(".")):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def _path_max() -> int:
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def _shorten(text: str, n: int = 60) -> str:
    return text if len(text) <= n else f"{text[:n]}..."


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as TSV, CSV (optionally gzip) or Parquet, chosen by the suffix."""
    writer = TABLE_WRITERS[table_suffix(path)]
    with atomic_file(path) as tmp:
        writer(df, tmp)
    return Path(path)


def write_h5ad(adata: Any, path: str | Path) -> Path:
    """Write an AnnData to ``.h5ad``."""
    with atomic_file(path) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)


def image_grid(images: np.ndarray, shape: tuple[int, ...], n_cols: int, pad: int = 2) -> np.ndarray:
    """Tile flattened images (n, prod(shape)) with values in [0, 1] into one uint8 picture."""
    channels = shape[0] if len(shape) == 3 else 1
    h, w = shape[-2:]
    tiles = images.reshape(len(images), channels, h, w).transpose(0, 2, 3, 1)
    n_rows = -(-len(images) // n_cols)
    grid = np.ones(((h + pad) * n_rows + pad, (w + pad) * n_cols + pad, channels))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, n_cols)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = tile
    out = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    return out[..., 0] if channels == 1 else out


def write_png(picture: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Save a uint8 picture (H, W) or (H, W, 3) as PNG, enlarged ``scale`` times."""
    from PIL import Image

    image = Image.fromarray(picture)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
