"""The estimator, with scikit-learn conventions: fit / transform / sample / score / save.

:class:`BaseVAE` is everything the model does by itself, and the public way analyses reach
it: :meth:`BaseVAE.prepare` validates and preprocesses inputs once, :meth:`BaseVAE.map_batches`
runs a function over batches of them. The user-facing :class:`vaekit.VAE` (:mod:`vaekit.vae`)
adds the methods that call analyses; nothing here imports :mod:`vaekit.analysis`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from vaekit import distributed, fitting, saving
from vaekit._deprecation import draws_keyword
from vaekit._runtime import chunk_rows, epoch_progress, seeded
from vaekit.batch import Batch
from vaekit.covariates import CovariateEncoder
from vaekit.data import DenseRows, SparseRows, as_rows
from vaekit.iwae import log_likelihood as iwae_log_likelihood
from vaekit.iwae import row_values
from vaekit.labels import LabelClasses, resolve_labels
from vaekit.model import VAEModule, check_memory
from vaekit.presets import check_settings, fixed, resolve
from vaekit.train import train
from vaekit.validation import (
    Table,
    is_anndata,
    resolve_y,
)

INFERENCE_BATCH = 4096  # rows per batch of inference on the CPU (GPUs: inference_rows)
TRAINING_COPIES = 6
NO_MASK_HINT = (
    "this model was fitted without missing='mask' and cannot read missing entries: fill "
    "them with model.impute(X) first, or refit with VAE(missing='mask')"
)


@dataclass(frozen=True)
class Prepared:
    """Inputs of a fitted model, validated once (:meth:`BaseVAE.prepare`).

    Attributes
    ----------
    given : Table
        X as given, validated (all its columns, in its order).
    inputs : Table
        X matched to the fitted features, before preprocessing.
    table : Table
        The preprocessed values the decoder models, named by ``features_``.
    rows : DenseRows or SparseRows
        ``table.X`` as dense float32 rows on the model's device, handed out by index.
    covariates : Tensor or None
        (n, n_covariates) the encoded conditions.
    """

    given: Table
    inputs: Table
    table: Table
    rows: DenseRows | SparseRows
    covariates: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.rows)


class BaseVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder with a choice of likelihood, optionally conditioned on y.

    Every setting left at None takes the ``preset``'s value, else the default in brackets
    (:data:`vaekit.presets.DEFAULTS`); the values used are in ``settings_`` after ``fit``.

    Parameters
    ----------
    n_latent : int [10]
        Number of latent features.
    hidden : tuple of int [(128,)]
        Encoder hidden layers; the decoder mirrors them unless ``decoder_hidden`` is given.
    likelihood : str ["gaussian"]
        ``"gaussian"`` (a variance per feature), ``"isotropic_gaussian"`` (one variance),
        ``"bernoulli"``, ``"continuous_bernoulli"``, ``"poisson"``, ``"nb"`` or ``"zinb"``
        (count likelihoods take raw counts).
    beta : float [1.0]
        Weight of the KL term (beta-VAE, Higgins et al. 2017).
    kl_warmup : int [0]
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    epochs, batch_size, lr, weight_decay : [100, 128, 1e-3, 0.0]
        Adam training settings.
    objective : str ["elbo"]
        What the loss asks of q(z | x) (:data:`vaekit.objectives.OBJECTIVES`): ``"elbo"``,
        reconstruction + beta * KL (beta-VAE, Higgins et al. 2017); ``"tcvae"``, the KL split
        into index-code mutual information, total correlation and dimension-wise KL, weighted
        by ``mi_weight``, ``tc_weight`` and ``dimension_kl_weight`` (beta-TC-VAE, Chen et al.
        2018; ``tc_weight=6`` is their choice); ``"capacity"``, reconstruction +
        ``capacity_weight`` * |KL - C| with C rising linearly from 0 to ``capacity_max`` nats
        over ``capacity_epochs`` (Burgess et al. 2018). ``beta`` and its warm-up multiply the
        whole KL part of each; ``history_`` has each term per epoch (``train_mutual_info``,
        ``train_total_correlation``, ``train_dimension_kl``; ``capacity``, C). The validation
        loss stays the beta-weighted negative ELBO.
    mi_weight, tc_weight, dimension_kl_weight : [1.0, 1.0, 1.0]
        ``objective="tcvae"``: the weights of its three terms (alpha, beta, gamma in Chen et
        al. 2018); 1, 1, 1 is the ELBO, with the KL estimated from one draw of z.
    tc_estimator : str ["mws"]
        ``objective="tcvae"``: how q(z) is estimated from the minibatch, ``"mws"``
        (minibatch-weighted sampling) or ``"mss"`` (stratified: unbiased, as it knows the
        data set's size). Each step compares every sample's z with every posterior of the
        batch: batch_size^2 * n_latent values.
    capacity_max : float [None]
        ``objective="capacity"``: the KL, in nats, that C reaches (Burgess et al. used 25 on
        dSprites); required by that objective.
    capacity_epochs : int [None]
        ``objective="capacity"``: the epochs over which C rises; None: C reaches
        ``capacity_max`` in the last epoch.
    capacity_weight : float [1000.0]
        ``objective="capacity"``: gamma, the weight of |KL - C| (Burgess et al.'s 1000).
    preset : str, optional
        Named settings, e.g. ``"tybalt"`` (see :mod:`vaekit.presets`).
    preprocess : sequence of steps [()]
        Fitted with the model and applied again at encode time, e.g.
        ``["log1p", SelectVariable(2000, "mad"), "minmax"]`` (see :mod:`vaekit.data.preprocess`).
    decoder_hidden : tuple of int [mirror of hidden]
    decoder : str ["mlp"]
        ``"linear"`` maps z to the likelihood's parameters with one linear layer and a batch
        norm (LDVAE, Svensson et al. 2020), so :meth:`loadings` are exact.
    architecture : str [auto]
        ``"conv"`` (strided convolutions, for images) or ``"mlp"`` (dense layers); by default
        ``"conv"`` when the rows are whole images (read by :func:`vaekit.read` from image
        files or arrays, or described by ``image_shape``) that it can model (H, W >= 8; a
        Gaussian, Bernoulli or continuous Bernoulli likelihood; ``decoder="mlp"``), and
        ``"mlp"`` otherwise. With ``"conv"``, ``hidden`` and ``decoder_hidden`` are the dense
        layers between the feature maps and z.
    image_shape : tuple of int, optional
        (H, W) or (C, H, W) of the images whose flattened pixels are the rows of X, for data
        that do not carry it (a NumPy array); an AnnData from :func:`vaekit.read` does.
    activation : str ["relu"]
    batch_norm : bool [False]
        Batch norm in every hidden layer.
    posterior_batch_norm : bool [False]
        Batch norm on the encoder's mean and log-variance (Tybalt).
    dropout : float [0.0]
    validation_fraction : float [0.1]
        Share of samples held out to monitor the loss.
    early_stopping : bool [True]
        Stop when the validation loss has not improved for ``patience`` epochs after the
        warm-up, and restore the best weights.
    patience : int [10]
    grad_clip : float [no clipping]
        Clip the gradient norm to this value.
    loadings_l1 : float [0.0]
        L1 penalty on the decoder's weights from z, added to each minibatch's loss: sparse
        loadings, so that a factor carried by few genes gets a latent feature of its own.
    iw_samples : int [1]
        Train on the importance-weighted bound with this many posterior draws per sample
        (IWAE, Burda et al. 2016) instead of the ELBO: a higher log-likelihood for about
        ``iw_samples`` times the decoder's work.
    lr_patience : int [None]
        Halve the learning rate when the validation loss has not improved for this many
        epochs after the warm-up (None: a constant rate).
    init : {"random", "pca"} ["random"]
        Starting weights: PyTorch's random ones, or ``"pca"``: probabilistic PCA's
        maximum-likelihood solution on the training rows (Tipping & Bishop 1999), the ELBO's
        optimum for a model with linear maps and an isotropic Gaussian likelihood (the only
        models it applies to; others raise ``ValueError``); training then refines it. Chosen
        automatically for such models under 1,000 samples (:mod:`vaekit.auto`).
    max_minutes : float [None]
        End training after the epoch that crosses this many minutes (of this call to ``fit``:
        a resumed run counts afresh).
    missing : str ["error"]
        What NaN in X means. ``"error"``: NaN is refused. ``"mask"``: NaN entries are missing;
        the likelihood counts only the observed entries, and the encoder reads the values
        with NaN set to 0 next to the 0/1 mask of observed entries (for images, the mask is
        one more channel), so ``transform``, ``score_samples`` and :meth:`impute` take
        incomplete rows. Preprocessing statistics use the observed entries.
    mask_rate : float [0.0]
        With ``missing="mask"``: in training, each sample hides a random share u ~ U(0,
        mask_rate) of its observed entries from the encoder (the likelihood still scores them),
        so that the encoder learns to read partial inputs, even from complete training data:
        what makes :meth:`impute` good on data more incomplete than the training data.
    condition_scale : float [20.0]
        The factor on the conditions y wherever the decoder reads them. Adam moves every
        weight at about the same rate whatever its input, so a one-hot label read as 0/1
        next to a dozen latent coordinates is learned slowly, and z learns the class first;
        samples drawn with a label then follow z instead (Bernoulli CVAE on MNIST: 34-62% of
        samples of the class asked for with 1, 87-97% with 20). Models saved before it read
        the condition unscaled (1).
    encode_covariates : bool [True]
        Whether the conditions y enter the encoder as well as the decoder. With False (scVI's
        default) the latent coordinates are computed from x alone: :meth:`transform` and
        :meth:`predict_labels` need no y, and read samples of batches the model has not seen.
    classification_weight : float [50.0]
        With ``labels``: the weight of the label classifier's mean cross-entropy over the
        labelled samples of a minibatch, added to its loss (scANVI's ``classification_ratio``).
    precision : str ["fp32"]
        The training step's arithmetic: ``"bf16"`` runs the networks under autocast in
        bfloat16 (the likelihood, the KL and Adam's update stay float32), which is faster on
        GPUs with bfloat16 units and on CPUs with AMX; validation and every method after
        ``fit`` compute in float32.
    cuda_graph : bool [False]
        On ``device="cuda"``, capture the whole training step (row gather, forward, backward,
        Adam) in one CUDA graph and replay it: a small model's step is then no longer bound by
        Python and kernel launches. Needs dense rows held on the GPU; a step that cannot be
        captured falls back to eager execution with a warning. Ignored on the CPU.
    checkpoint_dir : str or PathLike [None]
        A folder of its own for training checkpoints (created if missing): one after every
        epoch, and on SIGINT or SIGTERM after the step under way; ``fit(X, resume=True)``
        continues from the newest, and ends with the weights and history an uninterrupted
        run would have had.
    checkpoint_minutes : float [10.0]
        Also write a checkpoint within an epoch once this many minutes have passed since the
        last (None: only between epochs).
    keep_checkpoints : int [2]
        How many checkpoints to keep (the newest).
    seed : int or None
        Two fits with the same seed on the same machine give identical weights.
    device : str
        ``"cpu"`` or ``"cuda"``.
    verbose : bool
        Show a progress bar (only on a terminal).

    Attributes
    ----------
    module_ : VAEModule
    settings_ : dict
        The settings used, after the preset and defaults.
    preprocessor_ : Preprocessor
    features_ : list of str
        The features the decoder models (after feature selection).
    history_ : pandas.DataFrame
        Per epoch: train_/val_ loss, reconstruction and KL, kl_weight, lr, seconds, active_units
        and the KL of each latent feature (kl_z0, ...); with ``objective="tcvae"`` also
        train_mutual_info, train_total_correlation and train_dimension_kl (nats per sample),
        with ``objective="capacity"`` the epoch's target ``capacity`` (nats).
    best_epoch_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Set when X had feature names (a DataFrame or an AnnData).
    covariates_ : CovariateEncoder or None
    labels_ : ndarray or None
        The label classes, fitted with ``labels``.
    image_shape_ : tuple of int or None
        (H, W) or (C, H, W): ``image_shape``, else that of images read by :func:`vaekit.read`.
    training_seconds_ : float
    validation_rows_ : ndarray of int
        The rows of X that training held out for validation (ascending; empty with
        ``validation_fraction=0``). Absent on models loaded from folders saved before vaekit
        stored them.

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
        n_latent: int | None = None,
        hidden: tuple[int, ...] | None = None,
        likelihood: str | None = None,
        beta: float | None = None,
        kl_warmup: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        *,
        objective: str | None = None,
        mi_weight: float | None = None,
        tc_weight: float | None = None,
        dimension_kl_weight: float | None = None,
        tc_estimator: str | None = None,
        capacity_max: float | None = None,
        capacity_epochs: int | None = None,
        capacity_weight: float | None = None,
        preset: str | None = None,
        preprocess: Sequence | None = None,
        weight_decay: float | None = None,
        decoder_hidden: tuple[int, ...] | None = None,
        decoder: str | None = None,
        architecture: str | None = None,
        image_shape: tuple[int, ...] | None = None,
        activation: str | None = None,
        batch_norm: bool | None = None,
        posterior_batch_norm: bool | None = None,
        dropout: float | None = None,
        validation_fraction: float | None = None,
        early_stopping: bool | None = None,
        patience: int | None = None,
        grad_clip: float | None = None,
        loadings_l1: float | None = None,
        iw_samples: int | None = None,
        lr_patience: int | None = None,
        init: str | None = None,
        max_minutes: float | None = None,
        missing: str | None = None,
        mask_rate: float | None = None,
        condition_scale: float | None = None,
        encode_covariates: bool | None = None,
        classification_weight: float | None = None,
        precision: str | None = None,
        cuda_graph: bool | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_minutes: float | None = None,
        keep_checkpoints: int | None = None,
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
        self.objective = objective
        self.mi_weight = mi_weight
        self.tc_weight = tc_weight
        self.dimension_kl_weight = dimension_kl_weight
        self.tc_estimator = tc_estimator
        self.capacity_max = capacity_max
        self.capacity_epochs = capacity_epochs
        self.capacity_weight = capacity_weight
        self.preset = preset
        self.preprocess = preprocess
        self.weight_decay = weight_decay
        self.decoder_hidden = decoder_hidden
        self.decoder = decoder
        self.architecture = architecture
        self.image_shape = image_shape
        self.activation = activation
        self.batch_norm = batch_norm
        self.posterior_batch_norm = posterior_batch_norm
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.grad_clip = grad_clip
        self.loadings_l1 = loadings_l1
        self.iw_samples = iw_samples
        self.lr_patience = lr_patience
        self.init = init
        self.max_minutes = max_minutes
        self.missing = missing
        self.mask_rate = mask_rate
        self.condition_scale = condition_scale
        self.encode_covariates = encode_covariates
        self.classification_weight = classification_weight
        self.precision = precision
        self.cuda_graph = cuda_graph
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_minutes = checkpoint_minutes
        self.keep_checkpoints = keep_checkpoints
        self.seed = seed
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        labels: Any = None,
        layer: str | None = None,
        resume: bool = False,
        callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> BaseVAE:
        """Train on X (samples x features), conditioned on y when given.

        Parameters
        ----------
        X : array-like, DataFrame, sparse matrix, tensor or AnnData, (n_samples, n_features)
        y : array-like, DataFrame, or the name(s) of AnnData ``obs`` columns, optional
            Conditions: float columns are continuous, all others categorical (a batch, say).
        labels : array-like or the name of an AnnData ``obs`` column, optional
            A label per sample (a cell type), missing or ``"unknown"`` where not known: a
            classifier on the latent space learns them jointly with the VAE (scANVI's idea,
            Xu et al. 2021), weighted by ``classification_weight``; :meth:`predict_labels`
            then labels any sample. ``labels_`` holds the classes.
        layer : str, optional
            The AnnData layer to use instead of ``X``.
        resume : bool
            Continue from the newest checkpoint in ``checkpoint_dir`` (from the start when
            there is none), with the same data and settings; only those that say how long
            or where to train (epochs, patience, max_minutes, the checkpoint settings) may
            differ, and their changes are recorded in ``resumes_``.
        callback : callable, optional
            Called as ``callback(epoch, record)`` after each epoch with the epoch's record
            (a row of ``history_``); an exception it raises ends the fit and leaves the model
            as it was (a tuner prunes a trial this way).

        Returns
        -------
        self

        Raises
        ------
        vaekit.train.TrainingInterrupted
            On SIGINT (Ctrl-C) or SIGTERM, after the step under way and a checkpoint.
        vaekit.train.TrainingDiverged
            When the loss stays NaN or infinite after three roll-backs with half the
            learning rate each.
        """
        settings = resolve(self.get_params(), self.preset)
        check_settings(settings)
        if settings["checkpoint_dir"] is not None:  # JSON in settings_ and checkpoints
            settings["checkpoint_dir"] = os.fspath(settings["checkpoint_dir"])
        masked = settings["missing"] == "mask"
        # Settings nobody gave follow the data (vaekit.auto).
        given = fixed(self.get_params(), self.preset)
        table, data, preprocessor = fitting.fit_tables(X, layer, settings, given, masked)
        y = resolve_y(X, y)
        covariates = None if y is None else CovariateEncoder.fit(y, data.X.shape[0])
        cov = None if y is None else covariates.transform(y, data.X.shape[0]).to(self._device)
        label_values = resolve_labels(X, labels, data.X.shape[0])
        classes = None if label_values is None else LabelClasses.fit(label_values)
        targets = None if classes is None else classes.encode(label_values).to(self._device)
        # Under torchrun: join the other processes, and train with rank 0's seed.
        w = distributed.join(self._device)
        seed = w.broadcast_seed(fitting.training_seed(self.seed, settings, resume))
        rows = as_rows(data.X, self._device)
        n_input = len(preprocessor.features_)
        image_shape, chw = fitting.image_shapes(X, self.image_shape, settings, n_input)
        settings["architecture"] = settings["architecture"] or fitting.auto_architecture(
            settings, n_input, cov, chw
        )
        n_labels = 0 if classes is None else len(classes.classes)
        config = fitting.model_config(settings, n_input, cov, chw, n_labels)
        fitting.settle_init(settings, given, config)
        checkpoints = fitting.checkpoints(
            settings, seed, config, table, _with_labels(y, label_values)
        )
        # Training holds the weights, their gradients, Adam's two moments, the best weights
        # and the roll-back copy: six copies, checked before any is allocated.
        check_memory(config, copies=TRAINING_COPIES)
        # Each rank draws its own noise; DistributedDataParallel gives all rank 0's weights.
        with seeded(w.seed(seed), self._device):
            module = VAEModule(config).to(self._device)
            fitting.fit_library(module, rows)
            with epoch_progress(settings["epochs"], self.verbose and w.main) as progress:
                result = train(
                    module,
                    rows,
                    cov,
                    fitting.train_config(settings, seed),
                    _both(progress, callback),
                    labels=targets,
                    checkpoints=checkpoints,
                    resume=resume,
                )
        # Fitted state is set only now, so a fit that fails leaves the model as it was.
        self.settings_, self.preprocessor_, self.features_ = (
            settings,
            preprocessor,
            data.feature_names,
        )
        self.n_features_in_ = table.X.shape[1]
        if table.feature_names is not None:
            self.feature_names_in_ = np.asarray(table.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.image_shape_ = image_shape
        self.covariates_, self.seed_, self.module_ = covariates, seed, module
        self.labels_ = None if classes is None else np.asarray(classes.classes, dtype=object)
        self.history_ = pd.DataFrame(result.history).set_index("epoch")
        self.best_epoch_ = result.best_epoch
        self.training_seconds_ = result.seconds
        self.validation_rows_ = result.validation_rows.numpy()
        self.resumes_ = result.resumes
        self.metadata_ = {}
        self.__dict__.pop("calibration_", None)  # a threshold of the old weights
        return self

    def fit_transform(
        self, X: Any, y: Any = None, *, labels: Any = None, layer: str | None = None
    ) -> np.ndarray:
        """Fit, then return the posterior means of X (given y, for a conditional model)."""
        return self.fit(X, y, labels=labels, layer=layer).transform(X, y, layer=layer)

    @property
    def _device(self) -> torch.device:
        """The device asked for; under torchrun, ``cuda`` is this rank's GPU."""
        return distributed.world().device(torch.device(self.device))

    @property
    def _n_features_out(self) -> int:
        return self.module_.config.n_latent

    # ------------------------------------------------------------------ inference
    def prepare(
        self,
        X: Any,
        y: Any = None,
        *,
        layer: str | None = None,
        allow_nan: bool | None = None,
        encoder_only: bool = False,
    ) -> Prepared:
        """X and y as the module reads them, validated once before any work: X matched to the
        fitted features (by name, else by count), preprocessed and checked against the
        likelihood; y encoded.

        Parameters
        ----------
        X : array-like, DataFrame, sparse matrix, tensor or AnnData
        y : optional
            Conditions of a conditional model (None for another).
        layer : str, optional
            The AnnData layer to use instead of ``X``.
        allow_nan : bool, optional
            Whether NaN (missing entries) may pass; by default only for a model fitted with
            ``missing="mask"``. Imputation takes NaN from any model.
        encoder_only : bool
            Only the encoder will read the rows: for a model whose encoder reads no
            conditions (``encode_covariates=False``), y is then not needed (and not read), so
            samples of a batch the model has not seen pass.

        Returns
        -------
        Prepared

        Examples
        --------
        >>> prepared = model.prepare(X)  # doctest: +SKIP
        >>> model.map_batches(prepared, lambda b: model.module_.encode(b.x).loc)  # doctest: +SKIP
        """
        check_is_fitted(self, "module_")
        masked = self.module_.config.missing == "mask"
        allow_nan = masked if allow_nan is None else allow_nan
        names = getattr(self, "feature_names_in_", None)
        given, inputs, data = fitting.input_tables(
            X, layer, allow_nan, NO_MASK_HINT, (self.n_features_in_, names), self.preprocessor_,
            self.settings_["likelihood"],
        )
        if encoder_only and not self.module_.config.encode_covariates:
            cov = None
        else:
            y = resolve_y(X, self._obs_conditions(X) if y is None else y)
            cov = self.encode_conditions(y, data.X.shape[0])
        return Prepared(given, inputs, data, as_rows(data.X, self._device), cov)

    def _obs_conditions(self, X: Any) -> list[str] | None:
        """The names of the model's conditions when X is an AnnData whose obs has them all
        (a model reads its conditions from the columns it was trained on), else None."""
        if self.covariates_ is None or not is_anndata(X):
            return None
        names = [c.name for c in self.covariates_.columns]
        return names if all(n in X.obs.columns for n in names) else None

    def encode_conditions(
        self, y: Any, n: int, *, broadcast: bool = False
    ) -> torch.Tensor | None:
        """(n, n_covariates) y encoded for the module, on its device; None for a model fitted
        without y. With ``broadcast``, one condition serves all n rows."""
        check_is_fitted(self, "module_")
        if self.covariates_ is None:
            if y is not None:
                raise ValueError("this model was fitted without y; call it without y")
            return None
        if y is None:
            names = [c.name for c in self.covariates_.columns]
            raise ValueError(f"this model is conditional on y ({names}); pass y")
        return self.covariates_.transform(y, n, broadcast).to(self._device)

    @torch.no_grad()
    def map_batches(
        self,
        prepared: Prepared,
        fn: Callable[[Batch], Any],
        *,
        seed: int = 0,
        batch_rows: int | None = None,
    ) -> list:
        """``fn(batch)`` for consecutive batches of ``batch_rows`` rows of ``prepared``
        (default :meth:`inference_rows`), in eval mode, without gradients, with torch's
        generators seeded by ``seed``; the per-batch outputs in order. Each
        :class:`~vaekit.batch.Batch` holds its rows, the mask of observed entries, the
        conditions and the library sizes."""
        module = self.module_.eval()
        batch_rows = self.inference_rows() if batch_rows is None else batch_rows
        outputs = []
        with seeded(seed, self._device):
            for idx in torch.arange(len(prepared)).split(batch_rows):
                c = prepared.covariates
                c = None if c is None else c[idx.to(c.device)]
                outputs.append(fn(module.batch(prepared.rows.take(idx), c)))
        return outputs

    def inference_rows(self) -> int:
        """Rows per batch of inference: :data:`INFERENCE_BATCH` on the CPU, as many as fit in
        a share of a GPU's free memory there (:func:`~vaekit._runtime.chunk_rows`)."""
        return chunk_rows(self._device, row_values(self.module_.config), INFERENCE_BATCH)

    def _map(
        self, X: Any, y: Any, layer: str | None, fn: Callable[[Batch], Any], seed: int = 0
    ) -> tuple[Table, list]:
        prepared = self.prepare(X, y, layer=layer)
        return prepared.table, self.map_batches(prepared, fn, seed=seed)

    def encode(
        self, X: Any, y: Any = None, *, layer: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances, each (n_samples, n_latent)."""
        prepared = self.prepare(X, y, layer=layer, encoder_only=True)
        parts = self.map_batches(prepared, lambda b: self.module_.encode(b.x, b.condition))
        mean = torch.cat([q.loc for q in parts]).cpu().numpy()
        logvar = torch.cat([2 * q.scale.log() for q in parts]).cpu().numpy()
        return mean, logvar

    def transform(self, X: Any, y: Any = None, *, layer: str | None = None) -> np.ndarray:
        """Posterior means, (n_samples, n_latent)."""
        return self.encode(X, y, layer=layer)[0]

    def reconstruct(
        self, X: Any, y: Any = None, *, layer: str | None = None
    ) -> np.ndarray | pd.DataFrame:
        """Expected value of p(x | z = posterior mean), in the (preprocessed) space the decoder
        models; a DataFrame with sample and feature names when X had sample names."""

        def mean(b: Batch) -> torch.Tensor:
            m = self.module_
            return m.decode(m.encode(b.x, b.condition).loc, b.condition, b.library).mean

        table, parts = self._map(X, y, layer, mean)
        out = torch.cat(parts).cpu().numpy()
        if table.sample_names is None:
            return out
        return pd.DataFrame(out, index=table.sample_names, columns=self.features_)

    @draws_keyword
    def elbo_terms(
        self,
        X: Any,
        y: Any = None,
        *,
        layer: str | None = None,
        n_draws: int = 10,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Per-sample reconstruction (-E_q log p(x|z)), KL and ELBO in nats (beta = 1),
        averaged over ``n_draws`` posterior draws."""
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1; got {n_draws}")

        def terms(b: Batch) -> torch.Tensor:
            outs = [self.module_.loss(b.x, b.condition) for _ in range(n_draws)]
            return torch.stack([torch.stack([o.reconstruction, o.kl]) for o in outs]).mean(0)

        table, parts = self._map(X, y, layer, terms, seed)
        rec, kl = torch.cat(parts, dim=1).cpu().double().numpy()
        return pd.DataFrame(
            {"reconstruction": rec, "kl": kl, "elbo": -(rec + kl)}, index=table.sample_names
        )

    @draws_keyword
    def score_samples(
        self,
        X: Any,
        y: Any = None,
        *,
        layer: str | None = None,
        n_draws: int = 10,
        seed: int = 0,
    ) -> np.ndarray:
        """Per-sample ELBO in nats (beta = 1), averaged over ``n_draws`` posterior draws."""
        terms = self.elbo_terms(X, y, layer=layer, n_draws=n_draws, seed=seed)
        return terms["elbo"].to_numpy()

    def score(self, X: Any, y: Any = None, *, layer: str | None = None) -> float:
        """Mean ELBO per sample (higher is better), for model selection."""
        return float(self.score_samples(X, y, layer=layer).mean())

    @draws_keyword
    def log_likelihood(
        self,
        X: Any,
        y: Any = None,
        *,
        layer: str | None = None,
        n_draws: int = 1000,
        seed: int = 0,
    ) -> np.ndarray:
        """Per-sample importance-sampled log p(x) in nats, the IWAE bound with ``n_draws``
        draws (Burda et al. 2016); it rises towards log p(x) as ``n_draws`` grows."""
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1; got {n_draws}")

        prepared, size = self.prepare(X, y, layer=layer), self.inference_rows()
        starts = iter(range(0, len(prepared), size))

        def iwae(b: Batch) -> torch.Tensor:  # draws keyed by (seed, row): blocks do not matter
            return iwae_log_likelihood(self.module_, b, n_draws, seed=seed, first_row=next(starts))

        parts = self.map_batches(prepared, iwae, seed=seed, batch_rows=size)
        return torch.cat(parts).cpu().double().numpy()

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
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.module_.config.n_latent, generator=gen).numpy()
        return self.decode(z, y, mean=mean, seed=seed)

    @torch.no_grad()
    def decode(self, Z: Any, y: Any = None, *, mean: bool = True, seed: int = 0) -> np.ndarray:
        """Decode latent points: the decoder's expected value, or a draw from p(x | z).

        Parameters
        ----------
        Z : array-like, (n, n_latent)
        y : optional
            One condition for all points, or one per point (conditional models).
        mean : bool
            The expected value (default) rather than a draw.
        seed : int
            Seeds the draws (and the library sizes of count models).

        Returns
        -------
        ndarray, (n, n_features)
            In the space the decoder models (after preprocessing).
        """
        check_is_fitted(self, "module_")
        module = self.module_.eval()
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != module.config.n_latent:
            raise ValueError(
                f"latent points must have shape (n, {module.config.n_latent}); got {Z.shape}"
            )
        if not np.isfinite(Z).all():
            raise ValueError("latent points hold NaN or infinite values")
        cov = self.encode_conditions(y, len(Z), broadcast=True)
        parts = []
        with seeded(seed, self._device):
            for idx in torch.arange(len(Z)).split(self.inference_rows()):
                z = torch.from_numpy(Z[idx.numpy()]).to(self._device)
                library = (
                    module.sample_library(len(idx)) if module.likelihood.uses_library else None
                )
                px = module.decode(z, None if cov is None else cov[idx], library)
                parts.append(px.mean if mean else px.sample())
        return torch.cat(parts).cpu().numpy()

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write ``config.json`` and ``weights.safetensors`` into the folder ``path`` atomically.

        ``metadata`` (JSON), such as the command that trained the model, is stored alongside.
        """
        check_is_fitted(self, "module_")
        saving.write(self, path, metadata)


def _both(
    progress: Callable[[int, dict], None], callback: Callable[[int, dict], None] | None
) -> Callable[[int, dict], None]:
    """The progress bar's callback, then the caller's (if any)."""
    if callback is None:
        return progress

    def both(epoch: int, record: dict) -> None:
        progress(epoch, record)
        callback(epoch, record)

    return both


def _with_labels(y: Any, labels: list | None) -> Any:
    """The conditions and the labels in one frame (what a checkpoint's data fingerprint
    hashes, so that a resumed run has the same of both); y alone without labels."""
    if labels is None:
        return y
    frame = pd.DataFrame(index=range(len(labels))) if y is None else pd.DataFrame(y).copy()
    frame["__labels__"] = [str(v) for v in labels]
    return frame
