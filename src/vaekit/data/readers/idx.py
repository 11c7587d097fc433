"""IDX files, the format of MNIST and Fashion-MNIST (optionally gzipped).

Format: http://yann.lecun.com/exdb/mnist/ - magic 0x0000TTDD (T: value type, D: number of
dimensions), then D big-endian uint32 sizes, then the values in C order.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
from anndata import AnnData

from vaekit.data.readers.common import build, check_regular, numeric_matrix, opened
from vaekit.data.readers.registry import reader
from vaekit.validation import check_fits

# IDX type byte -> numpy type (multi-byte values are big-endian)
_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@reader("-ubyte", "-ubyte.gz", ".idx", ".idx.gz", what="IDX file (MNIST)", options=("labels",))
def read_idx(path: Path, *, labels: str | os.PathLike | None = None) -> AnnData:
    """IDX images (n, H, W) flattened to rows, uint8 pixels scaled to [0, 1]; labels from the
    ``labels`` IDX file, else the ``*-labels-idx1-ubyte[.gz]`` file beside the images.

    Examples
    --------
    >>> adata = read_idx(Path("train-images-idx3-ubyte.gz"))  # doctest: +SKIP
    >>> adata.uns["vaekit"]["image_shape"]  # doctest: +SKIP
    [28, 28]
    """
    images = parse_idx(path)
    if images.ndim == 1:
        raise ValueError(
            f"{path} is an IDX labels file (one value per sample); pass the images file "
            "(e.g. train-images-idx3-ubyte.gz), whose labels beside it are found by name"
        )
    X, image_shape = numeric_matrix(images, path, "images")
    X = X.astype(np.float32)
    if images.dtype == np.uint8:
        X /= 255  # 8-bit pixels to [0, 1], as Bernoulli and Beta likelihoods need
    label_path = Path(labels) if labels is not None else _labels_beside(path)
    y = _read_labels(label_path, len(X)) if label_path else None
    adata = build(X, path, var_prefix="pixel", labels=y, image_shape=image_shape)
    if label_path:
        adata.uns["vaekit"]["labels_source"] = str(label_path)
    return adata


def parse_idx(path: Path) -> np.ndarray:
    """The array in an IDX file, after checking its magic number, and its size against the
    header and the memory available, before the values are read."""
    with opened(path) as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] or magic[1] or magic[2] not in _TYPES:
            raise ValueError(
                f"{path} is not an IDX file: its magic number is {magic.hex() or 'missing'}, "
                "expected 00000803 (images) or 00000801 (labels)"
            )
        ndim, dtype = magic[3], np.dtype(_TYPES[magic[2]])
        sizes = f.read(4 * ndim)
        dims = struct.unpack(f">{ndim}I", sizes) if len(sizes) == 4 * ndim else ()
        n_bytes = math.prod(dims) * dtype.itemsize
        if len(dims) == ndim:
            check_fits(n_bytes, f"{path} (IDX, {' x '.join(map(str, dims))} {dtype.name})")
        raw = f.read(n_bytes + 1) if len(dims) == ndim else b""  # one more: is there extra?
    if len(dims) != ndim or len(raw) != n_bytes:
        promise = " x ".join(map(str, dims)) or "?"
        held = 4 + len(sizes) + len(raw)
        raise ValueError(
            f"{path} is truncated or corrupt: its IDX header promises {promise} {dtype.name} "
            f"values ({4 + 4 * ndim + n_bytes} bytes with the header) but it holds "
            f"{held if len(raw) <= n_bytes else 'more'} bytes; download it again"
        )
    return np.frombuffer(raw, dtype).reshape(dims)


def _labels_beside(images: Path) -> Path | None:
    """train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte[.gz], if that file exists."""
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    if name == images.name:
        return None
    stem = name.removesuffix(".gz")
    candidates = (images.parent / n for n in (name, stem, stem + ".gz"))
    return next((p for p in candidates if p.is_file()), None)


def _read_labels(path: Path, n: int) -> np.ndarray:
    check_regular(path, "labels")
    labels = parse_idx(path)
    if labels.shape != (n,):
        raise ValueError(
            f"{path} holds labels of shape {labels.shape} but the images file has {n} images; "
            "pass the labels file that belongs to these images"
        )
    return labels
