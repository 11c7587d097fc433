"""Data in: containers that hand rows to the training loop."""

from vaekit.data.rows import DenseRows, SparseRows, as_rows

__all__ = ["DenseRows", "SparseRows", "as_rows"]
