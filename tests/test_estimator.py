"""The scikit-learn style API: conventions, input types, outputs and conditioning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from synthetic import counts

import vaekit


def test_init_only_stores_arguments_and_get_set_params_round_trip():
    model = vaekit.VAE(n_latent=3, hidden=(16, 8), likelihood="poisson", seed=1)
    params = model.get_params()
    assert params["n_latent"] == 3 and params["hidden"] == (16, 8)
    assert not any(k.endswith("_") for k in vars(model))
    model.set_params(beta=4.0)
    assert model.beta == 4.0


def test_clone_gives_an_unfitted_copy_with_the_same_params(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "module_")


@pytest.mark.parametrize(
    "method", ["transform", "encode", "reconstruct", "score_samples", "log_likelihood"]
)
def test_use_before_fit_says_to_call_fit(method):
    with pytest.raises(NotFittedError, match="fit"):
        getattr(vaekit.VAE(), method)(np.ones((2, 3)))
    with pytest.raises(NotFittedError, match="fit"):
        vaekit.VAE().sample(2)


def test_outputs_have_the_documented_shapes(fitted, digits):
    X = digits[1][:50]
    assert fitted.transform(X).shape == (50, 8)
    mean, logvar = fitted.encode(X)
    np.testing.assert_array_equal(mean, fitted.transform(X))
    assert logvar.shape == (50, 8) and np.all(np.isfinite(logvar))
    rec = fitted.reconstruct(X)
    assert rec.shape == (50, 64) and rec.min() >= 0 and rec.max() <= 1
    assert fitted.score_samples(X).shape == (50,)
    assert fitted.log_likelihood(X, n_draws=10).shape == (50,)
    draws = fitted.sample(7, seed=3)
    assert draws.shape == (7, 64) and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_array_equal(draws, fitted.sample(7, seed=3))
    means = fitted.sample(7, seed=3, mean=True)
    assert ((means > 0) & (means < 1)).all()
    assert list(fitted.get_feature_names_out()) == [f"vae{i}" for i in range(8)]


def test_reconstruction_is_better_than_the_mean_image(fitted, digits):
    X = digits[1]
    err = np.mean((fitted.reconstruct(X) - X) ** 2)
    baseline = np.mean((X.mean(0) - X) ** 2)
    assert err < 0.5 * baseline


def test_inputs_numpy_pandas_sparse_torch_agree(fitted, digits):
    X = digits[1][:20]
    expected = fitted.transform(X)
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    for variant in (frame, sp.csr_matrix(X), sp.coo_matrix(X), torch.as_tensor(X), X.tolist()):
        np.testing.assert_allclose(fitted.transform(variant), expected, rtol=1e-5, atol=1e-6)


def test_sparse_training_matches_dense(digits):
    kw = dict(n_latent=4, likelihood="bernoulli", epochs=2, seed=0, verbose=False)
    dense = vaekit.VAE(**kw).fit(digits[0])
    sparse = vaekit.VAE(**kw).fit(sp.csr_matrix(digits[0]))
    torch.testing.assert_close(dense.module_.z_mean.weight, sparse.module_.z_mean.weight)


def test_feature_names_are_matched_by_name(digits):
    names = [f"px{i}" for i in range(64)]
    frame = pd.DataFrame(digits[0], columns=names)
    model = vaekit.VAE(n_latent=3, likelihood="bernoulli", epochs=2, seed=0, verbose=False)
    model.fit(frame)
    assert list(model.feature_names_in_) == names
    test = pd.DataFrame(digits[1][:5], columns=names)
    expected = model.transform(test)
    shuffled = test[names[::-1]]
    np.testing.assert_allclose(model.transform(shuffled), expected, rtol=1e-6)
    extra = test.assign(extra=1.0)
    with pytest.warns(UserWarning, match=r"1 feature\(s\) the model was not fitted on.*ignored"):
        np.testing.assert_allclose(model.transform(extra), expected, rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"lacks 2 of the model's 64 features, e\.g\. \['px0', 'px1'\]"
    ):
        model.transform(test.drop(columns=["px0", "px1"]))
    rec = model.reconstruct(shuffled)
    assert list(rec.columns) == names and list(rec.index) == list(test.index)


def test_conditional_samples_follow_the_condition(conditional, digits):
    X_train, _, y_train, _ = digits
    clf = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    labels = np.repeat(np.arange(10), 30)
    samples = conditional.sample(300, y=labels, seed=0, mean=True)
    accuracy = (clf.predict(samples) == labels).mean()
    assert accuracy >= 0.8
    one = conditional.sample(20, y=3, seed=0, mean=True)  # one condition for all
    assert (clf.predict(one) == 3).mean() >= 0.8


def test_conditional_model_needs_y_and_rejects_unseen_categories(conditional, digits):
    X = digits[1][:5]
    with pytest.raises(ValueError, match="conditional on y"):
        conditional.transform(X)
    with pytest.raises(ValueError, match=r"not fitted on: \['11'\]"):
        conditional.transform(X, y=[1, 2, 3, 4, 11])
    with pytest.raises(ValueError, match="y has 3 rows but X has 5"):
        conditional.transform(X, y=[1, 2, 3])
    with pytest.raises(ValueError, match="without y"):
        vaekit.VAE(n_latent=2, epochs=1, verbose=False).fit(X).transform(X, y=[0] * 5)


def test_mixed_categorical_and_continuous_covariates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = pd.DataFrame({"batch": rng.choice(["a", "b", "c"], 120), "age": rng.normal(50, 10, 120)})
    model = vaekit.VAE(n_latent=2, epochs=2, seed=0, verbose=False).fit(X, y)
    kinds = {c.name: (c.kind, c.width) for c in model.covariates_.columns}
    assert kinds == {"batch": ("categorical", 3), "age": ("continuous", 1)}
    assert model.module_.config.n_covariates == 4
    repeated = y.iloc[[0, 0, 0, 0]].reset_index(drop=True)
    np.testing.assert_array_equal(model.sample(4, y=y.iloc[:1]), model.sample(4, y=repeated))
    assert model.transform(X[:3], y.iloc[:3]).shape == (3, 2)


@pytest.mark.parametrize(
    "likelihood",
    ["gaussian", "isotropic_gaussian", "poisson", "nb", "zinb", "continuous_bernoulli"],
)
def test_every_likelihood_trains_and_samples(likelihood):
    X = counts(150, 12)
    scaled = {
        "continuous_bernoulli": X / X.max(),
        "gaussian": np.log1p(X),
        "isotropic_gaussian": np.log1p(X),
    }
    X = scaled.get(likelihood, X)
    model = vaekit.VAE(
        n_latent=2, hidden=(16,), likelihood=likelihood, epochs=15, lr=5e-3, seed=0, verbose=False
    ).fit(X)
    h = model.history_
    assert np.isfinite(h.to_numpy()).all()
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert model.sample(5).shape == (5, 12)
    assert np.isfinite(model.log_likelihood(X[:10], n_draws=20)).all()


def test_count_models_scale_reconstructions_by_library_size():
    X = counts(200, 20)
    model = vaekit.VAE(n_latent=2, likelihood="nb", epochs=20, lr=5e-3, seed=0, verbose=False).fit(
        X
    )
    rec = model.reconstruct(X)
    np.testing.assert_allclose(rec.sum(1), X.sum(1), rtol=1e-4)
    draws = model.sample(500, seed=0)
    # library sizes of new samples come from the training data's log-normal
    assert abs(np.log(draws.sum(1)).mean() - np.log(X.sum(1)).mean()) < 0.2


def test_training_that_diverges_says_so():
    X = counts(150, 12) * 1e6  # raw, huge values under a Gaussian: the KL overflows
    with pytest.raises(RuntimeError, match="diverged.*Lower lr.*scale the data"):
        vaekit.VAE(n_latent=2, likelihood="gaussian", preprocess=(), epochs=20, lr=1e-1, seed=0,
                   verbose=False).fit(X)


def test_set_output_gives_named_latent_columns(digits):
    # (In a scikit-learn Pipeline, fit(X, y) hands y to every step: the VAE would condition on
    # it. Fit the VAE on its own for an unconditional model.)
    model = vaekit.VAE(n_latent=2, likelihood="bernoulli", epochs=1, seed=0, verbose=False)
    out = model.set_output(transform="pandas").fit_transform(digits[0])
    assert list(out.columns) == ["vae0", "vae1"]


def test_fit_transform_passes_y_to_a_conditional_model(digits):
    X, y = digits[0][:300], digits[2][:300]
    model = vaekit.VAE(n_latent=2, likelihood="bernoulli", epochs=2, seed=0, verbose=False)
    Z = model.fit_transform(X, y)
    np.testing.assert_array_equal(Z, model.transform(X, y))


def test_a_failed_refit_leaves_the_fitted_model_as_it_was(fitted, digits):
    from sklearn.base import clone as sk_clone

    model = sk_clone(fitted).fit(digits[0])
    before = model.transform(digits[1][:5])
    with pytest.raises(ValueError, match="outside"):
        model.fit(np.full((50, 3), 2.0))
    assert model.n_features_in_ == 64
    np.testing.assert_array_equal(model.transform(digits[1][:5]), before)


def test_one_row_of_y_is_only_broadcast_when_sampling(conditional, digits):
    with pytest.raises(ValueError, match="y has 1 rows but X has 5"):
        conditional.transform(digits[1][:5], y=[1])
    # broadcast: the same samples as with the condition given for each of them
    np.testing.assert_array_equal(conditional.sample(5, y=[1]), conditional.sample(5, y=[1] * 5))


def test_settings_out_of_range_name_the_value():
    X = np.zeros((20, 3))
    for kwargs, match in [
        ({"patience": 0}, "patience must be a positive integer; got 0"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"lr": "1e-3"}, "lr must be a number > 0; got '1e-3'"),
        ({"grad_clip": 0}, "grad_clip must be a number > 0 or None"),
        ({"hidden": (0,)}, "hidden must be a tuple of positive integers"),
    ]:
        with pytest.raises(ValueError, match=match):
            vaekit.VAE(epochs=1, verbose=False, **kwargs).fit(X)
