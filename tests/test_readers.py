"""vaekit.data.readers.read: every format, the options, and each malformed input's message.

Each test writes its own small files with an independent writer (pandas, numpy, scipy, h5py,
anndata, Pillow, struct) and checks the values read against the array it wrote.
"""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from PIL import Image

from vaekit.data.readers import read

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RNG = np.random.default_rng(0)
GENES = ["TP53", "XIST", "RPS4Y1", "GAPDH", "ACTB", "CD4", "MYC", "EGFR", "KRAS", "BRCA1"]


def frame(n: int = 4, m: int = 3) -> pd.DataFrame:
    values = RNG.random((n, m)).round(4)
    index = pd.Index([f"S{i}" for i in range(n)], name="sample")
    return pd.DataFrame(values, index=index, columns=GENES[:m])


def write_gz(path: Path, text: str | bytes) -> Path:
    path.write_bytes(gzip.compress(text.encode() if isinstance(text, str) else text))
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand: magic 0x0000 08 ndim, big-endian sizes, uint8 values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def check_matrix(adata: anndata.AnnData, expected: np.ndarray) -> None:
    X = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    assert X.dtype == np.float32
    np.testing.assert_allclose(X, expected.astype(np.float32), rtol=1e-6)


# ---- text tables ----------------------------------------------------------------------------


def test_csv_reads_samples_as_rows(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "x.csv")
    adata = read(tmp_path / "x.csv")
    check_matrix(adata, df.to_numpy())
    assert isinstance(adata.X, np.ndarray)
    assert list(adata.obs_names) == list(df.index)
    assert list(adata.var_names) == list(df.columns)
    assert adata.uns["vaekit"]["source"] == str(tmp_path / "x.csv")


def test_tsv_gz_and_txt_are_tab_separated(tmp_path):
    df = frame()
    write_gz(tmp_path / "x.tsv.gz", df.to_csv(sep="\t"))
    df.to_csv(tmp_path / "x.txt", sep="\t")
    for name in ("x.tsv.gz", "x.txt"):
        adata = read(tmp_path / name)
        check_matrix(adata, df.to_numpy())
        assert list(adata.var_names) == list(df.columns)


def test_sep_sample_column_and_labels_options(tmp_path):
    df = frame().reset_index()
    df.insert(0, "cohort", ["A", "B", "A", "B"])
    df.to_csv(tmp_path / "x.txt", sep=";", index=False)
    adata = read(tmp_path / "x.txt", sep=";", sample_column="sample", labels="cohort")
    assert list(adata.obs_names) == ["S0", "S1", "S2", "S3"]
    assert list(adata.var_names) == GENES[:3]
    assert list(adata.obs["label"]) == ["A", "B", "A", "B"]


def test_empty_cells_become_nan(tmp_path):
    (tmp_path / "x.csv").write_text("id,a,b\ns1,1,\ns2,,4\n")
    adata = read(tmp_path / "x.csv")
    np.testing.assert_array_equal(adata.X, np.array([[1, np.nan], [np.nan, 4]], np.float32))


def test_parquet_sample_ids_from_index_first_text_column_or_generated(tmp_path):
    df = frame()
    df.to_parquet(tmp_path / "indexed.parquet")
    adata = read(tmp_path / "indexed.parquet")
    check_matrix(adata, df.to_numpy())
    assert list(adata.obs_names) == list(df.index)

    df.reset_index().to_parquet(tmp_path / "column.pq")
    assert list(read(tmp_path / "column.pq").obs_names) == list(df.index)

    df.reset_index(drop=True).to_parquet(tmp_path / "numeric.parquet")
    adata = read(tmp_path / "numeric.parquet")
    assert list(adata.obs_names) == ["sample_0", "sample_1", "sample_2", "sample_3"]
    assert list(adata.var_names) == GENES[:3]


def test_parquet_sample_column_and_labels(tmp_path):
    df = frame().reset_index()
    df["group"] = ["x", "y", "x", "y"]
    df.insert(0, "n", range(4))
    df.to_parquet(tmp_path / "x.parquet")
    adata = read(tmp_path / "x.parquet", sample_column="sample", labels="group")
    assert list(adata.obs_names) == ["S0", "S1", "S2", "S3"]
    assert list(adata.var_names) == ["n", *GENES[:3]]
    assert list(adata.obs["label"]) == ["x", "y", "x", "y"]


# ---- NumPy, MATLAB ------------------------------------------------------------------------


def test_npy_matrix_gets_generated_names(tmp_path):
    X = RNG.random((5, 3))
    np.save(tmp_path / "x.npy", X)
    adata = read(tmp_path / "x.npy")
    check_matrix(adata, X)
    assert list(adata.obs_names[:2]) == ["sample_0", "sample_1"]
    assert list(adata.var_names) == ["feature_0", "feature_1", "feature_2"]


def test_npy_images_are_flattened_with_their_shape(tmp_path):
    images = RNG.random((4, 2, 3))
    np.save(tmp_path / "x.npy", images)
    adata = read(tmp_path / "x.npy")
    check_matrix(adata, images.reshape(4, 6))
    assert adata.uns["vaekit"]["image_shape"] == [2, 3]


def test_npz_with_names_and_labels(tmp_path):
    X = RNG.random((3, 2))
    np.savez(
        tmp_path / "x.npz", X=X, y=np.array([2, 10, 2]), obs_names=np.array(["a", "b", "c"]),
        var_names=np.array(["g1", "g2"]),
    )  # fmt: skip
    adata = read(tmp_path / "x.npz")
    check_matrix(adata, X)
    assert list(adata.obs_names) == ["a", "b", "c"]
    assert list(adata.var_names) == ["g1", "g2"]
    assert list(adata.obs["label"]) == ["2", "10", "2"]
    assert list(adata.obs["label"].cat.categories) == ["2", "10"]  # numeric order


def test_npz_only_array_or_layer(tmp_path):
    X = RNG.random((3, 2))
    np.savez(tmp_path / "one.npz", data=X)
    check_matrix(read(tmp_path / "one.npz"), X)
    np.savez(tmp_path / "two.npz", a=X, b=X * 2)
    check_matrix(read(tmp_path / "two.npz", layer="b"), X * 2)
    with pytest.raises(ValueError, match=r"holds arrays \['a', 'b'\].*layer="):
        read(tmp_path / "two.npz")


@pytest.mark.parametrize("kind", ["csr", "csc", "coo"])
def test_sparse_npz_stays_sparse(tmp_path, kind):
    X = sp.random(6, 5, density=0.3, format=kind, random_state=0)
    sp.save_npz(tmp_path / "x.npz", X)
    adata = read(tmp_path / "x.npz")
    assert isinstance(adata.X, sp.csr_matrix)
    check_matrix(adata, X.toarray())


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    X = RNG.random((2, 2))
    np.savez(tmp_path / "x.npz", X=X, meta=np.array([{"a": 1}], dtype=object))
    check_matrix(read(tmp_path / "x.npz"), X)
    with pytest.raises(ValueError, match=r"not a readable .npz archive of numeric arrays"):
        read(tmp_path / "x.npz", layer="meta")


def test_mat_reads_X_and_labels(tmp_path):
    X = (RNG.random((4, 6)) > 0.5).astype(np.uint8)
    scipy.io.savemat(tmp_path / "x.mat", {"X": X, "y": np.array([[1], [2], [1], [2]])})
    adata = read(tmp_path / "x.mat")
    check_matrix(adata, X)
    assert list(adata.obs["label"]) == ["1", "2", "1", "2"]


def test_mat_without_X_must_be_unambiguous(tmp_path):
    X = RNG.random((4, 6))
    scipy.io.savemat(tmp_path / "one.mat", {"data": X})
    check_matrix(read(tmp_path / "one.mat"), X)
    scipy.io.savemat(tmp_path / "two.mat", {"train": X, "test": X})
    with pytest.raises(ValueError, match=r"'train'.*'test'.*layer="):
        read(tmp_path / "two.mat")


def test_mat_v73_is_explained(tmp_path):
    # v7.3 files are HDF5 behind a 128-byte MATLAB header in a 512-byte user block
    with h5py.File(tmp_path / "x.mat", "w", userblock_size=512) as f:
        f["X"] = np.zeros((2, 2))
    header = b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + b"\x00\x02IM"
    with open(tmp_path / "x.mat", "r+b") as f:
        f.write(header)
    with pytest.raises(ValueError, match=r"x.mat is a MATLAB v7.3 file.*-v7"):
        read(tmp_path / "x.mat")


# ---- AnnData, HDF5, 10x -----------------------------------------------------------------


def test_h5ad_with_layers_and_obs(tmp_path):
    counts = sp.random(5, 4, density=0.5, format="csc", random_state=1) * 10
    obs = pd.DataFrame({"batch": list("aabbb")}, index=[f"c{i}" for i in range(5)])
    var = pd.DataFrame(index=GENES[:4])
    written = anndata.AnnData(X=np.log1p(counts.toarray()), obs=obs, var=var)
    written.layers["counts"] = counts
    written.write_h5ad(tmp_path / "x.h5ad")

    adata = read(tmp_path / "x.h5ad")
    check_matrix(adata, np.log1p(counts.toarray()))
    assert list(adata.obs["batch"]) == list("aabbb")
    counted = read(tmp_path / "x.h5ad", layer="counts")
    assert isinstance(counted.X, sp.csr_matrix)
    check_matrix(counted, counts.toarray())
    with pytest.raises(ValueError, match=r"no layer 'raw' \(layer=\); its layers: \['counts'\]$"):
        read(tmp_path / "x.h5ad", layer="raw")


def test_hdf5_X_and_1_based_labels(tmp_path):
    X = RNG.poisson(2, (6, 4)).astype(np.float64)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["X"] = X
        f["Y"] = np.array([1.0, 2, 10, 1, 2, 10])
    adata = read(tmp_path / "x.h5")
    check_matrix(adata, X)
    assert list(adata.var_names[:2]) == ["gene_0", "gene_1"]
    assert list(adata.obs["label"].cat.categories) == ["1", "2", "10"]
    assert list(adata.obs["label"]) == ["1", "2", "10", "1", "2", "10"]


def test_hdf5_names_and_labels_option(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["X"] = np.ones((2, 3), np.int32)
        f["cell_type"] = np.array([b"B", b"T"])
        f["barcodes"] = np.array([b"c1", b"c2"])
        f["gene_names"] = np.array([b"CD19", b"CD3E", b"CD4"])
    adata = read(tmp_path / "x.h5", labels="cell_type")
    assert list(adata.obs_names) == ["c1", "c2"]
    assert list(adata.var_names) == ["CD19", "CD3E", "CD4"]
    assert list(adata.obs["label"]) == ["B", "T"]
    with pytest.raises(ValueError, match=r"no dataset 'type' \(labels=\)"):
        read(tmp_path / "x.h5", labels="type")


def test_hdf5_without_X_lists_what_it_holds(tmp_path):
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f["counts"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"no dataset 'X'; it holds \['counts \(3, 2\)"):
        read(tmp_path / "x.hdf5")
    check_matrix(read(tmp_path / "x.hdf5", layer="counts"), np.zeros((3, 2)))


def test_10x_hdf5(tmp_path):
    genes_by_cells = sp.random(4, 3, density=0.5, format="csc", random_state=2) * 5
    with h5py.File(tmp_path / "x.h5", "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = (
            genes_by_cells.data, genes_by_cells.indices, genes_by_cells.indptr,
        )  # fmt: skip
        m["shape"] = np.array(genes_by_cells.shape)
        m["barcodes"] = np.array([b"AAAC-1", b"AAAG-1", b"AAAT-1"])
        m["features/id"] = np.array([b"ENSG1", b"ENSG2", b"ENSG3", b"ENSG4"])
        m["features/name"] = np.array([b"TP53", b"TBCE", b"TBCE", b"XIST"])
        m["features/feature_type"] = np.array([b"Gene Expression"] * 4)
    adata = read(tmp_path / "x.h5")
    assert isinstance(adata.X, sp.csr_matrix)
    check_matrix(adata, genes_by_cells.toarray().T)
    assert list(adata.var_names) == ["TP53", "TBCE", "TBCE-1", "XIST"]
    assert list(adata.var["gene_ids"]) == ["ENSG1", "ENSG2", "ENSG3", "ENSG4"]
    assert list(adata.obs_names) == ["AAAC-1", "AAAG-1", "AAAT-1"]


def test_10x_hdf5_with_missing_parts(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_group("matrix")["data"] = np.ones(3)
    with pytest.raises(ValueError, match=r"10x HDF5 file .* lacks \['indices', 'indptr'"):
        read(tmp_path / "x.h5")


def write_10x(folder: Path, version: int) -> np.ndarray:
    """A 10x folder of 4 genes x 3 cells; returns the cells x genes counts."""
    folder.mkdir()
    genes_by_cells = sp.coo_matrix(np.array([[1, 0, 2], [0, 0, 3], [4, 5, 0], [0, 6, 0]]))
    if version == 2:
        scipy.io.mmwrite(folder / "matrix.mtx", genes_by_cells)
        (folder / "genes.tsv").write_text("E1\tTP53\nE2\tTBCE\nE3\tTBCE\nE4\tXIST\n")
        (folder / "barcodes.tsv").write_text("AAAC-1\nAAAG-1\nAAAT-1\n")
    else:
        scipy.io.mmwrite(folder / "matrix.mtx", genes_by_cells)
        write_gz(folder / "matrix.mtx.gz", (folder / "matrix.mtx").read_bytes())
        (folder / "matrix.mtx").unlink()
        features = "".join(f"E{i}\t{g}\tGene Expression\n" for i, g in enumerate(GENES[:4]))
        write_gz(folder / "features.tsv.gz", features)
        write_gz(folder / "barcodes.tsv.gz", "AAAC-1\nAAAG-1\nAAAT-1\n")
    return genes_by_cells.toarray().T


def test_10x_v2_folder_makes_symbols_unique(tmp_path):
    counts = write_10x(tmp_path / "v2", version=2)
    adata = read(tmp_path / "v2")
    assert isinstance(adata.X, sp.csr_matrix)
    check_matrix(adata, counts)
    assert list(adata.var_names) == ["TP53", "TBCE", "TBCE-1", "XIST"]
    assert list(adata.var["gene_ids"]) == ["E1", "E2", "E3", "E4"]
    assert list(adata.obs_names) == ["AAAC-1", "AAAG-1", "AAAT-1"]


def test_10x_v3_gz_folder_and_matrix_path(tmp_path):
    counts = write_10x(tmp_path / "v3", version=3)
    for path in (tmp_path / "v3", tmp_path / "v3" / "matrix.mtx.gz"):
        adata = read(path)
        check_matrix(adata, counts)
        assert list(adata.var_names) == GENES[:4]
        assert list(adata.var["feature_types"]) == ["Gene Expression"] * 4


def test_10x_folder_errors(tmp_path):
    write_10x(tmp_path / "v2", version=2)
    (tmp_path / "v2" / "barcodes.tsv").write_text("AAAC-1\nAAAG-1\n")
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*4 features and 2 barcodes"):
        read(tmp_path / "v2")
    (tmp_path / "v2" / "barcodes.tsv").unlink()
    with pytest.raises(ValueError, match=r"lacks barcodes.tsv.gz or barcodes.tsv"):
        read(tmp_path / "v2")


# ---- IDX, image folders ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_images_with_labels_beside(tmp_path, suffix):
    images = RNG.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    for name, array in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        (tmp_path / (name + suffix)).write_bytes(gzip.compress(data) if suffix else data)
    adata = read(tmp_path / f"t10k-images-idx3-ubyte{suffix}")
    check_matrix(adata, images.reshape(5, 12) / 255.0)
    assert adata.uns["vaekit"]["image_shape"] == [4, 3]
    assert list(adata.obs["label"]) == ["3", "1", "4", "1", "5"]
    assert list(adata.var_names[:2]) == ["pixel_0", "pixel_1"]


def test_idx_errors(tmp_path):
    images = np.zeros((3, 2, 2), np.uint8)
    (tmp_path / "a-images-idx3-ubyte").write_bytes(idx_bytes(images)[:-1])
    with pytest.raises(ValueError, match=r"truncated.*3 x 2 x 2 uint8.*28 bytes.*holds 27 bytes"):
        read(tmp_path / "a-images-idx3-ubyte")
    (tmp_path / "b.idx").write_bytes(b"\x12\x34\x56\x78" + bytes(10))
    with pytest.raises(ValueError, match=r"not an IDX file.*12345678.*00000803"):
        read(tmp_path / "b.idx")
    (tmp_path / "c-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(3)))
    with pytest.raises(ValueError, match=r"labels file.*pass the images file"):
        read(tmp_path / "c-labels-idx1-ubyte")
    (tmp_path / "d-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "d-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(4)))
    with pytest.raises(ValueError, match=r"labels of shape \(4,\).*3 images"):
        read(tmp_path / "d-images-idx3-ubyte")


def test_grayscale_folder_with_class_subfolders(tmp_path):
    pixels = {}
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            pixels[f"{label}/{i}.png"] = RNG.integers(0, 256, (3, 5), dtype=np.uint8)
            Image.fromarray(pixels[f"{label}/{i}.png"], "L").save(tmp_path / label / f"{i}.png")
    adata = read(tmp_path)
    assert list(adata.obs_names) == sorted(pixels)
    check_matrix(adata, np.stack([pixels[k].ravel() / 255.0 for k in sorted(pixels)]))
    assert adata.uns["vaekit"]["image_shape"] == [3, 5]
    assert list(adata.obs["label"]) == ["cat", "cat", "dog", "dog"]


def test_rgb_folder_is_channel_first(tmp_path):
    rgb = RNG.integers(0, 256, (2, 4, 3, 3), dtype=np.uint8)  # (n, H, W, C)
    for i, image in enumerate(rgb):
        Image.fromarray(image, "RGB").save(tmp_path / f"{i}.png")
    Image.fromarray(rgb[0], "RGB").save(tmp_path / "2.jpg")
    adata = read(tmp_path)
    assert adata.shape == (3, 3 * 4 * 3)
    assert adata.uns["vaekit"]["image_shape"] == [3, 4, 3]
    assert "label" not in adata.obs
    check_matrix(adata[:2], rgb.transpose(0, 3, 1, 2).reshape(2, -1) / 255.0)


def test_image_folder_errors(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    Image.new("L", (5, 4)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"b\.png is 5x4 .* but .*a\.png is 4x4"):
        read(tmp_path)
    (tmp_path / "b.png").unlink()
    (tmp_path / "cls").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "cls" / "c.png")
    with pytest.raises(ValueError, match=r"both in the folder itself \(e.g. a.png\).*cls/c.png"):
        read(tmp_path)


def test_unreadable_image_and_empty_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"a.png is not a readable image"):
        read(tmp_path / "imgs")
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match=r"none is a folder but not one vaekit can read.*10x"):
        read(tmp_path / "none")


# ---- transpose, gene warning, annotations ---------------------------------------------------


def test_transpose_reads_genes_as_rows(tmp_path):
    df = frame(n=3, m=5)
    df.T.to_csv(tmp_path / "genes_by_samples.csv")
    adata = read(tmp_path / "genes_by_samples.csv", transpose=True)
    check_matrix(adata, df.to_numpy())
    assert list(adata.obs_names) == list(df.index)
    assert list(adata.var_names) == list(df.columns)
    assert adata.X.flags["C_CONTIGUOUS"]


def test_transpose_keeps_sparse_csr(tmp_path):
    X = sp.random(4, 6, density=0.4, format="csr", random_state=3)
    sp.save_npz(tmp_path / "x.npz", X)
    adata = read(tmp_path / "x.npz", transpose=True)
    assert isinstance(adata.X, sp.csr_matrix)
    check_matrix(adata, X.toarray().T)


def test_tall_table_with_gene_rows_warns(tmp_path):
    letters = RNG.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), (60, 3))
    genes = [f"{''.join(abc)}{i}" for i, abc in enumerate(letters)]  # like TP53, KDM5D, ...
    pd.DataFrame(RNG.random((60, 3)), index=genes).to_csv(tmp_path / "genes.csv")
    with pytest.warns(UserWarning, match=r"row names look like genes.*transpose=True"):
        read(tmp_path / "genes.csv")


def test_tall_table_of_samples_does_not_warn(tmp_path):
    samples = pd.DataFrame(RNG.random((60, 3)), index=[f"S{i}" for i in range(60)])
    samples.to_csv(tmp_path / "samples.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(tmp_path / "samples.csv")


def test_tall_table_of_ensembl_rows_warns(tmp_path):
    genes = [f"ENSG{i:011d}" for i in range(60)]
    pd.DataFrame(RNG.random((60, 3)), index=genes).to_csv(tmp_path / "x.tsv", sep="\t")
    with pytest.warns(UserWarning, match=r"look like genes"):
        read(tmp_path / "x.tsv")


def annotated(tmp_path: Path) -> Path:
    frame(n=4).to_csv(tmp_path / "x.csv")
    return tmp_path / "x.csv"


def test_annotations_all_matched(tmp_path):
    ann = pd.DataFrame({"age": [50, 60, 70, 80], "sample_id": ["S3", "S2", "S1", "S0"]})
    write_gz(tmp_path / "ann.tsv.gz", ann.to_csv(sep="\t", index=False))
    adata = read(annotated(tmp_path), annotations=tmp_path / "ann.tsv.gz")
    assert list(adata.obs["age"]) == [80, 70, 60, 50]
    assert adata.uns["vaekit"]["annotations_matched"] == 4


def test_annotations_some_matched_warn(tmp_path):
    ann = pd.DataFrame({"id": ["S0", "S1", "S9"], "sex": ["f", "m", "f"]})
    with pytest.warns(UserWarning, match=r"matched 2 of 4 samples; 2 have none, e.g. \['S2', 'S3'"):
        adata = read(annotated(tmp_path), annotations=ann)
    assert list(adata.obs["sex"].iloc[:2]) == ["f", "m"]
    assert adata.obs["sex"].iloc[2:].isna().all()
    assert adata.uns["vaekit"]["annotations_matched"] == 2


def test_annotations_none_matched_shows_both_sides(tmp_path):
    ann = pd.DataFrame({"sample": ["S0-01A", "S1-01A"], "sex": ["f", "m"]})
    ann.to_csv(tmp_path / "ann.csv", index=False)
    with pytest.raises(ValueError, match=r"none of the 4 samples.*'S0'.*'S0-01A'"):
        read(annotated(tmp_path), annotations=tmp_path / "ann.csv")


def test_annotation_key_and_duplicates(tmp_path):
    ann = pd.DataFrame({"name": ["x", "y", "z", "w"], "code": ["S0", "S1", "S2", "S3"]})
    adata = read(annotated(tmp_path), annotations=ann, annotation_key="code")
    assert list(adata.obs["name"]) == ["x", "y", "z", "w"]
    ann["code"] = ["S0", "S0", "S2", "S2"]
    with pytest.raises(ValueError, match=r"2 duplicate sample IDs in column 'code'"):
        read(annotated(tmp_path), annotations=ann, annotation_key="code")
    with pytest.raises(FileNotFoundError, match=r"annotations file .*missing.tsv"):
        read(annotated(tmp_path), annotations=tmp_path / "missing.tsv")


# ---- malformed input --------------------------------------------------------------------


def test_missing_unknown_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file or folder: .*nope.csv"):
        read(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*x.xlsx.*'\.csv'"):
        read(tmp_path / "x.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty.csv is empty"):
        read(tmp_path / "empty.csv")
    write_gz(tmp_path / "empty.tsv.gz", "")
    with pytest.raises(ValueError, match=r"empty.tsv.gz is empty"):
        read(tmp_path / "empty.tsv.gz")


def test_header_only_and_ragged_rows(tmp_path):
    (tmp_path / "h.csv").write_text("sample,a,b\n")
    with pytest.raises(ValueError, match=r"h.csv has a header but no data rows"):
        read(tmp_path / "h.csv")
    (tmp_path / "r.csv").write_text("sample,a,b\ns1,1,2\ns2,3\ns3,4,5\n")
    with pytest.raises(ValueError, match=r"r.csv, line 3: found 2 fields but the header has 3"):
        read(tmp_path / "r.csv")


def test_text_in_numeric_column_names_column_line_and_value(tmp_path):
    (tmp_path / "x.csv").write_text("sample,a,b\ns1,1,2\ns2,3,NA\ns3,4,oops\n")
    with pytest.raises(
        ValueError, match=r"column 'b' holds text, 'oops' at line 4 \(sample 's3'\)"
    ):
        read(tmp_path / "x.csv")


def test_duplicate_sample_ids_and_feature_names(tmp_path):
    (tmp_path / "s.csv").write_text("sample,a,b\ns1,1,2\ns1,3,4\ns2,5,6\n")
    with pytest.raises(ValueError, match=r"1 duplicate sample IDs, e.g. \['s1'\]"):
        read(tmp_path / "s.csv")
    (tmp_path / "f.csv").write_text("sample,a,a,b,b\ns1,1,2,3,4\n")
    with pytest.raises(ValueError, match=r"2 duplicate column names, e.g. \['a', 'b'\]"):
        read(tmp_path / "f.csv")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "plain.csv.gz").write_text("sample,a\ns1,1\n")
    with pytest.raises(ValueError, match=r"plain.csv.gz is not a valid gzip file"):
        read(tmp_path / "plain.csv.gz")
    data = gzip.compress(("sample,a\n" + "s,1\n" * 5000).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.csv.gz is not a valid gzip file"):
        read(tmp_path / "cut.csv.gz")


def test_folder_versus_file(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(ValueError, match=r"data.csv is a folder but not one vaekit can read"):
        read(tmp_path / "data.csv")
    with pytest.raises(ValueError, match=r"is a folder, but a CSV/TSV table is a file"):
        read(tmp_path / "data.csv", format="csv")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match=r"m.txt is a file, but a 10x folder"):
        read(tmp_path / "m.txt", format="10x")


def test_unreadable_hdf5_and_npy(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match=r"x.h5 is not a readable HDF5 file"):
        read(tmp_path / "x.h5")
    np.save(tmp_path / "v.npy", np.arange(3.0))
    with pytest.raises(ValueError, match=r"v.npy: the array has shape \(3,\); .* 2-D"):
        read(tmp_path / "v.npy")


def test_options_a_format_does_not_take(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"layer= does not apply to x.npy"):
        read(tmp_path / "x.npy", layer="counts")


def test_wrong_separator_is_reported(tmp_path):
    (tmp_path / "x.txt").write_text("id a b\ns1 1 2\n")
    with pytest.raises(ValueError, match=r"single column when split on sep='\\t'.*sep="):
        read(tmp_path / "x.txt")
    check_matrix(read(tmp_path / "x.txt", sep=" "), np.array([[1, 2]]))


def test_windows_line_endings(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"id,a,b\r\ns1,1,2\r\ns2,3,4\r\n")
    adata = read(tmp_path / "x.csv")
    check_matrix(adata, np.array([[1, 2], [3, 4]]))
    assert list(adata.var_names) == ["a", "b"]


def test_header_of_numbers_is_reported(tmp_path):
    (tmp_path / "x.csv").write_text("0.1,0.2\n0.3,0.4\n")
    with pytest.raises(ValueError, match=r"looks like data, not column names"):
        read(tmp_path / "x.csv")


def test_format_option_and_empty_sample_id(tmp_path):
    (tmp_path / "x.dat").write_text("id\ta\ns1\t1\n\t2\n")
    with pytest.raises(ValueError, match=r"1 sample ID\(s\) are empty, the first at line 3"):
        read(tmp_path / "x.dat", format="tsv")
    with pytest.raises(ValueError, match=r"unknown format='xls'"):
        read(tmp_path / "x.dat", format="xls")


# ---- hostile inputs: what is not a file, what would not fit, what is damaged -----------------


def small_memory(monkeypatch, n_bytes: int) -> None:
    """Pretend only ``n_bytes`` of memory are available."""
    import vaekit.validation

    monkeypatch.setattr(vaekit.validation, "available_memory", lambda: n_bytes)


def test_only_regular_files_are_opened(tmp_path):
    import os
    import socket

    os.mkfifo(tmp_path / "pipe.csv")  # opening it would block forever
    with pytest.raises(ValueError, match=r"pipe.csv is a FIFO \(named pipe\), not a regular"):
        read(tmp_path / "pipe.csv")
    (tmp_path / "zero.npy").symlink_to("/dev/zero")  # reading it never ends
    with pytest.raises(ValueError, match=r"zero.npy is a character device"):
        read(tmp_path / "zero.npy")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s.csv"))
    server.close()
    with pytest.raises(ValueError, match=r"s.csv is a socket"):
        read(tmp_path / "s.csv")
    frame().to_csv(tmp_path / "x.csv")
    os.mkfifo(tmp_path / "ann.csv")
    with pytest.raises(ValueError, match=r"ann.csv is a FIFO"):
        read(tmp_path / "x.csv", annotations=tmp_path / "ann.csv")


def test_gzip_bomb_stops_at_the_memory_available(tmp_path, monkeypatch):
    small_memory(monkeypatch, 1 << 20)
    rows = "sample,a,b\n" + "s,1,2\n" * 400_000  # 2.4 MB from a few kB
    write_gz(tmp_path / "bomb.csv.gz", rows)
    with pytest.raises(ValueError, match=r"bomb.csv.gz holds more than [\d.]+ MiB .* 1\.0 MiB is"):
        read(tmp_path / "bomb.csv.gz")
    (tmp_path / "big.csv").write_text(rows)
    with pytest.raises(ValueError, match=r"big.csv holds more than 2\.\d MiB"):
        read(tmp_path / "big.csv")


def test_header_line_without_end_is_refused(tmp_path):
    write_gz(tmp_path / "x.csv.gz", b"sample," + b"0" * (17 << 20))
    with pytest.raises(ValueError, match=r"line 1 is longer than 16 MiB"):
        read(tmp_path / "x.csv.gz")


def test_wide_table_refused_before_allocating(tmp_path, monkeypatch):
    header = "id," + ",".join(f"g{j}" for j in range(50))
    (tmp_path / "x.csv").write_text(header + "\n" + "".join(
        f"s{i}" + ",1" * 50 + "\n" for i in range(4)))
    # the file (about 650 bytes) fits, two float32 copies of 4 x 50 values do not
    small_memory(monkeypatch, 1000)
    with pytest.raises(ValueError, match=r"float32 matrix \(4 x 50\).*would need 1\.6 KiB"):
        read(tmp_path / "x.csv")


def test_long_header_field_and_cr_only_lines(tmp_path):
    (tmp_path / "long.csv").write_text("sample," + "g" * 200_000 + ",b\ns1,1,2\n")
    with pytest.raises(ValueError, match=r"column name of 200000 characters, longer than"):
        read(tmp_path / "long.csv")
    (tmp_path / "mac.csv").write_bytes(b"id,a,b\rs1,1,2\rs2,3,4\r")
    adata = read(tmp_path / "mac.csv")
    check_matrix(adata, np.array([[1, 2], [3, 4]]))
    assert list(adata.obs_names) == ["s1", "s2"]


def test_bom_and_quoted_separators_read_sensibly(tmp_path):
    (tmp_path / "x.csv").write_bytes('\ufeffid,"a,1",b\n"s,1",1,2\n'.encode())
    adata = read(tmp_path / "x.csv")
    assert list(adata.var_names) == ["a,1", "b"] and list(adata.obs_names) == ["s,1"]


def test_values_beyond_float32_name_line_and_sample(tmp_path):
    (tmp_path / "x.csv").write_text("id,a,b\ns1,1,2\ns2,3,1e308\n")
    with pytest.raises(ValueError, match=r"column 'b' holds 1e\+308 at line 3 \(sample 's2'\)"):
        read(tmp_path / "x.csv")
    X = np.ones((3, 2))
    X[1, 0] = -1e39
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match=r"-1e\+39 at row 1 \(sample 'sample_1'\), column 0"):
        read(tmp_path / "x.npy")


def test_npy_header_checked_before_reading(tmp_path, monkeypatch):
    header = {"descr": "<f8", "fortran_order": False, "shape": (1 << 22, 1 << 20)}  # 32 TiB
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(80))
    with pytest.raises(ValueError, match=r"huge.npy is truncated: .* \(32\.0 TiB\)"):
        read(tmp_path / "huge.npy")
    np.save(tmp_path / "x.npy", np.zeros((100, 10)))
    small_memory(monkeypatch, 10_000)
    with pytest.raises(ValueError, match=r"x.npy \(100, 10\) float64 .* would need 11\.7 KiB"):
        read(tmp_path / "x.npy")


def test_npz_members_checked_before_loading(tmp_path):
    import zipfile

    header = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)}
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        with archive.open("X.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
    with pytest.raises(ValueError, match=r"array 'X.npy'\) is truncated"):
        read(tmp_path / "x.npz")


def test_complex_values_are_refused(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((3, 2)) * (1 + 1j))
    with pytest.raises(ValueError, match=r"c.npy holds complex numbers"):
        read(tmp_path / "c.npy")
    folder = tmp_path / "tenx"
    write_10x(folder, 2)
    (folder / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate complex general\n4 3 1\n1 1 1.0 2.0\n"
    )
    with pytest.raises(ValueError, match=r"matrix.mtx holds complex values"):
        read(folder)


def save_csr_npz(path: Path, indices=None, indptr=None) -> None:
    X = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 0, 3], [4, 5, 0]]))
    np.savez(
        path,
        format=np.array(b"csr"),
        shape=np.array(X.shape),
        data=X.data,
        indices=X.indices if indices is None else np.array(indices),
        indptr=X.indptr if indptr is None else np.array(indptr),
    )


def test_sparse_npz_structure_checked(tmp_path):
    # a column index of 10**6 in a 3-column matrix crashed the process
    save_csr_npz(tmp_path / "x.npz", indices=[0, 2, 2, 0, 10**6])
    with pytest.raises(ValueError, match=r"x.npz: indices hold 1000000 at position 4"):
        read(tmp_path / "x.npz")
    save_csr_npz(tmp_path / "y.npz", indptr=[0, 2, 1, 5])
    with pytest.raises(ValueError, match=r"y.npz: indptr decreases at entry 2"):
        read(tmp_path / "y.npz")


def write_h5ad(path: Path, change) -> None:
    adata = anndata.AnnData(sp.csr_matrix(np.array([[1.0, 0, 2], [0, 0, 3], [4, 5, 0]])))
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        change(f)


def replace_dataset(key: str, position: int, value: int):
    def change(f: h5py.File) -> None:
        values = f[key][()]
        values[position] = value
        del f[key]
        f[key] = values

    return change


@pytest.mark.parametrize(
    "key, position, value, message",
    [
        ("X/indptr", 2, 0, r"X: indptr decreases at entry 2"),
        ("X/indptr", -1, 10**6, r"X: indptr runs from 0 to 1000000"),
        ("X/indices", 1, 3, r"X: indices hold 3 at position 1, outside 0\.\.2"),
        ("layers/counts/indices", 0, -2, r"layers/counts: indices hold -2"),
    ],
)
def test_h5ad_sparse_structure_checked_before_anndata_reads(
    tmp_path, key, position, value, message
):
    write_h5ad(tmp_path / "x.h5ad", replace_dataset(key, position, value))
    with pytest.raises(ValueError, match=message):
        read(tmp_path / "x.h5ad")


def test_h5ad_unknown_encoding_is_a_clear_error(tmp_path):
    def unknown(f: h5py.File) -> None:
        f["X"].attrs["encoding-type"] = "quantum_matrix"

    write_h5ad(tmp_path / "x.h5ad", unknown)
    with pytest.raises(ValueError, match=r"x.h5ad is not a readable .h5ad file \(\w+"):
        read(tmp_path / "x.h5ad")


def test_10x_hdf5_structure_checked(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = np.ones(3), np.array([0, 1, 9]), [0, 1, 2, 3]
        m["shape"] = np.array([4, 3])
        m["barcodes"] = np.array([b"A", b"B", b"C"])
        m["features/id"] = m["features/name"] = np.array([b"E1", b"E2", b"E3", b"E4"])
    with pytest.raises(ValueError, match=r"x.h5: matrix: indices hold 9 at position 2"):
        read(tmp_path / "x.h5")


def test_mtx_declaring_too_many_entries(tmp_path, monkeypatch):
    folder = tmp_path / "tenx"
    write_10x(folder, 2)
    text = (folder / "matrix.mtx").read_text().splitlines()
    size = next(i for i, line in enumerate(text) if not line.startswith("%"))
    text[size] = "4 3 13"
    (folder / "matrix.mtx").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"declares 13 entries in a 4 x 3 matrix"):
        read(folder)
    write_10x(tmp_path / "ok", 2)
    small_memory(monkeypatch, 100)
    with pytest.raises(ValueError, match=r"matrix.mtx \(6 stored values\) would need"):
        read(tmp_path / "ok")


def test_idx_size_checked_before_reading(tmp_path, monkeypatch):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 1 << 31, 1 << 15, 1 << 15)
    (tmp_path / "big-images-idx3-ubyte").write_bytes(header)
    small_memory(monkeypatch, 1 << 30)
    with pytest.raises(ValueError, match=r"would need 2048\.0 PiB of memory"):
        read(tmp_path / "big-images-idx3-ubyte")
    # a gzipped file with far more bytes than its header promises is not read to its end
    body = gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 2, 2) + bytes(10**7))
    (tmp_path / "x-images-idx3-ubyte.gz").write_bytes(body)
    with pytest.raises(ValueError, match=r"holds more bytes"):
        read(tmp_path / "x-images-idx3-ubyte.gz")


def png_declaring(width: int, height: int) -> bytes:
    import io
    import zlib

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("size", [30_000, 10_000])  # a DecompressionBombError, then Warning
def test_decompression_bomb_and_truncated_images(tmp_path, size):
    folder = tmp_path / "img"
    folder.mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(png_declaring(size, size))
    with pytest.raises(ValueError, match=r"b.png is not a readable image \(DecompressionBomb"):
        read(folder)
    (folder / "b.png").write_bytes((folder / "a.png").read_bytes()[:45])
    with pytest.raises(ValueError, match=r"b.png is not a readable image"):
        read(folder)


def test_compressed_containers_checked_against_memory(tmp_path, monkeypatch):
    # Parquet and HDF5 compress: the sizes inside, not the file's, must fit
    df = pd.DataFrame(np.zeros((200, 50)), columns=[f"g{j}" for j in range(50)])
    df.to_parquet(tmp_path / "x.parquet")
    with h5py.File(tmp_path / "x.h5ad", "w") as f:
        f.create_dataset("X", data=np.zeros((200, 50)), compression="gzip")
    small_memory(monkeypatch, 50_000)  # both files are smaller, 200 x 50 x 8 bytes is not
    with pytest.raises(ValueError, match=r"x.parquet \(200 rows x 50 columns\) would need"):
        read(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"x.h5ad: X \(200, 50\) would need 78\.1 KiB"):
        read(tmp_path / "x.h5ad")


def test_annotations_that_do_not_parse_name_the_file(tmp_path):
    frame().to_csv(tmp_path / "x.csv")
    (tmp_path / "ann.csv").write_text("sample,cohort\nS0,a\nS1,b,extra,fields\n")
    with pytest.raises(ValueError, match=r"annotations .*ann.csv could not be read"):
        read(tmp_path / "x.csv", annotations=tmp_path / "ann.csv")


# ---- real data (../shared/data), skipped when absent ------------------------------------------


def shared(relative: str) -> Path:
    return DATA / relative


def needs(relative: str):
    return pytest.mark.skipif(
        not shared(relative).exists(), reason=f"{relative} not in ../shared/data"
    )


@needs("mnist/t10k-images-idx3-ubyte.gz")
def test_real_mnist_test_set():
    adata = read(shared("mnist/t10k-images-idx3-ubyte.gz"))
    assert adata.shape == (10000, 784)
    assert adata.obs["label"].value_counts()["1"] == 1135  # the published MNIST test count
    assert 0 <= adata.X.min() and adata.X.max() == 1


@needs("scrna_counts/10X_PBMC_top2000.h5")
def test_real_pbmc_counts():
    adata = read(shared("scrna_counts/10X_PBMC_top2000.h5"))
    assert adata.shape == (4271, 2000)
    assert len(adata.obs["label"].cat.categories) == 8


@needs("binarized_mnist/binarized_mnist_test.mat")
def test_real_binarized_mnist():
    adata = read(shared("binarized_mnist/binarized_mnist_test.mat"))
    assert adata.shape == (10000, 784)
    assert set(np.unique(adata.X)) == {0.0, 1.0}


@pytest.mark.slow
@needs("tcga_rnaseq_small_cohorts/tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz")
def test_real_tcga_with_phenotypes():
    folder = shared("tcga_rnaseq_small_cohorts")
    adata = read(folder / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz",
                 annotations=folder / "phenotypes.tsv")  # fmt: skip
    assert adata.shape == (317, 20531)
    assert adata.uns["vaekit"]["annotations_matched"] == 317
    assert adata.obs["gender"].value_counts().to_dict() == {"female": 188, "male": 129}
