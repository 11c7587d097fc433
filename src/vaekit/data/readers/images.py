"""Folders of PNG/JPEG images (Pillow), optionally one subfolder per class."""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from anndata import AnnData
from PIL import Image, UnidentifiedImageError

from vaekit.data.readers.common import build
from vaekit.data.readers.registry import reader
from vaekit.validation import check_dense_fits

_SUFFIXES = {".png", ".jpg", ".jpeg"}
_GRAY = {"1", "L", "LA"}
_COLOR = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"}


def _images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder``; hidden ones (.DS_Store, macOS ._copies) are skipped."""
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in rel.parts)
        if path.suffix.lower() in _SUFFIXES and not hidden and path.is_file():
            yield path


def _holds_images(folder: Path) -> bool:
    return next(_images(folder), None) is not None


@reader(
    "images",
    what="folder of PNG/JPEG images (optionally one subfolder per class)",
    detect=_holds_images,
)
def read_image_folder(path: Path) -> AnnData:
    """All images of one size, pixels in [0, 1], one row each: grayscale flattened from (H, W),
    colour from (3, H, W). obs_names are relative paths; subfolder names become
    ``obs["label"]``.

    Examples
    --------
    >>> adata = read_image_folder(Path("faces"))  # doctest: +SKIP
    >>> adata.uns["vaekit"]["image_shape"]  # doctest: +SKIP
    [3, 64, 64]
    """
    files = sorted(_images(path), key=lambda p: p.relative_to(path).as_posix())
    names = [p.relative_to(path).as_posix() for p in files]
    (width, height), color = _survey(files)
    shape = [3, height, width] if color else [height, width]
    check_dense_fits((len(files), math.prod(shape)), f"the images of {path} as float32 rows")
    X = np.empty((len(files), math.prod(shape)), np.float32)  # (n_images, pixels)
    for i, file in enumerate(files):
        X[i] = _pixels(file, color)
    labels = _folder_labels(names, path)
    return build(X, path, obs_names=names, var_prefix="pixel", labels=labels, image_shape=shape)


def _survey(files: list[Path]) -> tuple[tuple[int, int], bool]:
    """The common size (width, height), and whether any image is in colour; opening an image
    reads its header only, so mismatches are reported before any pixels are decoded."""
    size, color = None, False
    for file in files:
        with _open(file) as image:
            mode, found = image.mode, image.size
        if mode not in _GRAY | _COLOR:
            raise ValueError(
                f"{file} has mode {mode!r}; vaekit reads 8-bit grayscale or colour "
                "images: convert it (e.g. to 8-bit PNG)"
            )
        if size is not None and found != size:
            raise ValueError(
                f"{file} is {_wxh(found)} pixels but {files[0]} is {_wxh(size)}; all "
                "images must have one size: resize or crop them first"
            )
        size = found
        color = color or mode in _COLOR
    return size, color


# what Pillow raises for a damaged or hostile file, besides OSError
_DAMAGED = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@contextmanager
def _open(file: Path) -> Iterator[Image.Image]:
    """``file`` opened by Pillow; any failure, while opening or decoding within the block,
    becomes a ValueError naming the file. An image so large that Pillow warns of a
    decompression bomb is refused too: its pixels would not fit a vaekit row anyway."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                yield image
    except _DAMAGED as err:
        raise ValueError(
            f"{file} is not a readable image ({type(err).__name__}: {err}); remove or "
            "replace it"
        ) from None


def _pixels(file: Path, color: bool) -> np.ndarray:
    # a grayscale image among colour ones is converted to RGB (three equal channels)
    with _open(file) as image:
        values = np.asarray(image.convert("RGB" if color else "L"), dtype=np.float32) / 255
    return (values.transpose(2, 0, 1) if color else values).ravel()  # (3, H, W) or (H, W)


def _folder_labels(names: list[str], folder: Path) -> list[str] | None:
    parents = [name.rpartition("/")[0] for name in names]
    if not any(parents):
        return None
    if not all(parents):
        top = names[parents.index("")]
        inner = names[next(i for i, p in enumerate(parents) if p)]
        raise ValueError(
            f"{folder} has images both in the folder itself (e.g. {top}) and in subfolders "
            f"(e.g. {inner}); put every image in a class subfolder, or none in subfolders"
        )
    return parents


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} (width x height)"
