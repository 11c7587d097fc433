"""The scvi-tools half of ``benchmarks/integration.py``; runs in the separate scvi-tools venv.

Never imported by vaekit or by ``integration.py``: that script runs this file with the other
interpreter (``--scvi-python``), in two steps, on the files it wrote to a work folder:

    python _scvi_side.py fit WORK --seed 0 --threads 2 --n-draws 1000 [--max-epochs N]
        reads WORK/train.h5ad and WORK/heldout.h5ad; trains scVI (its defaults, n_latent=10)
        and scANVI from it (its defaults), and writes to WORK/scvi/: latent_scvi.npy,
        latent_scanvi.npy, pred_scanvi.npy, mll_scvi.npy (per held-out cell, nats),
        de_scvi.csv (change mode) and info.json (times, epochs, versions).
    python _scvi_side.py score WORK --embedding NAME=PATH ... --threads 2
        scores each embedding of WORK/train.h5ad's cells with scib-metrics' Benchmarker
        (absolute scores, no min-max scaling) and with kNN accuracy and KMeans/Leiden ARI of
        the cell types; writes WORK/scores.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

DE_COLUMNS = ["proba_de", "lfc_mean", "lfc_median", "lfc_std", "bayes_factor", "is_de_fdr_0.05"]


def set_threads(threads: int, seed: int) -> None:
    import scvi
    import torch

    torch.set_num_threads(threads)
    scvi.settings.num_threads = threads
    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    scvi.settings.verbosity = 30  # warnings only


def train_scvi(adata, max_epochs: int | None) -> tuple[object, dict]:
    """scVI with its defaults at n_latent=10 (zinb, 128 hidden, 400 epochs here, 90% train)."""
    import scvi

    tic, load = time.perf_counter(), os.getloadavg()[0]
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
    model = scvi.model.SCVI(adata, n_latent=10)
    tac = time.perf_counter()
    model.train(max_epochs=max_epochs, enable_progress_bar=False)
    seconds = time.perf_counter() - tic
    return model, {"fit_s": seconds, "train_s": time.perf_counter() - tac,
                   "epochs": len(model.history["elbo_train"]),
                   "load_before": load, "load_after": os.getloadavg()[0],
                   "gene_likelihood": model.module.gene_likelihood}


def train_scanvi(scvi_model, adata, max_epochs: int | None) -> tuple[object, dict]:
    """scANVI initialised from the trained scVI (the documented workflow), its own defaults."""
    import scvi

    tic, load = time.perf_counter(), os.getloadavg()[0]
    model = scvi.model.SCANVI.from_scvi_model(
        scvi_model, unlabeled_category="Unknown", labels_key="cell_type_hidden", adata=adata
    )
    # scANVI's default after pretraining is min(10, max(2, round(scVI's epochs / 3)))
    model.train(max_epochs=None if max_epochs is None else max(2, max_epochs // 3),
                enable_progress_bar=False)
    seconds = time.perf_counter() - tic
    return model, {"fit_s": seconds, "epochs": len(model.history["elbo_train"]),
                   "load_before": load, "load_after": os.getloadavg()[0]}


def fit(args: argparse.Namespace) -> None:
    import anndata
    import scvi
    import torch

    set_threads(args.threads, args.seed)
    work, out = Path(args.work), Path(args.work) / "scvi"
    out.mkdir(exist_ok=True)
    train = anndata.read_h5ad(work / "train.h5ad")
    heldout = anndata.read_h5ad(work / "heldout.h5ad")
    info: dict = {"versions": {"scvi-tools": scvi.__version__, "torch": torch.__version__},
                  "threads": torch.get_num_threads()}

    model, info["scvi"] = train_scvi(train.copy(), args.max_epochs)
    print(f"scVI: {info['scvi']['epochs']} epochs in {info['scvi']['fit_s']:.0f} s", flush=True)
    np.save(out / "latent_scvi.npy", model.get_latent_representation())
    tic = time.perf_counter()
    mll = model.get_marginal_ll(heldout, n_mc_samples=args.n_draws, return_mean=False,
                                n_mc_samples_per_pass=min(args.n_draws, 100))
    info["scvi"]["mll_s"] = time.perf_counter() - tic
    mll = torch.as_tensor(mll).double().numpy()  # (n_heldout,) log p(x | library), nats
    np.save(out / "mll_scvi.npy", mll)
    print(f"scVI held-out marginal LL: {np.mean(mll):.2f} nats/cell", flush=True)

    tic = time.perf_counter()
    de = model.differential_expression(groupby="de_group", group1="A", group2="B",
                                       mode="change", delta=0.25, silent=True)
    info["scvi"]["de_s"] = time.perf_counter() - tic
    de.reindex(train.var_names)[DE_COLUMNS].to_csv(out / "de_scvi.csv")
    # vaekit's DE averages over batches by default; scVI's does so only when asked
    de = model.differential_expression(groupby="de_group", group1="A", group2="B",
                                       mode="change", delta=0.25, batch_correction=True,
                                       silent=True)
    de.reindex(train.var_names)[DE_COLUMNS].to_csv(out / "de_scvi_bc.csv")

    scanvi, info["scanvi"] = train_scanvi(model, train.copy(), args.max_epochs)
    print(f"scANVI: {info['scanvi']['epochs']} epochs in {info['scanvi']['fit_s']:.0f} s",
          flush=True)
    np.save(out / "latent_scanvi.npy", scanvi.get_latent_representation())
    np.save(out / "pred_scanvi.npy", np.asarray(scanvi.predict(), dtype=str))
    (out / "info.json").write_text(json.dumps(info, indent=1))


def time_scvi(args: argparse.Namespace) -> None:
    """Seconds of SCVI setup + train() for --max-epochs epochs, printed as one JSON line."""
    import anndata

    set_threads(args.threads, args.seed)
    train = anndata.read_h5ad(Path(args.work) / "train.h5ad")
    _, info = train_scvi(train, args.max_epochs)
    print("TIMING " + json.dumps(info), flush=True)


# ---------------------------------------------------------------------------- scoring
def knn_accuracy(emb: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """5-fold cross-validated accuracy of a 15-nearest-neighbour classifier of the cell types."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(15), emb, labels, cv=folds).mean())


def cluster_ari(emb: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """ARI of KMeans (k = number of types) and of Leiden (resolution 1, 15 neighbours)."""
    import anndata
    import scanpy as sc
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(labels))
    kmeans = KMeans(k, n_init=10, random_state=seed).fit_predict(emb)
    ad = anndata.AnnData(np.zeros((len(emb), 1), dtype=np.float32))
    ad.obsm["emb"] = emb
    sc.pp.neighbors(ad, n_neighbors=15, use_rep="emb", random_state=seed)
    sc.tl.leiden(ad, resolution=1.0, flavor="igraph", n_iterations=2, random_state=seed)
    return {
        "kmeans_ari": float(adjusted_rand_score(labels, kmeans)),
        "leiden_ari": float(adjusted_rand_score(labels, ad.obs["leiden"])),
        "leiden_clusters": int(ad.obs["leiden"].nunique()),
    }


def scib_scores(adata, names: list[str]) -> dict[str, dict[str, float]]:
    """scib-metrics' Benchmarker (its default metrics) on obsm[name] for each name."""
    from scib_metrics.benchmark import Benchmarker

    bm = Benchmarker(adata, batch_key="batch", label_key="cell_type", embedding_obsm_keys=names,
                     pre_integrated_embedding_obsm_key="PCA", n_jobs=1, progress_bar=False)
    bm.benchmark()
    table = bm.get_results(min_max_scale=False)
    table = table.drop(index="Metric Type", errors="ignore")
    return {name: {col: float(table.loc[name, col]) for col in table.columns} for name in names}


def score(args: argparse.Namespace) -> None:
    import anndata
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    adata = anndata.read_h5ad(work / "train.h5ad")
    labels = adata.obs["cell_type"].to_numpy().astype(str)
    embeddings = dict(item.split("=", 1) for item in args.embedding)
    for name, path in embeddings.items():
        emb = np.load(path).astype(np.float32)
        if emb.shape[0] != adata.n_obs:
            raise ValueError(f"{path}: {emb.shape[0]} rows, expected {adata.n_obs}")
        adata.obsm[name] = emb
    if "PCA" not in embeddings:
        raise ValueError("score needs a PCA embedding (the unintegrated one)")
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"scib": scib_scores(adata, list(embeddings))}
    out["scib_s"] = time.perf_counter() - tic
    out["clusters"] = {}
    for name in embeddings:
        out["clusters"][name] = {"knn_accuracy": knn_accuracy(adata.obsm[name], labels, 0),
                                 **cluster_ari(adata.obsm[name], labels, 0)}
    (work / "scores.json").write_text(json.dumps(out, indent=1))
    print(f"scored {len(embeddings)} embeddings in {time.perf_counter() - tic:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p_fit = sub.add_parser("fit")
    p_fit.add_argument("work")
    p_fit.add_argument("--seed", type=int, default=0)
    p_fit.add_argument("--threads", type=int, default=2)
    p_fit.add_argument("--n-draws", type=int, default=1000)
    p_fit.add_argument("--max-epochs", type=int, default=None)
    p_time = sub.add_parser("time")
    p_time.add_argument("work")
    p_time.add_argument("--seed", type=int, default=0)
    p_time.add_argument("--threads", type=int, default=2)
    p_time.add_argument("--max-epochs", type=int, default=10)
    p_score = sub.add_parser("score")
    p_score.add_argument("work")
    p_score.add_argument("--embedding", action="append", default=[], help="NAME=PATH.npy")
    p_score.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {"fit": fit, "time": time_scvi, "score": score}[args.step](args)


if __name__ == "__main__":
    main()
