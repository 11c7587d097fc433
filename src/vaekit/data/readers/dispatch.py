"""``read``: the single entry point, which looks the format up in the registry."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vaekit.data import backed_files as backed_reader

# imported for their @reader registrations
from vaekit.data.readers import arrays, hdf5, idx, images, tables, tenx  # noqa: F401
from vaekit.data.readers.annotations import join_annotations
from vaekit.data.readers.common import check_regular, warn_if_genes_are_rows
from vaekit.data.readers.registry import Reader, find_reader


def read(
    path: str | os.PathLike,
    *,
    transpose: bool = False,
    sample_column: str | None = None,
    layer: str | None = None,
    labels: str | os.PathLike | None = None,
    sep: str | None = None,
    annotations: str | os.PathLike | pd.DataFrame | None = None,
    annotation_key: str | None = None,
    format: str | None = None,
    backed: bool = False,
) -> AnnData:
    """Read a data file or folder into an AnnData with one row per sample.

    ``X`` is float32, dense or (for sparse inputs) CSR; ``obs_names`` are sample IDs,
    ``var_names`` feature names, both unique strings; images are flattened rows with their
    shape in ``uns["vaekit"]["image_shape"]`` and pixels in [0, 1]; ``uns["vaekit"]["source"]``
    records the path.

    Parameters
    ----------
    path
        A file: CSV/TSV/TXT (optionally ``.gz``), Parquet (``.parquet``, ``.pq``), NumPy
        (``.npy``, ``.npz``, incl. ``scipy.sparse.save_npz``), AnnData (``.h5ad``), HDF5
        (``.h5``, ``.hdf5``: dataset ``X`` with labels ``Y``, or 10x HDF5), MATLAB (``.mat``),
        MNIST IDX (``*-ubyte[.gz]``, ``.idx``), 10x ``matrix.mtx[.gz]``. Or a folder: a 10x
        folder (``matrix.mtx[.gz]``, ``barcodes.tsv[.gz]``, ``features.tsv[.gz]``/``genes.tsv``)
        or PNG/JPEG images (subfolder names become ``obs["label"]``).
    transpose
        The file has samples as columns (genes x samples): swap rows and columns after reading.
    sample_column
        Tables: the column of sample IDs (default: the first column; for Parquet a saved
        index, or the first column when it is text).
    layer
        Which matrix of a container: an ``.h5ad`` layer, an ``.npz`` array, a ``.mat``
        variable or an HDF5 dataset (default ``X``).
    labels
        Where sample labels are, put into ``obs["label"]``: a table column (removed from the
        features), an ``.npz``/``.mat``/HDF5 array (default ``y``/``labels``/``Y`` when
        present), or an IDX labels file (default: the ``*-labels-idx1-ubyte`` file beside).
    sep
        Field separator of a text table (default: ``,`` for .csv, tab for .tsv and .txt).
    annotations
        A CSV/TSV file (optionally ``.gz``) or DataFrame of sample annotations, joined onto
        ``obs`` by sample ID; see :func:`~vaekit.data.readers.annotations.join_annotations`.
    annotation_key
        The annotations' column of sample IDs (default: sample / sample_id / barcode, else the
        first column).
    format
        Override detection by name: a file ending such as ``"tsv"`` or ``".csv.gz"``, or
        ``"10x"`` / ``"images"`` for folders.
    backed
        Leave the matrix of an AnnData file (``.h5ad``) in the file: a backed AnnData
        (anndata's ``backed="r"``) that ``VAE.fit``, ``transform`` and ``score_samples`` read
        in blocks of rows, for data larger than memory. Checked without reading the matrix
        (names, layout, shape, type); its values are checked as they stream.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError, TypeError
        For an unknown format, malformed contents or options the format does not take; the
        message names the file, the row or column, and what to do. Also for a path that is
        not a regular file (a FIFO, a device, a socket), a damaged sparse matrix (checked
        before any use), complex values or values beyond float32's range, and data that
        would not fit in the memory available (refused before it is allocated).

    Examples
    --------
    >>> import vaekit
    >>> adata = vaekit.read("tcga.tsv.gz", annotations="phenotypes.tsv")  # doctest: +SKIP
    >>> adata.obs["cohort"].value_counts()  # doctest: +SKIP
    """
    if annotation_key is not None and annotations is None:
        raise TypeError("annotation_key= names a column of annotations=, which was not given")
    path = _existing(path)
    entry = find_reader(path, format)
    if backed:
        return _read_backed(path, entry, layer, transpose, annotations)
    options = {"sample_column": sample_column, "layer": layer, "labels": labels, "sep": sep}
    adata = entry.read(path, **_options_for(entry, options, path))
    if transpose:
        adata = _transposed(adata)
    else:
        warn_if_genes_are_rows(adata, path)
    if annotations is not None:
        join_annotations(adata, annotations, key=annotation_key)
    adata.uns.setdefault("vaekit", {})["source"] = str(path)
    return adata


def _read_backed(
    path: Path, entry: Reader, layer: str | None, transpose: bool, annotations: object
) -> AnnData:
    kind = _hdf5_kind(path) if entry.read in (hdf5.read_h5ad, hdf5.read_hdf5) else None
    if kind is None:
        raise ValueError(
            f"backed=True reads AnnData files (.h5ad) and 10x HDF5 files; {path.name} is a "
            f"{entry.what}{' (neither)' if entry.read is hdf5.read_hdf5 else ''}: read it "
            "without backed=True, or write it once as .h5ad (vaekit.read(path).write_h5ad(...))"
        )
    if kind == "10x" and layer is not None:
        raise ValueError(f"{path.name} is a 10x HDF5 file, which has no layers (layer={layer!r})")
    if transpose or annotations is not None:
        given = "transpose=True" if transpose else "annotations="
        raise ValueError(
            f"{given} changes the data in memory and cannot apply to backed data ({path.name}); "
            "read it without backed=True, or write the changed file first"
        )
    if kind == "10x":
        return hdf5.read_10x_h5_backed(path)
    return backed_reader.read_h5ad(path, layer)


def _hdf5_kind(path: Path) -> str | None:
    """"anndata" or "10x" for the HDF5 files that can be read backed, else None."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("encoding-type") in ("anndata", b"anndata"):
                return "anndata"
            return "10x" if isinstance(f.get("matrix"), h5py.Group) else None
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err})") from None


def _existing(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file or folder name, got {type(path).__name__}")
    path = Path(path).expanduser()
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise FileNotFoundError(f"no such file or folder: {path}{where}")
    if not path.is_dir():
        check_regular(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    return path


def _options_for(entry: Reader, options: dict[str, object], path: Path) -> dict[str, object]:
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(set(given) - entry.options)
    if unused:
        raise TypeError(
            f"{', '.join(k + '=' for k in unused)} {'does' if len(unused) == 1 else 'do'} not "
            f"apply to {path.name}, a {entry.what}; "
            f"it takes {sorted(k + '=' for k in entry.options) or 'no format options'}"
        )
    return given


def _transposed(adata: AnnData) -> AnnData:
    flipped = adata.transpose()
    X = flipped.X
    flipped.X = sp.csr_matrix(X) if sp.issparse(X) else np.ascontiguousarray(X)
    vaekit = dict(flipped.uns.get("vaekit", {}))
    vaekit.pop("image_shape", None)  # rows are no longer images
    flipped.uns["vaekit"] = {**vaekit, "transposed": True}
    return flipped
