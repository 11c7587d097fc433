"""Input validation in one place: arrays in, clear errors out (what was received, what to do)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from vaekit._memory import available_memory  # noqa: F401 - tests patch it here
from vaekit.likelihoods import Support

Matrix = np.ndarray | sp.csr_matrix

NAN_HINT = (
    "remove or impute them first, or fit with VAE(missing='mask'), which treats NaN as "
    "missing entries"
)


@dataclass
class Table:
    """A validated samples x features matrix (float32, dense or CSR) and its labels, if any."""

    X: Matrix
    feature_names: list[str] | None = None
    sample_names: pd.Index | None = None

    def location(self, row: int, col: int | None = None) -> str:
        """'row 3 (sample 'S3'), column 5 ('GENE5')' for messages."""
        text = f"row {row}"
        if self.sample_names is not None:
            text += f" (sample {self.sample_names[row]!r})"
        if col is not None:
            text += f", column {col}"
            if self.feature_names is not None:
                text += f" ({self.feature_names[col]!r})"
        return text


def is_anndata(X: Any) -> bool:
    return type(X).__name__ == "AnnData" and type(X).__module__.startswith("anndata")


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of X in its own container (AnnData and DataFrame keep their names; a
    sparse matrix stays CSR). None, and one value for all samples, stay as they are."""
    rows = np.asarray(rows, dtype=int)
    if X is None:
        return X
    if is_anndata(X):
        return X[rows]
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[rows]
    if sp.issparse(X):
        return sp.csr_matrix(X)[rows]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in rows]
    return X if np.ndim(X) == 0 else X[rows]


def as_table(
    X: Any,
    name: str = "X",
    layer: str | None = None,
    allow_nan: bool = False,
    nan_hint: str = NAN_HINT,
) -> Table:
    """Validate ``X`` (numpy, pandas, scipy.sparse, torch, AnnData) into a float32 :class:`Table`.

    ``allow_nan`` lets NaN through as missing entries; ``nan_hint`` says what to do about NaN
    where they are not allowed.

    Raises
    ------
    TypeError, ValueError
        For non-numeric columns, 1-D or empty input, NaN (unless allowed) or infinite values,
        a missing layer.
    """
    feature_names = sample_names = None
    if is_anndata(X):
        X, feature_names, sample_names = _from_anndata(X, layer)
    elif layer is not None:
        raise TypeError(f"layer={layer!r} needs an AnnData; got {type(X).__name__}")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, pd.DataFrame):
        _check_numeric_columns(X, name)
        feature_names = [str(c) for c in X.columns]
        sample_names = X.index
        for j, column in enumerate(X.columns):  # a column at a time: no float64 copy of X
            values = X[column].to_numpy()
            at = beyond_float32(values) if values.dtype.kind == "f" else None
            if at is not None:
                table = Table(X, feature_names, sample_names)
                raise _beyond_float32_error(table, name, at, j, values[at])
        X = X.to_numpy(dtype=np.float32)
    elif sp.issparse(X):
        check_sparse(X, name)
        X = sp.csr_matrix(X)
        check_float32_range(Table(X, feature_names, sample_names), name)
        X = X.astype(np.float32, copy=False)
    else:
        X = _as_float_array(X, name)
    _check_shape(X, name)
    table = Table(X, feature_names, sample_names)
    check_finite(table, name, allow_nan, nan_hint)
    return table


def _from_anndata(adata: Any, layer: str | None) -> tuple[Any, list[str], pd.Index]:
    X = anndata_matrix(adata, layer, "the AnnData")
    return X, [str(v) for v in adata.var_names], pd.Index(adata.obs_names)


def layer_names(adata: Any) -> list[str]:
    """The named layers of an AnnData (anndata 0.13 also lists X itself, under the key None)."""
    return [name for name in adata.layers.keys() if name is not None]


def anndata_matrix(adata: Any, layer: str | None, source: str) -> Any:
    """``adata.X``, or ``adata.layers[layer]`` when a layer is named.

    ``source`` names the AnnData in messages (a file path, or "the AnnData").

    Raises
    ------
    ValueError
        For a layer the AnnData lacks, or an AnnData without X when no layer is named; both
        list the layers there are.
    """
    names = layer_names(adata)
    if layer is not None and layer not in names:
        raise ValueError(f"{source} has no layer {layer!r} (layer=); its layers: {names}")
    X = adata.X if layer is None else adata.layers[layer]
    if X is None:
        raise ValueError(f"{source} has no X; pass layer= one of its layers: {names}")
    return X


def resolve_y(X: Any, y: Any) -> Any:
    """``y`` as given, or the ``obs`` column(s) of an AnnData that ``y`` names."""
    named = isinstance(y, str) or (
        isinstance(y, (list, tuple)) and len(y) > 0 and all(isinstance(v, str) for v in y)
    )
    if not named or not is_anndata(X):
        if isinstance(y, str):
            raise TypeError(
                f"y={y!r} names a column, which needs an AnnData with that obs column; "
                "pass the values instead"
            )
        return y
    columns = [y] if isinstance(y, str) else list(y)
    missing = [c for c in columns if c not in X.obs.columns]
    if missing:
        raise ValueError(f"obs has no column {missing}; its columns: {list(X.obs.columns)}")
    return X.obs[columns].reset_index(drop=True)


def _as_float_array(X: Any, name: str) -> np.ndarray:
    if np.dtype(getattr(X, "dtype", np.float32)).kind == "c":
        check_real(X, name)  # complex: refused rather than cast to its real part
    if isinstance(X, np.ndarray) and X.ndim == 2:
        check_float32_range(Table(X), name)
    try:
        return np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be numeric (numpy, pandas, scipy.sparse or torch); could not convert "
            f"it to numbers: {err}"
        ) from None


def _check_numeric_columns(df: pd.DataFrame, name: str) -> None:
    for column in df.columns:
        if pd.api.types.is_complex_dtype(df[column]):
            check_real(df[column], f"{name} column {column!r}")
    bad = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise TypeError(
            f"{name} has {len(bad)} non-numeric column(s), e.g. {bad[:3]}; drop them or move "
            "sample annotations into y"
        )


def _check_shape(X: Matrix, name: str) -> None:
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (samples x features); got {X.ndim}-D with shape {X.shape}. "
            "Use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {X.shape}; it needs samples and features")


def check_finite(
    table: Table, name: str, allow_nan: bool = False, nan_hint: str = NAN_HINT
) -> None:
    """Raise for infinite values, and for NaN unless ``allow_nan`` (missing entries)."""
    values = _values(table.X)
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        row, col = _first(table.X, bad)
        what, fix = ("infinite", "replace them") if allow_nan else ("NaN or infinite", nan_hint)
        raise ValueError(
            f"{name} has {int(bad.sum())} {what} value(s), the first at "
            f"{table.location(row, col)}; {fix}"
        )


def check_observed(table: Table, name: str = "X", columns: bool = True) -> None:
    """Raise for a sample (and, with ``columns``, a feature) whose entries are all NaN:
    nothing can be learned from it, and a sample with nothing observed has nothing to be
    imputed from."""
    missing = _missing_counts(table.X)
    if missing is None:
        return
    empty_rows = np.flatnonzero(missing.sum(1) == table.X.shape[1])
    if len(empty_rows):
        raise ValueError(
            f"{name} has {len(empty_rows)} sample(s) with no observed value (all NaN), the "
            f"first at {table.location(int(empty_rows[0]))}; drop them: there is nothing to "
            "learn from or impute from"
        )
    empty_cols = np.flatnonzero(missing.sum(0) == table.X.shape[0]) if columns else []
    if len(empty_cols):
        col = int(empty_cols[0])
        label = "" if table.feature_names is None else f" ({table.feature_names[col]!r})"
        raise ValueError(
            f"{name} has {len(empty_cols)} feature(s) with no observed value (all NaN), the "
            f"first at column {col}{label}; drop them: a model cannot learn a feature it "
            "never sees"
        )


def _missing_counts(X: Matrix) -> np.ndarray | sp.csr_matrix | None:
    """The NaN indicator of X (dense, or CSR over its stored values), None without NaN."""
    nan = np.isnan(_values(X))
    if not nan.any():
        return None
    if not sp.issparse(X):
        return nan
    return sp.csr_matrix((nan.astype(np.int64), X.indices, X.indptr), shape=X.shape)


def _values(X: Matrix) -> np.ndarray:
    return X.data if sp.issparse(X) else X


def _first(X: Matrix, bad: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first True in ``bad`` (dense mask, or mask over a CSR's data)."""
    if not sp.issparse(X):
        r, c = np.argwhere(bad)[0]
        return int(r), int(c)
    k = int(np.flatnonzero(bad)[0])
    return int(np.searchsorted(X.indptr, k, side="right") - 1), int(X.indices[k])


def check_support(table: Table, support: Support, likelihood: str) -> None:
    """Raise if ``table`` holds values the likelihood cannot score (its ``Likelihood.support``)."""
    values = _values(table.X)
    bad = None if support.outside is None else support.outside(values)
    if bad is not None:
        row, col = _first(table.X, bad)
        value = values[bad].flat[0]
        raise ValueError(
            f"likelihood {likelihood!r} cannot score {int(bad.sum())} {support.what}, the first "
            f"{value:g} at {table.location(row, col)}; {support.fix}"
        )
    if support.raw_counts:
        _check_no_empty_rows(table, likelihood)


def _check_no_empty_rows(table: Table, likelihood: str) -> None:
    totals = _observed_row_sums(table.X)
    empty = np.flatnonzero(totals == 0)
    if len(empty):
        raise ValueError(
            f"likelihood {likelihood!r} needs a positive total count per sample; "
            f"{len(empty)} sample(s) are all zero, the first at {table.location(int(empty[0]))}; "
            "remove them"
        )


def _observed_row_sums(X: Matrix) -> np.ndarray:
    """Row totals of the entries that are not NaN."""
    if sp.issparse(X):
        X = sp.csr_matrix((np.nan_to_num(X.data), X.indices, X.indptr), shape=X.shape)
        return np.asarray(X.sum(axis=1)).ravel()
    return np.nansum(X, axis=1)


def align_features(
    table: Table, n_expected: int, expected_names: Sequence[str] | None, name: str = "X"
) -> Table:
    """Match ``table``'s columns to the fitted features: by name when both sides have names
    (reordered columns work, extra ones are dropped), else by count."""
    if expected_names is not None and table.feature_names is not None:
        return _align_by_name(table, list(expected_names), name)
    got = table.X.shape[1]
    if got != n_expected:
        raise ValueError(
            f"{name} has {got} features but the model was fitted on {n_expected}; pass the same "
            "features, in the same order"
        )
    return table


def _align_by_name(table: Table, expected: list[str], name: str) -> Table:
    position = {f: i for i, f in enumerate(table.feature_names)}
    missing = [f for f in expected if f not in position]
    if missing:
        raise ValueError(
            f"{name} lacks {len(missing)} of the model's {len(expected)} features, e.g. "
            f"{missing[:5]}; pass a table with these columns"
        )
    wanted = set(expected)
    extra = [f for f in table.feature_names if f not in wanted]
    if extra:
        warnings.warn(
            f"{name} has {len(extra)} feature(s) the model was not fitted on, e.g. {extra[:5]}; "
            "they are ignored",
            stacklevel=4,
        )
    order = [position[f] for f in expected]
    if order == list(range(len(table.feature_names))):
        return table
    return Table(table.X[:, order], expected, table.sample_names)


def check_length(n_rows: int, n_expected: int, what: str) -> None:
    if n_rows != n_expected:
        raise ValueError(f"{what} has {n_rows} rows but X has {n_expected}; pass one per sample")


# ---------------------------------------------------------------------- sparse structure
# A corrupt index array makes scipy's compiled routines read and write out of bounds (a crash,
# or silently wrong numbers), so every sparse matrix is checked here before any use.
SPARSE_FIX = (
    "the file is damaged or was written by hand: write it again (scipy.sparse.save_npz, "
    "AnnData.write_h5ad, Cell Ranger), or pass a dense matrix"
)


def check_sparse(X: Any, source: str) -> None:
    """Raise unless the scipy.sparse matrix ``X`` is structurally sound and real-valued.

    CSR/CSC/BSR: ``indptr`` has one entry per row (column) plus one, starts at 0, never
    decreases and ends at the number of stored values; ``indices`` lie in ``[0, n)``. COO:
    row and column indices within the shape. Other formats are built by scipy itself and
    only have their values checked. ``source`` names the matrix in messages.

    Raises
    ------
    ValueError
        Naming ``source``, what is wrong, and what to do.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> check_sparse(sp.eye(3, format="csr"), "X")
    """
    shape = _sparse_shape(X, source)
    check_real(X, source)
    fmt = X.format
    if fmt in ("csr", "csc", "bsr"):
        blocks = X.blocksize if fmt == "bsr" else (1, 1)
        n_major, n_minor = shape if fmt != "csc" else shape[::-1]
        if fmt == "bsr":
            n_major, n_minor = n_major // blocks[0], n_minor // blocks[1]
        check_compressed(X.indptr, X.indices, len(X.data), (n_major, n_minor), source,
                         "rows" if fmt != "csc" else "columns")
    elif fmt == "coo":
        for name, index, n in (("row", X.row, shape[0]), ("column", X.col, shape[1])):
            _check_indices(index, n, source, f"{name} indices")
            if len(index) != len(X.data):
                raise ValueError(
                    f"{source} has {len(index)} {name} indices for {len(X.data)} values; "
                    f"{SPARSE_FIX}"
                )


def check_compressed(
    indptr: Any,
    indices: Any,
    n_data: int,
    shape: tuple[int, int],
    source: str,
    major: str = "rows",
) -> None:
    """Raise unless (``indptr``, ``indices``) describe a valid compressed sparse matrix.

    ``shape`` is (rows, columns) for CSR, (columns, rows) for CSC (``major`` names the first,
    for messages); ``n_data`` is the number of stored values. Works on numpy arrays and on
    array-likes read lazily (h5py datasets), so a file is checked before a matrix is built.
    """
    n_major, n_minor = (int(s) for s in shape)
    indptr = np.asarray(indptr)
    for name, array in (("indptr", indptr), ("indices", indices)):
        kind = array.dtype.kind
        if kind not in "iu" or getattr(array, "ndim", 1) != 1:
            raise ValueError(
                f"{source}: {name} must be a 1-D integer array, got {array.dtype} with shape "
                f"{array.shape}; {SPARSE_FIX}"
            )
    if len(indptr) != n_major + 1:
        raise ValueError(
            f"{source}: indptr has {len(indptr)} entries but the matrix has {n_major} {major}, "
            f"so it needs {n_major + 1}; {SPARSE_FIX}"
        )
    nnz = len(indices)
    if int(indptr[0]) != 0 or int(indptr[-1]) != nnz or n_data != nnz:
        raise ValueError(
            f"{source}: indptr runs from {int(indptr[0])} to {int(indptr[-1])} over {nnz} "
            f"indices and {n_data} values; it must run from 0 to the number of stored values, "
            f"with one index per value; {SPARSE_FIX}"
        )
    steps = np.diff(indptr)
    if len(steps) and steps.min() < 0:
        at = int(np.argmax(steps < 0))
        raise ValueError(
            f"{source}: indptr decreases at entry {at + 1} ({int(indptr[at])} then "
            f"{int(indptr[at + 1])}); it must never decrease; {SPARSE_FIX}"
        )
    _check_indices(indices, n_minor, source, "indices")


_INDEX_BLOCK = 1 << 24  # indices read in blocks: an h5py dataset need not fit in memory twice


def _check_indices(indices: Any, n: int, source: str, what: str) -> None:
    """Raise unless every index lies in [0, n); reads ``indices`` a block at a time."""
    for start in range(0, len(indices), _INDEX_BLOCK):
        block = np.asarray(indices[start : start + _INDEX_BLOCK])
        if block.dtype.kind not in "iu":
            raise ValueError(f"{source}: {what} must be integers, got {block.dtype}; {SPARSE_FIX}")
        bad = (block < 0) | (block >= n)
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(
                f"{source}: {what} hold {int(block[at])} at position {start + at}, outside "
                f"0..{n - 1} (the matrix has {n}); {SPARSE_FIX}"
            )


def _sparse_shape(X: Any, source: str) -> tuple[int, int]:
    shape = tuple(int(s) for s in X.shape)
    if len(shape) != 2 or min(shape) < 0:
        raise ValueError(f"{source} is a sparse matrix of shape {shape}; {SPARSE_FIX}")
    return shape


def check_real(values: Any, source: str) -> None:
    """Raise unless ``values`` (an array, or anything with a dtype) holds real numbers.

    Complex values would lose their imaginary part in the float32 cast, silently.
    """
    kind = np.dtype(values.dtype).kind
    if kind == "c":
        raise ValueError(
            f"{source} holds complex numbers ({values.dtype}); vaekit reads real values: pass "
            "the real part, the magnitude (abs) or both as separate features"
        )
    if kind not in "biuf":
        raise ValueError(
            f"{source} holds {values.dtype} values, not numbers; vaekit reads numeric matrices"
        )


# ---------------------------------------------------------------------- memory
MEMORY_FIX = (
    "select fewer features (e.g. the most variable genes), keep the data sparse (.npz, .h5ad, "
    "10x), or use fewer samples"
)
GIB = 1 << 30


def check_fits(n_bytes: int, what: str, fix: str = MEMORY_FIX) -> None:
    """Raise before allocating ``n_bytes`` when they exceed the memory available.

    ``what`` says what would be allocated ("a dense float32 copy of X (1000 x 200000)").

    Raises
    ------
    ValueError
        Naming the size needed, the size available and what to do.
    """
    available = available_memory()
    if available is not None and n_bytes > available:
        raise ValueError(
            f"{what} would need {format_bytes(n_bytes)} of memory but only "
            f"{format_bytes(available)} is available; {fix}"
        )


def check_dense_fits(shape: Sequence[int], what: str, itemsize: int = 4) -> None:
    """:func:`check_fits` for a dense array of ``shape`` (float32 by default)."""
    n_bytes = math.prod(int(s) for s in shape) * itemsize
    dims = " x ".join(str(int(s)) for s in shape)
    check_fits(n_bytes, f"{what} ({dims}, {itemsize} bytes each)")


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # not reached


# ---------------------------------------------------------------------- float32 range
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_FIX = (
    "vaekit computes in float32, where such a value becomes infinite: rescale the data "
    "(e.g. log1p, or divide by a constant) or fix the value"
)
_RANGE_BLOCK = 1 << 22


def beyond_float32(values: np.ndarray) -> int | None:
    """The flat (C-order) position of the first finite value too large for float32, or None.

    Only wider floats can hold one; a block of values is checked at a time, so no copy of a
    large array is made.
    """
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4:
        return None
    flat = values.reshape(-1)
    for start in range(0, flat.size, _RANGE_BLOCK):
        block = flat[start : start + _RANGE_BLOCK]
        with np.errstate(invalid="ignore"):
            bad = (np.abs(block) > FLOAT32_MAX) & np.isfinite(block)
        if bad.any():
            return start + int(np.argmax(bad))
    return None


def check_float32_range(table: Table, name: str) -> None:
    """Raise for a finite value beyond float32's range (|x| > 3.4e38), which the cast to
    float32 would turn into inf; the message names its row and column.

    ``table.X`` is dense or CSR, in its original (wider) dtype.
    """
    values = _values(table.X)
    at = beyond_float32(values)
    if at is None:
        return
    if sp.issparse(table.X):
        row, col = int(np.searchsorted(table.X.indptr, at, side="right") - 1), table.X.indices[at]
    else:
        row, col = np.unravel_index(at, values.shape)
    raise _beyond_float32_error(table, name, int(row), int(col), values.reshape(-1)[at])


def _beyond_float32_error(table: Table, name: str, row: int, col: int, value: float) -> ValueError:
    return ValueError(
        f"{name} holds {value:g} at {table.location(row, col)}, beyond float32's range "
        f"(+-3.4e38); {FLOAT32_FIX}"
    )
