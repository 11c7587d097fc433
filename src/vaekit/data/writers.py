"""Outputs: tables by suffix, AnnData files and PNG image grids, each written atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaekit.atomic import atomic_file, check_parent


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
    """Raise before any work when ``path`` cannot be written or has the wrong suffix."""
    path = Path(path)
    if suffixes is None:
        table_suffix(path)
    elif not path.name.lower().endswith(suffixes):
        raise ValueError(f"{path}: the output must end with one of {list(suffixes)}")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    check_parent(path)
    return path


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
