"""The single-cell workflow on planted data: batch integration, counterfactual batches,
label transfer and query mapping (issue 16, point 7; differential expression is in
test_differential.py)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from synthetic import planted_cells

import vaekit
from vaekit import VAE
from vaekit.labels import LabelClasses

# Small and quick: each fit is a few hundred Adam steps on 600 x 60 counts.
QUICK = dict(preset="single_cell", epochs=60, kl_warmup=10, batch_size=32, verbose=False)


def as_adata(d: dict, rows: np.ndarray | None = None) -> ad.AnnData:
    rows = np.arange(len(d["X"])) if rows is None else rows
    obs = pd.DataFrame(
        {"batch": d["batches"][rows], "cell_type": d["types"][rows]},
        index=[f"cell{i}" for i in rows],
    )
    return ad.AnnData(d["X"][rows], obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in
                                                                      range(d["X"].shape[1])]))


def batch_mixing(Z: np.ndarray, batches: np.ndarray, k: int = 15) -> float:
    """Share of each cell's k nearest neighbours that come from another batch (0: batches
    apart; with two equal batches, 0.5 when perfectly mixed)."""
    idx = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z, return_distance=False)
    return float((batches[idx[:, 1:]] != batches[:, None]).mean())


def knn_accuracy(Z_train, y_train, Z_test, y_test, k: int = 15) -> float:
    return float((KNeighborsClassifier(k).fit(Z_train, y_train).predict(Z_test) == y_test).mean())


@pytest.fixture(scope="module")
def planted():
    return planted_cells(n=600, d=60, n_batches=2, seed=1)


@pytest.fixture(scope="module")
def integrated(planted):
    return VAE(**QUICK, seed=0).fit(as_adata(planted), "batch")


def test_batch_effect_removed_and_cell_types_kept(planted, integrated):
    """Conditioning on the batch mixes the batches in the latent space (an unconditional model
    keeps them apart: the planted effect is 0.8 log-units per gene), while the cell types
    stay as separable as without it."""
    adata = as_adata(planted)
    plain = VAE(**QUICK, seed=0).fit(adata)
    Z, Zp = integrated.transform(adata), plain.transform(adata)
    b, t = planted["batches"], planted["types"]
    half = np.arange(len(b)) % 2 == 0
    mixed, apart = batch_mixing(Z, b), batch_mixing(Zp, b)
    assert apart < 0.1, apart  # the planted batch effect is there to remove
    assert mixed > apart + 0.15, (mixed, apart)
    assert knn_accuracy(Z[half], t[half], Z[~half], t[~half]) >= 0.95


def test_counterfactual_batch_moves_expression_to_the_other_batch(planted, integrated):
    """Decoding batch0's cells as if from batch1 changes each gene by the planted factor
    ratio: the log-ratio of counterfactual to own expression tracks log f1 - log f0."""
    adata = as_adata(planted)
    cells = adata[adata.obs["batch"] == "batch0"]
    own = integrated.normalized_expression(cells, n_draws=5)
    other = integrated.normalized_expression(cells, batch="batch1", n_draws=5)
    # proportions renormalise, so compare centred log-ratios
    measured = np.log(other.astype(np.float64)).mean(0) - np.log(own.astype(np.float64)).mean(0)
    planted_shift = planted["log_batch"][1] - planted["log_batch"][0]
    r = np.corrcoef(measured - measured.mean(), planted_shift - planted_shift.mean())[0, 1]
    assert r > 0.9, r
    # each cell's own batch, and that batch named, are the same thing
    named = integrated.normalized_expression(cells, batch="batch0", n_draws=5)
    np.testing.assert_allclose(named, own, rtol=1e-4, atol=1e-3)
    assert np.allclose(own.sum(1), 1e4, rtol=1e-4)


def test_normalized_expression_shapes_and_draws(planted, integrated):
    adata = as_adata(planted)[:50]
    draws = integrated.normalized_expression(adata, n_draws=3, mean=False, library_size=1)
    assert draws.shape == (3, 50, 60)
    np.testing.assert_allclose(draws.sum(-1), 1.0, rtol=1e-4)
    both = integrated.normalized_expression(adata, batch=["batch0", "batch1"], n_draws=3)
    one = [integrated.normalized_expression(adata, batch=b, n_draws=3) for b in
           ("batch0", "batch1")]
    np.testing.assert_allclose(both, (one[0] + one[1]) / 2, rtol=1e-4)
    with pytest.raises(ValueError, match="not a category"):
        integrated.normalized_expression(adata, batch="batch9")
    with pytest.raises(ValueError, match="library_size"):
        integrated.normalized_expression(adata, library_size=0)


def test_normalized_expression_needs_counts():
    model = VAE(n_latent=2, epochs=1, verbose=False, seed=0).fit(np.random.rand(40, 5))
    with pytest.raises(ValueError, match="count"):
        model.normalized_expression(np.random.rand(4, 5))


def test_label_transfer_recovers_hidden_labels(planted):
    """Labels of batch0 only: the classifier labels batch1's cells, whose labels it never
    saw, as well as the planted types are separable."""
    adata = as_adata(planted)
    given = adata.obs["cell_type"].where(adata.obs["batch"] == "batch0", "unknown")
    adata.obs["given"] = given.to_numpy()
    model = VAE(**QUICK, seed=0).fit(adata, "batch", labels="given")
    assert list(model.labels_) == ["type0", "type1", "type2"]
    hidden = adata[adata.obs["batch"] == "batch1"]
    labels, proba = model.predict_labels(hidden)
    accuracy = (labels == hidden.obs["cell_type"].to_numpy()).mean()
    assert accuracy >= 0.95, accuracy
    assert list(proba.columns) == ["type0", "type1", "type2"]
    assert list(proba.index) == list(hidden.obs_names)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    # a model fitted without labels has nothing to predict
    with pytest.raises(ValueError, match="no labels"):
        VAE(**QUICK, seed=0).set_params(epochs=1).fit(adata).predict_labels(adata)


def test_label_classes_and_unknowns():
    classes = LabelClasses.fit(["B", None, np.nan, "unknown", "T", "", "B"])
    assert classes.classes == ["B", "T"]
    assert classes.encode(["T", "Unknown", None, "B"]).tolist() == [1, -1, -1, 0]
    with pytest.raises(ValueError, match="not among the classes"):
        classes.encode(["NK"], strict=True)
    with pytest.raises(ValueError, match="two classes"):
        LabelClasses.fit(["B", "unknown", "B"])


def test_fit_labels_errors(planted):
    adata = as_adata(planted)
    with pytest.raises(ValueError, match="no column 'typo'"):
        VAE(**QUICK).fit(adata, labels="typo")
    with pytest.raises(ValueError, match="labels has 3 values"):
        VAE(**QUICK).fit(adata, labels=["a", "b", "a"])


def test_unseen_batch_is_read_by_a_batch_free_encoder(planted):
    """With the batch in the decoder only (the preset's choice), cells of a batch the model
    never saw are encoded and labelled without mapping."""
    data = planted_cells(n=600, d=60, n_batches=3, seed=2)
    adata = as_adata(data)
    ref = adata[adata.obs["batch"] != "batch2"].copy()
    query = adata[adata.obs["batch"] == "batch2"].copy()
    model = VAE(**QUICK, seed=0).fit(ref, "batch", labels="cell_type")
    assert model.transform(query).shape == (query.n_obs, 10)
    labels, _ = model.predict_labels(query)
    assert (labels == query.obs["cell_type"].to_numpy()).mean() >= 0.9
    with pytest.raises(ValueError, match="not fitted on"):
        model.normalized_expression(query)  # the decoder needs a batch it knows
    with pytest.raises(ValueError, match="extend"):
        model.normalized_expression(query, batch="batch2")


@pytest.mark.parametrize("encode_covariates", [False, True])
def test_query_mapping_leaves_the_reference_unchanged(encode_covariates):
    """extend() trains only the new batch's weights: every reference weight is bit for bit
    as it was, so the reference's latent coordinates do not move (up to float32 rounding of
    sums that gain zero terms), and the query lands with the reference cells of its type."""
    data = planted_cells(n=900, d=60, n_batches=3, seed=3)
    adata = as_adata(data)
    in_ref = adata.obs["batch"].to_numpy() != "batch2"
    ref, query = adata[in_ref].copy(), adata[~in_ref].copy()
    model = VAE(**QUICK, seed=0, encode_covariates=encode_covariates).fit(ref, "batch")
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    z_before = model.transform(ref)
    assert model.extend(query, "batch", epochs=40, seed=0) is model
    z_after = model.transform(ref)
    scale = np.abs(z_before).max()
    tolerance = 64 * np.finfo(np.float32).eps * max(scale, 1.0)
    assert np.abs(z_after - z_before).max() <= tolerance
    after = model.module_.state_dict()
    n_old = 2  # batch0, batch1: the old condition columns come first, the new one last
    for name, value in before.items():
        new = after[name]
        if new.shape != value.shape:  # a widened layer: its old columns are untouched
            n_in = value.shape[1] - n_old
            assert torch.equal(new[:, : n_in + n_old], value), name
        else:
            assert torch.equal(new, value), name
    assert model.covariates_.columns[0].categories == ["batch0", "batch1", "batch2"]
    assert model.mapped_[-1]["batches"] == {"batch": ["batch2"]}
    Zq = model.transform(query)
    accuracy = knn_accuracy(z_after, ref.obs["cell_type"], Zq, query.obs["cell_type"])
    assert accuracy >= 0.9, accuracy
    # the query's batch is now known: counterfactual expression and likelihoods work
    assert model.normalized_expression(query, n_draws=2).shape == (query.n_obs, 60)
    assert np.isfinite(model.log_likelihood(query, n_draws=10)).all()


def test_extend_errors_leave_the_model_as_it_was(planted, integrated, tmp_path):
    adata = as_adata(planted)
    with pytest.raises(ValueError, match="nothing new to map"):
        integrated.extend(adata, "batch")
    plain = VAE(**QUICK, seed=0).set_params(epochs=2).fit(adata)
    with pytest.raises(ValueError, match="no conditions"):
        plain.extend(adata, "batch")
    assert integrated.covariates_.columns[0].categories == ["batch0", "batch1"]
    assert integrated.module_.config.n_covariates == 2


def test_single_cell_model_round_trips(planted, tmp_path):
    data = planted_cells(n=600, d=60, n_batches=3, seed=4)
    adata = as_adata(data)
    in_ref = adata.obs["batch"].to_numpy() != "batch2"
    ref, query = adata[in_ref].copy(), adata[~in_ref].copy()
    model = VAE(**QUICK, seed=0, encode_covariates=True).set_params(epochs=5)
    model.fit(ref, "batch", labels="cell_type").extend(query, "batch", epochs=3)
    model.save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    assert list(loaded.labels_) == list(model.labels_)
    assert loaded.module_.config.encode_covariates and loaded.module_.config.n_labels == 3
    np.testing.assert_array_equal(loaded.transform(query), model.transform(query))
    np.testing.assert_array_equal(loaded.predict_labels(query)[0], model.predict_labels(query)[0])


def test_saved_labels_are_checked(planted, tmp_path):
    import json

    model = VAE(**QUICK, seed=0).set_params(epochs=1)
    model.fit(as_adata(planted), "batch", labels="cell_type").save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["labels"] = ["type0", "type0", "type2"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="labels must be a list of 3 distinct"):
        vaekit.load(tmp_path / "m")


def test_cli_single_cell_workflow(planted, tmp_path):
    """vaekit train --preset single_cell --batch --labels, then encode writes obsm."""
    from vaekit.cli import main

    adata = as_adata(planted)
    adata.write_h5ad(tmp_path / "counts.h5ad")
    args = ["train", str(tmp_path / "counts.h5ad"), "--preset", "single_cell", "--batch",
            "batch", "--labels", "cell_type", "--epochs", "3", "-o", str(tmp_path / "m"),
            "--quiet"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    model = vaekit.load(tmp_path / "m")
    assert model.settings_["likelihood"] == "nb" and list(model.labels_) == [
        "type0", "type1", "type2"]
    with pytest.raises(SystemExit) as exit_:
        main(["encode", str(tmp_path / "m"), str(tmp_path / "counts.h5ad"), "-o",
              str(tmp_path / "out.h5ad")])
    assert exit_.value.code == 0
    out = ad.read_h5ad(tmp_path / "out.h5ad")
    np.testing.assert_allclose(out.obsm["X_vaekit"], model.transform(adata), rtol=1e-5,
                               atol=1e-6)
    labels, _ = model.predict_labels(adata)
    assert list(out.obs["vaekit_label"].astype(str)) == [str(v) for v in labels]
    assert out.obsm["vaekit_label_probabilities"].shape == (adata.n_obs, 3)
    np.testing.assert_allclose(out.obs["vaekit_label_probability"],
                               out.obsm["vaekit_label_probabilities"].max(axis=1), rtol=1e-6)
