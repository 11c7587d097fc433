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

from vaekit.data.readers.common import build, numeric_matrix, opened
from vaekit.data.readers.registry import reader

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
    """The array in an IDX file, after checking its magic number and size."""
    with opened(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _TYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, "
            "expected 00000803 (images) or 00000801 (labels)"
        )
    ndim = raw[3]
    start = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:start]) if len(raw) >= start else ()
    dtype = np.dtype(_TYPES[raw[2]])
    expected = start + math.prod(dims) * dtype.itemsize
    if len(dims) != ndim or len(raw) != expected:
        promise = " x ".join(map(str, dims)) or "?"
        raise ValueError(
            f"{path} is truncated or corrupt: its IDX header promises {promise} {dtype.name} "
            f"values ({expected} bytes with the header) but it holds {len(raw)} bytes; "
            "download it again"
        )
    return np.frombuffer(raw, dtype, offset=start).reshape(dims)


def _labels_beside(images: Path) -> Path | None:
    """train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte[.gz], if that file exists."""
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    if name == images.name:
        return None
    stem = name.removesuffix(".gz")
    candidates = (images.parent / n for n in (name, stem, stem + ".gz"))
    return next((p for p in candidates if p.is_file()), None)


def _read_labels(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist (labels=)")
    labels = parse_idx(path)
    if labels.shape != (n,):
        raise ValueError(
            f"{path} holds labels of shape {labels.shape} but the images file has {n} images; "
            "pass the labels file that belongs to these images"
        )
    return labels
