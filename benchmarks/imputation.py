"""Imputation of missing values: vaekit against scikit-learn's imputers, on TCGA and MNIST.

TCGA (``../shared/data/tcga_rnaseq_small_cohorts``, 317 samples of six cancer types): log2(x + 1)
expression, the 2,000 genes of largest variance on the training samples, a random 80/20 split
of the samples. vaekit is trained on the training samples (one model per ``--seeds``); then
10%, 30% and 50% of the entries of the held-out samples are hidden at random and imputed. The
baselines - SimpleImputer (column means), KNNImputer (5 neighbours) and IterativeImputer
(BayesianRidge on the ``--nearest`` most correlated genes, ``--rounds`` rounds) - are fitted,
as a user would, on the training samples together with the incomplete held-out ones. Reported:
RMSE on the hidden entries (log2 units), for each seed's model and for the mean of their
imputations, and the ratio to the best baseline (the goal: <= 0.9 at every rate).

What was tried on TCGA (ratios to KNN at 10/30/50%, one seed unless said):

- the recipe below (linear Gaussian VAE, 50 latent features, 1,500 epochs), proposal refined
  by 100 steps (``refine_steps=100``): 0.887 0.875 0.890, every one of 5 seeds within 0.002;
  the exact posterior mean of this linear-Gaussian model, in closed form: 0.886 0.874 0.888;
- the same without refinement: 0.900 0.894 0.918; the mean of 5 seeds' imputations 0.888
  0.879 0.895 - averaging mostly the noise of a proposal too poor for its draws (below);
- a hidden layer of 256 (encoder and decoder), early stopping: RMSE 1.69 at 30% (KNN 1.74 on
  that mask); trained 1,500 epochs it overfits the 254 samples (1.93);
- a mask-aware encoder (``missing="mask"``) trained with ``mask_rate`` 0.3 or 0.6 on the
  complete training data: worse (1.61-1.65 at 30%, against 1.59 without), and its
  pseudo-Gibbs chains are far worse (1.98-2.49): hiding entries from the encoder loosens the
  bound the decoder is trained on;
- 30 or 80 latent features, 1,000 or 2,000 epochs, z-scoring instead of centring, beta 0.5,
  a KL warm-up, weight decay, batches of 64, IWAE training (5 draws), a 256-unit encoder in
  front of the linear decoder: mean ratios 0.894 (80 features, beta 0.5) to 0.926, none
  reliably better;
- importance weighting from the encoder's own proposal: the effective sample size of the
  2,000 draws is about 1.4 (a 50-dim posterior given ~1,000 genes is far narrower than the
  encoder's guess), so the estimate is close to one posterior draw; widening the proposal by
  sqrt(D / observed) did not help. Fitting the proposal to each sample's observed entries
  (semi-amortised inference) raises it to about 20 and lands on the exact posterior mean.

For comparison, least squares on the 80 leading principal components of the training samples
reaches 0.89 of KNN at 30%; the factor model's posterior mean 0.875.

MNIST inpainting: vaekit trained on the 60,000 training images (pixels / 255, about a minute
on a free core); the lower half of the first ``--mnist-test`` test digits hidden and imputed.
Reported: RMSE and MAE per hidden pixel, against the training images' pixel means and
KNNImputer (fitted on ``--knn-train`` training images and the incomplete test digits); a PNG
of examples (rows: original, masked, vaekit, KNN) in ``--out-dir``.

    python benchmarks/imputation.py                  # everything: ~7 minutes on a free core
    python benchmarks/imputation.py --quick          # a smoke run, under a minute
    python benchmarks/imputation.py --skip-mnist --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401 - enables the import
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import vaekit
from vaekit.data.readers.idx import parse_idx
from vaekit.data.writers import image_grid, write_png

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TCGA = SHARED / "tcga_rnaseq_small_cohorts" / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz"
MNIST = SHARED / "mnist"
RATES = (0.1, 0.3, 0.5)
GOAL = 0.9

# vaekit's recipe for the TCGA table (what else was tried is in the closing note of issue 6): a
# Gaussian factor model - linear encoder and decoder, 50 latent features, a learned variance
# per gene - on centred values (all genes divided by one SD, so the most variable keep the most
# weight), trained on every training sample for a fixed number of epochs (early stopping on 25
# validation samples stopped at random points), imputed by importance weighting.
TCGA_MODEL = dict(
    preprocess=["center"],
    n_latent=50,
    hidden=(),
    likelihood="gaussian",
    epochs=1500,
    validation_fraction=0.0,
    verbose=False,
)
# For MNIST a mask-aware encoder, trained to read digits with up to 70% of their pixels hidden
# at random, imputed lower halves better than the same model without one (RMSE 0.240 against
# 0.272 on 1,000 test digits, 784-400-20), whose encoder must read a filled-in guess instead;
# two hidden layers and 32 latent features brought 0.226. Hiding up to 90%, a continuous
# Bernoulli, 64 latent features or 20-30 epochs did no better.
MNIST_MODEL = dict(
    missing="mask",
    mask_rate=0.7,
    n_latent=32,
    hidden=(512, 256),
    likelihood="bernoulli",
    epochs=10,
    batch_size=128,
    lr=1e-3,
    max_minutes=4.0,
    verbose=False,
)


# ---------------------------------------------------------------------------- data
def tcga(seed: int, n_genes: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) log2(x + 1) expression of the genes of largest training variance."""
    X = np.log2(np.asarray(vaekit.read(TCGA).X, dtype=np.float64) + 1.0)
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(round(0.8 * len(X)))
    train, test = X[np.sort(order[:cut])], X[np.sort(order[cut:])]
    genes = np.sort(np.argsort(-train.var(0), kind="stable")[:n_genes])
    return train[:, genes].astype(np.float32), test[:, genes].astype(np.float32)


def hide_at_random(X: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X with a share ``rate`` of its entries set to NaN, the mask of hidden entries)."""
    mask = np.random.default_rng(seed).random(X.shape) < rate
    hidden = X.copy()
    hidden[mask] = np.nan
    return hidden, mask


def mnist(split: str, n: int | None = None) -> np.ndarray:
    """MNIST images of ``split`` ("train" or "t10k") as rows of pixels / 255."""
    images = parse_idx(MNIST / f"{split}-images-idx3-ubyte.gz")[:n]
    return (images.reshape(len(images), -1) / 255.0).astype(np.float32)


# ---------------------------------------------------------------------------- baselines
def baselines(nearest: int, rounds: int) -> dict[str, Callable[[], object]]:
    """scikit-learn imputers by name, each a fresh estimator."""
    return {
        "mean (SimpleImputer)": lambda: SimpleImputer(strategy="mean"),
        "KNNImputer (k=5)": lambda: KNNImputer(n_neighbors=5),
        f"IterativeImputer ({nearest} genes)": lambda: IterativeImputer(
            n_nearest_features=nearest, max_iter=rounds, random_state=0
        ),
    }


def baseline_fill(make: Callable[[], object], train: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """The held-out rows completed by an imputer fitted on training + incomplete held-out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer's early-stopping notice
        completed = make().fit_transform(np.vstack([train, hidden]))
    return completed[len(train) :]


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a[mask] - b[mask]) ** 2)))


# ---------------------------------------------------------------------------- TCGA
def tcga_benchmark(args: argparse.Namespace) -> dict[str, dict[float, float]]:
    tic = time.perf_counter()
    train, test = tcga(args.split_seed)
    print(
        f"TCGA: {len(train)} training and {len(test)} held-out samples x {train.shape[1]} genes "
        f"(log2(x + 1), most variable on the training samples); read in "
        f"{time.perf_counter() - tic:.0f} s",
        flush=True,
    )
    masks = {rate: hide_at_random(test, rate, seed=100 + i) for i, rate in enumerate(RATES)}
    results: dict[str, dict[float, float]] = {}
    for name, make in baselines(args.nearest, args.rounds).items():
        tic = time.perf_counter()
        results[name] = {
            rate: rmse(baseline_fill(make, train, hidden), test, mask)
            for rate, (hidden, mask) in masks.items()
        }
        print(f"  {name}: {time.perf_counter() - tic:.0f} s", flush=True)
    results.update(tcga_vaekit(args, train, test, masks))
    report_tcga(results)
    return results


def tcga_vaekit(
    args: argparse.Namespace,
    train: np.ndarray,
    test: np.ndarray,
    masks: dict[float, tuple[np.ndarray, np.ndarray]],
) -> dict[str, dict[float, float]]:
    """RMSE of each seed's model, and of the mean of their imputations (an ensemble)."""
    settings = {**TCGA_MODEL, **({"epochs": 100} if args.quick else {})}
    imputed: dict[float, list[np.ndarray]] = {rate: [] for rate in masks}
    for seed in args.seeds:
        tic = time.perf_counter()
        model = vaekit.VAE(seed=seed, **settings).fit(train)
        fit_seconds = time.perf_counter() - tic
        for rate, (hidden, _) in masks.items():
            imputed[rate].append(model.impute(hidden, n_draws=args.samples, seed=seed))
        print(
            f"  vaekit seed {seed}: trained in {fit_seconds:.0f} s, imputed in "
            f"{time.perf_counter() - tic - fit_seconds:.0f} s",
            flush=True,
        )
    out = {
        f"vaekit (seed {s})": {r: rmse(imputed[r][i], test, masks[r][1]) for r in masks}
        for i, s in enumerate(args.seeds)
    }
    if len(args.seeds) > 1:
        out[f"vaekit (mean of {len(args.seeds)} seeds)"] = {
            r: rmse(np.mean(imputed[r], axis=0), test, masks[r][1]) for r in masks
        }
    return out


def report_tcga(results: dict[str, dict[float, float]]) -> None:
    names = [n for n in results if not n.startswith("vaekit")]
    best = {rate: min(results[n][rate] for n in names) for rate in RATES}
    print("\nTCGA imputation, RMSE on the hidden entries (log2 units); ratio to the best baseline")
    print(f"{'method':>34} " + " ".join(f"{f'{r:.0%} hidden':>17}" for r in RATES))
    for name, row in results.items():
        cells = " ".join(f"{row[r]:8.4f} ({row[r] / best[r]:5.3f})" for r in RATES)
        print(f"{name:>34} {cells}")
    for name in (n for n in results if n.startswith("vaekit")):
        met = all(results[name][r] <= GOAL * best[r] for r in RATES)
        verdict = "met" if met else "NOT met"
        print(f"{name}: goal (<= {GOAL} x the best baseline at every rate) {verdict}")


# ---------------------------------------------------------------------------- MNIST
def mnist_benchmark(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    n_train = 5000 if args.quick else None
    train, test = mnist("train", n_train), mnist("t10k", args.mnist_test)
    mask = np.zeros(test.shape, dtype=bool)
    mask[:, 28 * 14 :] = True  # the lower half of each 28 x 28 digit
    hidden = np.where(mask, np.nan, test).astype(np.float32)
    settings = {**MNIST_MODEL, **({"epochs": 2} if args.quick else {})}
    tic = time.perf_counter()
    model = vaekit.VAE(seed=0, **settings).fit(train)
    fit_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    filled = {"vaekit (importance)": model.impute(hidden, n_draws=args.mnist_samples)}
    impute_seconds = time.perf_counter() - tic
    filled["vaekit (pseudo-Gibbs)"] = model.impute(hidden, method="gibbs")
    filled["pixel means"] = np.where(mask, train.mean(0), test)
    knn_train = train[: args.knn_train]
    filled[f"KNNImputer (k=5, {len(knn_train)} training images)"] = baseline_fill(
        lambda: KNNImputer(n_neighbors=5), knn_train, hidden
    )
    print(
        f"\nMNIST inpainting: lower half of {len(test)} test digits hidden; vaekit trained on "
        f"{len(train)} images ({len(model.history_)} epochs, {fit_seconds:.0f} s), importance "
        f"imputation with {args.mnist_samples} draws in {impute_seconds:.0f} s"
    )
    print(f"{'method':>44} {'RMSE':>8} {'MAE':>8}")
    errors = {}
    for name, values in filled.items():
        diff = values[mask] - test[mask]
        errors[name] = (float(np.sqrt(np.mean(diff**2))), float(np.mean(np.abs(diff))))
        print(f"{name:>44} {errors[name][0]:8.4f} {errors[name][1]:8.4f}")
    write_examples(args.out_dir, test, hidden, filled, n=12)
    return errors


def write_examples(
    folder: Path, test: np.ndarray, hidden: np.ndarray, filled: dict[str, np.ndarray], n: int
) -> None:
    """A PNG: originals, masked (hidden pixels grey), vaekit's and KNN's completions."""
    knn = next(v for k, v in filled.items() if k.startswith("KNN"))
    rows = [
        test[:n],
        np.nan_to_num(hidden[:n], nan=0.5),
        filled["vaekit (importance)"][:n],
        knn[:n],
    ]
    picture = image_grid(np.concatenate(rows), (28, 28), n_cols=n)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_png(picture, folder / "mnist_inpainting.png", scale=2)
    print(f"examples (rows: original, masked, vaekit, KNN): {path}")


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smoke run: short training.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=2000, help="Importance draws (TCGA).")
    parser.add_argument("--nearest", type=int, default=50, help="IterativeImputer's genes.")
    parser.add_argument("--rounds", type=int, default=10, help="IterativeImputer's max_iter.")
    parser.add_argument("--mnist-test", type=int, default=2000)
    parser.add_argument("--mnist-samples", type=int, default=200)
    parser.add_argument("--knn-train", type=int, default=10000)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-tcga", action="store_true")
    parser.add_argument(
        "--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "vaekit-imputation"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.samples, args.nearest, args.rounds = args.seeds[:1], 200, 5, 1
        args.mnist_test, args.mnist_samples, args.knn_train = 200, 50, 1000
    tic = time.perf_counter()
    if not args.skip_tcga:
        tcga_benchmark(args)
    if not args.skip_mnist:
        mnist_benchmark(args)
    print(f"\nwall time {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
