"""Helpers every reader shares: opening (g)zipped files, building the AnnData, checking names."""

from __future__ import annotations

import gzip
import io
import re
import stat
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vaekit import validation
from vaekit.validation import MEMORY_FIX, format_bytes

Matrix = np.ndarray | sp.csr_matrix

# names a 1-D label array may have in NPZ, MATLAB and HDF5 files when labels= is not given
LABEL_NAMES = ("y", "Y", "labels", "label")

_SYMBOL = re.compile(r"^[A-Z][A-Za-z0-9\-\.]{1,14}(\|\d+)?$")  # TP53, HLA-A, A1BG|1
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")  # ENSG00000141510, ENSMUSG...


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_regular(path: Path, what: str = "data") -> None:
    """Raise unless ``path`` (after symbolic links) is a regular file.

    A FIFO would block a reader forever and a device such as /dev/zero never ends, so
    neither is ever opened.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {path} does not exist") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder, not a file ({what})")
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ValueError(
            f"{path} is {kind}, not a regular file; vaekit reads {what} from files only: save "
            "the data to a file first"
        )


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


@contextmanager
def gzip_errors(path: Path) -> Iterator[None]:
    """Turn the errors of a damaged gzip stream into a ValueError that names the file."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path} is not a valid gzip file ({err}); it may be truncated or not compressed: "
            "download it again, or remove the .gz ending if it is plain text"
        ) from None


@contextmanager
def opened(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading bytes, decompressed when its name ends in ``.gz``.

    Only a regular file is opened, and no more bytes are read than memory could hold: a
    gzip bomb is refused with the size reached instead of exhausting memory.
    """
    check_regular(path)
    limit = read_limit()
    if limit is not None and not is_gzip(path) and path.stat().st_size > limit:
        raise _too_big(path, path.stat().st_size, limit)
    with gzip_errors(path), gzip.open(path) if is_gzip(path) else open(path, "rb") as f:
        if limit is None or not is_gzip(path):
            yield f
        else:  # only a decompressed stream can outgrow its file
            yield io.BufferedReader(_Bounded(f, limit, path))


def read_limit() -> int | None:
    """The most bytes a reader may take from one file: the memory available now."""
    return validation.available_memory()


def _too_big(path: Path, size: int, limit: int) -> ValueError:
    return ValueError(
        f"{path} holds more than {format_bytes(size)} of data, and reading it would need at "
        f"least that much memory, but {format_bytes(limit)} is available; {MEMORY_FIX}"
    )


class _Bounded(io.RawIOBase):
    """A byte stream that raises once more than ``limit`` bytes have come through it."""

    def __init__(self, raw: IO[bytes], limit: int, path: Path) -> None:
        self.raw, self.limit, self.path, self.count = raw, limit, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n
        if self.count > self.limit:
            raise _too_big(self.path, self.count, self.limit)
        return n


def build(
    X: Any,
    source: Path,
    *,
    obs_names: Sequence[str] | None = None,
    var_names: Sequence[str] | None = None,
    var_prefix: str = "feature",
    labels: Any = None,
    var: pd.DataFrame | None = None,
    image_shape: Sequence[int] | None = None,
) -> AnnData:
    """The AnnData every reader returns: float32 X (dense or CSR), unique string names.

    Missing names become ``sample_0..`` and ``{var_prefix}_0..``; ``labels`` go to
    ``obs["label"]`` as a categorical of strings.
    """
    n, m = _shape(X, source)
    obs = pd.DataFrame(index=names(obs_names, n, "sample", source, "sample IDs"))
    var = pd.DataFrame(index=pd.RangeIndex(m)) if var is None else var.reset_index(drop=True)
    var.index = names(var_names, m, var_prefix, source, "feature names")
    X = as_float32(X, source, obs.index, var.index)
    if labels is not None:
        obs["label"] = as_labels(labels, n, source)
    adata = AnnData(X=X, obs=obs, var=var)
    adata.uns["vaekit"] = {"source": str(source)}
    if image_shape is not None:
        adata.uns["vaekit"]["image_shape"] = [int(s) for s in image_shape]
    return adata


def _shape(X: Any, source: Path) -> tuple[int, int]:
    shape = X.shape if hasattr(X, "shape") else np.shape(X)
    if len(shape) != 2:
        raise ValueError(f"{source} holds a {len(shape)}-D array; vaekit reads samples x features")
    return shape


def as_float32(
    X: Any, source: Path, obs_names: pd.Index | None = None, var_names: pd.Index | None = None
) -> Matrix:
    """X as a 2-D float32 numpy array or CSR matrix; sparse input is never made dense.

    Sparse structure is checked before any use, complex values are refused, and so are
    values beyond float32's range (named by row and column) and a matrix too large for
    the memory available.
    """
    what = str(source)
    _shape(X, source)
    if sp.issparse(X):
        validation.check_sparse(X, what)
        X = sp.csr_matrix(X)
    else:
        X = np.asarray(X)
        validation.check_real(X, what)
        if X.dtype != np.float32:
            validation.check_dense_fits(X.shape, f"{source} as a float32 matrix")
    validation.check_float32_range(validation.Table(X, var_names, obs_names), what)
    X = X.astype(np.float32, copy=False) if sp.issparse(X) else np.ascontiguousarray(X, np.float32)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{source} holds no data: its matrix has shape {X.shape}")
    return X


def numeric_matrix(
    array: np.ndarray, source: Path, name: str | None = None
) -> tuple[np.ndarray, list[int] | None]:
    """A numeric array as (samples x features, image shape): (n, H, W[, C]) images are flattened."""
    what = "the array" if name is None else f"array {name!r}"
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(
            f"{source}: {what} holds {array.dtype} values, not numbers; vaekit reads numeric "
            "matrices"
        )
    if array.ndim == 2:
        return array, None
    if array.ndim in (3, 4):
        # samples first; the rest is one image, kept for reshaping samples back
        return array.reshape(array.shape[0], -1), list(array.shape[1:])
    raise ValueError(
        f"{source}: {what} has shape {array.shape}; vaekit reads a 2-D samples x features "
        "matrix (or 3-D/4-D images, samples first): reshape it (e.g. a.reshape(-1, 1) for one "
        "feature) and save it again"
    )


def names(given: Sequence[Any] | None, n: int, prefix: str, source: Path, what: str) -> pd.Index:
    """``given`` as a unique string index of length ``n``, or ``prefix_0..`` when absent."""
    if given is None:
        return pd.Index([f"{prefix}_{i}" for i in range(n)])
    index = pd.Index([as_str(v) for v in given], dtype=object)
    if len(index) != n:
        raise ValueError(f"{source} has {len(index)} {what} for {n} entries; they must match")
    if (index == "").any():
        raise ValueError(
            f"{source}: {what} must not be empty; entry {int(np.argmax(index == ''))} (0-based) "
            "has none"
        )
    check_unique(index, source, what)
    return index


def check_unique(index: pd.Index, source: Path, what: str) -> None:
    repeated = index[index.duplicated()].unique()
    if len(repeated):
        raise ValueError(
            f"{source} has {len(repeated)} duplicate {what}, e.g. {list(repeated[:5])}; "
            f"{what} must be unique: rename or remove the repeats"
        )


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_labels(values: Any, n: int, source: Path) -> pd.Categorical:
    """Labels as a categorical of strings, categories in numeric order when they are numbers."""
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.ravel()  # MATLAB stores vectors as (n, 1) or (1, n)
    if values.shape != (n,):
        raise ValueError(
            f"{source}: labels have shape {values.shape} but there are {n} samples; "
            "pass one label per sample (a 1-D array)"
        )
    if values.dtype.kind == "f" and np.isfinite(values).all() and (values == values.round()).all():
        values = values.astype(np.int64)  # HDF5 files often store class numbers as floats
    order = np.unique(values) if values.dtype.kind in "iub" else None
    strings = [None if v is None else as_str(v) for v in values]  # None: no label
    known = {s for s in strings if s is not None}
    categories = [as_str(v) for v in order] if order is not None else sorted(known)
    return pd.Categorical(strings, categories=categories)


def guess_labels(arrays: Mapping[str, Any], n: int, skip: str) -> Any | None:
    """The first array named like labels (``y``, ``labels``, ...) holding ``n`` values, if any;
    one of another length is left alone, since nobody asked for it."""
    for name in LABEL_NAMES:
        if name in arrays and name != skip and np.size(arrays[name]) == n:
            return arrays[name]
    return None


def looks_like_genes(labels: pd.Index) -> bool:
    """Whether most of the names look like gene symbols (A1BG, TP53|7157) or Ensembl IDs.

    Sample IDs like S1, S2, ... match the symbol pattern too, so many distinct letter
    prefixes are also required: gene symbols come from thousands of families.
    """
    head = [str(v) for v in labels[:2000]]
    if sum(bool(_ENSEMBL.match(v)) for v in head) > len(head) / 2:
        return True
    symbols = [v for v in head if _SYMBOL.match(v)]
    prefixes = {re.match(r"[A-Za-z]*", v).group() for v in symbols}
    return len(symbols) > len(head) / 2 and len(prefixes) >= max(3, len(symbols) / 10)


def warn_if_genes_are_rows(adata: AnnData, source: Path) -> None:
    """Warn when a tall table's row names look like genes: samples were probably columns."""
    n, m = adata.shape
    if n > 5 * m and looks_like_genes(adata.obs_names):
        warnings.warn(
            f"{source} has {n} rows and {m} columns, and its row names look like genes "
            f"(e.g. {list(adata.obs_names[:3])}); vaekit reads samples as rows. If the samples "
            "are the columns, pass transpose=True (CLI: --transpose)",
            UserWarning,
            stacklevel=3,
        )
