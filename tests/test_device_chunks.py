"""Evaluation sized for the device: chunk sizes from a GPU's free memory (faked here), the CPU's
constants unchanged, and results that do not depend on the chunks."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import scipy.stats as st
import torch

from vaekit import _runtime, estimator, iwae
from vaekit._runtime import DEVICE_SHARE, MAX_CHUNK_VALUES, chunk_rows, row_normal
from vaekit.analysis import imputation

CUDA = torch.device("cuda")
EPS32 = float(np.finfo(np.float32).eps)


def fake_free_memory(monkeypatch, free: int) -> None:
    """Make torch.cuda.mem_get_info report ``free`` bytes (of 141 GB) for any device."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 141 * 2**30))


# ------------------------------------------------------------------------------ sizes
def test_the_cpu_keeps_its_constants(fitted) -> None:
    module = fitted.module_
    assert chunk_rows(torch.device("cpu"), 10**6, 1024) == 1024
    assert fitted.inference_rows() == estimator.INFERENCE_BATCH
    assert imputation.block_rows(module) == imputation.BLOCK_ROWS
    n_input = module.config.n_input
    cpu_draws = imputation.draw_rows(module, torch.device("cpu"))
    assert cpu_draws // 1000 == imputation.MAX_DRAW_VALUES // (1000 * n_input)  # as before


def test_a_gpu_chunk_is_sized_from_its_free_memory(monkeypatch) -> None:
    free = 130 * 2**30  # an idle H200
    fake_free_memory(monkeypatch, free)
    per_row = 7152  # MNIST 784-400-20: iwae.row_values
    assert chunk_rows(CUDA, per_row, 1024) == MAX_CHUNK_VALUES // per_row  # capped: 300,263
    free = 8 * 2**30  # a busy or small GPU: memory decides
    fake_free_memory(monkeypatch, free)
    rows = chunk_rows(CUDA, per_row, 1024)
    assert rows == int(DEVICE_SHARE * free) // (4 * per_row)
    assert rows * per_row * 4 <= DEVICE_SHARE * free < (rows + 1) * per_row * 4


def test_a_gpu_chunk_has_a_floor_and_a_cap(monkeypatch) -> None:
    fake_free_memory(monkeypatch, 2**20)  # a full GPU: the CPU's size, not a tiny one
    assert chunk_rows(CUDA, 7152, 1024) == 1024
    fake_free_memory(monkeypatch, 2**50)  # more memory than any tensor may index
    assert chunk_rows(CUDA, 7152, 1024) == MAX_CHUNK_VALUES // 7152


def test_the_estimator_and_imputation_ask_the_device(fitted, monkeypatch) -> None:
    free = 2 * 2**30  # below the cap: memory decides
    fake_free_memory(monkeypatch, free)
    on_gpu = copy.copy(fitted)
    on_gpu.device = "cuda"  # only the sizing reads it
    expected = int(DEVICE_SHARE * free) // (4 * iwae.row_values(fitted.module_.config))
    assert on_gpu.inference_rows() == expected > estimator.INFERENCE_BATCH
    cpu_draws = imputation.MAX_DRAW_VALUES // fitted.module_.config.n_input  # the floor
    assert imputation.draw_rows(fitted.module_, CUDA) == max(expected, cpu_draws)
    fake_free_memory(monkeypatch, 8 * free)
    assert imputation.draw_rows(fitted.module_, CUDA) == pytest.approx(8 * expected, abs=8)
    assert imputation.draw_rows(fitted.module_, CUDA) > cpu_draws


def test_row_values_grow_with_the_model(fitted) -> None:
    config = fitted.module_.config
    values = iwae.row_values(config)
    assert values >= 8 * config.n_input
    assert iwae.row_values(dataclasses.replace(config, n_input=2 * config.n_input)) > values
    conv = dataclasses.replace(config, architecture="conv")
    assert iwae.row_values(conv) > values


# ------------------------------------------------------------------------------ draws
def test_row_normal_is_standard_normal() -> None:
    z = row_normal(0, torch.arange(2000), torch.arange(50), 11).double().flatten().numpy()
    n = len(z)
    assert abs(z.mean()) < 5 / np.sqrt(n)  # 5 standard errors
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert st.kstest(z, "norm").pvalue > 1e-4
    neighbours = np.corrcoef(z[:-1], z[1:])[0, 1]
    assert abs(neighbours) < 5 / np.sqrt(n)


def test_row_normal_depends_on_seed_row_and_draw_only() -> None:
    whole = row_normal(7, torch.arange(100), torch.arange(40), 5)
    part = row_normal(7, torch.arange(30, 45), torch.arange(12, 20), 5)
    assert torch.equal(part, whole[12:20, 30:45])  # any chunk gives the same values
    other = row_normal(8, torch.arange(100), torch.arange(40), 5)
    assert not torch.isclose(other, whole).any(-1).all()
    far = row_normal(7, torch.tensor([2**40, 2**40 + 1]), torch.arange(3), 5)
    assert torch.isfinite(far).all() and not torch.equal(far[:, 0], far[:, 1])


# ------------------------------------------------------------------------------ results
def small_chunks(monkeypatch) -> None:
    monkeypatch.setattr(estimator, "INFERENCE_BATCH", 7)
    monkeypatch.setattr(iwae, "CPU_ROWS", 5)  # fewer decoded rows than draws: 1 row at a time


def large_chunks(monkeypatch) -> None:
    monkeypatch.setattr(estimator, "INFERENCE_BATCH", 10**6)
    monkeypatch.setattr(iwae, "CPU_ROWS", 10**6)


def test_log_likelihood_does_not_depend_on_the_chunks(fitted, digits, monkeypatch) -> None:
    X = digits[1][:40]
    small_chunks(monkeypatch)
    a = fitted.log_likelihood(X, n_draws=20, seed=3)
    large_chunks(monkeypatch)
    b = fitted.log_likelihood(X, n_draws=20, seed=3)
    # The same draws, summed in other groupings: float32 rounding of sums over the features
    # and hidden units (Higham's bound, (D + H) eps relative to the sum of magnitudes).
    config = fitted.module_.config
    tol = (config.n_input + sum(config.hidden)) * EPS32 * np.abs(b)
    assert np.all(np.abs(a - b) <= tol)
    c = fitted.log_likelihood(X, n_draws=20, seed=4)  # other draws: a Monte Carlo difference
    assert np.any(np.abs(c - b) > 10 * tol)


def test_log_likelihood_of_a_row_does_not_depend_on_the_others(fitted, digits) -> None:
    module = fitted.module_.eval()
    x = torch.from_numpy(digits[1][:30])
    whole = iwae.log_likelihood(module, module.batch(x), n_draws=10, seed=5)
    tail = iwae.log_likelihood(module, module.batch(x[20:]), n_draws=10, seed=5, first_row=20)
    config = module.config
    tol = (config.n_input + sum(config.hidden)) * EPS32 * whole[20:].abs()
    assert ((tail - whole[20:]).abs() <= tol).all()
    shifted = iwae.log_likelihood(module, module.batch(x[20:]), n_draws=10, seed=5)
    assert not ((shifted - whole[20:]).abs() <= tol).all()  # rows 0.. draw other values


def test_impute_does_not_depend_on_the_chunks(monkeypatch) -> None:
    from test_impute import hide, low_rank, small

    X = low_rank(n=120, d=12)
    model = small(missing="mask", mask_rate=0.5, epochs=20).fit(hide(X, 0.2)[0])
    target = hide(X[:30], 0.3, seed=2)[0]
    kwargs = dict(n_draws=40, refine_steps=3, seed=1)
    monkeypatch.setattr(imputation, "BLOCK_ROWS", 4)
    monkeypatch.setattr(imputation, "MAX_DRAW_VALUES", 3 * 40 * 12)  # 3 samples per block
    a = model.impute(target, **kwargs)
    monkeypatch.setattr(imputation, "BLOCK_ROWS", 10**6)
    monkeypatch.setattr(imputation, "MAX_DRAW_VALUES", 2**30)
    b = model.impute(target, **kwargs)
    # Weighted means of decoder outputs: float32 rounding of sums over features and draws.
    tol = (12 + 64 + 40) * EPS32 * (1 + np.abs(b))
    assert np.all(np.abs(a - b) <= tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_log_likelihood_on_cuda_equals_the_cpu(fitted, digits) -> None:
    X = digits[1][:200]
    gpu = copy.deepcopy(fitted)
    gpu.module_.to("cuda")
    gpu.device = "cuda"
    a, b = gpu.log_likelihood(X, n_draws=50), fitted.log_likelihood(X, n_draws=50)
    # The same draws on both devices (row_normal), up to float32 rounding of the two.
    assert np.allclose(a, b, rtol=1e-4, atol=0)


def test_runtime_has_no_cuda_call_on_the_cpu(monkeypatch) -> None:
    def boom(device=None):
        raise AssertionError("mem_get_info called for a CPU chunk")

    monkeypatch.setattr(torch.cuda, "mem_get_info", boom)
    assert _runtime.chunk_rows(torch.device("cpu"), 100, 64) == 64
