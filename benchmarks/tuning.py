"""Does tuning beat vaekit's defaults, by more than the defaults' own seed-to-seed spread, and
how much time does pruning save?

On each dataset, ``vaekit.tune`` runs for a wall-clock ``--budget`` (its trials train on 60%
of the rows and are scored by the importance-sampled log-likelihood of 20%); the best settings
and the defaults are both refitted on those 80% and scored on the other 20%, which the tuner
never saw. The defaults are fitted with 3 seeds, for the spread. The same study is then run
again without pruning, for the same budget: "time to best" is when each study's best value
first reaches the unpruned study's final best (pruning should get there in at most 60% of the
time); "-" when it never does within the budget.

Datasets (../shared/data): TCGA (317 samples; log1p, the 2,000 most variable genes, z-scores),
the PBMC counts (4,271 cells x 2,000 genes) and Fashion-MNIST (``--images`` training images).
Run from the repository root, one thread::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tuning.py                 # 20 min each (long)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tuning.py --reduced       # a few minutes
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

import vaekit
from vaekit.settings import vae_arguments
from vaekit.tuning import split_rows

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEEDS = (0, 1, 2)


def tcga(n: int | None) -> tuple[np.ndarray, dict]:
    adata = vaekit.read(SHARED / "tcga_rnaseq_small_cohorts" /
                        "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz")
    # what the automatic settings would choose (log1p, z-scores), on the 2,000 most variable genes
    return np.asarray(adata.X, dtype=np.float32), {"log1p": True, "select": 2000, "scale": "zscore"}


def pbmc(n: int | None) -> tuple[np.ndarray, dict]:
    import h5py

    with h5py.File(SHARED / "scrna_counts" / "10X_PBMC_top2000.h5", "r") as f:
        X = np.asarray(f["X"], dtype=np.float32)
    return _rows(X, n), {}


def fashion(n: int | None) -> tuple[np.ndarray, dict]:
    from vaekit.data.readers.idx import parse_idx

    d = SHARED / "fashion_mnist"
    X = parse_idx(d / "train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
    return _rows(X.astype(np.float32), n or 5000), {}


def _rows(X: np.ndarray, n: int | None) -> np.ndarray:
    if n is None or n >= len(X):
        return X
    return X[np.random.default_rng(0).permutation(len(X))[:n]]


DATASETS: dict[str, Callable[[int | None], tuple[np.ndarray, dict]]] = {
    "tcga": tcga, "pbmc": pbmc, "fashion": fashion,
}


def defaults(X: np.ndarray, fixed: dict, draws: int) -> tuple[list[float], float]:
    """Test log-likelihoods of the defaults over :data:`SEEDS`, and one fit's seconds."""
    split = split_rows(X, None, 0.2, 0.2, seed=0)
    values, seconds = [], []
    for seed in SEEDS:
        tic = time.perf_counter()
        model = vaekit.VAE(**vae_arguments(fixed), seed=seed, verbose=False).fit(split.rest)
        seconds.append(time.perf_counter() - tic)
        values.append(float(model.log_likelihood(split.test, n_draws=draws).mean()))
    return values, float(np.mean(seconds))


def time_to(study, target: float) -> float | None:
    """Seconds from the study's first trial start until a completed trial reaches ``target``."""
    trials = [t for t in study.trials if t.datetime_complete is not None]
    if not trials:
        return None
    start = min(t.datetime_start for t in trials)
    hits = [t.datetime_complete for t in trials
            if t.state.name == "COMPLETE" and t.value is not None and t.value >= target - 1e-9]
    return None if not hits else (min(hits) - start).total_seconds()


def run(name: str, budget: float, n: int | None, draws: int, epochs: int | None) -> dict:
    X, fixed = DATASETS[name](n)
    if epochs is not None:
        fixed = {**fixed, "epochs": epochs}
    base, fit_seconds = defaults(X, fixed, draws)
    common = {"n_trials": 100_000, "timeout": budget, "fixed": fixed, "n_draws": draws,
              "heartbeat": None, "seed": 0}
    pruned = vaekit.tune(X, prune=True, **common)
    unpruned = vaekit.tune(X, prune=False, **common)
    best = unpruned.study.best_value
    states = [t.state.name for t in pruned.study.trials]
    return {
        "name": name, "shape": X.shape, "default": base, "fit_seconds": fit_seconds,
        "tuned": pruned.test["tuned"], "default_refit": pruned.test["default"],
        "trials": (states.count("COMPLETE"), states.count("PRUNED")),
        "unpruned_trials": len(unpruned.study.trials),
        "t_pruned": time_to(pruned.study, best), "t_unpruned": time_to(unpruned.study, best),
        "settings": {k: v for k, v in pruned.settings.items()
                     if k not in fixed and k != "preprocess"},
    }


def show(r: dict) -> None:
    mean, sd = np.mean(r["default"]), np.std(r["default"], ddof=1)
    gain = r["tuned"] - mean
    ratio = ("-" if r["t_pruned"] is None or not r["t_unpruned"]
             else f"{r['t_pruned'] / r['t_unpruned']:.2f}")
    t_p = "-" if r["t_pruned"] is None else f"{r['t_pruned']:.0f}"
    t_u = "-" if r["t_unpruned"] is None else f"{r['t_unpruned']:.0f}"
    print(f"| {r['name']} | {r['shape'][0]:,} x {r['shape'][1]:,} | {mean:.2f} ± {sd:.2f} "
          f"({r['fit_seconds']:.0f} s a fit) | {r['tuned']:.2f} | {gain:+.2f} "
          f"({gain / max(sd, 1e-9):+.1f} sd) | {r['trials'][0]} + {r['trials'][1]} pruned "
          f"({r['unpruned_trials']} unpruned) | {t_p} / {t_u} s ({ratio}) |")
    print(f"  chosen: {r['settings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds of tuning")
    parser.add_argument("--rows", type=int, default=None, help="subsample (pbmc, fashion)")
    parser.add_argument("--draws", type=int, default=1000, help="importance samples per row")
    parser.add_argument("--epochs", type=int, default=None, help="fix the epochs (all fits)")
    parser.add_argument("--reduced", action="store_true",
                        help="a check that it runs: 20 s budgets, 600 rows, 10 epochs, 50 draws")
    a = parser.parse_args()
    if a.reduced:
        a.budget, a.rows, a.draws, a.epochs = 20.0, 600, 50, 10
    print(f"budget {a.budget:.0f} s per study, {a.draws} draws, epochs {a.epochs or 'auto'}")
    print("| data | rows x features | defaults, test LL (3 seeds) | tuned | gain | trials "
          "| time to best, pruned / unpruned |")
    print("|---|---|---|---|---|---|---|")
    warnings.simplefilter("ignore")  # collapse warnings of poor trials
    for name in a.datasets:
        if not (SHARED / "README.md").exists():
            print(f"| {name} | skipped: {SHARED} not found |")
            continue
        show(run(name, a.budget, a.rows, a.draws, a.epochs))


if __name__ == "__main__":
    main()
