"""What checkpoints cost: time per epoch and disk, on MNIST, against the same run without them.

In one process, with ``--threads`` torch threads, the script trains the same VAE on MNIST
(binarized, ``--rows`` rows, 784-400-20, Bernoulli, no early stopping) for ``--epochs`` epochs,
alternating runs without and with ``checkpoint_dir`` for ``--repeats`` rounds. It prints the
median seconds per epoch of each, the ratio (with / without: 1.00 means free), the size of
one checkpoint and of the folder (``keep_checkpoints`` of them), the time one write takes,
the time to read the newest checkpoint back (what resuming costs), and the time of the
in-memory copy that every epoch makes as its roll-back point for divergences.

Data: ``train-images-idx3-ubyte.gz`` from ``../shared/data/mnist`` (next to the repository);
random binary data of that shape when the file is absent (the costs depend on the model's
size, not on the pixels).

Run from the repository root::

    .venv/bin/python benchmarks/checkpoint.py [--rows 20000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vaekit
from vaekit import checkpoint

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def mnist(rows: int) -> np.ndarray:
    path = MNIST / "train-images-idx3-ubyte.gz"
    if not path.exists():
        print(f"{path} is absent: random binary pixels instead")
        return (np.random.default_rng(0).random((rows, 784)) > 0.8).astype(np.float32)
    with gzip.open(path) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    return (pixels[:rows] > 127).astype(np.float32)


def run(X: np.ndarray, epochs: int, folder: Path | None) -> float:
    """Seconds per epoch of one fit."""
    model = vaekit.VAE(
        n_latent=20, hidden=(400,), likelihood="bernoulli", epochs=epochs, batch_size=128,
        validation_fraction=0.0, early_stopping=False, seed=0, verbose=False,
        checkpoint_dir=folder,
    )
    tic = time.perf_counter()
    model.fit(X)
    return (time.perf_counter() - tic) / epochs


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X = mnist(args.rows)
    print(f"MNIST {X.shape}, {args.epochs} epochs, {args.threads} threads, "
          f"torch {torch.__version__}")
    run(X[:2000], 1, None)  # warm-up: first calls allocate and load kernels
    plain, saved = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        for _ in range(args.repeats):
            plain.append(run(X, args.epochs, None))
            shutil.rmtree(folder, ignore_errors=True)
            saved.append(run(X, args.epochs, folder))
        newest = sorted(folder.iterdir())[-1]
        one, total, kept = folder_bytes(newest), folder_bytes(folder), len(list(folder.iterdir()))
        tic = time.perf_counter()
        snap = checkpoint.read(newest)
        read_s = time.perf_counter() - tic
        tic = time.perf_counter()
        for _ in range(5):
            {k: v.clone() for k, v in snap.tensors.items()}
        clone_s = (time.perf_counter() - tic) / 5
        writes = []
        for _ in range(5):
            tic = time.perf_counter()
            checkpoint.Checkpoints(Path(tmp) / "w", None, 2, {"seed": 0}).write(snap)
            writes.append(time.perf_counter() - tic)
    a, b = statistics.median(plain), statistics.median(saved)
    print(f"seconds per epoch without checkpoints: {a:.3f}  (runs {[round(t, 3) for t in plain]})")
    print(f"seconds per epoch with checkpoints:    {b:.3f}  (runs {[round(t, 3) for t in saved]})")
    print(f"ratio with / without: {b / a:.3f}")
    print(f"one checkpoint: {one / 2**20:.2f} MiB; folder ({kept} kept): {total / 2**20:.2f} MiB")
    print(f"write one checkpoint: {statistics.median(writes) * 1000:.1f} ms (median of 5); "
          f"read one back: {read_s * 1000:.1f} ms")
    print(f"copy the state in memory (the roll-back point, every epoch, checkpoints or not): "
          f"{clone_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
