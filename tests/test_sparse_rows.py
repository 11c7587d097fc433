"""The device-resident CSR path of SparseRows: the same rows as scipy's, value for value."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vaekit.data import rows as rows_module
from vaekit.data.rows import SparseRows


def counts(n: int = 300, g: int = 40, seed: int = 0) -> sp.csr_matrix:
    """Counts with rows of very different lengths: empty, sparse, and one full row."""
    rng = np.random.default_rng(seed)
    dense = rng.negative_binomial(2, 0.5, (n, g)) * (rng.random((n, g)) < rng.random((n, 1)))
    dense[::7] = 0  # empty rows
    dense[5] = rng.integers(1, 9, g)  # a full row: the longest
    return sp.csr_matrix(dense.astype(np.float32))


def both(X: sp.csr_matrix, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return SparseRows(X).take(index), SparseRows(X, resident=True).take(index)


@pytest.mark.parametrize("seed", [0, 1])
def test_resident_rows_equal_scipy(seed: int) -> None:
    X = counts(seed=seed)
    index = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    for batch in index.split(64):
        host, device = both(X, batch)
        assert device.dtype == torch.float32 and device.shape == (len(batch), X.shape[1])
        assert torch.equal(host, device)  # a copy of values: exactly equal


def test_resident_rows_repeated_and_unsorted_indices() -> None:
    X = counts()
    index = torch.tensor([5, 5, 0, 299, 7, 3, 3])
    host, device = both(X, index)
    assert torch.equal(host, device)
    assert torch.equal(device[0], torch.from_numpy(X[5].toarray()[0]))


def test_resident_rows_uploaded_in_small_steps(monkeypatch) -> None:
    X = counts()
    monkeypatch.setattr(rows_module, "UPLOAD_ENTRIES", 7)  # many partial steps
    resident = SparseRows(X, resident=True)
    index = torch.arange(X.shape[0])
    assert torch.equal(resident.take(index), torch.from_numpy(X.toarray()))


def test_resident_rows_of_an_empty_matrix() -> None:
    X = sp.csr_matrix((4, 3), dtype=np.float32)
    host, device = both(X, torch.tensor([0, 3]))
    assert torch.equal(host, device) and not device.any()


def test_resident_is_off_on_the_cpu_by_default() -> None:
    assert SparseRows(counts()).resident is None


def test_resident_only_when_the_copy_fits(monkeypatch) -> None:
    X = counts()
    need = 8 * X.nnz + 8 * X.shape[0]
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * need, 10 * need))
    assert rows_module._fits_on_device(X, cuda)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (need, 10 * need))
    assert not rows_module._fits_on_device(X, cuda)  # more than half the free memory


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resident_rows_on_cuda_equal_scipy() -> None:
    X = counts()
    rows = SparseRows(X, "cuda")
    assert rows.resident is not None
    index = torch.randperm(X.shape[0])[:100]
    assert torch.equal(rows.take(index).cpu(), SparseRows(X).take(index))
