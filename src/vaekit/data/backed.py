"""Out-of-core rows: an AnnData file read in blocks of rows, never whole.

:class:`BackedMatrix` reads row ranges of a dense or CSR matrix stored in an ``.h5ad`` file
(with h5py, in anndata's on-disk layout). :class:`BackedRows` hands training its rows: an
epoch's order is a shuffled order of contiguous blocks of rows, shuffled again within a
buffer of several blocks, and a background thread reads the next buffer while the current one
trains, so memory holds a few buffers, not the matrix.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp
import torch

BLOCK_BYTES = 1 << 19  # stored bytes per block: reads large enough to be fast, yet small
BLOCK_ROWS = (64, 16384)  # bounds on the rows of a block
BUFFER_BLOCKS = 16  # blocks whose rows are shuffled together
TIMEOUT = 0.1  # seconds between the reader's checks for a stop


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
        self._stored_sparse, self._stored_cols = self.sparse, self.shape[1]
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

    def preprocessed(self, transform: Any) -> None:
        """Pass every row read through ``transform`` (a fitted row-wise preprocessing, such as
        :meth:`Preprocessor.transform`) from now on: what the model reads is then what it was
        fitted on, one block at a time. The row totals are then those of the output."""
        first = transform(self._read(0, 1))
        self.transform, self.sums = transform, None
        self.shape, self.sparse = (self.shape[0], first.shape[1]), sp.issparse(first)

    transform: Any = None

    def read(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        """Rows ``start:stop`` as float32: CSR for a sparse matrix, else a dense array; passed
        through the transform when one is set (:meth:`preprocessed`)."""
        rows = self._read(start, stop)
        if self.transform is None:
            return rows
        out = self.transform(rows)
        return out.astype(np.float32, copy=False)

    def _read(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        if not self._stored_sparse:
            return np.asarray(self._dense[start:stop], dtype=np.float32)
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        indices = self._indices[lo:hi]
        n_cols = self._stored_cols
        if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
            raise ValueError(
                f"{self.path}: {self.key} has column indices outside 0..{n_cols - 1} "
                f"in rows {start}..{stop - 1}; the file is damaged: write it again"
            )
        data = np.asarray(self._data[lo:hi], dtype=np.float32)
        return sp.csr_matrix(
            (data, indices, self.indptr[start : stop + 1] - lo), shape=(stop - start, n_cols)
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
        self.next = 0  # the batch expected next


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
            self.X.sums = np.concatenate([row_sums_of(rows) for _, rows in self.X.blocks()])
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
        if plan is None:
            return None
        k = plan.number.get(id(index))
        if k is not None and plan.batches[k] is index:
            return k
        k = plan.next  # the same rows in a new tensor (moved to the device, say)
        expected = plan.batches[k] if k < len(plan.batches) else None
        same = expected is not None and torch.equal(index.cpu(), expected)
        return k if same else None

    def _planned(self, k: int) -> np.ndarray | sp.csr_matrix:
        plan = self._plan
        start = k * plan.batch_size
        stop = start + len(plan.batches[k])
        if self._reader is None or self._reader.start > start:
            self._stop()
            first = int(np.searchsorted(plan.bounds, start, side="right") - 1)
            self._reader = _Reader(self.X, plan, first)
        out = self._reader.span(start, stop)
        plan.next = k + 1
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
    # 32-bit positions where they fit (an epoch's plan is several index-sized temporaries),
    # each freed once used; the batches alone are 64-bit, as the training loop indexes with them.
    small = torch.int32 if len(index) and int(index.max()) < 2**31 - 1 else torch.long
    index = index.to(small)
    block = index // block_rows
    blocks = torch.unique(block)
    blocks = blocks[torch.randperm(len(blocks), generator=generator, dtype=small)]
    buffer_of = torch.empty(int(blocks.max()) + 1 if len(blocks) else 0, dtype=small)
    buffer_of[blocks] = torch.arange(len(blocks), dtype=small) // buffer_blocks
    buffer = buffer_of[block]
    del block, buffer_of
    counts = torch.bincount(buffer, minlength=-(-len(blocks) // buffer_blocks))
    grouped = index[torch.argsort(buffer, stable=True)]
    del buffer, index
    for run in grouped.split(counts.tolist()):  # shuffled in place, a run at a time
        run.copy_(run[torch.randperm(len(run), generator=generator, dtype=small)])
    order = grouped
    batches = list(order.long().split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches, order, np.concatenate([[0], np.cumsum(counts.numpy())]).astype(np.int64)


def row_sums_of(rows: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """(n,) float64 totals of dense or CSR rows."""
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

