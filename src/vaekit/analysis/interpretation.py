"""Which genes each latent feature carries, read from a loadings table
(:meth:`vaekit.VAE.loadings`: latent features x genes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOP_COLUMNS = ["feature", "sign", "rank", "gene", "weight", "high_weight"]


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
