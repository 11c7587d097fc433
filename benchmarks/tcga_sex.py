"""Acceptance of interpretation on real data: does a latent feature find the patients' sex again?

On the TCGA table (317 samples of six cancer types, 20,531 genes), for each preset and seed:
fit ``vaekit.VAE(preset=...)`` on a random 80% of the samples as read by ``vaekit.read``; pick
the latent feature most associated with ``gender`` on the training samples; report its AUROC on
the held-out 20%, its 20 heaviest genes (how many lie on the sex chromosomes, by vaekit's
built-in gene sets), a logistic regression on all latent features, and the same for ``cohort``.

``--ablation`` then refits the ``expression`` preset with one of its settings put back to
Tybalt's (or to a Gaussian on z-scored values), to show what matters.

    python benchmarks/tcga_sex.py [--presets expression tybalt] [--seeds 0 1 2] [--ablation]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import vaekit
from vaekit.analysis import associate, heaviest
from vaekit.analysis.genesets import gene_symbol, sex_chromosome_genes
from vaekit.data.preprocess import Log1p, MinMax, SelectVariable, ZScore

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tcga_rnaseq_small_cohorts"
SEX_GENES = {g for genes in sex_chromosome_genes().values() for g in genes}


ABLATIONS = {
    "5000 genes by MAD (Tybalt)": {"preprocess": (Log1p(2), SelectVariable(5000, "mad"), MinMax())},
    "2000 genes by variance": {
        "preprocess": (Log1p(2), SelectVariable(2000, "variance"), MinMax())
    },
    "Tybalt's training length (50 epochs, batch 50)": {"epochs": 50, "batch_size": 50},
    "no L1 penalty on the loadings": {"loadings_l1": 0.0},
    "posterior batch norm (Tybalt)": {"posterior_batch_norm": True},
    "Gaussian on z-scored values": {
        "preprocess": (Log1p(2), SelectVariable(1000, "variance"), ZScore()),
        "likelihood": "gaussian",
    },
    "16 latent features": {"n_latent": 16},
}


def split(n: int, seed: int, train: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(train * n))
    return np.sort(order[:cut]), np.sort(order[cut:])


def best_feature(latent: np.ndarray, obs: pd.DataFrame, annotation: str) -> pd.Series:
    """The association row of the feature most associated with ``annotation`` (smallest q)."""
    table = associate(latent, obs[[annotation]].reset_index(drop=True))
    return table.iloc[0]


def held_out_auroc(values: np.ndarray, labels: pd.Series, level: str) -> float:
    return float(roc_auc_score(labels.astype(str).to_numpy() == level, values))


def logistic(z_train: np.ndarray, y_train: pd.Series, z_test: np.ndarray, y_test: pd.Series):
    """Held-out AUROC (two classes) or accuracy (more) of a logistic regression on all features.

    The features are not standardised: the prior already puts them on one scale, and
    standardising would blow the leftover jitter of unused (collapsed) features up to the size
    of the used ones.
    """
    clf = LogisticRegression(max_iter=5000)
    clf.fit(z_train, y_train.astype(str))
    if y_train.nunique() == 2:
        positive = clf.classes_[1]
        return roc_auc_score(y_test.astype(str) == positive, clf.predict_proba(z_test)[:, 1])
    return float((clf.predict(z_test) == y_test.astype(str).to_numpy()).mean())


def run(adata, preset: str, seed: int, **overrides) -> dict:
    train_idx, test_idx = split(adata.n_obs, seed)
    train, test = adata[train_idx].copy(), adata[test_idx].copy()
    tic = time.perf_counter()
    model = vaekit.VAE(preset=preset, seed=seed, verbose=False, **overrides).fit(train)
    seconds = time.perf_counter() - tic
    z_train, z_test = model.transform(train), model.transform(test)
    loadings = model.loadings(train)
    out = {"preset": preset, "seed": seed, "seconds": seconds, "method": loadings.attrs["method"]}
    for annotation in ("gender", "cohort"):
        row = best_feature(z_train, train.obs, annotation)
        feature, level = int(row.feature), str(row.level)
        genes = [gene_symbol(g) for g in heaviest(loadings, feature, 20).index]
        out[annotation] = {
            "feature": feature,
            "level": level,
            "train_auroc": float(row.auroc),
            "test_auroc": held_out_auroc(z_test[:, feature], test.obs[annotation], level),
            "logistic": logistic(z_train, train.obs[annotation], z_test, test.obs[annotation]),
            "sex_genes_in_top20": sum(g in SEX_GENES for g in genes),
            "genes": genes,
        }
    return out


def report(r: dict) -> None:
    g, c = r["gender"], r["cohort"]
    sep = max(g["test_auroc"], 1 - g["test_auroc"])
    print(
        f"{r['preset']:>10} seed {r['seed']}: {r['seconds']:5.1f} s | gender: feature "
        f"{g['feature']:>3}, held-out AUROC {g['test_auroc']:.3f} (separation {sep:.3f}; "
        f"train {g['train_auroc']:.3f}), {g['sex_genes_in_top20']:>2}/20 sex-chromosome genes, "
        f"logistic AUROC {g['logistic']:.3f}",
        flush=True,
    )
    print(f"{'':>10}   top 20: {' '.join(g['genes'])}")
    print(
        f"{'':>10}   cohort: feature {c['feature']:>3} ({c['level']} vs rest), held-out AUROC "
        f"{c['test_auroc']:.3f} (train {c['train_auroc']:.3f}), logistic accuracy "
        f"{c['logistic']:.3f}; top genes: {' '.join(c['genes'][:8])}",
        flush=True,
    )


def passes(r: dict) -> bool:
    g = r["gender"]
    return (
        max(g["test_auroc"], 1 - g["test_auroc"]) >= 0.90
        and g["sex_genes_in_top20"] >= 5
        and g["logistic"] >= 0.97
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["expression", "tybalt"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ablation", action="store_true", help="Also run the ablations.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    tic = time.perf_counter()
    adata = vaekit.read(
        DATA / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz", annotations=DATA / "phenotypes.tsv"
    )
    print(f"read {adata.n_obs} samples x {adata.n_vars} genes in {time.perf_counter() - tic:.1f} s")
    print(f"gender counts: {adata.obs.gender.value_counts().to_dict()}")
    for preset in args.presets:
        summarise(preset, [run(adata, preset, seed) for seed in args.seeds])
    for name, overrides in ABLATIONS.items() if args.ablation else ():
        print(f"--- expression, but {name}: {overrides}")
        summarise(name, [run(adata, "expression", seed, **overrides) for seed in args.seeds])


def summarise(name: str, results: list[dict]) -> None:
    for r in results:
        report(r)
    n_pass = sum(passes(r) for r in results)
    separation = np.mean(
        [max(r["gender"]["test_auroc"], 1 - r["gender"]["test_auroc"]) for r in results]
    )
    print(
        f"{name}: {n_pass}/{len(results)} seeds pass (separation >= 0.90, >= 5 of 20 "
        f"sex-chromosome genes, logistic AUROC >= 0.97); mean separation {separation:.3f}\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
