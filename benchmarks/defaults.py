"""vaekit's defaults against the simple baselines a careful analyst tries first, on real data.

``vaekit.VAE()`` with nothing set (its automatic settings choose sizes, likelihood and
training length from the data) is compared, on the same held-out rows, with:

- **kNN accuracy on known labels** in the latent space (15 neighbours, fitted on the training
  rows' coordinates, scored on the test rows') against PCA with as many components as the
  model's latent features;
- **one-class anomaly AUROC**: trained on the training rows of one class, the test rows of
  the other classes are the anomalies (classes: the first three labels; the mean AUROC over
  the three), scored by ``anomaly_score`` with its default score (``mean_deviance`` for
  Bernoulli and count models, else -ELBO; -ELBO and ``deviance`` are shown beside it), against
  PCA's reconstruction error (as many components) and IsolationForest (200 trees);
- **imputation RMSE**: 20% of the test rows' entries hidden at random, filled by
  ``model.impute`` against KNNImputer (5 neighbours, fitted on the training rows and the
  incomplete test rows); RMSE on the hidden entries in the baselines' view, entry by entry
  (z-scores for tables, log1p for expression and counts, pixels as they are).

The baselines see the representation an analyst would give them (:data:`BASELINE_VIEW`): raw
pixels for images, z-scores for clinical tables, log1p for expression and counts (counts per
10,000 first); vaekit gets the data as they come. 3 seeds (the model's seed and the hidden
mask; IsolationForest's seed too); PCA and kNN are deterministic. A row's verdict: ``win`` or
``loss`` when the means differ by more than twice the seed spread (the standard deviation over
seeds, at least 1e-3), else ``tie``.

Datasets: scikit-learn's digits, wine, breast cancer and diabetes (imputation only: its label
is continuous), TCGA (../shared/data, 317 samples, label: cohort), the PBMC and worm counts
(labels: cell types), MNIST and Fashion-MNIST subsets of 500, 5,000 and 60,000 training
images (test: 2,000 of their test images). Run from the repository root, one thread::

    .venv/bin/python benchmarks/defaults.py                        # everything (long)
    .venv/bin/python benchmarks/defaults.py --datasets digits wine --tasks knn
    .venv/bin/python benchmarks/defaults.py --quick                # no 60,000-image sets

``--settings '{"hidden": [64]}'`` passes explicit settings (to try a rule before writing it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.impute import KNNImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import vaekit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TASKS = ("knn", "anomaly", "impute")
HIDE = 0.2  # share of the test entries hidden for imputation
MAX_ANOMALY_TEST = 3000  # test rows scored per class (a random subset of larger test sets)
OTHER_SCORES = ("elbo", "deviance")  # one-class: scores shown beside the default
MAX_IMPUTE_TEST = 500  # test rows imputed (KNNImputer's cost grows with rows x rows)


@dataclass
class Data:
    """A train/test split with labels (None: no classes) and the baselines' view of it."""

    name: str
    X: np.ndarray
    y: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray | None
    view: str  # a key of BASELINE_VIEW


def _log1p(X: np.ndarray) -> np.ndarray:
    return np.log1p(X)


def _per_10k(X: np.ndarray) -> np.ndarray:
    return np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4)


BASELINE_VIEW: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": lambda X: X,
    "log1p": _log1p,
    "counts": _per_10k,
    "zscore": lambda X: X,  # z-scored with the training rows' statistics in `view`
}


def view(data: Data) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) as the baselines see them."""
    f = BASELINE_VIEW[data.view]
    A, B = f(data.X.astype(np.float64)), f(data.X_test.astype(np.float64))
    if data.view == "zscore":
        mu, sd = A.mean(0), A.std(0) + 1e-12
        A, B = (A - mu) / sd, (B - mu) / sd
    return A, B


# --------------------------------------------------------------------------- datasets
def _split(name: str, X, y, view_name: str, test_size=0.25) -> Data:
    stratify = y if y is not None else None
    a, b, ya, yb = train_test_split(
        X.astype(np.float32), y, test_size=test_size, random_state=0, stratify=stratify
    )
    return Data(name, a, ya, b, yb, view_name)


def sklearn_set(name: str) -> Callable[[], Data]:
    def load() -> Data:
        import sklearn.datasets as ds

        loader = {"digits": ds.load_digits, "wine": ds.load_wine,
                  "breast_cancer": ds.load_breast_cancer, "diabetes": ds.load_diabetes}[name]
        bunch = loader()
        y = None if name == "diabetes" else bunch.target
        X = bunch.data
        if name == "digits":
            return _split(name, X / 16, y, "raw")
        return _split(name, X, y, "zscore") if y is not None else Data(
            name, *_unlabelled(X), "zscore")
    return load


def _unlabelled(X: np.ndarray) -> tuple:
    a, b = train_test_split(X.astype(np.float32), test_size=0.25, random_state=0)
    return a, None, b, None


def tcga() -> Data:
    import pandas as pd

    folder = SHARED / "tcga_rnaseq_small_cohorts"
    adata = vaekit.read(folder / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz")
    pheno = pd.read_csv(folder / "phenotypes.tsv", sep="\t", index_col="sample")
    y = pheno.loc[adata.obs_names, "cohort"].to_numpy()
    return _split("tcga", np.asarray(adata.X), y, "log1p")


def counts(file: str, name: str) -> Callable[[], Data]:
    def load() -> Data:
        import h5py

        with h5py.File(SHARED / "scrna_counts" / file, "r") as f:
            X, y = np.asarray(f["X"], dtype=np.float32), np.asarray(f["Y"]).astype(int)
        return _split(name, X, y, "counts")
    return load


def images(folder: str, n: int) -> Callable[[], Data]:
    def load() -> Data:
        from vaekit.data.readers.idx import parse_idx

        d = SHARED / folder
        X = parse_idx(d / "train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
        y = parse_idx(d / "train-labels-idx1-ubyte.gz")
        Xt = parse_idx(d / "t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
        yt = parse_idx(d / "t10k-labels-idx1-ubyte.gz")
        rng = np.random.default_rng(0)
        keep, test = rng.permutation(len(X))[:n], rng.permutation(len(Xt))[:2000]
        short = "mnist" if folder == "mnist" else "fashion"
        return Data(f"{short}_{n}", X[keep].astype(np.float32), y[keep],
                    Xt[test].astype(np.float32), yt[test], "raw")
    return load


DATASETS: dict[str, Callable[[], Data]] = {
    "digits": sklearn_set("digits"),
    "wine": sklearn_set("wine"),
    "breast_cancer": sklearn_set("breast_cancer"),
    "diabetes": sklearn_set("diabetes"),
    "tcga": tcga,
    "pbmc": counts("10X_PBMC_top2000.h5", "pbmc"),
    "worm": counts("worm_neuron_cell.h5", "worm"),
    **{f"mnist_{n}": images("mnist", n) for n in (500, 5000, 60000)},
    **{f"fashion_{n}": images("fashion_mnist", n) for n in (500, 5000, 60000)},
}
LARGE = ("mnist_60000", "fashion_60000")


# --------------------------------------------------------------------------- tasks
def fit(X: np.ndarray, seed: int, settings: dict) -> vaekit.VAE:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vaekit.VAE(seed=seed, verbose=False, **settings).fit(X)


def knn_accuracy(A: np.ndarray, y: np.ndarray, B: np.ndarray, y_test: np.ndarray) -> float:
    return float(KNeighborsClassifier(15).fit(A, y).score(B, y_test))


def task_knn(data: Data, seed: int, settings: dict) -> dict[str, float]:
    model = fit(data.X, seed, settings)
    Z, Zt = model.transform(data.X), model.transform(data.X_test)
    A, B = view(data)
    pca = PCA(model.settings_["n_latent"], random_state=0).fit(A)
    return {"vaekit": knn_accuracy(Z, data.y, Zt, data.y_test),
            "PCA": knn_accuracy(pca.transform(A), data.y, pca.transform(B), data.y_test)}


def task_anomaly(data: Data, seed: int, settings: dict) -> dict[str, float]:
    A, B = view(data)
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {"vaekit": [], "PCA": [], "IsolationForest": []}
    for c in np.unique(data.y)[:3]:
        test = np.flatnonzero(np.ones(len(B), bool))
        if len(test) > MAX_ANOMALY_TEST:
            test = np.sort(rng.choice(test, MAX_ANOMALY_TEST, replace=False))
        anomalous = data.y_test[test] != c
        normal = data.y == c
        model = fit(data.X[normal], seed, settings)
        X_test = data.X_test[test]
        scores["vaekit"].append(roc_auc_score(anomalous, model.anomaly_score(X_test)))
        for method in OTHER_SCORES:  # for the README: what the default score gains
            auc = roc_auc_score(anomalous, model.anomaly_score(X_test, method=method))
            scores.setdefault(f"vaekit {method}", []).append(auc)
        pca = PCA(min(model.settings_["n_latent"], normal.sum() - 1), random_state=0)
        pca.fit(A[normal])
        error = ((B[test] - pca.inverse_transform(pca.transform(B[test]))) ** 2).sum(1)
        scores["PCA"].append(roc_auc_score(anomalous, error))
        forest = IsolationForest(n_estimators=200, random_state=seed).fit(A[normal])
        scores["IsolationForest"].append(roc_auc_score(anomalous, -forest.score_samples(B[test])))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def entrywise(data: Data) -> Callable[[np.ndarray], np.ndarray]:
    """The baselines' view as a map of each entry on its own (NaN stays NaN): z-scores with the
    training rows' statistics, log1p for expression and counts, pixels as they are."""
    if data.view == "zscore":
        mu, sd = data.X.mean(0), data.X.std(0) + 1e-12
        return lambda X: (X - mu) / sd
    return np.log1p if data.view in ("log1p", "counts") else (lambda X: X)


def task_impute(data: Data, seed: int, settings: dict) -> dict[str, float]:
    """RMSE on the hidden entries, in the entrywise view (z-scores for tables, so that every
    feature counts, not the one of largest scale); KNNImputer works in that view."""
    rng = np.random.default_rng(seed)
    test = data.X_test[: MAX_IMPUTE_TEST].astype(np.float64)
    hidden = rng.random(test.shape) < HIDE
    incomplete = np.where(hidden, np.nan, test)
    f = entrywise(data)
    model = fit(data.X, seed, settings)
    filled = f(np.asarray(model.impute(incomplete.astype(np.float32)), dtype=np.float64))
    knn = KNNImputer(n_neighbors=5).fit(np.vstack([f(data.X.astype(np.float64)), f(incomplete)]))
    knn_filled = knn.transform(f(incomplete))
    truth = f(test)
    rmse = lambda F: float(np.sqrt(np.mean((F[hidden] - truth[hidden]) ** 2)))  # noqa: E731
    return {"vaekit": rmse(filled), "KNNImputer": rmse(knn_filled)}


def conditional_check(seeds: list[int]) -> None:
    """Issue 19's check of conditional generation (benchmarks/conditional.py) with vaekit's
    defaults: a CVAE on 12,000 MNIST images and their labels, 8 epochs, only the sizes of the
    issue's MLP given (16 latent, hidden 400) and the Bernoulli likelihood it used; the share
    of ``sample(y=digit, mean=True)`` that two judges (a logistic regression and a small CNN,
    trained on 6,000 other images) assign to the digit asked for."""
    import conditional

    X, digits, _ = conditional.load()
    order = np.random.default_rng(0).permutation(len(X))
    n, m = conditional.N_TRAIN, conditional.N_JUDGE
    train, judge, held = order[:n], order[n:n + m], order[n + m:n + m + 2000]
    judged = conditional.judges(X[judge], digits[judge])
    data = (X[train], digits[train], X[held], digits[held])
    for seed in seeds:
        r = conditional.run_setting("mlp16", {**conditional.SETTINGS["mlp16"],
                                              "likelihood": "bernoulli"}, data, judged, False, seed)
        print(f"   conditional  mnist CVAE seed {seed}: logreg {r['logreg']:.3f}, cnn "
              f"{r['cnn']:.3f} of samples of the digit asked for (goal 0.9)", flush=True)


RUNNERS = {"knn": task_knn, "anomaly": task_anomaly, "impute": task_impute}
HIGHER_IS_BETTER = {"knn": True, "anomaly": True, "impute": False}


def verdict(task: str, ours: np.ndarray, best: float, best_spread: float) -> str:
    spread = max(float(ours.std(ddof=1)) if len(ours) > 1 else 0.0, best_spread, 1e-3)
    diff = ours.mean() - best if HIGHER_IS_BETTER[task] else best - ours.mean()
    return "win" if diff > 2 * spread else "loss" if diff < -2 * spread else "tie"


def run(datasets: list[str], tasks: list[str], seeds: list[int], settings: dict) -> list[dict]:
    rows = []
    for name in datasets:
        data = DATASETS[name]()
        for task in tasks:
            if task in ("knn", "anomaly") and data.y is None:
                continue
            start = time.perf_counter()
            runs = [RUNNERS[task](data, s, settings) for s in seeds]
            figures = {k: np.array([r[k] for r in runs]) for k in runs[0]}
            pick = max if HIGHER_IS_BETTER[task] else min
            baselines = [k for k in figures if not k.startswith("vaekit")]
            best = pick(baselines, key=lambda k: figures[k].mean())
            rows.append({
                "dataset": name, "task": task,
                "vaekit": figures["vaekit"].mean(), "vaekit sd": figures["vaekit"].std(ddof=1),
                "baseline": best, "baseline value": figures[best].mean(),
                "baseline sd": figures[best].std(ddof=1),
                "verdict": verdict(task, figures["vaekit"], figures[best].mean(),
                                   figures[best].std(ddof=1)),
                "seconds": time.perf_counter() - start,
                "all": {k: [round(float(v), 4) for v in vals] for k, vals in figures.items()},
            })
            print_row(rows[-1])
    return rows


def print_row(r: dict) -> None:
    print(f"{r['dataset']:>14} {r['task']:>8}  vaekit {r['vaekit']:.4f} ± {r['vaekit sd']:.4f}"
          f"  {r['baseline']:>15} {r['baseline value']:.4f} ± {r['baseline sd']:.4f}"
          f"  {r['verdict']:>4}  {r['seconds']:6.0f} s  {r['all']}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="leave out the 60,000-image sets")
    parser.add_argument("--settings", default="{}", help="explicit VAE settings, as JSON")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--device", help="train and score on this device (e.g. cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads")
    parser.add_argument("--conditional", action="store_true",
                        help="also run the conditional-generation check (MNIST CVAE)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets = [d for d in args.datasets if not (args.quick and d in LARGE)]
    settings = json.loads(args.settings)
    if args.device:
        settings["device"] = args.device
    rows = run(datasets, args.tasks, args.seeds, settings)
    if args.conditional:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        conditional_check(args.seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    losses = [r for r in rows if r["verdict"] == "loss"]
    print(f"\n{len(rows)} rows: {sum(r['verdict'] == 'win' for r in rows)} wins, "
          f"{sum(r['verdict'] == 'tie' for r in rows)} ties, {len(losses)} losses", file=sys.stderr)


if __name__ == "__main__":
    main()
