"""Row sources for training and inference: minibatches are sliced by index, never per sample."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from vaekit.data.backed import BackedMatrix, BackedRows
from vaekit.validation import check_dense_fits


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
    """A CSR matrix kept sparse; only the rows of a minibatch are made dense."""

    def __init__(self, X: sp.csr_matrix, device: torch.device | str = "cpu") -> None:
        self.X = X
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.X[index.cpu().numpy()].toarray()
        return torch.from_numpy(rows).to(self.device)

    def row_sums(self) -> np.ndarray:
        return np.asarray(self.X.sum(axis=1)).ravel()


def as_rows(X: np.ndarray | sp.csr_matrix | BackedMatrix, device: torch.device | str = "cpu"):
    """Wrap a validated matrix as a row source."""
    if isinstance(X, BackedMatrix):  # rows stay in the file, read in blocks
        return BackedRows(X, device)
    return SparseRows(X, device) if sp.issparse(X) else DenseRows(X, device)
