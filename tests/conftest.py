"""Shared fixtures: the digits data and small models trained once per session."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import vaekit


@pytest.fixture(scope="session")
def digits():
    """(X_train, X_test, y_train, y_test): 8x8 digits scaled to [0, 1]."""
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    return train_test_split(X, d.target, test_size=0.25, random_state=0, stratify=d.target)


@pytest.fixture(scope="session")
def fitted(digits):
    """A Bernoulli VAE trained on the digits for a few seconds."""
    X_train = digits[0]
    return vaekit.VAE(
        n_latent=8,
        hidden=(128,),
        likelihood="bernoulli",
        epochs=30,
        lr=2e-3,
        seed=0,
        verbose=False,
    ).fit(X_train)


@pytest.fixture(scope="session")
def conditional(digits):
    """A Bernoulli VAE conditioned on the digit label."""
    X_train, _, y_train, _ = digits
    return vaekit.VAE(
        n_latent=4,
        hidden=(128,),
        likelihood="bernoulli",
        epochs=60,
        lr=2e-3,
        seed=0,
        verbose=False,
    ).fit(X_train, y_train)
