"""The scvi-tools side of benchmarks/gpu.py (part 4), run in the interpreter that has scvi-tools
1.4 (``--scvi-python``), never imported by vaekit.

    python _scvi_gpu.py TRAIN.npz HELDOUT.npz --epochs N --batch-size B --device cuda

Reads two CSR count matrices (scipy.sparse.save_npz), trains scVI with a negative binomial
likelihood (vaekit's "nb"), 10 latent features and one hidden layer of 128 units on all the
training cells (no validation split), and prints one line ``RESULT {json}``: wall seconds of
setup + training, training seconds, cells/s, and the held-out ELBO per cell (nats, higher is
better; scvi-tools' get_elbo).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("heldout")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import anndata
    import scipy.sparse as sp
    import scvi
    import torch

    scvi.settings.seed = args.seed
    scvi.settings.dl_num_workers = 0
    scvi.settings.verbosity = 30  # warnings only
    warnings.simplefilter("ignore")
    train = anndata.AnnData(sp.load_npz(args.train).astype(np.float32))
    heldout = anndata.AnnData(sp.load_npz(args.heldout).astype(np.float32))
    gpu = args.device.startswith("cuda")

    tic = time.perf_counter()
    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train, n_latent=10, n_hidden=128, n_layers=1, gene_likelihood="nb")
    tac = time.perf_counter()
    model.train(max_epochs=args.epochs, batch_size=args.batch_size, train_size=1.0,
                accelerator="gpu" if gpu else "cpu", devices=1, enable_progress_bar=False)
    if gpu:
        torch.cuda.synchronize()
    done = time.perf_counter()
    elbo = float(model.get_elbo(heldout, batch_size=args.batch_size))
    print("RESULT " + json.dumps({
        "fit_s": done - tic,
        "train_s": done - tac,
        "cells_per_s": train.n_obs * args.epochs / (done - tac),
        "epochs": len(model.history["elbo_train"]),
        "heldout_elbo": elbo,
        "scvi_tools": scvi.__version__,
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
