"""Out-of-core data: backed AnnData files read in blocks of rows (vaekit.data.backed)."""

from __future__ import annotations

import threading

import anndata
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import vaekit
from vaekit import VAE, train
from vaekit.data import backed, backed_files
from vaekit.data.backed import BackedMatrix, BackedRows, block_order

# two epochs of a tiny model: collapsed latent features are expected and beside the point
pytestmark = pytest.mark.filterwarnings("ignore:only .* latent features are active")
N, P = 1000, 20
BLOCK = backed.BLOCK_ROWS[0]  # the smallest block, forced below so a small file has many


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backed, "BLOCK_BYTES", 1)


def counts(seed: int = 0) -> np.ndarray:
    """(N, P) float32 counts, about half zero, every row with a positive total."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.7, (N, P)).astype(np.float32)
    X[:, 0] += 1
    return X


def write(tmp_path, X: np.ndarray, kind: str) -> tuple[anndata.AnnData, str]:
    """An in-memory AnnData and the path of the same data written as .h5ad (dense or CSR)."""
    adata = anndata.AnnData(sp.csr_matrix(X) if kind == "csr" else X)
    adata.obs_names = [f"c{i}" for i in range(X.shape[0])]
    adata.var_names = [f"g{j}" for j in range(X.shape[1])]
    path = str(tmp_path / f"{kind}.h5ad")
    adata.write_h5ad(path)
    return adata, path


@pytest.fixture(params=["dense", "csr"])
def files(request, tmp_path):
    return write(tmp_path, counts(), request.param)


def test_read_backed_leaves_the_matrix_in_the_file(files):
    adata, path = files
    b = vaekit.read(path, backed=True)
    assert b.isbacked and b.shape == (N, P)
    assert list(b.obs_names) == list(adata.obs_names)
    X = BackedMatrix(path)
    assert X.block_rows == BLOCK and X.sparse == sp.issparse(adata.X)
    rows = np.array([999, 3, 3, 500, 64, 63])
    got = X.rows(rows)
    np.testing.assert_array_equal(getattr(got, "toarray", lambda: got)(), counts()[rows])


def test_order_is_a_shuffle_of_blocks_within_buffers(tmp_path):
    _, path = write(tmp_path, counts(), "csr")
    rows = BackedRows(BackedMatrix(path), buffer_blocks=3)
    index = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:700]  # one rank's
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    batches = rows.order(index, 32, gen)
    order = torch.cat(batches)
    assert sorted(order.tolist()) == sorted(index.tolist())  # a permutation of the index
    gen.set_state(state)
    assert all(torch.equal(a, b) for a, b in zip(batches, rows.order(index, 32, gen), strict=True))
    _, full, bounds = block_order(index, BLOCK, 3, 32, gen.set_state(state))
    assert torch.equal(full.long(), order)
    # the plan the reader keeps is 32-bit (memory); the batches training indexes with, 64-bit
    assert full.dtype == torch.int32 and {b.dtype for b in batches} == {torch.int64}
    mine = set(index.tolist())
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        blocks = set((full[start:stop] // BLOCK).tolist())
        assert len(blocks) <= 3  # a buffer is at most buffer_blocks blocks...
        whole = {r for r in mine if r // BLOCK in blocks}
        assert set(full[start:stop].tolist()) == whole  # ...with all their rows of the index
    firsts = [int(full[a]) // BLOCK for a in bounds[:-1]]
    assert firsts != sorted(firsts)  # buffers are not in file order (16 blocks, 6 buffers)


def test_last_batch_of_one_row_is_dropped(tmp_path):
    _, path = write(tmp_path, counts(), "dense")
    batches = BackedRows(BackedMatrix(path)).order(torch.arange(65), 32, torch.Generator())
    assert [len(b) for b in batches] == [32, 32]


def test_take_serves_the_planned_batches_and_any_rows(files):
    adata, path = files
    X = counts()
    rows = BackedRows(BackedMatrix(path), buffer_blocks=2)
    batches = rows.order(torch.arange(N), 50, torch.Generator().manual_seed(0))
    for k, idx in enumerate(batches):
        given = idx.clone() if k % 2 else idx  # the same rows in another tensor serve too
        np.testing.assert_array_equal(rows.take(given).numpy(), X[idx.numpy()])
        assert rows._plan.next == k + 1  # served from the reader's buffers
        if k == 3:  # validation in between: any rows, read directly
            other = torch.tensor([7, 900, 7])
            np.testing.assert_array_equal(rows.take(other).numpy(), X[[7, 900, 7]])
    assert rows._reader is None  # the last batch ended the reader
    np.testing.assert_allclose(rows.row_sums(), X.sum(1, dtype=np.float64))


def fitted(data, monkeypatch, **kw):
    """A model fitted on ``data`` with the block order of a backed file for any rows."""
    def same_order(index, batch_size, generator):
        return block_order(index, BLOCK, backed.BUFFER_BLOCKS, batch_size, generator)[0]

    monkeypatch.setattr(train, "minibatches", same_order)
    settings = dict(likelihood="nb", epochs=2, batch_size=64, hidden=(16,), n_latent=3)
    return VAE(**settings, seed=0, verbose=False, **kw).fit(data)


def test_fit_on_backed_data_equals_fit_in_memory(files, monkeypatch):
    """With the same minibatches (the same rows, in the same order), training does the same
    float32 arithmetic on the same values: the weights are equal exactly."""
    adata, path = files
    on_disk = fitted(vaekit.read(path, backed=True), monkeypatch)
    in_memory = fitted(adata, monkeypatch)
    for (name, a), b in zip(on_disk.module_.state_dict().items(),
                            in_memory.module_.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    b = vaekit.read(path, backed=True)
    np.testing.assert_array_equal(on_disk.transform(b), in_memory.transform(adata))
    np.testing.assert_array_equal(on_disk.score_samples(b), in_memory.score_samples(adata))
    np.testing.assert_array_equal(in_memory.transform(b), in_memory.transform(adata))


def test_no_read_takes_more_than_a_buffer(tmp_path, monkeypatch):
    _, path = write(tmp_path, counts(), "csr")
    sizes: list[int] = []
    real = h5py.Dataset.__getitem__

    def counted(self, key):
        out = real(self, key)
        if self.name in ("/X/data", "/X/indices"):  # (the row pointers are read whole)
            sizes.append(int(np.size(out)))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counted)
    model = fitted(vaekit.read(path, backed=True), monkeypatch)
    model.transform(vaekit.read(path, backed=True))
    per_block = np.add.reduceat((counts() > 0).sum(1), np.arange(0, N, BLOCK))
    assert sizes and max(sizes) <= per_block.max()  # one block of rows at a time


def test_reader_exception_surfaces_with_the_file_named(tmp_path, monkeypatch):
    _, path = write(tmp_path, counts(), "csr")
    real = BackedMatrix.rows

    def failing(self, index):
        if threading.current_thread() is not threading.main_thread():
            raise OSError("disk went away")
        return real(self, index)

    monkeypatch.setattr(BackedMatrix, "rows", failing)
    before = threading.active_count()
    with pytest.raises(ValueError, match=f"could not read {path}.*disk went away"):
        fitted(vaekit.read(path, backed=True), monkeypatch)
    assert threading.active_count() == before  # the reader thread ended


def test_damaged_indices_are_refused_when_read(tmp_path):
    _, path = write(tmp_path, counts(), "csr")
    with h5py.File(path, "r+") as f:
        f["X/indices"][5] = P + 3
    b = vaekit.read(path, backed=True)  # cheap checks only: the indices are not read here
    with pytest.raises(ValueError, match="column indices outside 0..19 in rows 0..63"):
        VAE(likelihood="nb", epochs=1, verbose=False).fit(b)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f["X"].attrs.modify("encoding-type", "csc_matrix"), "stored as csc_matrix"),
        (lambda f: f["X/indptr"].__setitem__(3, 10**6), "indptr"),
    ],
)
def test_read_backed_refuses_bad_layouts(tmp_path, change, match):
    _, path = write(tmp_path, counts(), "csr")
    with h5py.File(path, "r+") as f:
        change(f)
    with pytest.raises(ValueError, match=match):
        vaekit.read(path, backed=True)


def write_10x_h5(path, X: np.ndarray) -> None:
    """A Cell Ranger v3 HDF5 file of the cells x genes counts X (stored genes x cells, CSC)."""
    genes_by_cells = sp.csc_matrix(X.T.astype(np.int32))
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        for key in ("data", "indices", "indptr"):
            m[key] = getattr(genes_by_cells, key)
        m["shape"] = np.array(genes_by_cells.shape)
        m["barcodes"] = np.array([f"BC{i}-1".encode() for i in range(X.shape[0])])
        m["features/id"] = np.array([f"ENSG{j}".encode() for j in range(X.shape[1])])
        m["features/name"] = np.array([f"g{j}".encode() for j in range(X.shape[1])])


def test_10x_hdf5_is_read_backed_without_a_copy(tmp_path):
    """A 10x HDF5 file streams as a backed AnnData, its counts read from the 10x file itself:
    the same model outputs as the file read into memory."""
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    write_10x_h5(path, counts())
    b, whole = vaekit.read(path, backed=True), vaekit.read(path)
    assert b.isbacked and b.shape == whole.shape == (N, P)
    assert list(b.obs_names) == list(whole.obs_names) and b.obs_names[0] == "BC0-1"
    assert list(b.var["gene_ids"]) == list(whole.var["gene_ids"])
    with h5py.File(b.filename) as f:  # the shim holds links, not counts
        assert isinstance(f["X"].get("data", getlink=True), h5py.ExternalLink)
    model = VAE(likelihood="nb", epochs=1, hidden=(8,), n_latent=2, seed=0, verbose=False)
    model.fit(whole)
    np.testing.assert_allclose(model.transform(b), model.transform(whole), rtol=1e-4, atol=1e-4)
    assert VAE(likelihood="nb", epochs=1, hidden=(8,), n_latent=2, verbose=False).fit(b)
    with pytest.raises(ValueError, match="no layers"):
        vaekit.read(path, backed=True, layer="counts")
    b.obsm["X_vae"] = model.transform(b)
    out = backed_files.write_h5ad(b, tmp_path / "out.h5ad")  # stands alone: counts copied in
    with h5py.File(out) as f:
        assert not isinstance(f["X"].get("data", getlink=True), h5py.ExternalLink)
    written = anndata.read_h5ad(out)
    np.testing.assert_array_equal(written.X.toarray(), counts())
    np.testing.assert_array_equal(written.obsm["X_vae"], b.obsm["X_vae"])


def test_backed_refuses_what_it_cannot_stream(tmp_path):
    table = tmp_path / "x.csv"
    table.write_text("id,a,b\ns1,1,2\ns2,3,4\n")
    with pytest.raises(ValueError, match="backed=True reads AnnData files"):
        vaekit.read(table, backed=True)
    X = counts()
    X[10, 4] = 0.5
    _, path = write(tmp_path, X, "dense")
    b = vaekit.read(path, backed=True)
    with pytest.raises(ValueError, match="missing='mask'"):
        VAE(missing="mask", verbose=False).fit(b)
    with pytest.raises(ValueError, match=r"cannot score .* 0.5 at row 10 \(sample 'c10'\), col"):
        VAE(likelihood="nb", verbose=False).fit(b)


def test_cli_reads_backed_above_the_memory_share(tmp_path, monkeypatch):
    from corpus import run

    from vaekit import _memory

    _, path = write(tmp_path, counts(), "csr")
    monkeypatch.setattr(_memory, "available_memory", lambda: 2 * N * P)  # CSR: ~8 B a value
    args = ["train", path, "--likelihood", "nb", "--epochs", "1", "--hidden", "4", "-q"]
    auto = run([*args, "-o", tmp_path / "auto"])
    assert auto.code == 0 and "reading it backed" in auto.err, auto.err
    loaded = run([*args, "-o", tmp_path / "loaded", "--in-memory"])
    assert loaded.code == 0 and "backed" not in loaded.err, loaded.err
    for folder in ("auto", "loaded"):
        assert vaekit.load(tmp_path / folder).n_features_in_ == P


SINGLE_CELL = ["normalize_total", "log1p", {"name": "select_variable", "n": 8}]


@pytest.mark.parametrize("steps", [[*SINGLE_CELL, "zscore"], ["log1p", "minmax"]])
def test_backed_fit_streams_its_preprocessing(files, steps):
    """Fitting on a backed file fits the preprocessing from block statistics (library sizes,
    variable features, scaling): the same fitted state as in memory up to float32 rounding of
    the in-memory sums, and the model trains on the preprocessed rows."""
    adata, path = files
    settings = dict(likelihood="gaussian", preprocess=steps, epochs=1, hidden=(8,), n_latent=2,
                    seed=0, verbose=False)
    whole = VAE(**settings).fit(adata)
    streamed = VAE(**settings).fit(vaekit.read(path, backed=True))
    assert streamed.preprocessor_.features_ == whole.preprocessor_.features_
    for key, want in whole.preprocessor_.state().items():
        got = streamed.preprocessor_.state()[key]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=key)
    assert np.isfinite(streamed.history_["train_loss"]).all()


def test_backed_fit_chooses_preprocessing_as_in_memory(tmp_path):
    """Automatic settings read the same kind of data backed and in memory: skewed
    non-negative values get log1p and z-scores both ways."""
    rng = np.random.default_rng(2)
    X = np.exp(rng.normal(0, 1.5, (N, P))).astype(np.float32)
    adata, path = write(tmp_path, X, "dense")
    settings = dict(epochs=1, verbose=False, seed=0)
    whole = VAE(**settings).fit(adata)
    streamed = VAE(**settings).fit(vaekit.read(path, backed=True))
    assert whole.preprocessor_.to_config() == streamed.preprocessor_.to_config()
    assert [s.name for s in streamed.preprocessor_.steps] == ["log1p", "zscore"]


@pytest.mark.parametrize("steps", [SINGLE_CELL, ["zscore"]])
def test_a_fitted_preprocessing_is_applied_to_each_block_as_read(files, steps):
    """Encoding and scoring a backed file apply the model's fitted preprocessing block by
    block: the same numbers as in memory, up to float32 rounding of the network's sums."""
    adata, path = files
    model = VAE(likelihood="gaussian", preprocess=steps, epochs=1, hidden=(8,), n_latent=2,
                seed=0, verbose=False).fit(adata)
    b = vaekit.read(path, backed=True)
    assert model.preprocessor_.steps  # what is applied, not refused
    for method in (model.transform, model.score_samples):
        np.testing.assert_allclose(method(b), method(adata), rtol=1e-4, atol=1e-4)
    X = BackedMatrix(path)
    X.preprocessed(model.preprocessor_.transform)
    got = X.rows(np.array([999, 3, 64, 63]))
    want = model.preprocessor_.transform(adata.X[[999, 3, 64, 63]])
    np.testing.assert_allclose(getattr(got, "toarray", lambda: got)(),
                               getattr(want, "toarray", lambda: want)(), rtol=1e-6)
