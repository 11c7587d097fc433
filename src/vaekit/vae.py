"""The user-facing :class:`VAE`: the estimator (:class:`vaekit.estimator.BaseVAE`) with the
analyses as methods, and :func:`load`. The analyses build on the estimator; this module sits
above both, so that neither imports the other's way up."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from vaekit import saving
from vaekit._deprecation import draws_keyword
from vaekit.analysis import anomaly, expression, imputation, interpretation, mapping, paths
from vaekit.estimator import BaseVAE


class VAE(BaseVAE):
    __doc__ = BaseVAE.__doc__

    # ------------------------------------------------------------------ latent space
    def interpolate(
        self, a: Any, b: Any, steps: int = 8, method: str = "linear", y: Any = None, **kw: Any
    ) -> Any:
        """Decode a path from ``a`` to ``b`` (samples, or latent points with ``latent=True``);
        see :func:`vaekit.analysis.interpolate`."""
        return paths.interpolate(self, a, b, steps=steps, method=method, y=y, **kw)

    def traverse(self, x: Any = None, features: Any = None, **kw: Any) -> Any:
        """Vary one latent feature at a time around ``x`` (or the origin), decoded; see
        :func:`vaekit.analysis.traverse`."""
        return paths.traverse(self, x, features, **kw)

    # ------------------------------------------------------------------ single cell
    def normalized_expression(
        self,
        X: Any,
        y: Any = None,
        *,
        batch: Any = None,
        library_size: float = 1e4,
        n_draws: int = expression.DEFAULT_DRAWS,
        mean: bool = True,
        seed: int = 0,
        layer: str | None = None,
    ) -> np.ndarray:
        """Denoised expression per cell for a library of ``library_size`` counts, optionally
        as if every cell came from batch ``batch``; see
        :func:`vaekit.analysis.normalized_expression`."""
        return expression.normalized_expression(
            self, X, y, batch=batch, library_size=library_size, n_draws=n_draws, mean=mean,
            seed=seed, layer=layer,
        )

    def predict_labels(
        self, X: Any, y: Any = None, *, layer: str | None = None
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """The label of each cell and the class probabilities, from the classifier trained
        with ``fit(..., labels=...)``; see :func:`vaekit.analysis.predict_labels`."""
        return expression.predict_labels(self, X, y, layer=layer)

    def extend(
        self,
        query: Any,
        batch: Any = None,
        *,
        labels: Any = None,
        epochs: int | None = None,
        seed: int | None = None,
        layer: str | None = None,
    ) -> VAE:
        """Map a query's new batches onto this reference model, training only their own
        weights (scArches); see :func:`vaekit.analysis.extend`."""
        return mapping.extend(
            self, query, batch, labels=labels, epochs=epochs, seed=seed, layer=layer
        )

    # ------------------------------------------------------------------ anomalies
    @draws_keyword
    def anomaly_score(
        self,
        X: Any,
        y: Any = None,
        method: str | None = None,
        *,
        layer: str | None = None,
        n_draws: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Per-sample anomaly scores, higher = more anomalous: by default ``"mean_deviance"``
        for Bernoulli and count likelihoods, else ``"elbo"`` (:func:`vaekit.analysis.anomaly.
        default_method`); ``"elbo"`` (-ELBO), ``"iwae"``
        (-log p(x), importance-sampled), ``"reconstruction"`` (-E_q log p(x|z), An & Cho
        2015), ``"deviance"`` (-ELBO + log p(x | saturated)) or ``"mean_deviance"`` (the
        deviance of x decoded from its posterior mean); see
        :func:`vaekit.analysis.anomaly.anomaly_score`."""
        return anomaly.anomaly_score(
            self, X, y, method, layer=layer, n_draws=n_draws, seed=seed
        )

    @draws_keyword
    def calibrate(
        self,
        X_control: Any,
        y: Any = None,
        fpr: float = 0.05,
        method: str | None = None,
        *,
        layer: str | None = None,
        n_draws: int | None = None,
    ) -> VAE:
        """Set ``calibration_`` from control samples held out from training, so that
        :meth:`is_anomaly` flags a share ``fpr`` of such samples; returns self."""
        self.calibration_ = anomaly.calibrate(
            self, X_control, y, fpr=fpr, method=method, layer=layer, n_draws=n_draws
        )
        return self

    def is_anomaly(self, X: Any, y: Any = None, *, layer: str | None = None) -> np.ndarray:
        """Boolean flags: score above the threshold set by :meth:`calibrate`."""
        check_is_fitted(self, "calibration_", msg="call calibrate(X_control) before is_anomaly")
        cal = self.calibration_
        return cal.flags(self.anomaly_score(X, y, cal.method, layer=layer, n_draws=cal.n_draws))

    @draws_keyword
    def anomaly_contributions(
        self, X: Any, y: Any = None, *, layer: str | None = None, n_draws: int = 10, seed: int = 0
    ) -> pd.DataFrame:
        """Per sample and feature, -E_q log p(x_j | z): which genes or pixels make a sample
        anomalous; see :func:`vaekit.analysis.anomaly.contributions`."""
        return anomaly.contributions(self, X, y, layer=layer, n_draws=n_draws, seed=seed)

    # ------------------------------------------------------------------ missing values
    @draws_keyword
    def impute(
        self,
        X: Any,
        y: Any = None,
        *,
        n_iter: int = 50,
        n_draws: int = 1000,
        n_imputations: int | None = None,
        method: str = "importance",
        seed: int = 0,
        layer: str | None = None,
        refine_steps: int = 100,
    ) -> Any:
        """X with its NaN entries filled in, in X's own space and container (observed entries
        unchanged); with ``n_imputations=m``, a list of m completed copies, each with its own
        draw. ``method`` is ``"importance"`` (MIWAE, Mattei & Frellsen 2019, from a proposal
        fitted to each sample by ``refine_steps`` steps) or ``"gibbs"`` (Rezende et al. 2014's
        pseudo-Gibbs); see :func:`vaekit.analysis.imputation.impute`.

        Examples
        --------
        >>> X_full = model.impute(X_with_nan)  # doctest: +SKIP
        """
        return imputation.impute(
            self,
            X,
            y,
            n_iter=n_iter,
            n_draws=n_draws,
            n_imputations=n_imputations,
            method=method,
            seed=seed,
            layer=layer,
            refine_steps=refine_steps,
        )

    # ------------------------------------------------------------------ interpretation
    def loadings(
        self,
        X: Any = None,
        y: Any = None,
        *,
        layer: str | None = None,
        n_samples: int = 1000,
        seed: int = 0,
    ) -> pd.DataFrame:
        """How much each latent feature moves each modelled feature (gene), read from the
        decoder: a DataFrame (n_latent, n_features) whose ``.attrs["method"]`` is ``"linear"``,
        ``"weights"`` or ``"jacobian"``; see :func:`vaekit.analysis.interpretation.loadings`.

        Parameters
        ----------
        X : array-like, optional
            Data over which a deep decoder's Jacobian is averaged (at the posterior means of
            at most ``n_samples`` random rows); without it, ``n_samples`` draws from the prior.
            Linear and single-layer decoders need no data: their (batch-norm-folded) weights
            are the loadings.
        y : optional
            Conditions of X, or one condition for the prior draws, for a conditional model.

        Examples
        --------
        >>> model.loadings().loc[3].nlargest(5)  # doctest: +SKIP
        """
        return interpretation.loadings(self, X, y, layer=layer, n_samples=n_samples, seed=seed)


def load(path: str | os.PathLike) -> VAE:
    """Load a model saved with :meth:`VAE.save`; nothing is unpickled.

    Examples
    --------
    >>> model = vaekit.load("my_model")  # doctest: +SKIP
    """
    return saving.read(VAE, path)
