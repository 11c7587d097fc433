"""Anomaly detection side by side: vaekit's scores against PCA, IsolationForest and plain
autoencoders, on MNIST one-class and TCGA novel-cohort tasks; AUROC of normal vs anomalous.

- **MNIST one-class**: for each digit, train on that digit's training images (pixels / 255),
  score the 10,000 test images; AUROC of the other digits (anomalies) against that digit.
  VAE 784-400-20, isotropic Gaussian likelihood (one learned variance for all pixels: the
  log-likelihood is the squared error over 2 sigma^2), Adam lr 1e-3, batch 128, 30 epochs.
  The usual Bernoulli likelihood ranks worse (mean AUROC 0.969 at best, ``--likelihood
  bernoulli``): its cost of a confident mistake is unbounded (an ink pixel where the model
  says 0.001 costs 7 nats), so a normal digit with one unusual stroke looks anomalous; a
  Gaussian with a variance per pixel (``gaussian``) is as sure of the background and ties
  the squared-error autoencoder at best; the continuous Bernoulli's normaliser rewards
  confident pixels near 0 and 1, so its density ranks images by their amount of background.
- **TCGA novel cohort**: for each of the six cohorts, train on the other five (log2(x + 1),
  the 2,000 most variable genes, z-scored, all fitted on 80% of their samples), score the
  other 20% (normal) against every sample of the left-out cohort (anomalies). Gaussian
  likelihood (z-scores are unbounded: min-max scaling would clip the new cohort's extremes),
  a linear decoder and encoder (~200 training samples), 10 latent features, 100 epochs of
  batches of 32.

Every method sees the same matrix. vaekit: one VAE per task, scored every way vaekit has
(:data:`vaekit.analysis.anomaly.SCORES`); PCA: squared reconstruction error with as many
components as the VAE has latent features; IsolationForest (200 trees): -score_samples;
autoencoders: the VAE's layers (vaekit.nn.MLP) without the noise and the KL, trained for as
many epochs with the same optimiser, scored by their training loss: squared error, and for
pixels also cross-entropy (minus the image's entropy, the correction of vaekit's "deviance"
score; the ranking the raw cross-entropy gives is worse).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/anomaly.py   # ~6.5 CPU minutes
    python benchmarks/anomaly.py --quick                        # a smoke run, ~30 s
    python benchmarks/anomaly.py --tasks tcga --tcga-hidden 256 --tcga-epochs 200
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from torch import nn

import vaekit
from vaekit.analysis.anomaly import SCORES
from vaekit.config import TrainConfig
from vaekit.data.preprocess import Log1p, Preprocessor, SelectVariable, ZScore
from vaekit.data.readers.idx import parse_idx
from vaekit.likelihoods import BernoulliLikelihood
from vaekit.nn import MLP
from vaekit.train import adam, minibatches

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST = SHARED / "mnist"
TCGA = SHARED / "tcga_rnaseq_small_cohorts"


# ----------------------------------------------------------------------------- baselines
class Autoencoder(nn.Module):
    """A deterministic autoencoder from vaekit's blocks: MLP -> z -> MLP -> output."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_latent: int) -> None:
        super().__init__()
        self.encoder = MLP(n_in, hidden)
        self.to_z = nn.Linear(self.encoder.n_out, n_latent)
        self.decoder = MLP(n_latent, tuple(reversed(hidden)))
        self.out = nn.Linear(self.decoder.n_out, n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.decoder(self.to_z(self.encoder(x))))  # (B, n_in) logits or means


def _cross_entropy_deviance(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli cross-entropy minus the entropy of x: the same saturated-model correction as
    vaekit's "deviance" score (training on it is training on the cross-entropy)."""
    px = torch.distributions.Bernoulli(logits=out, validate_args=False)
    return (BernoulliLikelihood.saturated_log_prob(px, x) - px.log_prob(x)).sum(-1)


# Per-sample loss of the autoencoder's output: its training loss and its anomaly score.
AE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross-entropy": _cross_entropy_deviance,
    "squared error": lambda out, x: (out - x).pow(2).sum(-1),
}


def autoencoder_scores(X: np.ndarray, X_test: np.ndarray, s: dict, loss: str) -> np.ndarray:
    """Train the plain autoencoder on X with ``loss`` (Adam, minibatches by index, the VAE's
    epochs, batch size and learning rate) and return that loss on X_test."""
    torch.manual_seed(s["seed"])
    net = Autoencoder(X.shape[1], s["hidden"], s["n_latent"])
    loss_fn = AE_LOSSES[loss]
    data = torch.from_numpy(X)
    config = TrainConfig(lr=s["lr"], batch_size=s["batch_size"], epochs=s["epochs"])
    opt, gen = adam(net, config), torch.Generator().manual_seed(s["seed"])
    net.train()
    for _ in range(s["epochs"]):
        for idx in minibatches(torch.arange(len(data)), s["batch_size"], gen):
            x = data[idx]
            loss = loss_fn(net(x), x).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        test = torch.from_numpy(X_test)
        return torch.cat([loss_fn(net(x), x) for x in test.split(4096)]).numpy()


def pca_scores(X: np.ndarray, X_test: np.ndarray, s: dict) -> np.ndarray:
    pca = PCA(n_components=s["n_latent"], random_state=s["seed"]).fit(X)
    rebuilt = pca.inverse_transform(pca.transform(X_test))
    return ((X_test - rebuilt) ** 2).sum(1)


def isolation_forest_scores(X: np.ndarray, X_test: np.ndarray, s: dict) -> np.ndarray:
    forest = IsolationForest(n_estimators=200, random_state=s["seed"]).fit(X)
    return -forest.score_samples(X_test)


def baselines(s: dict) -> dict[str, Callable[[np.ndarray, np.ndarray, dict], np.ndarray]]:
    """The baselines of a task: an autoencoder on squared error always, and on cross-entropy
    as well for pixels (values in [0, 1])."""
    out = {"PCA": pca_scores, "IsolationForest": isolation_forest_scores}
    losses = ["cross-entropy", "squared error"] if s.get("pixels") else ["squared error"]
    for loss in losses:
        out[f"AE {loss}"] = partial(autoencoder_scores, loss=loss)
    return out


# ----------------------------------------------------------------------------- vaekit
def vaekit_scores(X: np.ndarray, X_test: np.ndarray, s: dict) -> dict[str, np.ndarray]:
    """One VAE trained on X, every anomaly score of vaekit on X_test."""
    model = vaekit.VAE(
        n_latent=s["n_latent"],
        hidden=s["hidden"],
        likelihood=s["likelihood"],
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        lr=s["lr"],
        kl_warmup=s["warmup"],
        beta=s.get("beta", 1.0),
        iw_samples=s.get("iw_samples", 1),
        early_stopping=False,
        validation_fraction=0.0,
        architecture="mlp",
        seed=s["seed"],
        verbose=False,
    ).fit(X)
    return {f"vaekit {m}": model.anomaly_score(X_test, method=m) for m in SCORES}


def run_task(X: np.ndarray, X_test: np.ndarray, anomalous: np.ndarray, s: dict) -> dict:
    """AUROC (anomalies scoring higher) and seconds of every method on one task."""
    row, seconds = {}, {}
    tic = time.perf_counter()
    for name, scores in vaekit_scores(X, X_test, s).items():
        row[name] = roc_auc_score(anomalous, scores)
    seconds["vaekit"] = time.perf_counter() - tic
    for name, fn in baselines(s).items():
        tic = time.perf_counter()
        row[name] = roc_auc_score(anomalous, fn(X, X_test, s))
        seconds[name] = time.perf_counter() - tic
    return {"auroc": row, "seconds": seconds}


# ----------------------------------------------------------------------------- tasks
def mnist(args: argparse.Namespace) -> pd.DataFrame:
    X = parse_idx(MNIST / "train-images-idx3-ubyte.gz").reshape(60000, -1) / np.float32(255)
    y = parse_idx(MNIST / "train-labels-idx1-ubyte.gz")
    X_test = parse_idx(MNIST / "t10k-images-idx3-ubyte.gz").reshape(10000, -1) / np.float32(255)
    y_test = parse_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    if args.quick:  # a smoke run: 2000 test images
        keep = np.random.default_rng(0).permutation(len(X_test))[:2000]
        X_test, y_test = X_test[keep], y_test[keep]
    s = mnist_settings(args)
    print(f"MNIST one-class settings: {s}", flush=True)
    rows = {}
    for digit in args.digits:
        train = X[y == digit][: args.mnist_train]
        result = run_task(train, X_test, y_test != digit, s)
        rows[digit] = result["auroc"]
        print_row(f"digit {digit} ({len(train)} train)", result)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("digit")


def mnist_settings(args: argparse.Namespace) -> dict:
    return {
        "likelihood": args.likelihood,
        "n_latent": args.latent,
        "hidden": tuple(args.hidden),
        "epochs": args.epochs,
        "batch_size": 128,
        "lr": 1e-3,
        "warmup": args.warmup,
        "beta": args.beta,
        "iw_samples": args.iw_samples,
        "seed": args.seed,
        "pixels": True,
    }


def tcga(args: argparse.Namespace) -> pd.DataFrame:
    adata = vaekit.read(
        TCGA / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz", annotations=TCGA / "phenotypes.tsv"
    )
    X = np.asarray(adata.X, dtype=np.float32)
    cohorts = adata.obs["cohort"].astype(str).to_numpy()
    s = {**mnist_settings(args), **tcga_settings(args)}
    print(f"TCGA novel-cohort settings: {s}", flush=True)
    rows = {}
    for cohort in sorted(set(cohorts)):
        train, test, anomalous = tcga_split(cohorts, cohort, args.seed)
        steps = Preprocessor([Log1p(2), SelectVariable(args.genes, "variance"), ZScore()])
        names = list(adata.var_names)
        X_train = steps.fit_transform(X[train], names).astype(np.float32)
        X_test = steps.transform(X[test]).astype(np.float32)
        result = run_task(X_train, X_test, anomalous, s)
        rows[cohort] = result["auroc"]
        print_row(
            f"{cohort} ({len(train)} train, {(~anomalous).sum()} normal, {anomalous.sum()} new)",
            result,
        )
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("left-out cohort")


def tcga_settings(args: argparse.Namespace) -> dict:
    return {
        "likelihood": "gaussian",
        "pixels": False,
        "n_latent": args.tcga_latent,
        "hidden": tuple(args.tcga_hidden),
        "epochs": args.tcga_epochs,
        "batch_size": 32,
        "genes": args.genes,
    }


def tcga_split(cohorts: np.ndarray, left_out: str, seed: int) -> tuple[np.ndarray, ...]:
    """Row indices of training samples (80% of the other cohorts), of test samples (their
    other 20%, then the left-out cohort), and whether each test sample is anomalous."""
    rng = np.random.default_rng(seed)
    others = rng.permutation(np.flatnonzero(cohorts != left_out))
    cut = int(round(0.8 * len(others)))
    train, held_out = np.sort(others[:cut]), np.sort(others[cut:])
    new = np.flatnonzero(cohorts == left_out)
    test = np.concatenate([held_out, new])
    return train, test, np.r_[np.zeros(len(held_out), bool), np.ones(len(new), bool)]


# ----------------------------------------------------------------------------- output
def print_row(label: str, result: dict) -> None:
    aurocs = "  ".join(f"{k} {v:.3f}" for k, v in result["auroc"].items())
    times = ", ".join(f"{k} {v:.0f}s" for k, v in result["seconds"].items())
    print(f"  {label}: {aurocs}  [{times}]", flush=True)


def summarise(name: str, table: pd.DataFrame) -> None:
    print(f"\n{name}: AUROC per task (anomalies scored higher)")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    means = table.mean()
    print("mean: " + "  ".join(f"{k} {v:.3f}" for k, v in means.items()))
    best_vaekit = means.filter(like="vaekit").max()
    others = means.drop(means.filter(like="vaekit").index)
    best_baseline = others.max()
    verdict = "beats" if best_vaekit > best_baseline else "does NOT beat"
    print(
        f"best vaekit mean {best_vaekit:.3f} ({means.filter(like='vaekit').idxmax()}) {verdict} "
        f"the best baseline's {best_baseline:.3f} ({others.idxmax()})\n",
        flush=True,
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["mnist", "tcga"], choices=["mnist", "tcga"])
    p.add_argument("--quick", action="store_true", help="Few epochs, 3 digits: a smoke run.")
    p.add_argument("--digits", nargs="+", type=int, default=list(range(10)))
    p.add_argument("--mnist-train", type=int, default=None, help="Cap training images per digit.")
    p.add_argument("--likelihood", default="isotropic_gaussian", help="Of the MNIST VAE.")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight of the MNIST VAE.")
    p.add_argument("--iw-samples", type=int, default=1, help="IWAE draws training the MNIST VAE.")
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--hidden", nargs="+", type=int, default=[400])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=0, help="KL warm-up epochs.")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--tcga-latent", type=int, default=10)
    p.add_argument("--tcga-hidden", nargs="*", type=int, default=[], help="Default: linear.")
    p.add_argument("--tcga-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP's).")
    args = p.parse_args(argv)
    if args.quick:
        args.digits, args.epochs, args.tcga_epochs = args.digits[:3], 2, 20
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # collapse warnings on tiny runs
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
        flush=True,
    )
    tic, cpu = time.perf_counter(), time.process_time()
    tasks = {"mnist": ("MNIST one-class", mnist), "tcga": ("TCGA novel cohort", tcga)}
    for key in args.tasks:
        name, fn = tasks[key]
        summarise(name, fn(args))
    print(
        f"wall time {time.perf_counter() - tic:.0f} s, CPU time of this process "
        f"{time.process_time() - cpu:.0f} s (more wall than CPU: other processes had the cores)"
    )


if __name__ == "__main__":
    main()
