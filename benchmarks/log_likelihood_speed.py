"""How long the importance-sampled log-likelihood takes: k draws over the MNIST test images.

The issue asks that k=5000 over the 10,000 binarized MNIST test images take minutes, not hours,
on 2 cores. The timing does not depend on how well the model is trained, so the model is trained
for one epoch only (784-400-20, Bernoulli). Reads ../shared/data/binarized_mnist when present,
else random binary data of that shape.

    python benchmarks/log_likelihood_speed.py [--k 5000] [--n 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

import vaekit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binarized_mnist"


def load(split: str, n: int) -> np.ndarray:
    """Up to ``n`` rows of a binarized MNIST split, shuffled (the files are sorted by digit)."""
    path = DATA / f"binarized_mnist_{split}.mat"
    if not path.exists():
        print(f"{path} not found: random binary data instead")
        return (np.random.default_rng(0).random((n, 784)) < 0.13).astype(np.float32)
    X = scipy.io.loadmat(path)["X"].astype(np.float32)
    return X[np.random.default_rng(0).permutation(len(X))[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--n", type=int, default=10000, help="test images")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = vaekit.VAE(n_latent=20, hidden=(400,), likelihood="bernoulli", epochs=1,
                       validation_fraction=0.0, seed=0, verbose=False).fit(load("train", 50000))
    X = load("test", args.n)
    tic = time.perf_counter()
    ll = model.log_likelihood(X, n_draws=args.k)
    seconds = time.perf_counter() - tic
    decoded = args.n * args.k
    print(f"log_likelihood: k={args.k} over {args.n} images in {seconds:.1f} s "
          f"({decoded / seconds / 1e6:.2f} M decoded draws/s); mean {ll.mean():.2f} nats")


if __name__ == "__main__":
    main()
