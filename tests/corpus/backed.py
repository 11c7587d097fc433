"""Backed data (--backed): files that cannot be streamed, damaged layouts found before or
while the rows are read, values the model refuses, and encoding with another file's features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from corpus import Case, Kit

TRAIN = ["--epochs", "1", "--seed", "0", "--latent", "2", "--hidden", "4", "-q"]


def _h5ad(k: Kit, X: np.ndarray | None = None, sparse: bool = True, name: str = "x.h5ad") -> Path:
    """The kit's table as an .h5ad (CSR by default); ``X`` replaces its values."""
    table = pd.read_csv(k.table, index_col=0)
    values = table.to_numpy(np.float32) if X is None else X.astype(np.float32)
    adata = anndata.AnnData(sp.csr_matrix(values) if sparse else values)
    adata.obs_names, adata.var_names = list(table.index), list(table.columns)
    path = k.tmp / name
    adata.write_h5ad(path)
    return path


def _counts() -> np.ndarray:
    return np.random.default_rng(0).poisson(2.0, (16, 12)) + np.eye(16, 12)


def _damaged(change: Callable[[h5py.File], None]) -> Callable[[Kit], Path]:
    def make(k: Kit) -> Path:
        path = _h5ad(k, _counts())
        with h5py.File(path, "r+") as f:
            change(f)
        return path

    return make


def _train(make: Callable[[Kit], Path], *extra: str) -> Callable[[Kit], list]:
    return lambda k: ["train", make(k), "-o", k.tmp / "m", "--backed", *TRAIN, *extra]


def _csv(k: Kit) -> Path:
    return k.table


def _counts_file(k: Kit) -> Path:
    return _h5ad(k, _counts())


def _with(X: Callable[[], np.ndarray], sparse: bool = True) -> Callable[[Kit], Path]:
    return lambda k: _h5ad(k, X(), sparse)


def _negative() -> np.ndarray:
    X = _counts()
    X[3, 5] = -1
    return X


def _below_minus_one() -> np.ndarray:
    X = _counts()
    X[7, 2] = -2
    return X


def _nan() -> np.ndarray:
    X = _counts()
    X[2, 7] = np.nan
    return X


def _empty_row() -> np.ndarray:
    X = _counts()
    X[4] = 0
    return X


def _tenx(k: Kit) -> Path:
    path = k.tmp / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_group("matrix").create_dataset("data", data=np.ones(3))
    return path


def _plain_hdf5(k: Kit) -> Path:
    path = k.tmp / "x.hdf5"
    with h5py.File(path, "w") as f:
        f["X"] = _counts()
    return path


def _duplicate_genes(k: Kit) -> Path:
    path = _h5ad(k, _counts())
    with h5py.File(path, "r+") as f:
        index = f["var"].attrs["_index"]
        names = f["var"][index].asstr()[()]
        f["var"][index][1] = names[0]
    return path


def _encode_reordered(k: Kit) -> list:
    table = pd.read_csv(k.table, index_col=0)
    other = k.tmp / "reordered.csv"
    table[table.columns[::-1]].to_csv(other)
    path = _h5ad(Kit(k.tmp, k.model, other), name="reordered.h5ad")
    other.unlink()
    return ["encode", k.model, path, "-o", k.tmp / "z.h5ad", "--backed"]


def _encode(sparse: bool, out: str) -> Callable[[Kit], list]:
    return lambda k: ["encode", k.model, _h5ad(k, sparse=sparse), "-o", k.tmp / out, "--backed"]


def _set_attr(key: str, name: str, value: object) -> Callable[[h5py.File], None]:
    return lambda f: f[key].attrs.modify(name, value)


def _set(key: str, at: int, value: int) -> Callable[[h5py.File], None]:
    return lambda f: f[key].__setitem__(at, value)


CASES = [
    Case("backed/csv", _train(_csv), match="backed=True reads AnnData files"),
    Case("backed/10x-h5-incomplete", _train(_tenx), match="lacks ['indices', 'indptr'"),
    Case("backed/plain-hdf5", _train(_plain_hdf5), match="(neither)"),
    Case("backed/transpose", _train(_counts_file, "--transpose"), match="transpose=True"),
    Case("backed/missing-layer", _train(_counts_file, "--layer", "raw"), match="no layer 'raw'"),
    Case("backed/csc", _train(_damaged(_set_attr("X", "encoding-type", "csc_matrix"))),
         match="stored as csc_matrix"),
    Case("backed/indptr-beyond-data", _train(_damaged(_set("X/indptr", 5, 10**6))),
         match="indptr"),
    Case("backed/indices-out-of-range", _train(_damaged(_set("X/indices", 3, 99)),
                                               "--likelihood", "nb"),
         match="column indices outside 0..11"),
    Case("backed/duplicate-var-names", _train(_duplicate_genes), match="duplicate feature names"),
    Case("backed/log1p-below-minus-one", _train(_with(_below_minus_one), "--log1p"),
         match="log1p needs values > -1; the data hold -2"),
    Case("backed/with-missing-mask", _train(_counts_file, "--missing", "mask"),
         match="missing='mask'"),
    Case("backed/nb-negative", _train(_with(_negative), "--likelihood", "nb"),
         match="row 3 (sample 's3'), column 5 ('g5')"),
    Case("backed/nan-dense", _train(_with(_nan, sparse=False)),
         match="row 2 (sample 's2'), column 7 ('g7')"),
    Case("backed/nb-empty-row", _train(_with(_empty_row), "--likelihood", "nb"),
         match="row 4 (sample 's4')"),
    Case("backed/encode-reordered-features", _encode_reordered, match="model's 12 features"),
    Case("backed/encode-csr-h5ad", _encode(True, "z.h5ad"), code=0),
    Case("backed/encode-dense-h5ad", _encode(False, "z.h5ad"), code=0),
    Case("backed/train-counts", _train(_counts_file, "--likelihood", "nb"), code=0),
]
