"""HDF5 files: AnnData (.h5ad), 10x HDF5 (Cell Ranger v3), and plain files holding a
cells x genes dataset ``X`` with optional labels ``Y`` (the scDCC / scDeepCluster layout)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import anndata
import h5py
import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from vaekit.data import backed_files
from vaekit.data.readers.common import (
    as_float32,
    as_str,
    build,
    check_unique,
    guess_labels,
    numeric_matrix,
)
from vaekit.data.readers.registry import reader
from vaekit.data.readers.tenx import tenx_adata
from vaekit.validation import (
    anndata_matrix,
    check_compressed,
    check_dense_fits,
    check_fits,
    check_real,
)

_SPARSE = ("csr_matrix", "csc_matrix")
# optional name datasets beside X, tried in order
_OBS_NAMES = ("obs_names", "cell_names", "barcodes", "cells")
_VAR_NAMES = ("var_names", "gene_names", "genes", "features")


@reader(".h5ad", what="AnnData .h5ad file", options=("layer",))
def read_h5ad(path: Path, *, layer: str | None = None) -> AnnData:
    """An AnnData file; ``layer`` picks ``adata.layers[layer]`` as X (kept in float32).

    Examples
    --------
    >>> adata = read_h5ad(Path("pbmc.h5ad"), layer="counts")  # doctest: +SKIP
    """
    check_sparse_groups(path)
    try:
        adata = anndata.read_h5ad(path)
    except MemoryError:
        raise
    except Exception as err:  # anndata and h5py raise many kinds for one damaged file
        raise ValueError(
            f"{path} is not a readable .h5ad file ({type(err).__name__}: {_first_line(err)}); "
            "write it again with AnnData.write_h5ad"
        ) from None
    X = anndata_matrix(adata, layer, str(path))
    adata.X = as_float32(X, path, adata.obs_names, adata.var_names)
    check_unique(adata.obs_names, path, "sample IDs (obs_names)")
    check_unique(adata.var_names, path, "feature names (var_names)")
    adata.uns["vaekit"] = {**adata.uns.get("vaekit", {}), "source": str(path)}
    if "image_shape" in adata.uns["vaekit"]:  # saved as an array; callers expect a list
        adata.uns["vaekit"]["image_shape"] = [int(s) for s in adata.uns["vaekit"]["image_shape"]]
    if layer is not None:
        adata.uns["vaekit"]["layer"] = layer
    return adata


@reader(".h5", ".hdf5", what="HDF5 file", options=("layer", "labels"))
def read_hdf5(path: Path, *, layer: str | None = None, labels: str | None = None) -> AnnData:
    """An HDF5 file: a 10x HDF5 file (group ``matrix``), an AnnData file, or a dataset ``X``
    (or ``layer``) of cells x genes with optional labels ``Y`` (or ``labels``).

    Examples
    --------
    >>> adata = read_hdf5(Path("10X_PBMC_top2000.h5"))  # doctest: +SKIP
    >>> adata.obs["label"].value_counts()  # doctest: +SKIP
    """
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err})") from None
    with f:
        if f.attrs.get("encoding-type") != "anndata":
            if isinstance(f.get("matrix"), h5py.Group):
                return _read_10x_h5(f["matrix"], path)
            return _read_plain(f, path, layer or "X", labels)
    return read_h5ad(path, layer=layer)  # an AnnData file named .h5


def check_sparse_groups(path: Path) -> None:
    """Check every sparse matrix stored in an AnnData file before anndata builds it: a
    damaged ``indptr`` or ``indices`` would make scipy read out of bounds (a crash)."""
    try:
        with h5py.File(path, "r") as f:
            found: list[tuple[str, h5py.Group]] = []
            f.visititems(lambda name, item: _collect_sparse(name, item, found))
            for name, group in found:
                _check_sparse_group(group, f"{path}: {name}")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({_first_line(err)})") from None


def _collect_sparse(name: str, item: object, found: list) -> None:
    if isinstance(item, h5py.Group) and _text_attr(item, "encoding-type") in _SPARSE:
        found.append((name, item))
    elif isinstance(item, h5py.Dataset) and item.dtype.kind in "biufc":
        # a compressed dataset may be far larger in memory than in the file
        check_fits(item.size * item.dtype.itemsize, f"{item.file.filename}: {name} {item.shape}")


def _check_sparse_group(group: h5py.Group, source: str) -> None:
    parts = ("data", "indices", "indptr")
    missing = [k for k in parts if not isinstance(group.get(k), h5py.Dataset)]
    shape = group.attrs.get("shape")
    if missing or shape is None or np.shape(shape) != (2,):
        raise ValueError(
            f"{source} is a sparse matrix without {missing or ['a shape of 2 numbers']}; "
            "the file is damaged: write it again with AnnData.write_h5ad"
        )
    csr = _text_attr(group, "encoding-type") == "csr_matrix"
    n_major, n_minor = (int(s) for s in (shape if csr else shape[::-1]))
    check_real(group["data"], source)
    check_compressed(
        group["indptr"], group["indices"], len(group["data"]), (n_major, n_minor), source,
        "rows" if csr else "columns",
    )


def _text_attr(item: h5py.HLObject, key: str) -> str | None:
    value = item.attrs.get(key)
    return as_str(value) if isinstance(value, (str, bytes)) else None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def _read_plain(f: h5py.File, path: Path, name: str, labels: str | None) -> AnnData:
    if not isinstance(f.get(name), h5py.Dataset):
        raise ValueError(
            f"{path} has no dataset {name!r}; it holds {_contents(f)}. vaekit reads an HDF5 "
            "file with a cells x genes dataset 'X' (optional labels 'Y'), a 10x HDF5 file "
            "(group 'matrix') or an AnnData file; pass layer='NAME' to read another dataset"
        )
    check_dense_fits(f[name].shape, f"{path}: dataset {name!r} as float32")
    # convert while reading: a float64 file never sits in memory at double size
    X = f[name].astype(np.float32)[()] if f[name].dtype.kind in "iuf" else f[name][()]
    X, image_shape = numeric_matrix(X, path, name)
    if labels is not None and labels not in f:
        raise ValueError(f"{path} has no dataset {labels!r} (labels=); it holds {_contents(f)}")
    found = guess_labels(f, X.shape[0], skip=name) if labels is None else f[labels]
    return build(
        X,
        path,
        obs_names=_names(f, _OBS_NAMES),
        var_names=_names(f, _VAR_NAMES),
        var_prefix="gene",
        labels=None if found is None else found[()],
        image_shape=image_shape,
    )


def _names(f: h5py.File, candidates: tuple[str, ...]) -> list[str] | None:
    for name in candidates:
        if isinstance(f.get(name), h5py.Dataset) and f[name].ndim == 1:
            return [as_str(v) for v in f[name][()]]
    return None


def _read_10x_h5(group: h5py.Group, path: Path) -> AnnData:
    n_cells, n_genes = tenx_shape(group, path)
    # 10x stores genes x cells in CSC, which is the same arrays as cells x genes in CSR
    source = f"{path}: matrix"
    check_real(group["data"], source)
    check_compressed(
        group["indptr"], group["indices"], len(group["data"]), (n_cells, n_genes), source, "cells"
    )
    X = sp.csr_matrix(
        (group["data"][()].astype(np.float32), group["indices"][()], group["indptr"][()]),
        shape=(n_cells, n_genes),
    )
    return tenx_names(group, path, X)


def read_10x_h5_backed(path: Path) -> AnnData:
    """A 10x HDF5 file as a backed AnnData whose counts stay in the 10x file.

    10x stores genes x cells in CSC, which is the same arrays as cells x genes in CSR, so
    nothing is converted: a small ``.h5ad`` in a temporary folder (removed when Python exits)
    holds the names, and its ``X`` links to the 10x file's arrays (HDF5 external links). The
    counts are checked as they stream, as a backed ``.h5ad``'s are.
    """
    with h5py.File(path, "r") as f:
        n_cells, n_genes = tenx_shape(f["matrix"], path)
        names = tenx_names(f["matrix"], path, sp.csr_matrix((n_cells, n_genes), dtype=np.float32))
    folder = Path(tempfile.mkdtemp(prefix="vaekit-10x-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    shim = folder / f"{path.stem}.h5ad"
    names.write_h5ad(shim)
    with h5py.File(shim, "r+") as f:
        for key in ("data", "indices", "indptr"):
            del f["X"][key]
            f["X"][key] = h5py.ExternalLink(str(path.resolve()), f"/matrix/{key}")
    adata = backed_files.read_h5ad(shim)
    adata.uns["vaekit"] = {**adata.uns["vaekit"], "source": str(path)}
    return adata


def tenx_shape(group: h5py.Group, path: Path) -> tuple[int, int]:
    """(cells, genes) of a 10x HDF5 file's ``matrix`` group, once its parts are checked."""
    need = ("data", "indices", "indptr", "shape", "barcodes", "features/id", "features/name")
    missing = [k for k in need if k not in group]
    if missing:
        raise ValueError(
            f"{path} looks like a 10x HDF5 file (group 'matrix') but lacks {missing}; "
            "vaekit reads the Cell Ranger v3 layout"
        )
    shape = np.asarray(group["shape"][()])
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0:
        raise ValueError(f"{path}: matrix/shape is {shape.tolist()}, not (genes, cells)")
    n_genes, n_cells = (int(v) for v in shape)
    return n_cells, n_genes


def tenx_names(group: h5py.Group, path: Path, X: sp.spmatrix) -> AnnData:
    """An AnnData of X with the barcodes and features of a 10x HDF5 file's ``matrix``."""
    types = _text(group, "features/feature_type") if "features/feature_type" in group else None
    return tenx_adata(
        X,
        path,
        _text(group, "barcodes"),
        _text(group, "features/id"),
        _text(group, "features/name"),
        types,
    )


def _text(group: h5py.Group, key: str) -> list[str]:
    return [as_str(v) for v in group[key][()]]


def _contents(f: h5py.File) -> list[str]:
    """The first datasets of the file with shape and type, for messages."""
    found: list[str] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and len(found) < 12:
            found.append(f"{name} {item.shape} {item.dtype}")

    f.visititems(visit)
    return found
