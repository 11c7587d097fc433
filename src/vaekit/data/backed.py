"""Out-of-core rows: an AnnData file read in blocks of rows, never whole.

:class:`BackedMatrix` reads row ranges of a dense or CSR matrix stored in an ``.h5ad`` file
(with h5py, in anndata's on-disk layout). :class:`BackedRows` hands training its rows: an
epoch's order is a shuffled order of contiguous blocks of rows, shuffled again within a
buffer of several blocks, and a background thread reads the next buffer while the current one
trains, so memory holds a few buffers, not the matrix.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from vaekit.atomic import atomic_file
from vaekit.likelihoods import Support
from vaekit.validation import Table, is_anndata

BLOCK_BYTES = 1 << 20  # stored bytes per block: reads large enough to be fast, yet small
BLOCK_ROWS = (64, 16384)  # bounds on the rows of a block
BUFFER_BLOCKS = 16  # blocks whose rows are shuffled together
TIMEOUT = 0.1  # seconds between the reader's checks for a stop


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
    vaekit = {**adata.uns.get("vaekit", {}), "source": str(path), "backed": True}
    adata.uns["vaekit"] = vaekit if layer is None else {**vaekit, "layer": layer}
    return adata


def in_memory_bytes(path: str | os.PathLike, layer: str | None = None) -> int | None:
    """Bytes the matrix of an AnnData file would take read into memory (float32, CSR with
    64-bit pointers, or dense), from its layout alone; None for a file that is not AnnData
    or whose matrix is neither."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("encoding-type") not in ("anndata", b"anndata"):
                return None
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
    copied byte for byte (the matrix is never loaded), those two rewritten in the copy."""
    with atomic_file(path) as tmp:
        shutil.copyfile(adata.filename, tmp)
        with h5py.File(tmp, "r+") as f:
            for key, value in (("obs", adata.obs), ("obsm", dict(adata.obsm))):
                if key in f:
                    del f[key]
                anndata.io.write_elem(f, key, value)
    return Path(path)


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


class BackedMatrix:
    """A samples x features matrix in an HDF5 file, read by row ranges as float32.

    Parameters
    ----------
    path : str or Path
        The ``.h5ad`` file.
    key : str
        The matrix in it: ``"X"`` or ``"layers/NAME"``; a dataset (dense) or a group in
        anndata's CSR layout (``data``, ``indices``, ``indptr``, attribute ``shape``).

    Examples
    --------
    >>> X = BackedMatrix("big.h5ad")  # doctest: +SKIP
    >>> X.read(0, 100).shape  # doctest: +SKIP
    (100, 2000)
    """

    def __init__(self, path: str | Path, key: str = "X") -> None:
        self.path, self.key = Path(path), key
        self._file = h5py.File(self.path, "r")
        try:
            self._open(self._file.get(key))
        except BaseException:
            self._file.close()
            raise
        self.block_rows = _block_rows(self.bytes_per_row())
        self.sums: np.ndarray | None = None  # row totals, set by the validating pass

    ndim = 2

    def _open(self, item: Any) -> None:
        where = f"{self.path}: {self.key}"
        self.sparse = isinstance(item, h5py.Group)
        if self.sparse:
            encoding = item.attrs.get("encoding-type")
            encoding = encoding.decode() if isinstance(encoding, bytes) else encoding
            if encoding != "csr_matrix":
                raise ValueError(
                    f"{where} is stored as {encoding}; backed reading needs rows (CSR): "
                    "write it once as CSR (adata.X = adata.X.tocsr(); adata.write_h5ad(...))"
                )
            self.shape = tuple(int(s) for s in item.attrs["shape"])
            self._data, self._indices = item["data"], item["indices"]
            self.indptr = np.asarray(item["indptr"][()], dtype=np.int64)  # (n + 1,) kept
            check_compressed_pointers(self.indptr, len(self._data), self.shape[0], where)
        elif isinstance(item, h5py.Dataset) and item.ndim == 2:
            self.shape, self._dense = tuple(item.shape), item
        else:
            raise ValueError(f"{where} is not a 2-D matrix (found {item}); it cannot be read")
        self.dtype = (self._data if isinstance(item, h5py.Group) else item).dtype
        if self.dtype.kind not in "biuf" or min(self.shape) == 0:
            raise ValueError(
                f"{where} is a {self.shape} matrix of {self.dtype}; vaekit reads a non-empty "
                "matrix of real numbers"
            )

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        kind = "CSR" if self.sparse else "dense"
        return f"BackedMatrix({str(self.path)!r}, {self.key!r}, {kind}, shape={self.shape})"

    def bytes_per_row(self) -> float:
        """Mean stored bytes of a row (values and, for CSR, column indices)."""
        if not self.sparse:
            return self.shape[1] * self.dtype.itemsize
        per_value = self.dtype.itemsize + self._indices.dtype.itemsize
        return max(1.0, self.indptr[-1] * per_value / max(1, self.shape[0]))

    def read(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        """Rows ``start:stop`` as float32: CSR for a sparse matrix, else a dense array."""
        if not self.sparse:
            return np.asarray(self._dense[start:stop], dtype=np.float32)
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        indices = self._indices[lo:hi]
        if len(indices) and (indices.min() < 0 or indices.max() >= self.shape[1]):
            raise ValueError(
                f"{self.path}: {self.key} has column indices outside 0..{self.shape[1] - 1} "
                f"in rows {start}..{stop - 1}; the file is damaged: write it again"
            )
        data = np.asarray(self._data[lo:hi], dtype=np.float32)
        return sp.csr_matrix(
            (data, indices, self.indptr[start : stop + 1] - lo), shape=(stop - start, self.shape[1])
        )

    def blocks(self) -> Iterator[tuple[int, np.ndarray | sp.csr_matrix]]:
        """(first row, rows) for consecutive blocks of ``block_rows`` rows."""
        for start in range(0, self.shape[0], self.block_rows):
            yield start, self.read(start, min(start + self.block_rows, self.shape[0]))

    def rows(self, index: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """The rows ``index`` (any order, repeats allowed), read as sorted spans per block."""
        index = np.asarray(index, dtype=np.int64)
        wanted, inverse = np.unique(index, return_inverse=True)
        parts = []
        for block in np.split(wanted, np.flatnonzero(np.diff(wanted // self.block_rows)) + 1):
            if len(block):
                part = self.read(int(block[0]), int(block[-1]) + 1)
                whole = part.shape[0] == len(block)  # every row of the span: no copy
                parts.append(part if whole else part[block - block[0]])
        stacked = _stack(parts, self.sparse, self.shape[1])
        in_order = len(wanted) == len(index) and (np.diff(index) > 0).all()
        return stacked if in_order else stacked[inverse]

    __getitem__ = rows  # what checkpoint fingerprints take: X[rows]

    def close(self) -> None:
        self._file.close()


def check_compressed_pointers(indptr: np.ndarray, n_data: int, n_rows: int, where: str) -> None:
    """Raise unless ``indptr`` can index rows of ``n_data`` stored values; the column indices
    are checked block by block as they are read (:meth:`BackedMatrix.read`)."""
    fix = "the file is damaged: write it again with AnnData.write_h5ad"
    if indptr.shape != (n_rows + 1,) or indptr[0] != 0 or indptr[-1] != n_data:
        raise ValueError(
            f"{where}: indptr has {len(indptr)} entries from {indptr[:1].tolist()} to "
            f"{indptr[-1:].tolist()}; {n_rows} rows of {n_data} stored values need "
            f"{n_rows + 1} entries from 0 to {n_data}; {fix}"
        )
    if (np.diff(indptr) < 0).any():
        raise ValueError(f"{where}: indptr decreases; it must never decrease; {fix}")


def _block_rows(bytes_per_row: float) -> int:
    return int(np.clip(BLOCK_BYTES // bytes_per_row, *BLOCK_ROWS))


def _stack(parts: list, sparse: bool, n_cols: int) -> np.ndarray | sp.csr_matrix:
    if not parts:
        return sp.csr_matrix((0, n_cols), dtype=np.float32) if sparse else np.zeros((0, n_cols))
    if len(parts) == 1:
        return parts[0]
    return sp.vstack(parts, format="csr") if sparse else np.concatenate(parts)


def _dense(rows: np.ndarray | sp.csr_matrix) -> np.ndarray:
    return rows.toarray() if sp.issparse(rows) else rows


@dataclass
class _Plan:
    """One epoch's order: its batches, and the buffers the reader fills, as runs of rows."""

    batches: list[torch.Tensor]
    rows: np.ndarray  # (n,) the epoch's rows, batches concatenated
    bounds: np.ndarray  # (n_buffers + 1,) where each buffer starts in ``rows``
    batch_size: int

    def __post_init__(self) -> None:
        self.number = {id(b): k for k, b in enumerate(self.batches)}  # the batch given back


class BackedRows:
    """Rows of a :class:`BackedMatrix` for training and inference (the ``Rows`` protocol).

    ``order`` plans an epoch; ``take`` then serves its batches from buffers that a reader
    thread fills one ahead, and reads any other rows directly (validation, inference).

    Parameters
    ----------
    X : BackedMatrix
    device : torch.device or str
    buffer_blocks : int
        Blocks of rows shuffled together (a larger buffer mixes more, holds more memory).
    """

    def __init__(
        self,
        X: BackedMatrix,
        device: torch.device | str = "cpu",
        buffer_blocks: int = BUFFER_BLOCKS,
    ) -> None:
        self.X, self.device, self.buffer_blocks = X, torch.device(device), buffer_blocks
        self._plan: _Plan | None = None
        self._reader: _Reader | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    def row_sums(self) -> np.ndarray:
        """(n,) row totals, summed in float64, as float32 like the in-memory row sources."""
        if self.X.sums is None:
            self.X.sums = np.concatenate([_row_sums(rows) for _, rows in self.X.blocks()])
        return self.X.sums.astype(np.float32)

    def order(
        self, index: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> list[torch.Tensor]:
        """The epoch's minibatches over ``index`` (this process's rows): blocks of rows in a
        shuffled order, rows shuffled within each buffer of ``buffer_blocks`` blocks; a last
        batch of one row dropped. Fully decided by ``generator``."""
        self._stop()
        batches, order, bounds = block_order(
            index.cpu(), self.X.block_rows, self.buffer_blocks, batch_size, generator
        )
        self._plan = _Plan(batches, order.numpy(), bounds, batch_size)
        return batches

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """(len(index), n_features) float32 rows on the device."""
        at = self._batch_number(index)
        if at is None:
            rows = self.X.rows(index.cpu().numpy())
        else:
            rows = self._planned(at)
        return torch.from_numpy(_dense(rows)).to(self.device)

    def _batch_number(self, index: torch.Tensor) -> int | None:
        """Which batch of the planned epoch ``index`` is (None when it is none of them)."""
        plan = self._plan
        k = None if plan is None else plan.number.get(id(index))
        return k if k is not None and plan.batches[k] is index else None

    def _planned(self, k: int) -> np.ndarray | sp.csr_matrix:
        plan = self._plan
        start = k * plan.batch_size
        stop = start + len(plan.batches[k])
        if self._reader is None or self._reader.start > start:
            self._stop()
            first = int(np.searchsorted(plan.bounds, start, side="right") - 1)
            self._reader = _Reader(self.X, plan, first)
        out = self._reader.span(start, stop)
        if k == len(plan.batches) - 1:
            self._stop()
        return out

    def _stop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __del__(self) -> None:
        self._stop()


def block_order(
    index: torch.Tensor,
    block_rows: int,
    buffer_blocks: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[list[torch.Tensor], torch.Tensor, np.ndarray]:
    """(batches, their concatenation, where each buffer starts in it) for one epoch over
    ``index``: the blocks of ``block_rows`` rows that ``index`` touches, in a random order,
    grouped by ``buffer_blocks`` into buffers whose rows are shuffled; split into batches, a
    last batch of one row dropped (batch norm needs two).

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> batches, order, bounds = block_order(torch.arange(10), 4, 2, 3, gen)
    >>> sorted(order.tolist()) == list(range(10)), len(bounds) - 1  # two buffers
    (True, 2)
    """
    block = index // block_rows
    blocks = torch.unique(block)
    blocks = blocks[torch.randperm(len(blocks), generator=generator)]
    buffer_of = torch.empty(int(blocks.max()) + 1 if len(blocks) else 0, dtype=torch.long)
    buffer_of[blocks] = torch.arange(len(blocks)) // buffer_blocks
    buffer = buffer_of[block]
    counts = torch.bincount(buffer, minlength=-(-len(blocks) // buffer_blocks))
    grouped = index[torch.argsort(buffer, stable=True)].split(counts.tolist())
    runs = [run[torch.randperm(len(run), generator=generator)] for run in grouped]
    order = torch.cat(runs) if runs else index[:0]
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches, order, np.concatenate([[0], np.cumsum(counts.numpy())]).astype(np.int64)


def _row_sums(rows: np.ndarray | sp.csr_matrix) -> np.ndarray:
    return np.asarray(rows.sum(axis=1), dtype=np.float64).ravel()


class _Failure:
    """An exception raised in the reader thread, handed to the main thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Reader:
    """A thread that reads an epoch's buffers in order, one ahead of training.

    The queue holds one buffer: memory holds the buffers a batch spans, the queued one and
    the one being read. The thread ends after the last buffer, on :meth:`close`, or at an
    exception, which :meth:`span` raises in the main thread.
    """

    def __init__(self, X: BackedMatrix, plan: _Plan, first: int) -> None:
        self.X, self.plan = X, plan
        self.start = int(plan.bounds[first])  # the first row position still held
        self._held: list[tuple[int, int, Any]] = []  # (start, stop, _buffer) of read buffers
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first,), daemon=True)
        self._thread.start()

    def _run(self, first: int) -> None:
        bounds = self.plan.bounds
        try:
            for b in range(first, len(bounds) - 1):
                start, stop = int(bounds[b]), int(bounds[b + 1])
                if not self._put((start, stop, self._buffer(start, stop))):
                    return
        except BaseException as err:  # handed over, raised in the main thread
            self._put(_Failure(err))

    def _buffer(self, start: int, stop: int) -> tuple[Any, np.ndarray]:
        """(the rows of positions ``start:stop`` in file order, where each position's row is
        in them): kept in file order, a batch is picked from them, so no shuffled copy of
        the whole buffer is made."""
        rows = self.plan.rows[start:stop]
        ordered = np.sort(rows)
        return self.X.rows(ordered), np.searchsorted(ordered, rows)

    def _put(self, item: Any) -> bool:
        """Queue ``item`` unless closed first; whether it was queued."""
        while not self._done.is_set():
            try:
                self._queue.put(item, timeout=TIMEOUT)
                return True
            except queue.Full:
                continue
        return False

    def span(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        """The rows at positions ``start:stop`` of the epoch's order."""
        self._held = [h for h in self._held if h[1] > start]
        self.start = self._held[0][0] if self._held else start
        while not self._held or self._held[-1][1] < stop:
            item = self._get()
            self._held.append(item)
        parts = [rows[at[max(start, a) - a : min(stop, b) - a]] for a, b, (rows, at)
                 in self._held if a < stop and b > start]
        return _stack(parts, self.X.sparse, self.X.shape[1])

    def _get(self) -> tuple[int, int, Any]:
        while True:
            try:
                item = self._queue.get(timeout=TIMEOUT)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError(f"the reader of {self.X.path} ended early") from None
        if isinstance(item, _Failure):
            self.close()
            raise _named(item.error, self.X.path)
        return item

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def _named(error: BaseException, path: Path) -> BaseException:
    """``error`` with the file named: read errors become a ValueError (a damaged file is the
    user's to fix); others keep their type, with a note."""
    if isinstance(error, ValueError) and str(path) in str(error):
        return error
    if isinstance(error, (OSError, KeyError, ValueError)):
        out = ValueError(f"could not read {path} ({type(error).__name__}: {error})")
        out.__cause__ = error
        return out
    error.add_note(f"while reading {path} in the background")
    return error


def backed_table(
    adata: anndata.AnnData, layer: str | None, support: Support, likelihood: str
) -> Table:
    """The matrix of a backed AnnData as a :class:`Table` over a :class:`BackedMatrix`,
    checked in one streaming pass (finite values, the likelihood's support, a positive total
    per sample for counts), whose row totals are kept for the library-size prior."""
    path = Path(adata.filename)
    X = BackedMatrix(path, matrix_key(adata, layer, path))
    table = Table(X, [str(v) for v in adata.var_names], pd.Index(adata.obs_names))
    X.sums = np.concatenate([_checked(table, start, rows, support, likelihood)
                             for start, rows in X.blocks()])
    return table


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
    sums = _row_sums(rows)
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
