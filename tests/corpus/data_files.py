"""Hostile data inputs, part 2: NumPy (.npy, .npz, scipy.sparse), Matrix Market and 10x
folders, HDF5 / AnnData / 10x HDF5, IDX (MNIST) and image folders.

Every matrix is 16 samples x 12 features, so the shared model (``encode``) can read it; each
case damages one thing.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image

from corpus import Case, Kit
from corpus.data import encode, train

GENES = [f"g{j}" for j in range(12)]
SAMPLES = [f"s{i}" for i in range(16)]


def dense() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(16, 12))  # (samples, features)


def counts() -> sp.csr_matrix:
    """A 16 x 12 CSR matrix of counts, every row non-empty."""
    rng = np.random.default_rng(1)
    X = rng.poisson(0.6, size=(16, 12)).astype(np.float64)
    X[:, 0] += 1
    return sp.csr_matrix(X)


def case(name: str, make: Callable[[Kit], Path], code: int = 2, match: str = "",
         command: Callable = encode) -> Case:
    return Case(f"data/{name}", lambda k: command(k, make(k)), code=code, match=match)


# ---------------------------------------------------------------------- .npy
def npy(array: np.ndarray | Callable[[], np.ndarray], name: str = "x.npy") -> Callable:
    def make(kit: Kit) -> Path:
        buffer = io.BytesIO()
        np.save(buffer, array() if callable(array) else array, allow_pickle=True)
        return kit.write(name, buffer.getvalue())

    return make


def npy_header(shape: tuple, descr: str = "<f8", body: bytes = b"\0" * 64) -> Callable:
    """An .npy file whose header declares ``shape``, followed by ``body``."""

    def make(kit: Kit) -> Path:
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, header)
        return kit.write("x.npy", buffer.getvalue() + body)

    return make


def with_value(value: float, at: tuple = (4, 7), dtype: str = "f8") -> Callable[[], np.ndarray]:
    def array() -> np.ndarray:
        X = dense().astype(dtype)
        X[at] = value
        return X

    return array


NPY = [
    case("npy-ok", npy(dense()), code=0, command=train),
    case("npy-float16-ok", npy(dense().astype(np.float16)), code=0, command=train),
    case("npy-bool-ok", npy(dense() > 0), code=0, command=train),
    case("npy-images-ok", npy(dense().reshape(16, 3, 4)), code=0, command=train),
        case("npy-1d", npy(np.arange(16.0)), match="reshape"),
    case("npy-5d", npy(np.zeros((16, 1, 1, 3, 4))), match="shape"),
    case("npy-no-samples", npy(np.zeros((0, 12))), match="no data"),
    case("npy-complex", npy(dense() + 1j), match="complex"),
    case("npy-complex-train", npy(dense() + 1j), match="complex", command=train),
    case("npy-strings", npy(np.array([["a"] * 12] * 16)), match="not numbers"),
    case("npy-dates", npy(np.zeros((16, 12), "datetime64[s]")), match="not numbers"),
    case("npy-object-pickle", npy(np.array([[{}] * 12] * 16, dtype=object)), match="x.npy"),
    case("npy-overflow", npy(with_value(1e308)), match="row 4 (sample 'sample_4'), column 7"),
    case("npy-overflow-negative", npy(with_value(-1e39)), match="float32"),
    case("npy-inf", npy(with_value(np.inf)), match="infinite"),
    case("npy-nan", npy(with_value(np.nan)), match="NaN"),
    case("npy-wrong-width", npy(np.zeros((16, 5))), match="features"),
    case("npy-huge-header", npy_header((4_000_000, 1_200_000)), match="truncated"),
    case("npy-36-tib", npy_header((1 << 21, 1 << 21, 1 << 1)), match="truncated"),
    case("npy-truncated", lambda k: kit_bytes(k, npy(dense()), cut=-40), match="truncated"),
    case("npy-bad-magic", lambda k: k.write("x.npy", b"\x93NUMPX" + b"\0" * 100),
         match="x.npy"),
    case("npy-text", lambda k: k.write("x.npy", "sample,g0\ns0,1\n"), match="x.npy"),
    case("npy-header-garbage", npy_header((16, 12), descr="<not-a-type"), match="x.npy"),
]


def kit_bytes(kit: Kit, make: Callable[[Kit], Path], cut: int) -> Path:
    path = make(kit)
    path.write_bytes(path.read_bytes()[:cut])
    return path


# ---------------------------------------------------------------------- .npz
def npz(name: str = "x.npz", **arrays: object) -> Callable[[Kit], Path]:
    def make(kit: Kit) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v() if callable(v) else v for k, v in arrays.items()})
        return kit.write(name, buffer.getvalue())

    return make


def sparse_npz(fmt: str = "csr", change: Callable[[dict], object] = lambda a: None,
               matrix: Callable[[], sp.spmatrix] = counts) -> Callable[[Kit], Path]:
    """A scipy.sparse.save_npz file whose arrays ``change`` may damage."""

    def make(kit: Kit) -> Path:
        X = matrix().asformat(fmt)
        arrays = {"format": np.array(fmt.encode()), "shape": np.array(X.shape), "data": X.data}
        if fmt == "coo":
            arrays |= {"row": X.row, "col": X.col}
        else:
            arrays |= {"indices": X.indices, "indptr": X.indptr}
        change(arrays)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return kit.write("x.npz", buffer.getvalue())

    return make


def set_item(key: str, position: int, value: int) -> Callable[[dict], None]:
    def change(arrays: dict) -> None:
        arrays[key] = arrays[key].copy()
        arrays[key][position] = value

    return change


def replace(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    def change(arrays: dict) -> None:
        arrays[key] = value(arrays[key])

    return change


def zipped_member(kit: Kit, member: Callable[[Kit], Path]) -> Path:
    path = kit.tmp / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", member(kit).read_bytes())
    (kit.tmp / "x.npy").unlink()
    return path


NPZ = [
    case("npz-ok", npz(X=dense()), code=0, command=train),
    case("npz-with-names-ok", npz(X=dense(), obs_names=np.array(SAMPLES),
                                  var_names=np.array(GENES)), code=0),
    case("npz-sparse-ok", sparse_npz(), code=0, command=train),
    case("npz-sparse-csc-ok", sparse_npz("csc"), code=0, command=train),
    case("npz-sparse-coo-ok", sparse_npz("coo"), code=0, command=train),
        case("npz-sparse-column-1e6", sparse_npz(change=set_item("indices", 3, 10**6)),
         match="1000000"),
    case("npz-sparse-column-1e6-train", sparse_npz(change=set_item("indices", 3, 10**6)),
         match="outside", command=train),
    case("npz-sparse-column-just-out", sparse_npz(change=set_item("indices", -1, 12)),
         match="outside 0..11"),
    case("npz-sparse-negative-index", sparse_npz(change=set_item("indices", 0, -5)),
         match="-5"),
    case("npz-sparse-indptr-decreasing", sparse_npz(change=set_item("indptr", 5, 0)),
         match="decreases"),
    case("npz-sparse-indptr-start", sparse_npz(change=set_item("indptr", 0, 1)),
         match="index pointer"),
    case("npz-sparse-indptr-end", sparse_npz(change=set_item("indptr", -1, 10**9)),
         match="x.npz"),
    case("npz-sparse-indptr-short", sparse_npz(change=replace("indptr", lambda a: a[:-3])),
         match="x.npz"),
    case("npz-sparse-data-short", sparse_npz(change=replace("data", lambda a: a[:-3])),
         match="x.npz"),
    case("npz-sparse-csc-row-out", sparse_npz("csc", change=set_item("indices", 2, 40)),
         match="outside"),
    case("npz-sparse-coo-row-out", sparse_npz("coo", change=set_item("row", 2, 400)),
         match="x.npz"),
    case("npz-sparse-complex", sparse_npz(change=replace("data", lambda a: a + 2j)),
         match="complex"),
    case("npz-sparse-strings", sparse_npz(change=replace("data", lambda a: a.astype(str))),
         match="x.npz"),
    case("npz-sparse-overflow", sparse_npz(change=set_item("data", 4, 1e300)),
         match="float32"),
    case("npz-sparse-negative-shape", sparse_npz(change=replace("shape", lambda a: -a)),
         match="x.npz"),
    case("npz-sparse-unknown-format", sparse_npz(change=replace(
        "format", lambda a: np.array(b"xyz"))), match="x.npz"),
    case("npz-two-arrays", npz(A=dense(), B=dense()), match="layer="),
    case("npz-complex", npz(X=dense() + 1j), match="complex"),
    case("npz-member-huge-header", lambda k: zipped_member(k, npy_header((10**7, 10**7))),
         match="truncated"),
    case("npz-not-zip", lambda k: k.write("x.npz", b"PK\x03\x04 not really"), match="x.npz"),
    case("npz-truncated", lambda k: kit_bytes(k, npz(X=dense()), cut=-60), match="x.npz"),
    case("npz-pickled-member", npz(X=np.array([[{}] * 12] * 16, dtype=object)), match="x.npz"),
    case("npz-duplicate-names", npz(X=dense(), obs_names=np.array(["s0"] * 16)),
         match="duplicate"),
]




# ---------------------------------------------------------------------- Matrix Market / 10x
def mtx_text(field: str = "integer", lines: list[str] | None = None, size: str = "") -> str:
    X = counts().tocoo()  # (cells, genes); the file is genes x cells
    entries = lines if lines is not None else [
        f"{c + 1} {r + 1} {int(v)}" for r, c, v in zip(X.row, X.col, X.data, strict=True)
    ]
    size = size or f"12 16 {len(entries)}"
    return f"%%MatrixMarket matrix coordinate {field} general\n{size}\n" + "\n".join(
        entries) + "\n"


def tenx(matrix: str | bytes | None = None, genes: str | None = None,
         barcodes: str | None = None, gz: bool = False) -> Callable[[Kit], Path]:
    """A 10x folder (v2 names, or v3 gzipped): each file replaceable, None for the default."""

    def make(kit: Kit) -> Path:
        folder = kit.tmp / "tenx"
        files = {
            "matrix.mtx": mtx_text() if matrix is None else matrix,
            "genes.tsv": "".join(f"ENSG{j:011d}\t{g}\n" for j, g in enumerate(GENES))
            if genes is None else genes,
            "barcodes.tsv": "".join(f"{s}\n" for s in SAMPLES) if barcodes is None else barcodes,
        }
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            if gz:
                name, data = name.replace("genes", "features") + ".gz", gzip.compress(data)
            kit.write(f"tenx/{name}", data)
        return folder

    return make


def mtx_file(kit: Kit) -> Path:
    return tenx()(kit) / "matrix.mtx"


TENX = [
    case("10x-ok", tenx(), code=0),
    case("10x-gz-ok", tenx(gz=True), code=0),
    case("10x-train-ok", tenx(), code=0, command=train),
    case("10x-mtx-file-ok", mtx_file, code=0),
    case("10x-index-out-of-range", tenx(mtx_text(lines=["1 1 3", "13 2 4"], size="12 16 2")),
         match="tenx"),
    case("10x-index-zero", tenx(mtx_text(lines=["0 1 3"], size="12 16 1")), match="tenx"),
    case("10x-complex", tenx(mtx_text("complex", lines=["1 1 3 1", "2 2 1 0"],
                                      size="12 16 2")), match="complex"),
    case("10x-huge-nnz", tenx(mtx_text(lines=["1 1 3"], size="12 16 900000000000")),
         match="tenx"),
    case("10x-truncated-entries", tenx(mtx_text(lines=["1 1 3"], size="12 16 50")),
         match="tenx"),
    case("10x-not-mtx", tenx("hello\n"), match="matrix.mtx"),
    case("10x-text-value", tenx(mtx_text(lines=["1 1 abc"], size="12 16 1")), match="tenx"),
    case("10x-gz-truncated", lambda k: kit_bytes(
        k, lambda kk: tenx(gz=True)(kk) / "matrix.mtx.gz", cut=-20).parent, match="gzip"),
    case("10x-barcodes-short", tenx(barcodes="s0\ns1\n"), match="barcodes"),
    case("10x-genes-empty", tenx(genes=""), match="empty"),
    case("10x-barcodes-duplicate", tenx(barcodes="s0\n" * 16), match="duplicate"),
    case("10x-missing-barcodes",
         lambda k: (tenx()(k) / "barcodes.tsv").unlink() or k.tmp / "tenx", match="lacks"),
    case("10x-matrix-is-folder", lambda k: (k.tmp / "tenx/matrix.mtx").mkdir(parents=True)
         or k.tmp / "tenx", match="not one vaekit can read"),
]


# ---------------------------------------------------------------------- AnnData / HDF5
def h5ad(change: Callable[[h5py.File], object] = lambda f: None, X: Callable = counts,
         layers: dict | None = None, name: str = "x.h5ad") -> Callable[[Kit], Path]:
    """A valid .h5ad (16 x 12, sparse counts by default) that ``change`` then damages."""

    def make(kit: Kit) -> Path:
        adata = anndata.AnnData(X(), obs=pd.DataFrame(index=SAMPLES),
                                var=pd.DataFrame(index=GENES))
        for key, value in (layers or {}).items():
            adata.layers[key] = value()
        path = kit.tmp / name
        adata.write_h5ad(path)
        with h5py.File(path, "r+") as f:
            change(f)
        return path

    return make


def dataset(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    """Replace dataset ``key`` by ``value(old)``."""

    def change(f: h5py.File) -> None:
        old = f[key][()]
        del f[key]
        f[key] = value(old)

    return change


def at(position: int, new: object) -> Callable[[np.ndarray], np.ndarray]:
    def value(old: np.ndarray) -> np.ndarray:
        old = old.copy()
        old[position] = new
        return old

    return value


def attr(key: str, name: str, value: object) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        f[key].attrs[name] = value

    return change


def cut(make: Callable[[Kit], Path], keep: float) -> Callable[[Kit], Path]:
    def damaged(kit: Kit) -> Path:
        path = make(kit)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return damaged


def layer(kit_args: Callable, name: str) -> Callable[[Kit], list]:
    return lambda k: encode(k, kit_args(k), "--layer", name)


H5AD = [
    case("h5ad-ok", h5ad(), code=0),
    case("h5ad-dense-ok", h5ad(X=dense), code=0),
    case("h5ad-csc-ok", h5ad(X=lambda: counts().tocsc()), code=0),
    case("h5ad-train-ok", h5ad(), code=0, command=train),
    case("h5ad-indptr-decreasing", h5ad(dataset("X/indptr", at(6, 0))), match="decreases"),
    case("h5ad-indptr-huge", h5ad(dataset("X/indptr", at(-1, 10**9))), match="indptr"),
    case("h5ad-indptr-negative", h5ad(dataset("X/indptr", at(3, -7))), match="indptr"),
    case("h5ad-indptr-short", h5ad(dataset("X/indptr", lambda a: a[:5])), match="indptr"),
    case("h5ad-indices-out-of-range", h5ad(dataset("X/indices", at(2, 500))), match="outside"),
    case("h5ad-indices-out-of-range-train", h5ad(dataset("X/indices", at(2, 500))),
         match="outside", command=train),
    case("h5ad-indices-negative", h5ad(dataset("X/indices", at(0, -1))), match="outside"),
    case("h5ad-indices-float", h5ad(dataset("X/indices", lambda a: a.astype(float))),
         match="integer"),
    case("h5ad-data-short", h5ad(dataset("X/data", lambda a: a[:-2])), match="x.h5ad"),
    case("h5ad-shape-wrong", h5ad(attr("X", "shape", (16, 5))), match="x.h5ad"),
    case("h5ad-shape-missing", h5ad(lambda f: f["X"].attrs.__delitem__("shape")),
         match="x.h5ad"),
    case("h5ad-csc-indices-out", h5ad(dataset("X/indices", at(1, 99)),
                                      X=lambda: counts().tocsc()), match="outside"),
    case("h5ad-unknown-encoding", h5ad(attr("X", "encoding-type", "quantum_matrix")),
         match="x.h5ad"),
    case("h5ad-unknown-version", h5ad(attr("X", "encoding-version", "9.9.9")), match="x.h5ad"),
    case("h5ad-complex", h5ad(X=lambda: dense() + 1j), match="complex"),
    case("h5ad-sparse-complex", h5ad(dataset("X/data", lambda a: a + 1j)), match="complex"),
    case("h5ad-overflow", h5ad(X=with_value(1e300)), match="float32"),
    case("h5ad-duplicate-obs", h5ad(dataset("obs/_index", lambda a: np.array(
        [b"s0"] * 16, dtype=object).astype("S"))), match="x.h5ad"),
    case("h5ad-truncated", cut(h5ad(), 0.5), match="x.h5ad"),
    case("h5ad-not-hdf5", lambda k: k.write("x.h5ad", "sample,g0\n"), match="x.h5ad"),
    case("h5ad-no-x", h5ad(lambda f: f.__delitem__("X")), match="no X"),
    Case("data/h5ad-layer-missing", layer(h5ad(), "counts"), match="no layer 'counts'"),
    Case("data/h5ad-layer-ok", layer(h5ad(layers={"counts": counts}), "counts"), code=0),
    Case("data/h5ad-layer-corrupt", layer(h5ad(
        dataset("layers/counts/indices", at(3, 10**6)), layers={"counts": counts}), "counts"),
        match="layers/counts"),
    Case("data/h5ad-layer-in-obsm-corrupt", lambda k: encode(k, h5ad(dataset(
        "layers/raw/indptr", at(2, 10**5)), layers={"raw": counts})(k)), match="layers/raw"),
]


def plain_h5(write: Callable[[h5py.File], object], name: str = "x.h5") -> Callable:
    def make(kit: Kit) -> Path:
        path = kit.tmp / name
        with h5py.File(path, "w") as f:
            write(f)
        return path

    return make


def tenx_h5(change: Callable[[dict], object] = lambda a: None) -> Callable[[Kit], Path]:
    def write(f: h5py.File) -> None:
        X = counts()  # cells x genes CSR = genes x cells CSC
        arrays = {"data": X.data.astype(np.int32), "indices": X.indices, "indptr": X.indptr,
                  "shape": np.array([12, 16]), "barcodes": np.array(SAMPLES, "S"),
                  "features/id": np.array([f"ENSG{j}" for j in range(12)], "S"),
                  "features/name": np.array(GENES, "S")}
        change(arrays)
        for key, value in arrays.items():
            f[f"matrix/{key}"] = value

    return plain_h5(write)


HDF5 = [
    case("h5-ok", plain_h5(lambda f: f.create_dataset("X", data=dense())), code=0, command=train),
    case("h5-no-x", plain_h5(lambda f: f.create_dataset("A", data=dense())), match="no dataset"),
    case("h5-x-group", plain_h5(lambda f: f.create_group("X")), match="no dataset"),
    case("h5-x-strings", plain_h5(lambda f: f.create_dataset(
        "X", data=np.array([["a"] * 12] * 16, "S"))), match="not numbers"),
    case("h5-x-complex", plain_h5(lambda f: f.create_dataset("X", data=dense() + 1j)),
         match="complex"),
    case("h5-x-1d", plain_h5(lambda f: f.create_dataset("X", data=np.zeros(16))),
         match="reshape"),
    case("h5-truncated", cut(plain_h5(lambda f: f.create_dataset("X", data=dense())), 0.3),
         match="x.h5"),
    case("h5-empty-hdf5", plain_h5(lambda f: None), match="no dataset"),
    case("10x-h5-ok", tenx_h5(), code=0, command=train),
    case("10x-h5-missing-keys", tenx_h5(lambda a: a.pop("indptr")), match="lacks"),
    case("10x-h5-index-out", tenx_h5(replace("indices", lambda a: a + 100)), match="outside"),
    case("10x-h5-indptr-bad", tenx_h5(set_item("indptr", 4, 10**6)), match="indptr"),
    case("10x-h5-shape-mismatch", tenx_h5(replace("shape", lambda a: np.array([12, 5]))),
         match="indptr"),
    case("10x-h5-shape-strings", tenx_h5(replace("shape", lambda a: np.array([b"a", b"b"]))),
         match="shape"),
    case("10x-h5-barcodes-short", tenx_h5(replace("barcodes", lambda a: a[:3])),
         match="x.h5"),
]


# ---------------------------------------------------------------------- IDX (MNIST)
def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def images_u8() -> np.ndarray:
    return (np.random.default_rng(2).random((16, 3, 4)) * 255).astype(np.uint8)


def idx(content: Callable[[], bytes], name: str = "train-images-idx3-ubyte",
        labels: bytes | None = None) -> Callable[[Kit], Path]:
    def make(kit: Kit) -> Path:
        if labels is not None:
            kit.write(name.replace("images", "labels").replace("idx3", "idx1"), labels)
        return kit.write(name, content())

    return make


IDX = [
    case("idx-ok", idx(lambda: idx_bytes(images_u8())), code=0, command=train),
    case("idx-gz-ok", idx(lambda: gzip.compress(idx_bytes(images_u8())),
                          "train-images-idx3-ubyte.gz"), code=0, command=train),
    case("idx-with-labels-ok", idx(lambda: idx_bytes(images_u8()),
                                   labels=idx_bytes(np.arange(16, dtype=np.uint8))),
         code=0, command=train),
    case("idx-labels-wrong-count", idx(lambda: idx_bytes(images_u8()),
                                       labels=idx_bytes(np.arange(5, dtype=np.uint8))),
         match="labels"),
    case("idx-bad-magic", idx(lambda: b"\x12\x34\x56\x78" + bytes(200)), match="magic"),
    case("idx-truncated", idx(lambda: idx_bytes(images_u8())[:-7]), match="truncated"),
    case("idx-extra-bytes", idx(lambda: idx_bytes(images_u8()) + b"\0\0"), match="truncated"),
    case("idx-header-only", idx(lambda: idx_bytes(images_u8())[:9]), match="truncated"),
    case("idx-huge-dims", idx(lambda: bytes([0, 0, 8, 3]) + struct.pack(
        ">3I", 2**31, 2**15, 2**15)), match="would need"),
    case("idx-gz-bomb", idx(lambda: gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(
        ">3I", 16, 3, 4) + bytes(50_000_000), compresslevel=1), "train-images-idx3-ubyte.gz"),
        match="truncated"),
    case("idx-gz-truncated", idx(lambda: gzip.compress(idx_bytes(images_u8()))[:-9],
                                 "train-images-idx3-ubyte.gz"), match="gzip"),
    case("idx-labels-file-given", idx(lambda: idx_bytes(np.arange(16, dtype=np.uint8)),
                                      "train-labels-idx1-ubyte"), match="labels file"),
    case("idx-float64-ok", idx(lambda: idx_bytes((images_u8() / 255).astype(">f8"), 0x0E)), code=0,
         command=train),
    case("idx-zero-dims", idx(lambda: bytes([0, 0, 8, 0]) + b"\x07"), match="shape"),
]


# ---------------------------------------------------------------------- image folders
def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: Pillow refuses it on opening."""
    data = bytearray(png(np.zeros((3, 4), np.uint8)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def image_folder(bad: bytes | None = None, bad_name: str = "s07.png",
                 sub: bool = False) -> Callable[[Kit], Path]:
    """16 grayscale 3 x 4 PNGs (in two class subfolders with ``sub``), one replaced by ``bad``."""

    def make(kit: Kit) -> Path:
        for i, image in enumerate(images_u8()):
            name = f"{'ab'[i % 2] + '/' if sub else ''}s{i:02d}.png"
            kit.write(f"img/{name}", png(image))
        if bad is not None:
            kit.write(f"img/{bad_name}", bad)
        return kit.tmp / "img"

    return make


IMAGES = [
    case("images-ok", image_folder(), code=0, command=train),
    case("images-classes-ok", image_folder(sub=True), code=0, command=train),
    case("images-truncated-png", image_folder(png(images_u8()[0])[:40]), match="s07.png"),
    case("images-truncated-data", image_folder(png(images_u8()[0])[:50]), match="s07.png"),
    case("images-bomb", image_folder(png_declaring(30_000, 30_000)), match="s07.png"),
    case("images-bomb-warning", image_folder(png_declaring(10_000, 10_000)), match="s07.png"),
    case("images-not-png", image_folder(b"GIF89a not an image"), match="s07.png"),
    case("images-text-named-png", image_folder(b"sample,g0\n"), match="s07.png"),
    case("images-other-size", image_folder(png(np.zeros((5, 5), np.uint8))), match="one size"),
    case("images-16-bit", image_folder(png(np.zeros((3, 4), np.uint16) + 300)), match="mode"),
    case("images-mixed-levels", image_folder(png(np.zeros((3, 4), np.uint8)), "top.png",
                                             sub=True), match="subfolders"),
    case("images-hidden-ignored-ok", image_folder(b"junk", ".DS_Store.png"), code=0, command=train),
]

CASES = NPY + NPZ + TENX + H5AD + HDF5 + IDX + IMAGES
