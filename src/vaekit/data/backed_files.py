"""Backed AnnData files: read without loading the matrix, checked as it streams, written
by copying the file (see :mod:`vaekit.data.backed` for the reading of rows)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vaekit._memory import release_freed_memory
from vaekit.atomic import atomic_file
from vaekit.data.backed import BackedMatrix, row_sums_of
from vaekit.likelihoods import Support
from vaekit.validation import Table, is_anndata


def is_backed(X: Any) -> bool:
    """Whether X is an AnnData whose matrices stay in its file (``backed="r"``)."""
    return is_anndata(X) and bool(X.isbacked)


def read_h5ad(path: Path, layer: str | None = None) -> anndata.AnnData:
    """An ``.h5ad`` file as a backed AnnData (anndata's ``backed="r"``): obs and var in
    memory, the matrix left in the file; checked without reading it (names unique, the
    matrix's layout, shape, type and row pointers).

    Examples
    --------
    >>> adata = read_h5ad(Path("atlas.h5ad"))  # doctest: +SKIP
    >>> adata.isbacked  # doctest: +SKIP
    True
    """
    try:
        adata = anndata.read_h5ad(path, backed="r")
    except Exception as err:  # anndata and h5py raise many kinds for one damaged file
        raise ValueError(
            f"{path} is not a readable .h5ad file ({type(err).__name__}: "
            f"{str(err).strip()[:300]}); write it again with AnnData.write_h5ad"
        ) from None
    try:
        for index, what in ((adata.obs_names, "sample IDs (obs_names)"),
                            (adata.var_names, "feature names (var_names)")):
            _check_unique(index, path, what)
        BackedMatrix(path, matrix_key(adata, layer, path)).close()  # checks the layout
    except BaseException:
        adata.file.close()
        raise
    _slim_names(adata)
    vaekit = {**adata.uns.get("vaekit", {}), "source": str(path), "backed": True}
    adata.uns["vaekit"] = vaekit if layer is None else {**vaekit, "layer": layer}
    return adata


def _slim_names(adata: anndata.AnnData) -> None:
    """Hold a backed file's sample names as Arrow strings: about 20 bytes a name, where
    Python strings and their hash table take about 170, the largest cost of backed data that
    grows with the cells (0.15 GB a million). Written files get them back as plain strings."""
    index = adata.obs.index
    adata.obs.index = pd.Index(pd.array(index.to_numpy(), dtype="string[pyarrow]"),
                               name=index.name)
    del index
    release_freed_memory()


def in_memory_bytes(path: str | os.PathLike, layer: str | None = None) -> int | None:
    """Bytes the matrix of an AnnData or 10x HDF5 file would take read into memory (float32,
    CSR with 64-bit pointers, or dense), from its layout alone; None for another file or a
    matrix that is neither."""
    try:
        with h5py.File(path, "r") as f:
            if isinstance(f.get("matrix"), h5py.Group) and layer is None:  # 10x HDF5
                item = f["matrix"]
            elif f.attrs.get("encoding-type") not in ("anndata", b"anndata"):
                return None
            else:
                item = f.get("X" if layer is None else f"layers/{layer}")
            if isinstance(item, h5py.Dataset) and item.ndim == 2:
                return int(np.prod(item.shape)) * 4
            if isinstance(item, h5py.Group) and "data" in item and "indptr" in item:
                return len(item["data"]) * 8 + len(item["indptr"]) * 8
    except OSError:
        pass
    return None


def write_h5ad(adata: anndata.AnnData, path: str | os.PathLike) -> Path:
    """Write a backed AnnData with its annotations (obs, obsm) as they are now: its file
    copied byte for byte (the matrix is never loaded), those two rewritten in the copy. A
    matrix linked from another file (a 10x HDF5 file's) is copied in by HDF5, chunk by chunk,
    so that the output stands alone."""
    with atomic_file(path) as tmp:
        shutil.copyfile(adata.filename, tmp)
        with h5py.File(tmp, "r+") as f:
            _copy_linked(f)
            obs = adata.obs.set_axis(adata.obs.index.astype(object), axis=0)
            for key, value in (("obs", obs), ("obsm", dict(adata.obsm))):
                if key in f:
                    del f[key]
                _write_elem(f, key, value)
    return Path(path)


def _copy_linked(f: h5py.File) -> None:
    """Replace the external links under ``X`` by copies of what they point to."""
    X = f.get("X")
    for key in list(X) if isinstance(X, h5py.Group) else ():
        link = X.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            with h5py.File(link.filename, "r") as source:
                del X[key]
                source.copy(source[link.path], X, name=key)


def matrix_key(adata: anndata.AnnData, layer: str | None, source: Any) -> str:
    """Where the matrix of a backed AnnData (``X`` or a layer) is in its file."""
    if layer is None:
        return "X"
    names = [k for k in adata.layers.keys() if k is not None]
    if layer not in names:
        raise ValueError(f"{source} has no layer {layer!r} (layer=); its layers: {names}")
    return f"layers/{layer}"


def _check_unique(index: pd.Index, source: Path, what: str) -> None:
    repeated = index[index.duplicated()].unique()
    if len(repeated):
        raise ValueError(
            f"{source} has {len(repeated)} duplicate {what}, e.g. {list(repeated[:5])}; "
            f"{what} must be unique: rename or remove the repeats"
        )


def backed_table(
    adata: anndata.AnnData,
    layer: str | None,
    support: Support,
    likelihood: str,
    preprocessor: Any = None,
) -> Table:
    """The matrix of a backed AnnData as a :class:`Table` over a :class:`BackedMatrix`,
    checked in one streaming pass (finite values, the likelihood's support, a positive total
    per sample for counts), whose row totals are kept for the library-size prior. With a
    fitted ``preprocessor`` (one with steps), its transform is applied to each block as it
    is read, and the checks and totals are those of what the model reads."""
    path = Path(adata.filename)
    X = BackedMatrix(path, matrix_key(adata, layer, path))
    names = [str(v) for v in adata.var_names]
    if preprocessor is not None and preprocessor.steps:
        X.preprocessed(preprocessor.transform)
        names = preprocessor.output_features(names)
    table = Table(X, names, pd.Index(adata.obs_names))
    X.sums = np.concatenate([_checked(table, start, rows, support, likelihood)
                             for start, rows in X.blocks()])
    return table


def stored_table(adata: anndata.AnnData, layer: str | None) -> Table:
    """The matrix of a backed AnnData as stored, unchecked (the preprocessed table that the
    model reads is checked as it streams: :func:`backed_table`)."""
    path = Path(adata.filename)
    X = BackedMatrix(path, matrix_key(adata, layer, path))
    return Table(X, [str(v) for v in adata.var_names], pd.Index(adata.obs_names))


def _checked(
    table: Table, start: int, rows: np.ndarray | sp.csr_matrix, support: Support, likelihood: str
) -> np.ndarray:
    """The row totals of a block of ``table``'s rows starting at ``start``, once checked."""
    values = rows.data if sp.issparse(rows) else rows
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{table.X.path} has {int(bad.sum())} NaN or infinite value(s) in rows from {start}, "
            f"the first at {_where(table, start, rows, bad)}; remove or impute them first "
            "(backed data cannot hold missing entries)"
        )
    bad = None if support.outside is None else support.outside(values)
    if bad is not None and bad.any():
        raise ValueError(
            f"likelihood {likelihood!r} cannot score {support.what} in {table.X.path}, the "
            f"first {values[bad].flat[0]:g} at {_where(table, start, rows, bad)}; {support.fix}"
        )
    sums = row_sums_of(rows)
    empty = np.flatnonzero(sums == 0)
    if support.raw_counts and len(empty):
        raise ValueError(
            f"likelihood {likelihood!r} needs a positive total count per sample; the sample at "
            f"{table.location(start + int(empty[0]))} of {table.X.path} is all zero; remove it"
        )
    return sums


def _where(table: Table, start: int, rows: np.ndarray | sp.csr_matrix, bad: np.ndarray) -> str:
    """'row 3 (sample 'S3'), column 5 ('G5')' of the first True of ``bad`` over a block."""
    if sp.issparse(rows):
        k = int(np.flatnonzero(bad)[0])
        row, col = int(np.searchsorted(rows.indptr, k, side="right") - 1), int(rows.indices[k])
    else:
        row, col = (int(v) for v in np.argwhere(bad)[0])
    return table.location(start + row, col)


def _write_elem(group, key: str, value) -> None:
    """anndata's ``write_elem``: in ``anndata.io`` from 0.11, ``anndata.experimental`` before."""
    try:
        from anndata.io import write_elem
    except ImportError:  # anndata 0.10, the oldest release vaekit supports
        from anndata.experimental import write_elem
    write_elem(group, key, value)
