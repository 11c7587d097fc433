"""The user-facing VAE, with scikit-learn conventions: fit / transform / sample / save / load."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from vaekit import persist
from vaekit._runtime import epoch_progress, seeded
from vaekit.config import ModelConfig, TrainConfig
from vaekit.covariates import CovariateEncoder
from vaekit.data import DenseRows, SparseRows, as_rows
from vaekit.likelihoods import get_likelihood
from vaekit.model import VAEModule
from vaekit.train import train
from vaekit.validation import Table, align_features, as_table, check_support

INFERENCE_BATCH = 4096


class VAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder with a choice of likelihood, optionally conditioned on y.

    Parameters
    ----------
    n_latent : int
        Number of latent features.
    hidden : tuple of int
        Encoder hidden layers; the decoder mirrors them unless ``decoder_hidden`` is given.
    likelihood : str
        ``"gaussian"``, ``"bernoulli"``, ``"continuous_bernoulli"``, ``"poisson"``, ``"nb"`` or
        ``"zinb"`` (count likelihoods take raw counts).
    beta : float
        Weight of the KL term (beta-VAE, Higgins et al. 2017).
    kl_warmup : int
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    epochs, batch_size, lr, weight_decay
        Adam training settings.
    decoder_hidden : tuple of int or None
    activation : str
    batch_norm : bool
    dropout : float
    validation_fraction : float
        Share of samples held out to monitor the loss.
    early_stopping : bool
        Stop when the validation loss has not improved for ``patience`` epochs after the
        warm-up, and restore the best weights.
    patience : int
    grad_clip : float or None
        Clip the gradient norm to this value.
    seed : int or None
        Two fits with the same seed on the same machine give identical weights.
    device : str
        ``"cpu"`` or ``"cuda"``.
    verbose : bool
        Show a progress bar (only on a terminal).

    Attributes
    ----------
    module_ : VAEModule
    history_ : pandas.DataFrame
        Per epoch: train_/val_ loss, reconstruction and KL, kl_weight, seconds.
    best_epoch_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Set when X had feature names (a DataFrame).
    covariates_ : CovariateEncoder or None
    training_seconds_ : float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data / 16
    >>> model = VAE(n_latent=2, likelihood="bernoulli", epochs=5, seed=0).fit(X)
    >>> model.transform(X).shape
    (1797, 2)
    """

    def __init__(
        self,
        n_latent: int = 10,
        hidden: tuple[int, ...] = (128,),
        likelihood: str = "gaussian",
        beta: float = 1.0,
        kl_warmup: int = 0,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        *,
        weight_decay: float = 0.0,
        decoder_hidden: tuple[int, ...] | None = None,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        grad_clip: float | None = None,
        seed: int | None = None,
        device: str = "cpu",
        verbose: bool = True,
    ) -> None:
        self.n_latent = n_latent
        self.hidden = hidden
        self.likelihood = likelihood
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.decoder_hidden = decoder_hidden
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.grad_clip = grad_clip
        self.seed = seed
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> VAE:
        """Train on X (samples x features), conditioned on y when given.

        Parameters
        ----------
        X : array-like, DataFrame, sparse matrix or tensor, shape (n_samples, n_features)
        y : array-like or DataFrame, optional
            Conditions: float columns are continuous, all others categorical.

        Returns
        -------
        self
        """
        self._check_params()
        table = as_table(X)
        check_support(table, get_likelihood(self.likelihood).support, self.likelihood)
        self.n_features_in_ = table.X.shape[1]
        if table.feature_names is not None:
            self.feature_names_in_ = np.asarray(table.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        n = table.X.shape[0]
        self.covariates_ = None if y is None else CovariateEncoder.fit(y, n)
        cov = None if y is None else self.covariates_.transform(y, n).to(self._device)
        self.seed_ = (
            self.seed if self.seed is not None else int(np.random.default_rng().integers(2**31))
        )
        rows = as_rows(table.X, self._device)
        with seeded(self.seed_, self._device):
            self.module_ = VAEModule(self._model_config(cov)).to(self._device)
            self._fit_library(rows)
            with epoch_progress(self.epochs, self.verbose) as progress:
                result = train(self.module_, rows, cov, self._train_config(), progress)
        self.history_ = pd.DataFrame(result.history).set_index("epoch")
        self.best_epoch_ = result.best_epoch
        self.training_seconds_ = result.seconds
        return self

    def _check_params(self) -> None:
        get_likelihood(self.likelihood)
        positive = {"n_latent": self.n_latent, "epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in positive.items():
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1); got {self.validation_fraction}"
            )
        if self.lr <= 0 or self.beta < 0 or self.kl_warmup < 0:
            raise ValueError(
                f"need lr > 0, beta >= 0, kl_warmup >= 0; got lr={self.lr}, beta={self.beta}, "
                f"kl_warmup={self.kl_warmup}"
            )

    def _model_config(self, cov: torch.Tensor | None) -> ModelConfig:
        return ModelConfig(
            n_input=self.n_features_in_,
            n_latent=self.n_latent,
            hidden=tuple(self.hidden),
            decoder_hidden=None if self.decoder_hidden is None else tuple(self.decoder_hidden),
            likelihood=self.likelihood,
            activation=self.activation,
            batch_norm=self.batch_norm,
            dropout=self.dropout,
            n_covariates=0 if cov is None else cov.shape[1],
        )

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            beta=self.beta,
            kl_warmup=self.kl_warmup,
            validation_fraction=self.validation_fraction,
            early_stopping=self.early_stopping,
            patience=self.patience,
            grad_clip=self.grad_clip,
            seed=self.seed_,
        )

    def _fit_library(self, rows: DenseRows | SparseRows) -> None:
        """Log-normal of the library sizes, from which :meth:`sample` draws them."""
        if self.module_.likelihood.uses_library:
            log_totals = np.log(rows.row_sums())
            self.module_.library_log_mean.fill_(float(log_totals.mean()))
            self.module_.library_log_std.fill_(float(log_totals.std()))

    @property
    def _device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def _n_features_out(self) -> int:
        return self.n_latent

    # ------------------------------------------------------------------ inference
    def _inputs(self, X: Any, y: Any) -> tuple[Table, Any, torch.Tensor | None]:
        """Validate X against the fitted features and encode y; raise before any work."""
        check_is_fitted(self, "module_")
        table = as_table(X)
        table = align_features(table, self.n_features_in_, getattr(self, "feature_names_in_", None))
        check_support(table, get_likelihood(self.likelihood).support, self.likelihood)
        cov = self._covariates(y, table.X.shape[0])
        return table, as_rows(table.X, self._device), cov

    def _covariates(self, y: Any, n: int) -> torch.Tensor | None:
        if self.covariates_ is None:
            if y is not None:
                raise ValueError("this model was fitted without y; call it without y")
            return None
        if y is None:
            names = [c.name for c in self.covariates_.columns]
            raise ValueError(f"this model is conditional on y ({names}); pass y")
        return self.covariates_.transform(y, n).to(self._device)

    @torch.no_grad()
    def _map(self, X: Any, y: Any, fn: Callable, seed: int = 0) -> tuple[Table, list]:
        """Apply ``fn(x, c)`` to batches of rows in eval mode; return the per-batch outputs."""
        table, rows, cov = self._inputs(X, y)
        self.module_.eval()
        outputs = []
        with seeded(seed, self._device):
            for idx in torch.arange(len(rows)).split(INFERENCE_BATCH):
                c = None if cov is None else cov[idx.to(cov.device)]
                outputs.append(fn(rows.take(idx), c))
        return table, outputs

    def encode(self, X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances, each (n_samples, n_latent)."""
        _, parts = self._map(X, y, lambda x, c: self.module_.encode(x, c))
        mean = torch.cat([q.loc for q in parts]).cpu().numpy()
        logvar = torch.cat([2 * q.scale.log() for q in parts]).cpu().numpy()
        return mean, logvar

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Posterior means, (n_samples, n_latent)."""
        return self.encode(X, y)[0]

    def reconstruct(self, X: Any, y: Any = None) -> np.ndarray | pd.DataFrame:
        """Expected value of p(x | z = posterior mean), in data space (a DataFrame for one)."""

        def mean(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            return self.module_.decode(
                self.module_.encode(x, c).loc, c, self.module_.library(x)
            ).mean

        table, parts = self._map(X, y, mean)
        out = torch.cat(parts).cpu().numpy()
        if table.sample_names is None:
            return out
        return pd.DataFrame(out, index=table.sample_names, columns=table.feature_names)

    def score_samples(
        self, X: Any, y: Any = None, n_samples: int = 10, seed: int = 0
    ) -> np.ndarray:
        """Per-sample ELBO in nats (beta = 1), averaged over ``n_samples`` posterior draws."""

        def elbo(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            return torch.stack([self.module_.loss(x, c).elbo for _ in range(n_samples)]).mean(0)

        return torch.cat(self._map(X, y, elbo, seed)[1]).cpu().double().numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Mean ELBO per sample (higher is better), for model selection."""
        return float(self.score_samples(X, y).mean())

    def log_likelihood(
        self, X: Any, y: Any = None, n_samples: int = 1000, seed: int = 0
    ) -> np.ndarray:
        """Per-sample importance-sampled log p(x) in nats, the IWAE bound with ``n_samples``
        draws (Burda et al. 2016); it rises towards log p(x) as ``n_samples`` grows."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}")

        def iwae(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            return self.module_.log_likelihood(x, c, n_samples)  # draws chunked inside

        return torch.cat(self._map(X, y, iwae, seed)[1]).cpu().double().numpy()

    @torch.no_grad()
    def sample(self, n: int, y: Any = None, seed: int = 0, mean: bool = False) -> np.ndarray:
        """``n`` new samples: z from the prior N(0, I), decoded; conditioned on y when given.

        Parameters
        ----------
        n : int
        y : optional
            One condition for all samples, or one per sample.
        seed : int
        mean : bool
            Return the decoder's expected value instead of a draw from p(x | z).
        """
        check_is_fitted(self, "module_")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        cov = self._covariates(y, n)
        self.module_.eval()
        parts = []
        with seeded(seed, self._device):
            for idx in torch.arange(n).split(INFERENCE_BATCH):
                z = torch.randn(len(idx), self.n_latent, device=self._device)
                library = (
                    self.module_.sample_library(len(idx))
                    if self.module_.likelihood.uses_library
                    else None
                )
                px = self.module_.decode(z, None if cov is None else cov[idx], library)
                parts.append(px.mean if mean else px.sample())
        return torch.cat(parts).cpu().numpy()

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` and ``weights.safetensors`` into the folder ``path`` atomically."""
        check_is_fitted(self, "module_")
        config = {
            "model": self.module_.config.to_dict(),
            "params": _jsonable(self.get_params()),
            "feature_names": _names(self),
            "covariates": None if self.covariates_ is None else self.covariates_.to_dict(),
            "training": {
                "seed": self.seed_,
                "best_epoch": self.best_epoch_,
                "seconds": self.training_seconds_,
                "history": self.history_.reset_index().to_dict(orient="list"),
            },
        }
        persist.write_model_dir(path, config, self.module_.state_dict())


def load(path: str | os.PathLike) -> VAE:
    """Load a model saved with :meth:`VAE.save`; nothing is unpickled.

    Examples
    --------
    >>> model = vaekit.load("my_model")  # doctest: +SKIP
    """
    config, weights = persist.read_model_dir(path)
    params = config["params"]
    for key in ("hidden", "decoder_hidden"):
        if params.get(key) is not None:
            params[key] = tuple(params[key])
    if str(params.get("device", "cpu")).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            "model was trained on CUDA, which is not available here; using the CPU", stacklevel=2
        )
        params["device"] = "cpu"
    model = VAE(**params)
    module = VAEModule(ModelConfig.from_dict(config["model"])).to(model._device)
    persist.check_weights(module.state_dict(), weights, f"{path}/{persist.WEIGHTS_FILE}")
    module.load_state_dict(weights)
    module.eval()
    model.module_ = module
    model.n_features_in_ = module.config.n_input
    if config.get("feature_names") is not None:
        model.feature_names_in_ = np.asarray(config["feature_names"], dtype=object)
    cov = config.get("covariates")
    model.covariates_ = None if cov is None else CovariateEncoder.from_dict(cov)
    training = config["training"]
    model.seed_ = training["seed"]
    model.best_epoch_ = training["best_epoch"]
    model.training_seconds_ = training["seconds"]
    model.history_ = pd.DataFrame(training["history"]).set_index("epoch")
    return model


def _names(model: VAE) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}

