"""How much each latent feature moves each modelled feature (:func:`loadings`), and which genes
each latent feature carries, read from such a table (latent features x genes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from vaekit._runtime import seeded
from vaekit.batch import Batch
from vaekit.model import VAEModule

if TYPE_CHECKING:
    from vaekit.estimator import BaseVAE

MAX_JACOBIAN_ROWS = 1024  # latent points differentiated together

TOP_COLUMNS = ["feature", "sign", "rank", "gene", "weight", "high_weight"]


@torch.no_grad()
def loadings(
    model: BaseVAE,
    X: Any = None,
    y: Any = None,
    *,
    layer: str | None = None,
    n_samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """How much each latent feature moves each modelled feature (gene), read from the decoder.

    Parameters
    ----------
    model : vaekit.VAE
        Fitted.
    X : array-like, optional
        Data over which a deep decoder's Jacobian is averaged (at the posterior means of
        at most ``n_samples`` random rows); without it, ``n_samples`` draws from the prior.
        Linear and single-layer decoders need no data: their (batch-norm-folded) weights
        are the loadings.
    y : optional
        Conditions of X, or one condition for the prior draws, for a conditional model.

    Returns
    -------
    DataFrame, (n_latent, n_features)
        Index 0..n_latent-1, columns ``features_``; ``.attrs["method"]`` is ``"linear"``,
        ``"weights"`` or ``"jacobian"``.

    Examples
    --------
    >>> loadings(model).loc[3].nlargest(5)  # doctest: +SKIP
    """
    check_is_fitted(model, "module_")
    module = model.module_.eval()
    points = None
    if not module.one_layer_decoder:  # one linear layer: its weights are the loadings
        points = _jacobian_points(model, X, y, layer, n_samples, seed)
    with torch.enable_grad():
        values, method = decoder_loadings(module, points)
    frame = pd.DataFrame(values.cpu().double().numpy(), columns=list(model.features_))
    frame.index.name = "feature"
    frame.attrs["method"] = method
    return frame


def _jacobian_points(
    model: BaseVAE, X: Any, y: Any, layer: str | None, n_samples: int, seed: int
) -> Batch:
    """Latent points over which to average a Jacobian, as a :class:`Batch` whose ``x`` holds
    them (n, n_latent), with their conditions and library sizes: the posterior means of X, else
    draws from the prior."""
    module = model.module_
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    if X is not None:
        prepared = model.prepare(X, y, layer=layer)
        # A random subset of n_samples rows estimates the average well and bounds the cost.
        idx = np.random.default_rng(seed).permutation(len(prepared))[:n_samples]
        idx = torch.from_numpy(np.sort(idx))
        cov = prepared.covariates
        c = None if cov is None else cov[idx.to(cov.device)]
        rows = module.batch(prepared.rows.take(idx), c)
        z = module.encode(rows.x, rows.condition, rows.observed).loc
        return Batch(z, None, rows.condition, rows.library)
    cov = model.encode_conditions(y, n_samples, broadcast=True)
    device = module.library_log_mean.device
    with seeded(seed, device):
        z = torch.randn(n_samples, module.config.n_latent, device=device)
        library = module.sample_library(n_samples) if module.likelihood.uses_library else None
    return Batch(z, None, cov, library)


def decoder_loadings(
    module: VAEModule,
    points: Batch | None = None,
    max_rows: int = MAX_JACOBIAN_ROWS,
) -> tuple[torch.Tensor, str]:
    """(n_latent, n_input) effect of each latent feature on each feature of x, and the method.

    Without hidden decoder layers z acts on x through one linear map: its weights, with a
    batch norm folded in, are exact (``"linear"`` for the linear decoder, ``"weights"`` for
    Tybalt's single layer; in the likelihood's parameter space, e.g. logits or
    log-proportions). A deeper decoder's loadings are the Jacobian of the decoder's mean
    with respect to z averaged over the latent ``points`` (``"jacobian"``, in units of x per
    unit of z): a batch whose ``x`` holds z (n, n_latent), with conditions and library sizes.
    """
    if module.one_layer_decoder:
        method = "linear" if module.config.decoder == "linear" else "weights"
        return module.latent_weights().detach().T, method
    if points is None:
        raise ValueError("the loadings of a deep decoder are averaged over latent points z")
    total = torch.zeros(module.config.n_latent, module.config.n_input, device=points.x.device)
    for i in range(0, len(points), max_rows):
        total += _jacobian_sum(module, points.slice(i, max_rows))
    return total / len(points), "jacobian"


def _jacobian_sum(module: VAEModule, points: Batch) -> torch.Tensor:
    """(n_latent, n_input) d mean(x) / d z summed over rows, one forward-mode pass per
    latent feature (cheaper than the full (B, n_input, n_latent) Jacobian)."""

    def mean(z: torch.Tensor) -> torch.Tensor:
        return module.decode(z, points.condition, points.library).mean

    z, rows = points.x, []
    for j in range(z.shape[1]):
        tangent = torch.zeros_like(z)
        tangent[:, j] = 1.0
        rows.append(torch.func.jvp(mean, (z,), (tangent,))[1].sum(0))
    return torch.stack(rows)


def high_weight_mask(loadings: pd.DataFrame, sd: float = 2.5) -> pd.DataFrame:
    """True where a gene's weight lies beyond its feature's mean +/- ``sd`` standard deviations
    (Tybalt's high-weight rule, Way & Greene 2018)."""
    W = loadings.to_numpy(dtype=float)
    mean = W.mean(axis=1, keepdims=True)
    spread = sd * W.std(axis=1, keepdims=True)
    return pd.DataFrame(np.abs(W - mean) > spread, index=loadings.index, columns=loadings.columns)


def top_genes(loadings: pd.DataFrame, k: int = 20, sd: float = 2.5) -> pd.DataFrame:
    """The ``k`` genes of largest positive and of largest negative weight of every feature.

    Parameters
    ----------
    loadings : DataFrame, (n_latent, n_genes)
    k : int
        Genes per feature and sign.
    sd : float
        Threshold of the high-weight rule, flagged in ``high_weight``.

    Returns
    -------
    DataFrame
        Columns ``feature``, ``sign`` (``"+"`` or ``"-"``), ``rank`` (1 = heaviest), ``gene``,
        ``weight`` and ``high_weight``; sorted by feature, sign and rank.

    Examples
    --------
    >>> top_genes(model.loadings(), k=10).query("feature == 3")  # doctest: +SKIP
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    k = min(k, loadings.shape[1])
    high = high_weight_mask(loadings, sd).to_numpy()
    genes = np.asarray(loadings.columns)
    W = loadings.to_numpy(dtype=float)
    parts = []
    for row, feature in enumerate(loadings.index):
        for sign, order in (("+", np.argsort(-W[row])), ("-", np.argsort(W[row]))):
            idx = order[:k]
            parts.append(
                pd.DataFrame(
                    {
                        "feature": feature,
                        "sign": sign,
                        "rank": np.arange(1, k + 1),
                        "gene": genes[idx],
                        "weight": W[row, idx],
                        "high_weight": high[row, idx],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)[TOP_COLUMNS]


def heaviest(loadings: pd.DataFrame, feature: int, k: int = 20) -> pd.Series:
    """The ``k`` genes of largest absolute weight on ``feature``, with their signed weights."""
    weights = loadings.loc[feature]
    return weights.loc[weights.abs().sort_values(ascending=False).index[:k]]


def high_weight_genes(loadings: pd.DataFrame, sd: float = 2.5) -> dict[str, list[str]]:
    """Tybalt's high-weight genes of every feature and sign, keyed ``"feature 3 +"``, heaviest
    first: the selections to test for gene-set over-representation."""
    mask = high_weight_mask(loadings, sd)
    W = loadings.to_numpy(dtype=float)
    mean = W.mean(axis=1)
    out = {}
    for row, feature in enumerate(loadings.index):
        chosen = loadings.columns[mask.iloc[row].to_numpy()]
        weights = loadings.loc[feature, chosen]
        for sign, side in (("+", weights > mean[row]), ("-", weights < mean[row])):
            picked = weights[side]
            if len(picked):
                order = picked.abs().sort_values(ascending=False).index
                out[f"feature {feature} {sign}"] = [str(g) for g in order]
    return out
