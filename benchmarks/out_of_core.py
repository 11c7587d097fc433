"""Out-of-core training: one epoch on a generated 1,000,000 x 2,000 sparse counts .h5ad.

Writes a cells x genes counts file in anndata's on-disk CSR layout, a chunk of rows at a time
(the generator never holds the matrix), then measures, each in a fresh process so that peak
resident memory (``resource.getrusage``) is that run's alone:

- ``backed``: ``VAE.fit(vaekit.read(path, backed=True))``, one epoch, nothing loaded;
- ``memory``: the same fit on an in-memory subset that fits (its own file, read whole).

Settings: NB likelihood, batch 1024, hidden 128, latent 10, validation_fraction 0, one
thread. Goals (issue 18): peak RSS of the backed run <= half the bytes of the whole matrix as
in-memory CSR; backed throughput >= 50% of in-memory. The files go to a temporary folder
(or ``--folder``) and are deleted at the end unless ``--keep``. This process imports no more
than the standard library: Linux carries a parent's resident peak into ``ru_maxrss`` of the
children it starts, so generation runs in a process of its own too.

Run::

    OMP_NUM_THREADS=1 nice python benchmarks/out_of_core.py            # 1M cells
    OMP_NUM_THREADS=1 nice python benchmarks/out_of_core.py --cells 200000 --subset 50000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GB = 1e9
CHUNK = 20_000  # rows generated and written at a time
N_TYPES = 12  # cell populations, so that the data have structure to learn
SETTINGS = dict(
    likelihood="nb", batch_size=1024, hidden=(128,), n_latent=10, validation_fraction=0.0,
    epochs=1, seed=0, verbose=False,
)


def generate(path: Path, n_cells: int, n_genes: int, density: float, seed: int = 0) -> dict:
    """Write ``n_cells`` x ``n_genes`` counts, about ``density`` non-zero, as an .h5ad.

    Each cell belongs to one of ``N_TYPES`` populations; a gene is detected in a cell with a
    probability that depends on the gene and the population (mean ``density``), and a
    detected count is 1 + NB(mean mu, dispersion 2), mu log-normal per population and gene.
    Returns the bytes the matrix would take in memory as scipy CSR.
    """
    import anndata
    import h5py
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    detect = np.clip(rng.lognormal(0, 0.8, (N_TYPES, n_genes)), 0, None)
    detect *= density / detect.mean()
    detect = np.clip(detect, 0, 0.9)
    mu = rng.lognormal(0, 1, (N_TYPES, n_genes))
    names = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    empty = sp.csr_matrix((n_cells, n_genes), dtype=np.float32)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    anndata.AnnData(empty, obs=obs, var=names).write_h5ad(path)  # the frame of the file
    with h5py.File(path, "r+") as f:
        X = f["X"]
        for key in ("data", "indices"):
            del X[key]
        X.create_dataset("data", (0,), np.float32, maxshape=(None,), chunks=(1 << 18,))
        X.create_dataset("indices", (0,), np.int32, maxshape=(None,), chunks=(1 << 18,))
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        for start in range(0, n_cells, CHUNK):
            stop = min(start + CHUNK, n_cells)
            rows = _chunk(rng, stop - start, detect, mu)
            _append(X, rows)
            indptr[start + 1 : stop + 1] = indptr[start] + rows.indptr[1:]
        del X["indptr"]
        X.create_dataset("indptr", data=indptr)
    nnz = int(indptr[-1])
    index = 4 if nnz < 2**31 else 8  # scipy's index type: float32 values, 32-bit indices
    return {"csr_bytes": nnz * (4 + index) + (n_cells + 1) * index, "nnz": nnz}


def _chunk(rng, n: int, detect, mu):  # -> scipy.sparse.csr_matrix
    import numpy as np
    import scipy.sparse as sp

    kind = rng.integers(N_TYPES, size=n)
    mask = rng.random((n, detect.shape[1]), dtype=np.float32) < detect[kind]
    mask[mask.sum(1) == 0, 0] = True  # every cell has a positive total
    r, c = np.nonzero(mask)
    mean = mu[kind[r], c]
    values = 1 + rng.negative_binomial(2, 2 / (2 + mean))
    return sp.csr_matrix((values.astype(np.float32), (r, c)), shape=mask.shape)


def _append(X, rows) -> None:
    import numpy as np

    for key, values in (("data", rows.data), ("indices", rows.indices.astype(np.int32))):
        d = X[key]
        d.resize((len(d) + len(values),))
        d[-len(values) :] = values


def measure(kind: str, path: str) -> dict:
    """One fit in this process: its seconds, the epoch's seconds and the peak RSS."""
    import torch

    import vaekit

    torch.set_num_threads(1)
    vaekit.VAE, vaekit.read  # noqa: B018 - the lazy imports, before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    adata = vaekit.read(path, backed=kind == "backed")
    model = vaekit.VAE(**SETTINGS).fit(adata)
    seconds = time.perf_counter() - start
    return {
        "kind": kind,
        "cells": adata.n_obs,
        "seconds": seconds,
        "epoch_seconds": float(model.history_["seconds"].iloc[0]),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_after_imports": base * 1024,
    }


def run(*args: str) -> dict:
    """The JSON that this script prints with ``args`` in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, *args], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(args: argparse.Namespace, folder: Path) -> None:
    """Generate both files, measure, print each figure as soon as it is known."""
    big, small = folder / "cells.h5ad", folder / "subset.h5ad"
    t = time.perf_counter()
    shape = [str(args.genes), str(args.density)]
    matrix = run("--generate", str(big), str(args.cells), *shape, "0")["csr_bytes"]
    run("--generate", str(small), str(args.subset), *shape, "1")
    print(f"generated in {time.perf_counter() - t:.0f} s", flush=True)
    print(f"file: {args.cells:,} cells x {args.genes:,} genes, {big.stat().st_size / GB:.2f} GB; "
          f"as in-memory CSR {matrix / GB:.2f} GB (goal: peak RSS <= {matrix / 2 / GB:.2f} GB)",
          flush=True)
    backed = _shown(run("--measure", "backed", str(big)))
    memory = _shown(run("--measure", "memory", str(small)))
    ratio = _rate(backed, "epoch_seconds") / _rate(memory, "epoch_seconds")
    total = _rate(backed, "seconds") / _rate(memory, "seconds")
    print(f"peak RSS / in-memory CSR bytes: {backed['peak_rss'] / matrix:.2f} (goal <= 0.5)")
    print(f"throughput backed / in-memory: epoch {ratio:.2f}, whole fit {total:.2f} (goal >= 0.5)")


def _shown(r: dict) -> dict:
    print(f"{r['kind']:>7}: {r['cells']:,} cells, epoch {r['epoch_seconds']:.1f} s = "
          f"{_rate(r, 'epoch_seconds'):,.0f} cells/s; fit {r['seconds']:.1f} s (with reading "
          f"and checks) = {_rate(r, 'seconds'):,.0f} cells/s; peak RSS {r['peak_rss'] / GB:.2f} "
          f"GB (after imports {r['rss_after_imports'] / GB:.2f})", flush=True)
    return r


def _rate(result: dict, key: str) -> float:
    return result["cells"] / result[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--folder", type=Path, help="where to write the files (default: a temp)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    if args.generate:
        path, n, genes, density, seed = args.generate
        print(json.dumps(generate(Path(path), int(n), int(genes), float(density), int(seed))))
        return
    folder = Path(tempfile.mkdtemp(prefix="vaekit-ooc-", dir=args.folder))
    try:
        report(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
