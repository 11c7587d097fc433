"""The public API on ``device="cuda"``, checked against the same weights on the CPU.

Every test but the last needs a CUDA GPU and is skipped without one. The last runs everywhere:
a model folder written by a GPU run loads and runs on a machine without CUDA.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_impute import hide, low_rank

import vaekit

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine",
)

# The same float32 network on two devices sums in another order: the relative error grows as
# n * eps for sums of n ~ 1e3 terms, 1e3 * 6e-8 < 1e-4.
FLOAT32 = dict(rtol=1e-4, atol=1e-4)
# The settings of conftest's `fitted` model, whose quality the CPU tests already establish.
SETTINGS = dict(n_latent=8, hidden=(128,), likelihood="bernoulli", epochs=30, lr=2e-3)
SCORES = ("elbo", "iwae", "reconstruction", "deviance", "mean_deviance")


@pytest.fixture(autouse=True)
def full_float32():
    """No TF32 (cuDNN's default for convolutions): float32 on both devices, to compare them."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    yield
    matmul.allow_tf32, cudnn.allow_tf32 = saved


def on_cpu(model: vaekit.VAE) -> vaekit.VAE:
    """The same fitted model, its weights copied to the CPU."""
    twin = copy.deepcopy(model).set_params(device="cpu")
    twin.module_.to("cpu")
    return twin


def on_device(module: torch.nn.Module) -> set[str]:
    return {p.device.type for p in module.parameters()} | {b.device.type for b in module.buffers()}


def assert_same_estimate(a: np.ndarray, b: np.ndarray) -> None:
    """Two Monte Carlo estimates of the same per-row quantity from independent draws (the two
    devices' generators differ): the mean paired difference lies within 4 standard errors,
    plus float32 rounding for estimates that draw nothing."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert abs(d.mean()) <= 4 * se + FLOAT32["rtol"] * np.abs(b).mean()


@pytest.fixture(scope="module")
def gpu(digits):
    return vaekit.VAE(**SETTINGS, seed=0, device="cuda", verbose=False).fit(digits[0])


@pytest.fixture(scope="module")
def cpu(gpu):
    return on_cpu(gpu)


@needs_cuda
def test_fit_trains_on_the_gpu(gpu, digits):
    assert on_device(gpu.module_) == {"cuda"}
    X = digits[1]
    err = np.mean((gpu.reconstruct(X) - X) ** 2)
    assert err < 0.5 * np.mean((X.mean(0) - X) ** 2)  # as test_estimator asks of the CPU model


@needs_cuda
def test_transform_and_reconstruct_match_the_cpu(gpu, cpu, digits):
    X = digits[1]
    Z = gpu.transform(X)
    assert isinstance(Z, np.ndarray) and Z.shape == (len(X), 8)
    np.testing.assert_allclose(Z, cpu.transform(X), **FLOAT32)
    np.testing.assert_allclose(gpu.reconstruct(X), cpu.reconstruct(X), **FLOAT32)


@needs_cuda
def test_sample_draws_z_on_the_cpu_and_decodes_on_the_gpu(gpu, cpu):
    # z comes from a CPU generator on either device, so the decoded means agree.
    np.testing.assert_allclose(gpu.sample(50, mean=True), cpu.sample(50, mean=True), **FLOAT32)
    draws = gpu.sample(50, seed=3)
    assert draws.shape == (50, 64) and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_array_equal(draws, gpu.sample(50, seed=3))


@needs_cuda
def test_score_samples_and_log_likelihood_estimate_what_the_cpu_does(gpu, cpu, digits):
    X = digits[1][:200]
    elbo = gpu.score_samples(X)
    assert elbo.dtype == np.float64 and np.isfinite(elbo).all()
    assert_same_estimate(elbo, cpu.score_samples(X))
    ll = gpu.log_likelihood(X, n_draws=100)
    assert ll.shape == (200,) and np.isfinite(ll).all()
    assert_same_estimate(ll, cpu.log_likelihood(X, n_draws=100))


@needs_cuda
def test_save_and_load_stay_on_the_gpu(gpu, digits, tmp_path):
    gpu.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["device"] == "cuda"
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.device == "cuda" and on_device(loaded.module_) == {"cuda"}
    np.testing.assert_allclose(loaded.transform(digits[1]), gpu.transform(digits[1]), **FLOAT32)


@needs_cuda
def test_a_gpu_model_loads_on_the_cpu_without_cuda(gpu, digits, tmp_path, monkeypatch):
    gpu.save(tmp_path / "m")
    expected = gpu.transform(digits[1])  # before CUDA is reported missing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="trained on CUDA.*using the CPU"):
        loaded = vaekit.load(tmp_path / "m")
    assert loaded.device == "cpu" and on_device(loaded.module_) == {"cpu"}
    np.testing.assert_allclose(loaded.transform(digits[1]), expected, **FLOAT32)


@needs_cuda
def test_a_conditional_model_moves_its_conditions_to_the_gpu(digits):
    X, X_test, y, y_test = digits
    model = vaekit.VAE(**{**SETTINGS, "epochs": 5}, seed=0, device="cuda", verbose=False)
    model.fit(X, y)
    twin = on_cpu(model)
    np.testing.assert_allclose(
        model.transform(X_test, y_test), twin.transform(X_test, y_test), **FLOAT32
    )
    for label in (0, 7):
        np.testing.assert_allclose(
            model.sample(20, label, mean=True), twin.sample(20, label, mean=True), **FLOAT32
        )
    assert_same_estimate(model.score_samples(X_test, y_test), twin.score_samples(X_test, y_test))


@needs_cuda
def test_a_conv_model_runs_on_the_gpu(digits):
    X = digits[0][:300]
    model = vaekit.VAE(
        n_latent=2,
        hidden=(16,),
        epochs=2,
        batch_size=64,
        seed=0,
        verbose=False,
        likelihood="bernoulli",
        architecture="conv",
        image_shape=(1, 8, 8),
        device="cuda",
    ).fit(X)
    assert model.settings_["architecture"] == "conv" and on_device(model.module_) == {"cuda"}
    twin = on_cpu(model)
    np.testing.assert_allclose(model.transform(X), twin.transform(X), **FLOAT32)
    np.testing.assert_allclose(model.sample(10, mean=True), twin.sample(10, mean=True), **FLOAT32)


@needs_cuda
def test_sparse_input_trains_as_dense_does(digits):
    kw = dict(n_latent=4, likelihood="bernoulli", epochs=2, seed=0, device="cuda", verbose=False)
    dense = vaekit.VAE(**kw).fit(digits[0])
    sparse = vaekit.VAE(**kw).fit(sp.csr_matrix(digits[0]))
    torch.testing.assert_close(dense.module_.z_mean.weight, sparse.module_.z_mean.weight)
    X = digits[1]
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(X)), dense.transform(X), **FLOAT32)


@needs_cuda
def test_a_mask_aware_model_imputes_on_the_gpu():
    X = low_rank()
    train, test = X[:400], X[400:]
    model = vaekit.VAE(
        n_latent=3,
        hidden=(64,),
        epochs=200,
        missing="mask",
        mask_rate=0.5,
        seed=0,
        device="cuda",
        verbose=False,
    ).fit(hide(train, 0.2)[0])
    X_nan, hidden = hide(test.astype(np.float64), 0.3)
    out = model.impute(X_nan)
    np.testing.assert_array_equal(out[~hidden], X_nan[~hidden])  # observed entries untouched
    assert np.isfinite(out).all()
    means = np.nanmean(X_nan, axis=0) * np.ones_like(X_nan)
    assert np.abs(out - test)[hidden].mean() < np.abs(means - test)[hidden].mean()
    np.testing.assert_array_equal(model.impute(X_nan), out)  # same seed, same draws


@needs_cuda
@pytest.mark.parametrize("method", SCORES)
def test_anomaly_scores_estimate_what_the_cpu_does(gpu, cpu, digits, method):
    X = digits[1][:200]
    scores = gpu.anomaly_score(X, method=method)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    assert_same_estimate(scores, cpu.anomaly_score(X, method=method))


@needs_cuda
def test_calibrate_flags_the_conformal_share_of_controls(gpu, digits, tmp_path):
    X, fpr = digits[1][:200], 0.1
    model = copy.deepcopy(gpu).calibrate(X, fpr=fpr)
    # The threshold is the ceil((n + 1)(1 - fpr))-th smallest control score; the same seed
    # scores the controls again identically, so exactly the rest lie above it.
    assert model.is_anomaly(X).sum() == len(X) - math.ceil((len(X) + 1) * (1 - fpr))
    model.save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.calibration_.threshold == model.calibration_.threshold
    np.testing.assert_array_equal(loaded.is_anomaly(X), model.is_anomaly(X))


@needs_cuda
def test_the_same_seed_gives_the_same_model_and_draws(gpu, digits):
    again = vaekit.VAE(**SETTINGS, seed=0, device="cuda", verbose=False).fit(digits[0])
    weights = again.module_.state_dict()
    for name, value in gpu.module_.state_dict().items():
        torch.testing.assert_close(weights[name], value)
    X = digits[1][:100]
    np.testing.assert_array_equal(gpu.score_samples(X, seed=5), again.score_samples(X, seed=5))
    other = vaekit.VAE(**SETTINGS, seed=1, device="cuda", verbose=False).fit(digits[0])
    assert not np.allclose(other.transform(X), gpu.transform(X), **FLOAT32)


# ---------------------------------------------------------------------------- runs everywhere
def test_a_folder_written_by_a_gpu_run_loads_and_runs_without_cuda(
    fitted, digits, tmp_path, monkeypatch
):
    """The folder as a GPU run writes it: the writer records params device "cuda" (weights
    are always stored from the CPU). Without CUDA it loads onto the CPU, with a warning."""
    copy.deepcopy(fitted).set_params(device="cuda").save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["device"] == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="trained on CUDA.*using the CPU"):
        loaded = vaekit.load(tmp_path / "m")
    assert loaded.device == "cpu" and on_device(loaded.module_) == {"cpu"}
    X = digits[1][:50]
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    assert loaded.sample(5).shape == (5, 64)
