"""Distributed data parallel on this machine: 1 process against 2 processes under torchrun,
at the same global batch size, on MNIST.

What it measures (the script launches each configuration itself):

1. **1 process, 2 threads**: ``vaekit.VAE(n_latent=20, hidden=(400,), likelihood="bernoulli",
   batch_size=256)`` on the 60,000 binarized MNIST training images (random binary data when
   ``../shared/data/mnist`` is absent), torch using both cores.
2. **1 process, 1 thread**: the same, to separate the process count from the thread count.
3. **2 processes x 1 thread** (``torchrun --standalone --nproc-per-node 2``, gloo):
   ``batch_size=128`` per process, so the global batch is 256 again.

Each run trains ``--epochs`` epochs (no early stopping, 10% validation) and reports wall time
of ``fit`` (process start-up and the process group's set-up excluded), samples/s and the
held-out negative ELBO on the 10,000 test images. On 2 cores, 2 processes can at best match
1 process of 2 threads: the figure shows the cost of DDP's gradient all-reduce and of gloo,
not a speed-up, which needs more cores or GPUs than processes.

Run from the repository root::

    .venv/bin/python benchmarks/ddp.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


def load(split: str) -> np.ndarray:
    """Binarized MNIST images (pixel / 255 > 0.5), or random binary rows without the files."""
    from vaekit.data.readers.idx import parse_idx

    path = MNIST / f"{split}-images-idx3-ubyte.gz"
    if not path.exists():
        print(f"{path} is absent: random binary data instead", file=sys.stderr)
        n = 60000 if split == "train" else 10000
        return (np.random.default_rng(0).random((n, 784)) < 0.2).astype(np.float32)
    images = parse_idx(path).reshape(-1, 784)
    return (images > 127).astype(np.float32)


def worker(args: argparse.Namespace) -> None:
    """One training run (under torchrun, one rank of it); rank 0 writes a JSON result."""
    import torch

    import vaekit
    from vaekit import distributed

    torch.set_num_threads(args.threads)
    X, X_test = load("train"), load("t10k")
    model = vaekit.VAE(
        n_latent=20, hidden=(400,), likelihood="bernoulli", batch_size=args.batch,
        epochs=args.epochs, early_stopping=False, seed=0, verbose=False,
    )
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    world = distributed.world()
    if world.main:
        result = {
            "processes": world.size,
            "threads": args.threads,
            "batch per process": args.batch,
            "fit s": seconds,
            "samples/s": 0.9 * len(X) * args.epochs / seconds,
            "held-out -ELBO": -float(np.mean(model.score_samples(X_test))),
        }
        Path(args.result).write_text(json.dumps(result))
    distributed.leave()


def launch(processes: int, threads: int, batch: int, epochs: int, folder: Path) -> dict:
    result = folder / f"{processes}x{threads}.json"
    script = [__file__, "--worker", "--threads", str(threads), "--batch", str(batch),
              "--epochs", str(epochs), "--result", str(result)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(processes), *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            launch(1, 2, 256, args.epochs, Path(tmp)),
            launch(1, 1, 256, args.epochs, Path(tmp)),
            launch(2, 1, 128, args.epochs, Path(tmp)),
        ]
    base = runs[0]["samples/s"]
    print(f"{'processes':>9} {'threads':>7} {'batch/proc':>10} {'fit s':>7} {'samples/s':>10} "
          f"{'vs 1x2':>6} {'held-out -ELBO':>14}")
    for r in runs:
        print(f"{r['processes']:>9} {r['threads']:>7} {r['batch per process']:>10} "
              f"{r['fit s']:>7.1f} {r['samples/s']:>10.0f} {r['samples/s'] / base:>6.2f} "
              f"{r['held-out -ELBO']:>14.4f}")


if __name__ == "__main__":
    main()
