"""Row sources for training and inference: minibatches are sliced by index, never per sample."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from vaekit.data.backed import BackedMatrix, BackedRows
from vaekit.validation import check_dense_fits

# Stored entries copied to the device per step of the upload: bounds the host and device
# staging buffers (~32 MB of columns and values) whatever the size of the matrix.
UPLOAD_ENTRIES = 4_000_000
# Share of the device's free memory a resident matrix may take; a bigger one stays on the host.
RESIDENT_SHARE = 0.5


class DenseRows:
    """A dense float32 tensor held whole (on the training device)."""

    def __init__(self, X: np.ndarray, device: torch.device | str = "cpu") -> None:
        if X.dtype != np.float32 or not X.flags.c_contiguous:  # a float32 copy is made
            check_dense_fits(X.shape, "the rows as a float32 copy")
        self.X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.X.index_select(0, index.to(self.X.device))

    def row_sums(self) -> np.ndarray:
        return self.X.sum(1).cpu().numpy()


class SparseRows:
    """A CSR matrix kept sparse; only the rows of a minibatch are made dense.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix
    device : torch.device or str
        Where :meth:`take` returns its rows.
    resident : bool, optional
        Keep a copy of the matrix (indptr, indices, values) on ``device`` and build each
        minibatch there, without scipy: on a GPU this removes a host-side densification and a
        host-to-device copy per step. Default: on CUDA when the copy takes at most half the
        free device memory, never on the CPU (where scipy's slicing is as fast).

    Examples
    --------
    >>> rows = SparseRows(sp.random(100, 20, 0.1, format="csr"), resident=True)
    >>> rows.take(torch.tensor([3, 1])).shape
    torch.Size([2, 20])
    """

    def __init__(
        self, X: sp.csr_matrix, device: torch.device | str = "cpu", resident: bool | None = None
    ) -> None:
        self.X = X
        self.device = torch.device(device)
        if resident is None:
            resident = self.device.type == "cuda" and _fits_on_device(X, self.device)
        self.resident = DeviceCSR(X, self.device) if resident else None

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            return self.resident.take(index)
        rows = self.X[index.cpu().numpy()].toarray()
        return torch.from_numpy(rows).to(self.device)

    def row_sums(self) -> np.ndarray:
        return np.asarray(self.X.sum(axis=1)).ravel()


class DeviceCSR:
    """A CSR matrix copied to ``device``, a bounded number of entries at a time, whose rows
    are made dense there: each row's stored entries are gathered and scattered into zeros."""

    def __init__(self, X: sp.csr_matrix, device: torch.device) -> None:
        self.shape = X.shape
        self.indptr = torch.as_tensor(X.indptr.astype(np.int64), device=device)  # (n + 1,)
        self.indices = torch.empty(X.nnz, dtype=torch.int32, device=device)  # columns
        self.values = torch.empty(X.nnz, dtype=torch.float32, device=device)
        for start in range(0, X.nnz, UPLOAD_ENTRIES):
            part = slice(start, start + UPLOAD_ENTRIES)
            self.indices[part] = torch.from_numpy(X.indices[part].astype(np.int32))
            self.values[part] = torch.from_numpy(X.data[part].astype(np.float32))
        lengths = np.diff(X.indptr)
        # Every row is read as this many entries (the longest row's), so a minibatch takes no
        # host synchronisation to size; the work stays below that of the dense rows it returns.
        self.width = int(lengths.max()) if len(lengths) else 0

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """(len(index), n_columns) float32: the rows ``index``, dense, on the device."""
        index = index.to(self.indptr.device)
        out = torch.zeros(len(index), self.shape[1], device=self.indptr.device)
        if self.width == 0 or len(index) == 0:
            return out
        start, end = self.indptr[index], self.indptr[index + 1]  # (B,)
        offsets = torch.arange(self.width, device=out.device)  # (W,)
        position = start[:, None] + offsets  # (B, W)
        stored = position < end[:, None]
        position = position.clamp(max=max(len(self.values) - 1, 0))
        values = torch.where(stored, self.values[position], 0.0)  # padding adds zeros
        return out.scatter_add_(1, self.indices[position].long(), values)


def _fits_on_device(X: sp.csr_matrix, device: torch.device) -> bool:
    """Whether the resident copy (8 bytes per entry, 8 per row) fits in the free memory."""
    free, _ = torch.cuda.mem_get_info(device)
    return 8 * X.nnz + 8 * X.shape[0] <= RESIDENT_SHARE * free


def as_rows(X: np.ndarray | sp.csr_matrix | BackedMatrix, device: torch.device | str = "cpu"):
    """Wrap a validated matrix as a row source."""
    if isinstance(X, BackedMatrix):  # rows stay in the file, read in blocks
        return BackedRows(X, device)
    return SparseRows(X, device) if sp.issparse(X) else DenseRows(X, device)
