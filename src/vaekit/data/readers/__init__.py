"""Readers: tables, arrays, AnnData, 10x, HDF5, MATLAB, IDX and image folders into AnnData.

``read`` is the single entry point; each format is one function registered with
``@reader(...)`` in :mod:`~vaekit.data.readers.registry`.
"""

from vaekit.data.readers.dispatch import read
from vaekit.data.readers.registry import READERS, reader

__all__ = ["READERS", "read", "reader"]
