"""Training throughput of vaekit on MNIST-shaped data, against a plain PyTorch loop.

What it measures, in one process on the CPU with torch's default thread count:

1. **Reference**: a hand-written VAE in the style of pytorch/examples ``vae/main.py``
   (784-400-20, ReLU, sigmoid output, ``binary_cross_entropy(reduction="sum")`` + KL, Adam
   lr 1e-3) fed by ``DataLoader(TensorDataset(X), batch_size=128, shuffle=True)``.
2. **vaekit**: ``vaekit.VAE(n_latent=20, hidden=(400,), likelihood="bernoulli", ...).fit(X)``
   with no validation split, so it trains on the same 60000 rows.

The two alternate (reference, vaekit, reference, vaekit, ...) for ``--repeats`` rounds of
``--epochs`` epochs each. Each run is timed by wall clock from the numpy array to trained
weights, so both include their setup (vaekit's input checks, the reference's DataLoader).
Throughput is samples/s = rows * epochs / seconds; the script prints each run, the medians and
``ratio vaekit/reference`` (higher is better for vaekit).

3. **fp32 matmul bound**: the model's own matrix products alone, at batch 128, on preallocated
   tensors: per linear layer the forward ``addmm`` and the two backward products (grad input
   ``g @ W``, grad weight ``g.T @ x``; the first layer needs no grad input). The best time per
   step over several blocks is what a training step would cost if nothing but matmuls ran;
   ``fraction of fp32 matmul bound`` = that time / a run's median time per optimizer step.

Other processes on the machine wreck such timings (torch's OpenMP threads spin at barriers, so
losing one core to another process can slow a run tens of times). The script therefore waits
for an idle machine before each run and aborts and repeats a run during which other processes
use more than ``--max-other-load`` cores (measured from /proc/stat, Linux only).

Data: ``train-images-idx3-ubyte.gz`` from ``../shared/data/mnist`` (next to the repository),
binarized as pixel / 255 > 0.5 into float32 (60000, 784); random binary data of that shape when
the file is absent.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py [--epochs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import vaekit

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
N_ROWS, N_PIXELS = 60000, 784
BATCH = 128
HIDDEN, LATENT = 400, 20
# (n_in, n_out) of every linear layer: fc1, fc21 (mu), fc22 (logvar), fc3, fc4.
LAYERS = (
    (N_PIXELS, HIDDEN),
    (HIDDEN, LATENT),
    (HIDDEN, LATENT),
    (LATENT, HIDDEN),
    (HIDDEN, N_PIXELS),
)


# ---------------------------------------------------------------------------------- data
def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (n, rows * cols) images from a gzipped IDX3 file (big-endian header)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = (int(v) for v in np.frombuffer(raw, dtype=">u4", count=4))
    if magic != 2051:
        raise ValueError(f"{path} is not an IDX3 image file: magic {magic}, expected 2051")
    pixels = np.frombuffer(raw, dtype=np.uint8, count=n * rows * cols, offset=16)
    return pixels.reshape(n, rows * cols)


def load_data(directory: Path = MNIST_DIR) -> tuple[np.ndarray, str]:
    """Binarized MNIST training images as float32 (60000, 784), and a line saying what they are."""
    path = directory / "train-images-idx3-ubyte.gz"
    if path.exists():
        X = (read_idx_images(path) / 255.0 > 0.5).astype(np.float32)
        return X, f"MNIST train images from {path}, binarized (pixel/255 > 0.5)"
    rng = np.random.default_rng(0)
    X = (rng.random((N_ROWS, N_PIXELS)) > 0.87).astype(np.float32)  # about MNIST's ink share
    return X, f"{path} NOT FOUND: random binary data instead"


# ---------------------------------------------------------------------------------- runs
class ReferenceVAE(nn.Module):
    """The VAE of pytorch/examples ``vae/main.py``: 784-400-20, sigmoid decoder output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(N_PIXELS, HIDDEN)
        self.fc21 = nn.Linear(HIDDEN, LATENT)
        self.fc22 = nn.Linear(HIDDEN, LATENT)
        self.fc3 = nn.Linear(LATENT, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, N_PIXELS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)  # (B, 20) each
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def reference_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Summed BCE + KL(q(z|x) || N(0, I)), Kingma & Welling 2014, appendix B."""
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def fit_reference(X: np.ndarray, epochs: int, seed: int = 0) -> float:
    """Train the reference loop; return wall seconds from the numpy array to trained weights."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = ReferenceVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=BATCH, shuffle=True)
    model.train()
    for _ in range(epochs):
        total = 0.0
        for (x,) in loader:
            opt.zero_grad()
            recon, mu, logvar = model(x)
            loss = reference_loss(recon, x, mu, logvar)
            loss.backward()
            total += loss.item()  # as pytorch/examples does: one sync per step
            opt.step()
    return time.perf_counter() - start


def fit_vaekit(X: np.ndarray, epochs: int, seed: int = 0) -> float:
    """Train vaekit on all rows; return the wall seconds of ``fit`` (setup included)."""
    model = vaekit.VAE(
        n_latent=LATENT,
        hidden=(HIDDEN,),
        likelihood="bernoulli",
        epochs=epochs,
        batch_size=BATCH,
        lr=1e-3,
        validation_fraction=0.0,
        early_stopping=False,
        seed=seed,
        verbose=False,
    )
    start = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - start


def reference_steps(n: int, epochs: int) -> int:
    """Optimizer steps of the reference loop: the DataLoader keeps the last partial batch."""
    return epochs * math.ceil(n / BATCH)


def vaekit_steps(n: int, epochs: int) -> int:
    """Optimizer steps of vaekit: as the DataLoader, but a last batch of one row is dropped."""
    batches = math.ceil(n / BATCH)
    return epochs * (batches - (1 if batches > 1 and n % BATCH == 1 else 0))


# ---------------------------------------------------------------------------------- matmuls
def matmul_step(batch: int = BATCH) -> tuple[Callable[[], None], float, int]:
    """A closure running one training step's matmuls on preallocated tensors, its FLOPs and
    the number of products (forward addmm, backward grad input and grad weight per layer)."""
    ops: list[Callable[[], torch.Tensor]] = []
    flops = 0.0
    for i, (n_in, n_out) in enumerate(LAYERS):
        x, w, b = torch.rand(batch, n_in), torch.randn(n_out, n_in) * 0.05, torch.zeros(n_out)
        y, g = torch.empty(batch, n_out), torch.randn(batch, n_out)
        gx, gw = torch.empty(batch, n_in), torch.empty(n_out, n_in)
        ops.append(lambda x=x, w=w, b=b, y=y: torch.addmm(b, x, w.t(), out=y))  # forward
        if i > 0:  # the input of the first layer is data: no grad input
            ops.append(lambda g=g, w=w, gx=gx: torch.mm(g, w, out=gx))
        ops.append(lambda g=g, x=x, gw=gw: torch.mm(g.t(), x, out=gw))
        flops += 2.0 * batch * n_in * n_out * (3 if i > 0 else 2)

    def step() -> None:
        for op in ops:
            op()

    return step, flops, len(ops)


def time_matmuls(steps_per_block: int = 200, blocks: int = 7) -> tuple[float, float, int]:
    """Best seconds per step of the pure-matmul loop over ``blocks`` timed blocks, the FLOPs
    per step and the number of products per step."""
    step, flops, n_ops = matmul_step()
    for _ in range(steps_per_block // 4):  # warm up threads and caches
        step()
    times = []
    for _ in range(blocks):
        tic = time.perf_counter()
        for _ in range(steps_per_block):
            step()
        times.append((time.perf_counter() - tic) / steps_per_block)
    return min(times), flops, n_ops


# ---------------------------------------------------------------------------------- report
def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo, or "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat), NaN where unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Disturbed(Exception):
    """Other processes took CPU time during a timed run."""


class LoadGuard:
    """Watches the cores other processes keep busy (machine CPU time minus this process's).

    Inside ``with guard:`` a SIGALRM every ``interval`` seconds checks the last interval and
    raises :class:`Disturbed` in the main thread when other processes used more than ``limit``
    cores: with torch's OpenMP threads spinning at barriers, sharing even one core slows a run
    tens of times, so such a run is thrown away and repeated. ``limit=inf`` disables it.
    """

    def __init__(self, limit: float, interval: float = 0.5) -> None:
        self.limit, self.interval = limit, interval
        self.enabled = math.isfinite(limit) and math.isfinite(busy_cpu_seconds())
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        return busy_cpu_seconds(), sum(os.times()[:2]), time.perf_counter()

    def others(self) -> float:
        """Cores other processes kept busy since the previous call."""
        (busy0, own0, t0), self._last = self._last, self._sample()
        busy1, own1, t1 = self._last
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9))

    def wait_until_idle(self, timeout: float = 600.0) -> None:
        """Return once other processes use at most ``limit`` cores for a whole second."""
        if not self.enabled:
            return
        deadline, told = time.perf_counter() + timeout, False
        self.others()
        while True:
            time.sleep(1.0)
            load = self.others()
            if load <= self.limit:
                return
            if time.perf_counter() > deadline:
                raise SystemExit(f"other processes kept {load:.2f} cores busy for {timeout:.0f} s")
            if not told:
                print(f"  (waiting: other processes keep {load:.2f} cores busy)", flush=True)
                told = True

    def _check(self, signum: int, frame: object) -> None:
        load = self.others()
        if load > self.limit:
            raise Disturbed(f"other processes used {load:.2f} cores")

    def __enter__(self) -> LoadGuard:
        if self.enabled:
            self.others()
            self._previous = signal.signal(signal.SIGALRM, self._check)
            signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


T = TypeVar("T")


def undisturbed(name: str, fn: Callable[[], T], guard: LoadGuard, attempts: int = 5) -> T:
    """``fn()`` run on an idle machine; repeated when other processes disturb it."""
    for _ in range(attempts):
        guard.wait_until_idle()
        gc.collect()
        try:
            with guard:
                return fn()
        except Disturbed as err:
            print(f"  ({name} aborted, {err}; repeating it)", flush=True)
    raise SystemExit(f"{name}: disturbed {attempts} times by other processes; rerun when idle")


def warm_up(X: np.ndarray) -> None:
    """One short untimed fit of each, so that neither timed run pays for first-call costs."""
    fit_reference(X[:4096], 1)
    fit_vaekit(X[:4096], 1)


def benchmark(epochs: int, repeats: int, max_other_load: float) -> None:
    """Run the alternating fits and the matmul bound; print everything."""
    X, source = load_data()
    n = X.shape[0]
    guard = LoadGuard(max_other_load)
    print("vaekit training throughput: VAE 784-400-20, batch 128, Adam, fp32, CPU")
    print(
        f"torch {torch.__version__} | vaekit {vaekit.__version__} | "
        f"threads {torch.get_num_threads()} | CPU: {cpu_model()}"
    )
    print(f"data: {source}; {X.shape} {X.dtype}")
    print(
        f"runs: {repeats} rounds x (reference, vaekit), {epochs} epoch(s) each; a run during "
        + (
            f"which other processes use > {max_other_load:g} cores is repeated\n"
            if guard.enabled
            else "which other processes use CPU is NOT detected\n"
        )
    )

    warm_up(X)
    runs: dict[str, list[float]] = {"reference": [], "vaekit": []}
    fits = {"reference": fit_reference, "vaekit": fit_vaekit}
    steps = {"reference": reference_steps(n, epochs), "vaekit": vaekit_steps(n, epochs)}
    for r in range(repeats):
        for name, fit in fits.items():
            seconds = undisturbed(name, lambda fit=fit: fit(X, epochs), guard)
            runs[name].append(seconds)
            print(
                f"round {r + 1}  {name:<9}  {n * epochs / seconds:8.0f} samples/s  "
                f"({seconds:6.2f} s, {1e3 * seconds / steps[name]:5.2f} ms/step)",
                flush=True,
            )

    median = {name: statistics.median(s) for name, s in runs.items()}
    print()
    for name, seconds in median.items():
        print(
            f"median {name:<9}  {n * epochs / seconds:8.0f} samples/s  "
            f"({1e3 * seconds / steps[name]:5.2f} ms/step over {steps[name]} steps)"
        )
    ratio = median["reference"] / median["vaekit"]
    print(f"\n    ratio vaekit/reference: {ratio:.2f}\n")
    if ratio < 1.0:
        print("    (below 1.00: vaekit trains slower than the plain PyTorch loop)\n")

    matmul, flops, n_ops = undisturbed("matmul loop", time_matmuls, guard)
    print(
        f"fp32 matmul bound: {n_ops} products per step, {flops / 1e6:.0f} MFLOP, "
        f"{1e3 * matmul:.2f} ms/step (best of 7 blocks), {flops / matmul / 1e9:.1f} GFLOP/s"
    )
    for name in ("vaekit", "reference"):
        fraction = matmul / (median[name] / steps[name])
        print(f"fraction of fp32 matmul bound reached by {name}: {100 * fraction:.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of both (default 3)")
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.25,
        metavar="CORES",
        help="repeat a run when other processes use more cores than this (default 0.25; "
        "inf to keep every run)",
    )
    args = parser.parse_args()
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be positive")
    benchmark(args.epochs, args.repeats, args.max_other_load)


if __name__ == "__main__":
    main()
