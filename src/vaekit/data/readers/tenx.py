"""10x Genomics Matrix Market folders (Cell Ranger v2 and v3 layouts), read as sparse CSR.

v2: ``matrix.mtx``, ``genes.tsv`` (id, symbol), ``barcodes.tsv``;
v3: ``matrix.mtx.gz``, ``features.tsv.gz`` (id, symbol, type), ``barcodes.tsv.gz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from anndata import AnnData
from anndata.utils import make_index_unique

from vaekit.data.readers.common import build, gzip_errors, opened
from vaekit.data.readers.registry import reader
from vaekit.validation import check_fits

_MATRIX = ("matrix.mtx.gz", "matrix.mtx")
_FEATURES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
_BARCODES = ("barcodes.tsv.gz", "barcodes.tsv")
_WHAT = "10x folder (matrix.mtx[.gz], barcodes.tsv[.gz], features.tsv[.gz] or genes.tsv)"


def _holds_matrix(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _MATRIX)


@reader("10x", what=_WHAT, detect=_holds_matrix)
def read_10x_folder(path: Path) -> AnnData:
    """Cells x genes CSR counts from a 10x folder; gene symbols made unique as var_names,
    Ensembl IDs in ``var["gene_ids"]``.

    Examples
    --------
    >>> adata = read_10x_folder(Path("filtered_feature_bc_matrix"))  # doctest: +SKIP
    """
    return _read_mtx(_find(path, _MATRIX), path)


@reader(".mtx", ".mtx.gz", what="10x matrix.mtx file with its barcodes and features beside it")
def read_10x_matrix(path: Path) -> AnnData:
    """The 10x folder that holds this ``matrix.mtx[.gz]``."""
    return _read_mtx(path, path.parent)


def tenx_adata(
    X: sp.spmatrix,
    source: Path,
    barcodes: Sequence[str],
    gene_ids: Sequence[str],
    symbols: Sequence[str],
    feature_types: Sequence[str] | None = None,
) -> AnnData:
    """AnnData from a cells x genes matrix and 10x names (also used for 10x HDF5 files)."""
    var = pd.DataFrame({"gene_ids": list(gene_ids)})
    if feature_types is not None:
        var["feature_types"] = list(feature_types)
    # 10x repeats some symbols (e.g. two Ensembl genes named TBCE): suffix -1, -2 as scanpy does
    unique = make_index_unique(pd.Index(list(symbols), dtype=object))
    return build(sp.csr_matrix(X), source, obs_names=barcodes, var_names=unique, var=var)


def _read_mtx(matrix: Path, folder: Path) -> AnnData:
    features = _columns(_find(folder, _FEATURES))
    barcodes = _columns(_find(folder, _BARCODES))[0]
    _check_mtx_header(matrix)
    with gzip_errors(matrix):
        try:
            counts = scipy.io.mmread(matrix)  # (genes, cells)
        except ValueError as err:
            raise ValueError(f"{matrix} is not a readable Matrix Market file ({err})") from None
    _check_sizes(counts.shape, len(features[0]), len(barcodes), matrix)
    symbols = features[1] if len(features) > 1 else features[0]
    types = features[2] if len(features) > 2 else None
    X = sp.csr_matrix(counts.T, dtype=np.float32)  # (cells, genes)
    return tenx_adata(X, folder, barcodes, features[0], symbols, types)


def _check_mtx_header(matrix: Path) -> None:
    """Refuse complex values, and a declared size that is impossible or would not fit in
    memory, before any entry is read."""
    layout, field, (rows, cols, entries) = _mtx_header(matrix)
    if field == "complex":
        raise ValueError(
            f"{matrix} holds complex values; vaekit reads real counts: write the real part "
            "(or the magnitude) instead"
        )
    if min(rows, cols, entries) < 0 or entries > rows * cols:
        raise ValueError(
            f"{matrix} declares {entries} entries in a {rows} x {cols} matrix, which cannot "
            "be; the file is damaged: write it again"
        )
    stored = rows * cols if layout == "array" else entries
    # coordinates and values (8 bytes each) as read, then the CSR copy
    check_fits(stored * (8 + 8 + 8) * 2, f"{matrix} ({stored} stored values)")


def _mtx_header(matrix: Path) -> tuple[str, str, tuple[int, int, int]]:
    """(layout, field, (rows, columns, entries)) from a Matrix Market header; lines are read
    with a bounded length, so a binary file is refused quickly."""
    with gzip_errors(matrix), opened(matrix) as f:
        banner = f.readline(1024).decode("ascii", "replace").split()
        line = f.readline(1024)
        while line.startswith(b"%") or not line.strip():
            if not line:
                break
            line = f.readline(1024)
    sizes = line.split()
    if banner[:2] != ["%%MatrixMarket", "matrix"] or len(banner) < 5 or not all(
        s.isdigit() for s in sizes
    ):
        raise ValueError(
            f"{matrix} is not a readable Matrix Market file: it should begin with "
            "'%%MatrixMarket matrix coordinate integer general' and a line of sizes"
        )
    counts = [int(s) for s in sizes]
    if banner[2].lower() == "array":  # no number of entries: rows x columns values
        counts = counts[:2] + [counts[0] * counts[1] if len(counts) >= 2 else -1]
    if len(counts) != 3:
        raise ValueError(f"{matrix}: its size line {line[:80]!r} should hold 3 numbers")
    return banner[2].lower(), banner[3].lower(), tuple(counts)


def _find(folder: Path, candidates: Sequence[str]) -> Path:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir())[:10] if folder.is_dir() else []
    raise ValueError(
        f"{folder} lacks {' or '.join(candidates)}; a {_WHAT} needs all three files "
        f"(it holds {present})"
    )


def _columns(path: Path) -> list[list[str]]:
    """The columns of a header-less TSV such as barcodes.tsv or features.tsv."""
    with opened(path) as f:
        try:
            table = pd.read_csv(f, sep="\t", header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path} is empty; it needs one line per row of the matrix") from None
    return [table[c].tolist() for c in table.columns]


def _check_sizes(shape: tuple[int, int], n_genes: int, n_cells: int, matrix: Path) -> None:
    if shape != (n_genes, n_cells):
        raise ValueError(
            f"{matrix} has shape {shape} (genes x cells) but its folder lists {n_genes} features "
            f"and {n_cells} barcodes; the three files must come from the same run"
        )
