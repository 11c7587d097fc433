"""Which sample annotations each latent feature tracks: one test per feature x annotation, with
Benjamini-Hochberg q-values over all of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

COLUMNS = [
    "feature",
    "annotation",
    "test",
    "statistic",
    "auroc",
    "level",
    "p",
    "q",
    "n",
    "n_missing",
]


@dataclass
class _Column:
    """One annotation column with its missing values removed."""

    name: str
    values: pd.Series  # non-missing values
    keep: np.ndarray  # (n_samples,) bool, rows with a value
    notes: list[str] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        return int((~self.keep).sum())


def associate(latent: np.ndarray | pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """Test every latent feature against every annotation column.

    - a categorical column with two levels: Mann-Whitney U test and the AUROC of the feature for
      the second level (in sorted order, named in ``level``) against the first;
    - more levels: Kruskal-Wallis H test, and the one-vs-rest AUROC furthest from 0.5;
    - a numeric column (more than two distinct values): Spearman's rho.

    Missing values are left out column by column (counted in ``n_missing``); a column with a
    single level, or text with distinct values in half its rows or more (an ID), is skipped, with
    the reason in ``.attrs["skipped"]``.

    Parameters
    ----------
    latent : array or DataFrame, (n_samples, n_latent)
    annotations : DataFrame, (n_samples, n_annotations)
        Same rows as ``latent`` (matched by index when ``latent`` is a DataFrame).

    Returns
    -------
    DataFrame
        Columns ``feature`` (0-based), ``annotation``, ``test``, ``statistic``, ``auroc``
        (categorical only), ``level``, ``p``, ``q`` (Benjamini-Hochberg over all rows), ``n``
        and ``n_missing``, sorted by ``q``.

    Examples
    --------
    >>> associate(model.transform(X), phenotypes[["gender", "age"]]).head()  # doctest: +SKIP
    """
    Z, annotations = _aligned(latent, annotations)
    rows, skipped = [], {}
    for name in annotations.columns:
        column = _column(str(name), annotations[name])
        reason = _skip_reason(column)
        if reason:
            skipped[str(name)] = reason
            continue
        rows.append(_test(Z[column.keep], column))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=COLUMNS)
    out["q"] = _bh(out["p"].to_numpy(dtype=float))
    order = np.lexsort((-(out["auroc"].fillna(0.5) - 0.5).abs(), out["p"], out["q"]))
    out = out.iloc[order].reset_index(drop=True)[COLUMNS]
    out.attrs["skipped"] = skipped
    return out


def _aligned(
    latent: np.ndarray | pd.DataFrame, annotations: pd.DataFrame
) -> tuple[np.ndarray, pd.DataFrame]:
    if not isinstance(annotations, pd.DataFrame):
        raise TypeError(f"annotations must be a pandas DataFrame; got {type(annotations).__name__}")
    if isinstance(latent, pd.DataFrame):
        if set(latent.index) == set(annotations.index) and annotations.index.is_unique:
            annotations = annotations.loc[latent.index]
        latent = latent.to_numpy()
    Z = np.asarray(latent, dtype=float)
    if Z.ndim != 2:
        raise ValueError(f"latent must be 2-D (samples x features); got shape {Z.shape}")
    if len(Z) != len(annotations):
        raise ValueError(
            f"latent has {len(Z)} rows but annotations have {len(annotations)}; "
            "pass annotations for the same samples, in the same order"
        )
    if not np.isfinite(Z).all():
        raise ValueError("latent holds NaN or infinite values")
    return Z, annotations.reset_index(drop=True)


def _column(name: str, values: pd.Series) -> _Column:
    missing = values.isna().to_numpy()
    if values.dtype == object:
        missing |= values.astype(str).str.strip().isin(["", "NA", "NaN", "nan", "None"]).to_numpy()
    keep = ~missing
    return _Column(name, values[keep], keep)


def _is_numeric(values: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique() > 2
    )


def _skip_reason(column: _Column) -> str | None:
    n_levels = column.values.nunique()
    if n_levels < 2:
        return f"{n_levels} distinct value(s) among {len(column.values)} samples"
    if not _is_numeric(column.values) and n_levels >= len(column.values) / 2:
        # An ID (patient, barcode), perhaps repeated for a tumour and its normal sample: groups
        # of one or two say nothing.
        return f"{n_levels} distinct values among {len(column.values)} samples (an identifier?)"
    return None


def _test(Z: np.ndarray, column: _Column) -> pd.DataFrame:
    """One row per latent feature for one annotation."""
    if _is_numeric(column.values):
        test, statistic, p, auroc, level = "spearman", *_spearman(Z, column.values), None, None
    else:
        labels = column.values.astype(str).to_numpy()
        levels = np.unique(labels)
        if len(levels) == 2:
            test, statistic, p, auroc, level = "mann-whitney", *_mann_whitney(Z, labels, levels)
        else:
            test, statistic, p, auroc, level = "kruskal-wallis", *_kruskal(Z, labels, levels)
    n_latent = Z.shape[1]
    return pd.DataFrame(
        {
            "feature": np.arange(n_latent),
            "annotation": column.name,
            "test": test,
            "statistic": statistic,
            "auroc": np.nan if auroc is None else auroc,
            "level": level,
            "p": p,
            "n": len(Z),
            "n_missing": column.n_missing,
        }
    )


def _spearman(Z: np.ndarray, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    v = values.to_numpy(dtype=float)
    rho, p = zip(*(stats.spearmanr(Z[:, j], v) for j in range(Z.shape[1])), strict=True)
    return np.asarray(rho, dtype=float), np.asarray(p, dtype=float)


def _auroc(Z: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """(n_latent,) AUROC of each column for ``positive`` against the rest, from mean ranks
    (the Mann-Whitney U statistic / (n1 n0), ties counted half)."""
    ranks = stats.rankdata(Z, axis=0)
    n1, n0 = positive.sum(), (~positive).sum()
    u = ranks[positive].sum(0) - n1 * (n1 + 1) / 2
    return u / (n1 * n0)


def _mann_whitney(
    Z: np.ndarray, labels: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    positive = labels == levels[1]
    result = stats.mannwhitneyu(Z[positive], Z[~positive], alternative="two-sided", axis=0)
    return result.statistic, result.pvalue, _auroc(Z, positive), str(levels[1])


def _kruskal(
    Z: np.ndarray, labels: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    groups = [Z[labels == level] for level in levels]
    result = stats.kruskal(*groups, axis=0)
    aurocs = np.stack([_auroc(Z, labels == level) for level in levels])  # (levels, n_latent)
    best = np.abs(aurocs - 0.5).argmax(0)
    auroc = aurocs[best, np.arange(Z.shape[1])]
    return result.statistic, result.pvalue, auroc, [str(levels[b]) for b in best]


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values (a constant feature) stay NaN and are not
    counted as tests."""
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q
