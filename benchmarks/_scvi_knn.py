"""scVI's latent kNN accuracy on defaults.py's count datasets (the peer tool beside vaekit).

Runs in the scvi-tools venv (see README, integration.py), never imported by vaekit::

    /work/scvi-venv/bin/python benchmarks/_scvi_knn.py pbmc --seeds 0 1 2

The split is defaults.py's (``train_test_split(test_size=0.25, random_state=0, stratify=y)``);
scVI gets the training cells' raw counts with its defaults at ``n_latent=10`` (vaekit's
automatic latent size here), kNN (15 neighbours) is fitted on the training cells' latent means
and scored on the test cells'. PCA of log counts per 10,000 (10 components) is printed too, as
a check that the split is the one defaults.py uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scrna_counts"
FILES = {"pbmc": "10X_PBMC_top2000.h5", "worm": "worm_neuron_cell.h5"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=list(FILES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=None)
    args = parser.parse_args()

    import anndata
    import h5py
    import scvi
    import torch
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    torch.set_num_threads(1)
    scvi.settings.num_threads = 1
    scvi.settings.dl_num_workers = 0
    scvi.settings.verbosity = 30
    with h5py.File(SHARED / FILES[args.dataset], "r") as f:
        X, y = np.asarray(f["X"], dtype=np.float32), np.asarray(f["Y"]).astype(int)
    A, B, ya, yb = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    def knn(P: np.ndarray, Q: np.ndarray) -> float:
        return float(KNeighborsClassifier(15).fit(P, ya).score(Q, yb))

    def per_10k(M: np.ndarray) -> np.ndarray:
        return np.log1p(M / np.maximum(M.sum(1, keepdims=True), 1) * 1e4)

    pca = PCA(10, random_state=0).fit(per_10k(A.astype(np.float64)))
    out = {"PCA": knn(pca.transform(per_10k(A.astype(np.float64))),
                      pca.transform(per_10k(B.astype(np.float64)))), "scVI": []}
    for seed in args.seeds:
        scvi.settings.seed = seed
        train, test = anndata.AnnData(A), anndata.AnnData(B)
        scvi.model.SCVI.setup_anndata(train)
        model = scvi.model.SCVI(train, n_latent=10)
        model.train(max_epochs=args.max_epochs, enable_progress_bar=False)
        out["scVI"].append(knn(model.get_latent_representation(train),
                               model.get_latent_representation(test)))
        print(json.dumps({"seed": seed, "scVI": out["scVI"][-1], "PCA": out["PCA"],
                          "epochs": len(model.history["elbo_train"])}), flush=True)
    print(json.dumps({"dataset": args.dataset, "PCA": out["PCA"], "scVI mean":
                      float(np.mean(out["scVI"])), "scVI sd": float(np.std(out["scVI"], ddof=1))
                      if len(out["scVI"]) > 1 else 0.0, "scVI": out["scVI"]}))


if __name__ == "__main__":
    main()
