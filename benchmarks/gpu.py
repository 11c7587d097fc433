"""Issue 17 on one GPU: training, evaluation and counts at scale, beside the hardware's limits.

Prints, on ``--device`` (cuda when available):

1. **Training throughput** on MNIST-shaped binarized data (``../shared/data/mnist`` as
   throughput.py reads it; random binary data when absent), VAE 784-400-20 Bernoulli, Adam 1e-3,
   at batch 128 and 1024: vaekit (``validation_fraction=0, early_stopping=False``) as it is and
   with ``cuda_graph=True`` and/or ``precision="bf16"`` ("not available" where vaekit refuses
   them); a plain eager loop of the same model with the data resident on the device,
   index-sliced, fused Adam; the same step captured whole (forward, backward, Adam with
   ``capturable=True``) in one CUDA graph and replayed (the hardware's reference); the fp32
   matmul bound (the step's matrix products alone). Samples/s of each, and the held-out ELBO
   per image (10 draws, nats) after the same epochs.
2. **log_likelihood** with k=5000 importance draws over the 10,000 test images: seconds.
3. **Counts at scale**: one epoch over 1,000,000 x 2,000 NB counts (CSR, ~10% non-zero,
   generated here; batch 1024, hidden 128, latent 10): seconds of the epoch and of the whole
   fit, and peak GPU memory (``torch.cuda.max_memory_allocated``).
4. **scVI (scvi-tools 1.4) vs vaekit** on 50,000 x 2,000 of those counts (and 5,000 held out),
   both NB, same epochs and batch: cells/s and held-out ELBO per cell. scvi-tools runs in
   ``--scvi-python`` (benchmarks/_scvi_gpu.py); skipped with a message when there is none.

``--smoke`` runs every part at tiny sizes (on the CPU unless ``--device`` says otherwise) to
prove that the script runs; its figures mean nothing.

    python benchmarks/gpu.py --scvi-python /path/to/scvi-venv/bin/python
    python benchmarks/gpu.py --smoke --scvi-python /work/scvi-venv/bin/python
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import throughput  # noqa: E402 - the CPU benchmark beside this file: data, model, layers

import vaekit  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """What each part runs; ``--smoke`` shrinks everything."""

    train_rows: int | None  # None: all of MNIST's 60,000
    test_rows: int
    epochs: int
    k: int
    counts: tuple[int, int]  # part 3: cells x genes
    side: tuple[int, int, int]  # part 4: train cells, held-out cells, genes
    side_epochs: int
    matmul_steps: int  # per timed block of the matmul bound


FULL = Sizes(None, 10_000, 5, 5000, (1_000_000, 2000), (50_000, 5000, 2000), 10, 200)
SMOKE = Sizes(1024, 128, 1, 20, (4000, 300), (2000, 200, 300), 2, 2)
DENSITY = 0.1


# ------------------------------------------------------------------------------ setup
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    tic = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - tic, out


def header(device: torch.device) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"date {now} | torch {torch.__version__} (CUDA {torch.version.cuda}) | "
          f"vaekit {vaekit.__version__}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)} | driver {driver_version()}")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads ({throughput.cpu_model()})")


def driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else "unknown"
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def mnist(sizes: Sizes) -> tuple[np.ndarray, np.ndarray, str]:
    """Binarized MNIST train and test images (random binary data of that shape if absent)."""
    X, source = throughput.load_data()
    test_path = throughput.MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if test_path.exists():
        X_test = (throughput.read_idx_images(test_path) / 255.0 > 0.5).astype(np.float32)
    else:
        rng = np.random.default_rng(1)
        X_test = (rng.random((10_000, X.shape[1])) > 0.87).astype(np.float32)
    return X[: sizes.train_rows], X_test[: sizes.test_rows], source


# ------------------------------------------------------------------------------ part 1
VARIANTS = {
    "vaekit": {},
    "vaekit cuda_graph": {"cuda_graph": True},
    "vaekit bf16": {"precision": "bf16"},
    "vaekit cuda_graph+bf16": {"cuda_graph": True, "precision": "bf16"},
}


def fit_vaekit(X: np.ndarray, batch: int, epochs: int, device: torch.device, **extra):
    model = vaekit.VAE(n_latent=20, hidden=(400,), likelihood="bernoulli", lr=1e-3,
                       validation_fraction=0, early_stopping=False, epochs=epochs,
                       batch_size=batch, seed=0, verbose=False, device=str(device), **extra)
    return model.fit(X)


def plain_model(device: torch.device, seed: int = 0, capturable: bool = False):
    torch.manual_seed(seed)
    model = throughput.ReferenceVAE().to(device)
    fused = device.type == "cuda"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused, capturable=capturable)
    return model, opt


def plain_step(model, opt, x: torch.Tensor) -> torch.Tensor:
    opt.zero_grad(set_to_none=False)
    recon, mu, logvar = model(x)
    loss = throughput.reference_loss(recon, x, mu, logvar) / len(x)
    loss.backward()
    opt.step()
    return loss


def eager_loop(X: torch.Tensor, batch: int, epochs: int, device: torch.device):
    """The plain loop: data resident, index-sliced minibatches, no host synchronisation."""
    model, opt = plain_model(device)
    for _ in range(epochs):
        for idx in torch.randperm(len(X), device=device).split(batch):
            plain_step(model, opt, X[idx])
    return model


def graphed_loop(X: torch.Tensor, batch: int, epochs: int, device: torch.device):
    """The whole step (forward, backward, Adam) captured in one CUDA graph and replayed; full
    batches only (the graph has one shape)."""
    model, opt = plain_model(device, capturable=True)
    index = torch.arange(batch, device=device)  # static: each replay reads the batch here
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up outside the graph, as torch.cuda.graph asks
        for _ in range(3):
            plain_step(model, opt, X.index_select(0, index))
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plain_step(model, opt, X.index_select(0, index))
    for _ in range(epochs):
        order = torch.randperm(len(X), device=device)
        for i in range(len(X) // batch):
            index.copy_(order[i * batch : (i + 1) * batch])
            graph.replay()
    return model


@torch.no_grad()
def plain_elbo(model, X: torch.Tensor, draws: int = 10) -> float:
    """Mean held-out ELBO per image (nats) of the plain model, over ``draws`` draws."""
    total = 0.0
    for _ in range(draws):
        for x in X.split(4096):
            recon, mu, logvar = model(x)
            total -= float(throughput.reference_loss(recon, x, mu, logvar))
    return total / draws / len(X)


def matmul_bound(batch: int, device: torch.device, steps: int = 200) -> float:
    """Samples/s if a step were its matrix products alone (best of 5 blocks; on CUDA one
    graph per block so that launches do not count)."""
    mats = []
    for n_in, n_out in throughput.LAYERS:
        x, w = torch.rand(batch, n_in, device=device), torch.randn(n_out, n_in, device=device)
        g = torch.randn(batch, n_out, device=device)
        mats.append((x, w, torch.zeros(n_out, device=device), g))

    def step() -> None:
        for i, (x, w, b, g) in enumerate(mats):
            torch.addmm(b, x, w.t())
            if i > 0:
                g @ w
            g.t() @ x

    def block() -> None:
        for _ in range(steps):
            step()

    if device.type == "cuda":
        step()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            block()
        block = graph.replay  # noqa: F811 - replayed: launches do not count
    block()
    best = min(timed(block, device)[0] for _ in range(5))
    return batch * steps / best


def part1(X_np: np.ndarray, X_test_np: np.ndarray, sizes: Sizes, device: torch.device):
    """Training throughput and held-out ELBO; returns the default vaekit model at batch 1024."""
    n, epochs = len(X_np), sizes.epochs
    X = torch.from_numpy(X_np).to(device)
    X_test = torch.from_numpy(X_test_np).to(device)
    fit_vaekit(X_np[:1024], 128, 1, device)  # warm-up: CUDA context, kernels, allocator
    eager_loop(X[:1024], 128, 1, device)
    kept = None
    print(f"\n1. training: {n} x {X.shape[1]} rows, {epochs} epoch(s) each, "
          "samples/s and held-out ELBO per image (10 draws, nats)")
    for batch in (128, 1024):
        print(f"  batch {batch}")
        for name, extra in VARIANTS.items():
            try:
                seconds, model = timed(
                    lambda b=batch, e=extra: fit_vaekit(X_np, b, epochs, device, **e), device
                )
            except (TypeError, ValueError) as err:
                print(f"    {name:<26} not available ({str(err).splitlines()[0][:70]})")
                continue
            elbo = model.score(X_test_np)
            print(f"    {name:<26} {n * epochs / seconds:11,.0f} samples/s   ELBO {elbo:8.2f}")
            kept = model if batch == 1024 and not extra else kept
        seconds, model = timed(lambda b=batch: eager_loop(X, b, epochs, device), device)
        print(f"    {'plain eager (resident)':<26} {n * epochs / seconds:11,.0f} samples/s   "
              f"ELBO {plain_elbo(model, X_test):8.2f}")
        if device.type == "cuda":
            seconds, model = timed(lambda b=batch: graphed_loop(X, b, epochs, device), device)
            rows = epochs * (n // batch) * batch
            print(f"    {'plain CUDA graph (whole step)':<26} {rows / seconds:11,.0f} samples/s"
                  f"   ELBO {plain_elbo(model, X_test):8.2f}")
        else:
            print(f"    {'plain CUDA graph (whole step)':<26} not available (CUDA only)")
        bound = matmul_bound(batch, device, sizes.matmul_steps)
        print(f"    {'fp32 matmul bound':<26} {bound:11,.0f} samples/s")
    return kept


# ------------------------------------------------------------------------------ part 2
def part2(model, X_test: np.ndarray, sizes: Sizes, device: torch.device) -> None:
    model.log_likelihood(X_test[:64], n_draws=8)  # warm-up
    seconds, ll = timed(lambda: model.log_likelihood(X_test, n_draws=sizes.k), device)
    print(f"\n2. log_likelihood k={sizes.k} over {len(X_test)} test images: {seconds:.2f} s "
          f"({len(X_test) * sizes.k / seconds:,.0f} decoded draws/s), "
          f"mean {float(np.mean(ll)):.2f} nats")


# ------------------------------------------------------------------------------ counts
def nb_counts(n: int, genes: int, seed: int, chunk: int = 20_000) -> sp.csr_matrix:
    """(n, genes) float32 CSR counts, ~10% non-zero: each entry non-zero with probability
    DENSITY, then 1 + a geometric (negative binomial with r = 1) count of a per-gene mean."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(0.0, 1.0, genes).astype(np.float32)  # per gene
    indptr, indices, data = [np.zeros(1, np.int64)], [], []
    for start in range(0, n, chunk):
        hit = rng.random((min(chunk, n - start), genes), dtype=np.float32) < DENSITY
        _, col = np.nonzero(hit)  # row-major: each row's columns in order
        u = rng.random(len(col), dtype=np.float32)
        data.append(1 + np.floor(-np.log1p(-u) * mean[col]))
        indices.append(col.astype(np.int32))
        indptr.append(indptr[-1][-1] + np.cumsum(hit.sum(1), dtype=np.int64))
    return sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)),
        shape=(n, genes),
    )


def fit_counts(X: sp.csr_matrix, epochs: int, device: torch.device, **extra):
    model = vaekit.VAE(n_latent=10, hidden=(128,), likelihood="nb", batch_size=1024,
                       epochs=epochs, validation_fraction=0, early_stopping=False, seed=0,
                       verbose=False, device=str(device), **extra)
    return model.fit(X)


def part3(sizes: Sizes, device: torch.device) -> None:
    n, genes = sizes.counts
    tic = time.perf_counter()
    X = nb_counts(n, genes, seed=0)
    made = time.perf_counter() - tic
    fit_counts(X[:4096], 1, device)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, model = timed(lambda: fit_counts(X, 1, device), device)
    epoch = float(model.history_["seconds"].iloc[0])
    peak = (f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
            if device.type == "cuda" else "n/a (CPU)")
    print(f"\n3. counts: {n:,} x {genes:,} NB CSR, {X.nnz / (n * genes):.1%} non-zero "
          f"(made in {made:.0f} s), batch 1024, hidden 128, latent 10")
    print(f"    one epoch {epoch:.2f} s ({n / epoch:,.0f} cells/s); fit() {seconds:.2f} s "
          f"with input checks and upload; peak GPU memory {peak}")


# ------------------------------------------------------------------------------ part 4
def scvi_python(given: str | None) -> str | None:
    if given:
        return given
    import importlib.util

    return sys.executable if importlib.util.find_spec("scvi") else None


def run_scvi(python: str, train: sp.csr_matrix, heldout: sp.csr_matrix, epochs: int,
             device: torch.device) -> dict | str:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / "train.npz"), str(Path(tmp) / "heldout.npz")]
        sp.save_npz(paths[0], train)
        sp.save_npz(paths[1], heldout)
        cmd = [python, str(HERE / "_scvi_gpu.py"), *paths, "--epochs", str(epochs),
               "--batch-size", "1024", "--device", device.type]
        out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return f"failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-300:]}"


def part4(sizes: Sizes, device: torch.device, python: str | None) -> None:
    n, held, genes = sizes.side
    X = nb_counts(n + held, genes, seed=1)
    train, heldout = X[:n], X[n:]
    epochs = sizes.side_epochs
    print(f"\n4. scVI vs vaekit: {n:,} x {genes:,} NB counts, {held:,} held out, {epochs} "
          "epochs, batch 1024, NB, hidden 128, latent 10; held-out ELBO per cell (nats)")
    seconds, model = timed(lambda: fit_counts(train, epochs, device), device)
    train_s = float(model.history_["seconds"].sum())
    print(f"    {'vaekit':<8} {n * epochs / train_s:11,.0f} cells/s (training; "
          f"{n * epochs / seconds:,.0f} with fit's setup)   ELBO {model.score(heldout):10.2f}")
    if python is None:
        print("    scVI     skipped: scvi-tools is not importable here; pass --scvi-python")
        return
    result = run_scvi(python, train, heldout, epochs, device)
    if isinstance(result, str):
        print(f"    scVI     {result}")
        return
    print(f"    {'scVI':<8} {result['cells_per_s']:11,.0f} cells/s (training; "
          f"{n * epochs / result['fit_s']:,.0f} with setup)   ELBO "
          f"{result['heldout_elbo']:10.2f}   (scvi-tools {result['scvi_tools']}, "
          f"torch {result['torch']}, {result['epochs']} epochs)")


def part5(device: torch.device) -> None:
    """Issue 18's launch path on this machine: ``torchrun`` with one process, so that the
    process group (NCCL on a GPU, gloo on a CPU) and DistributedDataParallel are used."""
    import subprocess
    import tempfile

    print(f"\n5. torchrun --nproc-per-node 1 -m vaekit train ... --device {device.type}")
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "counts.csv"
        rng = np.random.default_rng(0)
        pd.DataFrame(rng.poisson(3, (2000, 50))).to_csv(table)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", "1", "-m", "vaekit", "train", str(table), "-o",
                   str(Path(tmp) / "model"), "--epochs", "3", "--device", device.type, "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    outcome = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    backend = "nccl" if device.type == "cuda" else "gloo"
    print(f"    {outcome} in {seconds:.1f} s with {backend}: {last}")
    if done.returncode != 0:
        print(done.stderr[-2000:])


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: prove it runs")
    parser.add_argument("--scvi-python", help="a python with scvi-tools 1.4 (part 4)")
    parser.add_argument("--parts", default="12345", help="which parts to run, e.g. 13")
    args = parser.parse_args(argv)
    # A few epochs leave latent features unused; that is no news here.
    warnings.filterwarnings("ignore", message="only .* latent features are active")
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    header(device)
    X, X_test, source = mnist(sizes)
    print(f"data: {source}" + (" (smoke: tiny sizes, figures mean nothing)" if args.smoke else ""))
    model = None
    if "1" in args.parts or "2" in args.parts:
        model = part1(X, X_test, sizes, device)
    if "2" in args.parts and model is not None:
        part2(model, X_test, sizes, device)
    if "3" in args.parts:
        part3(sizes, device)
    if "4" in args.parts:
        part4(sizes, device, scvi_python(args.scvi_python))
    if "5" in args.parts:
        part5(device)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
