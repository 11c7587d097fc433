"""Every bad input gets an error that names what was wrong and how to fix it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import vaekit
from vaekit.data.readers import read
from vaekit.validation import (
    FLOAT32_MAX,
    anndata_matrix,
    as_table,
    beyond_float32,
    check_compressed,
    check_dense_fits,
    check_sparse,
    format_bytes,
    layer_names,
)


def quick(**kw):
    return vaekit.VAE(n_latent=2, epochs=1, seed=0, verbose=False, **kw)


def test_nan_and_inf_name_count_row_and_column():
    X = np.ones((10, 4))
    X[3, 2] = np.nan
    X[7, 1] = np.inf
    with pytest.raises(
        ValueError, match=r"2 NaN or infinite value\(s\), the first at row 3, column 2"
    ):
        quick().fit(X)
    frame = pd.DataFrame(X, columns=list("abcd"), index=[f"s{i}" for i in range(10)])
    with pytest.raises(ValueError, match=r"row 3 \(sample 's3'\), column 2 \('c'\)"):
        quick().fit(frame)
    S = sp.csr_matrix(np.nan_to_num(X, nan=0.0, posinf=0.0))
    S[5, 3] = np.nan
    with pytest.raises(ValueError, match="row 5, column 3"):
        quick().fit(S)


def test_wrong_number_of_features_at_transform(fitted):
    with pytest.raises(ValueError, match="has 10 features but the model was fitted on 64"):
        fitted.transform(np.zeros((3, 10)))


@pytest.mark.parametrize("likelihood", ["poisson", "nb", "zinb"])
def test_counts_must_be_non_negative_integers(likelihood):
    X = np.ones((10, 3))
    X[4, 1] = 2.5
    with pytest.raises(
        ValueError,
        match=r"cannot score 1 negative or non-integer values, the first "
        r"2.5 at row 4, column 1.*raw counts",
    ):
        quick(likelihood=likelihood).fit(X)
    X[4, 1] = -1
    with pytest.raises(ValueError, match="-1 at row 4"):
        quick(likelihood=likelihood).fit(X)
    X[4] = 0
    with pytest.raises(ValueError, match=r"1 sample\(s\) are all zero, the first at row 4"):
        quick(likelihood=likelihood).fit(X)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
def test_unit_interval_likelihoods_refuse_values_outside(likelihood):
    X = np.full((10, 3), 0.5)
    X[2, 0] = 16
    with pytest.raises(
        ValueError, match=r"outside \[0, 1\], the first 16 at row 2, column 0.*scale"
    ):
        quick(likelihood=likelihood).fit(X)


def test_checks_also_apply_at_transform(fitted):
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        fitted.transform(np.full((2, 64), 3.0))


def test_empty_and_one_dimensional_input():
    with pytest.raises(ValueError, match=r"empty: shape \(0, 5\)"):
        quick().fit(np.zeros((0, 5)))
    with pytest.raises(ValueError, match=r"empty: shape \(5, 0\)"):
        quick().fit(np.zeros((5, 0)))
    with pytest.raises(ValueError, match=r"must be 2-D.*got 1-D.*reshape\(-1, 1\)"):
        quick().fit(np.zeros(5))


def test_text_columns_and_text_arrays():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["x", "y", "z"]})
    with pytest.raises(TypeError, match=r"non-numeric column\(s\), e.g. \['name'\]"):
        quick().fit(frame)
    with pytest.raises(TypeError, match="must be numeric"):
        quick().fit(np.array([["1", "b"], ["2", "c"]]))


def test_y_with_wrong_length_unseen_category_or_missing_values():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="y has 19 rows but X has 20"):
        quick().fit(X, y=np.zeros(19, dtype=int))
    with pytest.raises(ValueError, match="y column .* has missing values"):
        quick().fit(X, y=pd.Series(["a", None] * 10))
    model = quick().fit(X, y=np.array(["a", "b"] * 10))
    with pytest.raises(ValueError, match=r"not fitted on: \['c'\]; known categories: \['a', 'b'\]"):
        model.transform(X[:2], y=["a", "c"])


def test_bad_parameters_are_reported_at_fit():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="unknown likelihood"):
        quick(likelihood="gamma").fit(X)
    with pytest.raises(ValueError, match="n_latent must be a positive integer; got 0"):
        vaekit.VAE(n_latent=0).fit(X)
    with pytest.raises(ValueError, match=r"validation_fraction must be a number in \[0, 1\)"):
        quick(validation_fraction=1.5).fit(X)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        quick(activation="swish").fit(X)
    with pytest.raises(ValueError, match="leaves 1 training samples of 2"):
        quick(validation_fraction=0.5).fit(np.zeros((2, 2)))


def test_layer_lookup_never_lists_none_as_a_layer():
    """anndata 0.13 lists X itself among the layers, under the key None; the lookup (one
    function for in-memory AnnData and .h5ad files) names only the real layers."""
    counts = np.ones((3, 2), dtype=np.float32)
    adata = SimpleNamespace(X=None, layers={None: None, "counts": counts})
    assert layer_names(adata) == ["counts"]
    assert anndata_matrix(adata, "counts", "x.h5ad") is counts
    with pytest.raises(
        ValueError, match=r"^x.h5ad has no layer 'raw' \(layer=\); its layers: \['counts'\]$"
    ):
        anndata_matrix(adata, "raw", "x.h5ad")
    with pytest.raises(ValueError, match=r"^x.h5ad has no X; pass layer= one of its layers: "):
        anndata_matrix(adata, None, "x.h5ad")


def test_anndata_and_h5ad_layers_listed_without_none(tmp_path, monkeypatch):
    """Both ways in (an AnnData in memory, an .h5ad file) with ``layers`` listing None as
    anndata 0.13 does, simulated here so that the test runs under any anndata."""
    ad = pytest.importorskip("anndata")
    written = ad.AnnData(X=np.ones((4, 3), dtype=np.float32))
    written.layers["counts"] = np.ones((4, 3), dtype=np.float32)
    written.write_h5ad(tmp_path / "x.h5ad")
    real = ad.AnnData.__dict__["layers"]  # a descriptor: read and set through it

    def with_none(self):  # X itself listed as the layer None, as in anndata 0.13
        return {None: self.X, **dict(real.__get__(self, type(self)))}

    def assign(self, value):
        real.__set__(self, value)

    monkeypatch.setattr(ad.AnnData, "layers", property(with_none, assign))
    assert None in written.layers
    expected = r"has no layer 'raw' \(layer=\); its layers: \['counts'\]$"
    with pytest.raises(ValueError, match="^the AnnData " + expected):
        quick().fit(written, layer="raw")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'x.h5ad'} " + expected):
        read(tmp_path / "x.h5ad", layer="raw")
    assert read(tmp_path / "x.h5ad", layer="counts").X.shape == (4, 3)


# ---------------------------------------------------------------------- sparse structure
def csr_parts():
    """A valid 4 x 3 CSR matrix's (data, indices, indptr), to damage one at a time."""
    X = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 0, 3], [4, 5, 0], [0, 6, 0]]))
    return X.data.copy(), X.indices.copy(), X.indptr.copy()


def damaged_csr(**change) -> sp.csr_matrix:
    """A CSR matrix whose arrays are replaced after construction, as a corrupt file yields."""
    data, indices, indptr = csr_parts()
    X = sp.csr_matrix((data, indices, indptr), shape=(4, 3))
    for name, value in change.items():
        setattr(X, name, np.asarray(value))
    return X


@pytest.mark.parametrize(
    "change, message",
    [
        ({"indices": [0, 2, 2, 0, 1, 10**6]}, r"1000000 at position 5, outside 0\.\.2"),
        ({"indices": [0, 2, 2, 0, -1, 1]}, r"-1 at position 4"),
        ({"indptr": [0, 2, 1, 5, 6]}, r"indptr decreases at entry 2 \(2 then 1\)"),
        ({"indptr": [1, 2, 3, 5, 6]}, r"indptr runs from 1 to 6"),
        ({"indptr": [0, 2, 3, 5, 9]}, r"indptr runs from 0 to 9 over 6 indices"),
        ({"indptr": [0, 2, 3, 6]}, r"indptr has 4 entries but the matrix has 4 rows"),
        ({"data": np.arange(5.0)}, r"over 6 indices and 5 values"),
        ({"indices": np.array([0, 2, 2, 0, 1, 1.0])}, r"1-D integer array"),
    ],
)
def test_check_sparse_names_each_kind_of_damage(change, message):
    with pytest.raises(ValueError, match=message):
        check_sparse(damaged_csr(**change), "X")


def test_check_sparse_accepts_every_valid_format():
    X = sp.random(30, 7, density=0.3, random_state=0, format="csr")
    for fmt in ("csr", "csc", "coo", "bsr", "lil", "dok", "dia"):
        check_sparse(X.asformat(fmt), "X")
    check_sparse(sp.csr_array(X), "X")
    check_sparse(sp.csr_matrix((5, 4)), "X")  # no stored value at all


def test_check_sparse_csc_and_coo_bounds():
    csc = sp.csc_matrix(np.eye(3))
    csc.indices = np.array([0, 1, 3])  # row 3 of 3
    with pytest.raises(ValueError, match=r"3 at position 2, outside 0\.\.2"):
        check_sparse(csc, "X")
    coo = sp.coo_matrix(np.eye(3))
    coo.col = np.array([0, 1, 7])
    with pytest.raises(ValueError, match=r"column indices hold 7"):
        check_sparse(coo, "X")


def test_complex_and_text_values_are_refused():
    with pytest.raises(ValueError, match=r"complex numbers \(complex128\)"):
        check_sparse(sp.csr_matrix(np.eye(3) * (1 + 2j)), "X")
    with pytest.raises(ValueError, match="complex"):
        quick().fit(np.ones((8, 3)) * (1 + 1j))
    with pytest.raises(ValueError, match="column 'b'"):
        quick().fit(pd.DataFrame({"a": np.ones(8), "b": np.ones(8) * 1j}))


def test_corrupt_sparse_input_is_refused_before_any_use():
    # an index of 10**6 in a 3-column matrix made scipy write out of bounds (a crash)
    X = damaged_csr(indices=[0, 2, 2, 0, 1, 10**6])
    with pytest.raises(ValueError, match="outside 0..2"):
        quick().fit(X)
    with pytest.raises(ValueError, match="outside 0..2"):
        as_table(X)
    model = quick().fit(sp.csr_matrix(np.abs(np.random.default_rng(0).normal(size=(8, 3)))))
    with pytest.raises(ValueError, match="indptr decreases"):
        model.transform(damaged_csr(indptr=[0, 2, 1, 5, 6]))


def test_check_compressed_reads_lazy_arrays_in_blocks(monkeypatch):
    import vaekit.validation as validation

    monkeypatch.setattr(validation, "_INDEX_BLOCK", 2)
    data, indices, indptr = csr_parts()
    check_compressed(indptr, indices, len(data), (4, 3), "X")
    indices[5] = 3
    with pytest.raises(ValueError, match="3 at position 5"):
        check_compressed(indptr, indices, len(data), (4, 3), "X")


# ---------------------------------------------------------------------- float32 range
def test_values_beyond_float32_are_named_not_turned_into_inf():
    X = np.ones((5, 3))
    X[2, 1] = 1e308
    with pytest.raises(ValueError, match=r"1e\+308 at row 2, column 1.*float32"):
        quick().fit(X)
    frame = pd.DataFrame(X, columns=list("abc"), index=[f"s{i}" for i in range(5)])
    with pytest.raises(ValueError, match=r"row 2 \(sample 's2'\), column 1 \('b'\)"):
        quick().fit(frame)
    sparse = sp.csr_matrix(X)
    with pytest.raises(ValueError, match=r"row 2, column 1"):
        quick().fit(sparse)
    # the largest float32 itself, and inf (reported as infinite), are not this error
    assert beyond_float32(np.array([FLOAT32_MAX, -FLOAT32_MAX, np.inf, np.nan])) is None
    assert beyond_float32(np.array([0.0, np.nextafter(FLOAT32_MAX, np.inf)])) == 1
    assert beyond_float32(np.full(3, 3e38, dtype=np.float32)) is None  # float32 already


# ---------------------------------------------------------------------- memory
def test_check_fits_names_size_available_and_remedy(monkeypatch):
    import vaekit.validation as validation

    monkeypatch.setattr(validation, "available_memory", lambda: 1 << 30)
    check_dense_fits((1000, 1000), "X")  # 4 MB
    with pytest.raises(
        ValueError, match=r"would need 7\.5 GiB of memory but only 1\.0 GiB.*select fewer"
    ):
        check_dense_fits((10_000, 200_000), "a dense copy of X")
    monkeypatch.setattr(validation, "available_memory", lambda: None)
    check_dense_fits((10**9, 10**9), "X")  # unknown: nothing to compare with


def test_format_bytes():
    assert [format_bytes(n) for n in (5, 1536, 3 << 30)] == ["5 bytes", "1.5 KiB", "3.0 GiB"]
