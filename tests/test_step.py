"""The training step's structure: no host synchronisation per step, one copy of the epoch's
order to the device, bfloat16 autocast, and the CUDA-graph replay (checked on the CPU with an
eager stand-in for the graph recorder; tests/test_cuda.py runs the real one on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit import train as train_module
from vaekit.config import ModelConfig, TrainConfig
from vaekit.data import DenseRows
from vaekit.model import VAEModule
from vaekit.train import epoch_batches, minibatches, train

HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__")
pytestmark = pytest.mark.filterwarnings("ignore::vaekit.train.PosteriorCollapseWarning")


def binary_rows(n: int, d: int = 24, seed: int = 0) -> np.ndarray:
    """Binary rows from a 3-factor model, so that a VAE has something to learn."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) * 2
    return (rng.random((n, d)) < 1 / (1 + np.exp(-logits))).astype(np.float32)


def module_for(d: int = 24, **kw) -> VAEModule:
    torch.manual_seed(0)
    kw = {"likelihood": "bernoulli", **kw}
    return VAEModule(ModelConfig(n_input=d, n_latent=3, hidden=(16,), **kw))


def host_reads_while_training(n: int, monkeypatch, likelihood: str, extra: dict) -> int:
    """How many times training reads a tensor's value on the host (what stalls a GPU)."""
    X = binary_rows(n) * (7 if likelihood in ("nb", "zinb", "poisson") else 1)
    rng = np.random.default_rng(1)
    cov = torch.as_tensor(rng.normal(size=(n, 2)), dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(-1, 3, size=n))
    module = module_for(likelihood=likelihood, n_covariates=2, n_labels=3)
    count = 0
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original):
            nonlocal count
            count += 1
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    config = TrainConfig(epochs=2, batch_size=16, validation_fraction=0, seed=0, **extra)
    train(module, DenseRows(X), cov, config, labels=labels)
    monkeypatch.undo()
    return count


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "nb", "zinb"])
@pytest.mark.parametrize("extra", [
    {},
    {"iw_samples": 3, "grad_clip": 1.0, "loadings_l1": 0.1},
    {"objective": "tcvae", "tc_weight": 6.0, "tc_estimator": "mss"},
    {"objective": "capacity", "capacity_max": 5.0},
])
def test_the_step_reads_nothing_back_from_the_device(monkeypatch, likelihood, extra):
    """The host reads tensor values a fixed number of times per epoch (the NaN check, the
    record), never per step: 4 times as many steps, the same number of reads (with
    conditions, labels, the IWAE bound, gradient clipping and the L1 penalty, and with the
    beta-TC-VAE and capacity objectives)."""
    few = host_reads_while_training(128, monkeypatch, likelihood, extra)  # 8 steps per epoch
    many = host_reads_while_training(512, monkeypatch, likelihood, extra)  # 32 per epoch
    assert few == many
    assert few > 0  # the counter works: the epoch's record is read


def test_the_closed_form_kl_is_torchs():
    from torch.distributions import Normal, kl_divergence

    from vaekit.model import prior_kl

    g = torch.Generator().manual_seed(0)
    loc = torch.randn(50, 7, generator=g, dtype=torch.float64) * 3
    scale = torch.rand(50, 7, generator=g, dtype=torch.float64) * 4 + 1e-3
    qz = Normal(loc, scale)
    expected = kl_divergence(qz, Normal(torch.zeros_like(loc), torch.ones_like(scale))).sum(-1)
    torch.testing.assert_close(prior_kl(qz), expected, rtol=1e-12, atol=1e-12)


def test_epoch_batches_follow_minibatches_or_the_source_order():
    index = torch.arange(50)
    data = DenseRows(np.zeros((50, 2), np.float32))
    a = epoch_batches(data, index, 8, torch.Generator().manual_seed(3), torch.device("cpu"))
    b = minibatches(index, 8, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    class Ordered(DenseRows):
        def order(self, index, batch_size, generator):
            return list(index.flip(0).split(batch_size))

    c = epoch_batches(Ordered(np.zeros((50, 2), np.float32)), index, 8, None, torch.device("cpu"))
    assert torch.equal(torch.cat(c), index.flip(0))


def test_bf16_autocast_runs_the_layers_in_bfloat16_and_the_loss_in_float32():
    module = module_for()
    x = torch.as_tensor(binary_rows(64))
    layer_dtypes = []
    first = module.encoder.modules().__next__()
    handle = first.register_forward_hook(lambda m, i, o: layer_dtypes.append(o.dtype))
    torch.manual_seed(1)
    exact = module.loss(x, None, 1.0)
    torch.manual_seed(1)
    with train_module._autocast("bf16", x.device):
        low = module.loss(x, None, 1.0)
    handle.remove()
    assert layer_dtypes == [torch.float32, torch.bfloat16]
    assert low.reconstruction.dtype == low.kl.dtype == low.loss.dtype == torch.float32
    assert low.posterior.loc.dtype == torch.float32
    # bfloat16 keeps 8 significant bits (relative rounding 2**-8 = 0.4%) in each product;
    # the summed loss errs by about that, far below 5%, yet it does differ from float32.
    rel = abs(float(low.loss) - float(exact.loss)) / abs(float(exact.loss))
    assert 0 < rel < 0.05


def test_bf16_training_through_the_estimator():
    X = binary_rows(300)
    model = vaekit.VAE(
        n_latent=3, hidden=(16,), likelihood="bernoulli", epochs=3, precision="bf16", seed=0,
        verbose=False,
    ).fit(X)
    assert model.settings_["precision"] == "bf16"
    assert np.isfinite(model.history_[["train_loss", "val_loss"]].to_numpy()).all()
    assert model.transform(X).dtype == np.float32


class EagerRecorder:
    """Stands in for the CUDA graph recorder on the CPU: ``capture`` keeps the function and
    runs nothing (as a capture does), each replay runs it again on the same fixed inputs."""

    def __init__(self, fail: bool = False) -> None:
        self.captures = self.replays = self.warmups = 0
        self.fail = fail

    def warmup(self, fn):
        self.warmups += 1
        return fn()

    def capture(self, fn):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures += 1

        def replay():
            self.replays += 1
            fn()

        return replay


def trained_weights(graphs: bool, recorder: EagerRecorder | None, monkeypatch, **config):
    monkeypatch.setattr(train_module, "_graphable", lambda *args: graphs)
    monkeypatch.setattr(train_module, "_RECORDER", recorder)
    module = module_for(dropout=0.1)
    settings = dict(epochs=3, batch_size=32, validation_fraction=0.2, seed=0, kl_warmup=2)
    torch.manual_seed(0)
    result = train(module, DenseRows(binary_rows(230)), None, TrainConfig(**settings, **config))
    return module.state_dict(), result.history


def test_graph_replay_trains_exactly_as_the_eager_step(monkeypatch):
    """The replayed step reads its rows through the fixed index buffer and returns its sums in
    the fixed tensor: with an eager stand-in for the graph, the weights and history are bit for
    bit those of eager training, incl. the shorter last batch and dropout's draws."""
    eager, eager_history = trained_weights(False, None, monkeypatch)
    recorder = EagerRecorder()
    graphed, graphed_history = trained_weights(True, recorder, monkeypatch)
    assert all(torch.equal(eager[k], graphed[k]) for k in eager)
    assert [r["train_loss"] for r in eager_history] == [r["train_loss"] for r in graphed_history]
    # 184 training rows in batches of 32: 5 full batches and one of 24, per epoch, 3 epochs
    assert recorder.captures == 3
    assert recorder.warmups == 3 * train_module.GRAPH_WARMUP
    assert recorder.replays == 3 * (5 - train_module.GRAPH_WARMUP)


@pytest.mark.parametrize("objective", [
    {"objective": "tcvae", "tc_weight": 6.0}, {"objective": "capacity", "capacity_max": 5.0}
])
def test_graph_replay_trains_the_objectives_as_the_eager_step(monkeypatch, objective):
    """The objective's loss is computed inside the step, so the replayed graph holds it too:
    weights and history (with the objective's terms) bit for bit those of eager training."""
    eager, eager_history = trained_weights(False, None, monkeypatch, **objective)
    graphed, graphed_history = trained_weights(True, EagerRecorder(), monkeypatch, **objective)
    assert all(torch.equal(eager[k], graphed[k]) for k in eager)
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in h]
                for h in (eager_history, graphed_history)]
    assert timeless[0] == timeless[1]
    assert {"train_total_correlation", "capacity"} & set(eager_history[0])


def test_a_step_that_cannot_be_captured_trains_eagerly_with_a_warning(monkeypatch):
    eager, _ = trained_weights(False, None, monkeypatch)
    with pytest.warns(UserWarning, match="could not be captured in a CUDA graph"):
        fallback, _ = trained_weights(True, EagerRecorder(fail=True), monkeypatch)
    assert all(torch.equal(eager[k], fallback[k]) for k in eager)


def test_cuda_graph_on_the_cpu_warns_and_trains_eagerly():
    X = binary_rows(200)
    settings = dict(n_latent=3, hidden=(16,), likelihood="bernoulli", epochs=2, seed=0,
                    verbose=False)
    plain = vaekit.VAE(**settings).fit(X)
    with pytest.warns(UserWarning, match="cuda_graph needs device='cuda'"):
        asked = vaekit.VAE(**settings, cuda_graph=True).fit(X)
    np.testing.assert_array_equal(plain.transform(X), asked.transform(X))
