"""Test log-likelihood on statically binarized MNIST, against Pythae's reproduction (89.78 nats).

Pythae's VAE reproduction: MLP 784-400-40 (one hidden layer of 400 in the encoder and in the
decoder, 40 latent features), Bernoulli likelihood; it reports a test NLL of 89.78 nats (its
reference 89.9). vaekit trains the same architecture and measures -log p(x) on the 10,000 test
images with k=5000 importance samples (Burda et al. 2016).

Training: the 50,000 training and 10,000 validation images together, of which vaekit's own
validation split (1/6, drawn at random) monitors early stopping; the test images are never seen.
What vaekit adds to Pythae's recipe, all of it settings of vaekit.VAE: the importance-weighted
bound with 5 draws as the training objective (IWAE, Burda et al. 2016; ``--iw-samples 1`` for
the plain ELBO), a linear KL warm-up, halving the learning rate on plateaus of the validation
loss, early stopping with the best epoch's weights restored, and a time limit (default 58
minutes, inside the 60 minutes the benchmark allows).

    python benchmarks/mnist_nll.py                       # MLP 784-400-40
    python benchmarks/mnist_nll.py --architecture conv   # a convolutional model, same data
    python benchmarks/mnist_nll.py --epochs 5 -k 100     # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

import vaekit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binarized_mnist"
PYTHAE = 89.78


def load(split: str, seed: int = 0) -> np.ndarray:
    """A binarized MNIST split, shuffled (the files are sorted by digit)."""
    X = scipy.io.loadmat(DATA / f"binarized_mnist_{split}.mat")["X"].astype(np.float32)
    return X[np.random.default_rng(seed).permutation(len(X))]


def model_for(args: argparse.Namespace) -> vaekit.VAE:
    common = dict(
        n_latent=40,
        likelihood="bernoulli",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup=args.warmup,
        patience=args.patience,
        iw_samples=args.iw_samples,
        lr_patience=args.lr_patience,
        max_minutes=args.max_minutes,
        validation_fraction=1 / 6,
        seed=args.seed,
        verbose=True,
    )
    if args.architecture == "conv":
        return vaekit.VAE(hidden=(400,), architecture="conv", image_shape=(1, 28, 28), **common)
    return vaekit.VAE(hidden=(400,), **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=30, help="KL warm-up epochs.")
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--iw-samples", type=int, default=5, help="IWAE draws (1: the ELBO).")
    parser.add_argument("--lr-patience", type=int, default=10, help="Epochs before halving lr.")
    parser.add_argument("--max-minutes", type=float, default=58.0, help="Training time limit.")
    parser.add_argument("--eval-rows", type=int, help="Evaluate on the first N test images.")
    parser.add_argument("-k", "--importance-samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="Save the trained model here.")
    args = parser.parse_args()

    train = np.concatenate([load("train"), load("valid")])
    test = load("test")[: args.eval_rows]
    cpu = time.process_time()
    model = model_for(args).fit(train)
    cpu = time.process_time() - cpu
    epochs, best = len(model.history_), model.best_epoch_
    print(
        f"{args.architecture}: trained {epochs} epochs (best {best}) in "
        f"{model.training_seconds_ / 60:.1f} min",
        flush=True,
    )
    if args.save:
        model.save(args.save)
    tic = time.perf_counter()
    elbo = float(model.score_samples(test, n_draws=1).mean())
    nll = -float(model.log_likelihood(test, n_draws=args.importance_samples).mean())
    seconds = time.perf_counter() - tic
    result = {
        "architecture": args.architecture,
        "test_nll": round(nll, 2),
        "test_elbo": round(elbo, 2),
        "importance_samples": args.importance_samples,
        "training_minutes": round(model.training_seconds_ / 60, 1),
        "training_cpu_minutes": round(cpu / 60, 1),
        "threads": torch.get_num_threads(),
        "iw_samples": args.iw_samples,
        "test_rows": len(test),
        "final_lr": float(model.history_["lr"].iloc[-1]),
        "active_units": int(model.history_["active_units"].iloc[best]),
        "epochs": epochs,
        "best_epoch": best,
        "evaluation_seconds": round(seconds, 1),
        "pythae": PYTHAE,
        "beats_pythae": nll < PYTHAE,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
