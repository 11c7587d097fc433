"""Differential expression between two groups of cells from a fitted count model.

The design is scvi-tools' "change" mode (Boyeau et al. 2023, "An empirical Bayes method for
differential expression analysis of single cells with deep generative models", PNAS 120):
draw cells of each group, a posterior
draw of each one's normalised expression h (the decoder's proportions, library size 1; averaged
over the model's batches when it has them, so that batch differences do not read as DE), and
pair the draws at random. The log fold change LFC = log2(h1 + eps) - log2(h2 + eps) then has a
posterior distribution per gene; a gene is differentially expressed when |LFC| > delta, and
calls are made by controlling the posterior expected false discovery rate.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaekit.analysis._limits import MAX_DRAWS, MAX_VALUES, check_count
from vaekit.validation import is_anndata

COLUMNS = (
    "lfc_mean",
    "lfc_median",
    "lfc_std",
    "proba_de",
    "bayes_factor",
    "is_de_fdr",
    "scale1",
    "scale2",
    "raw_mean1",
    "raw_mean2",
    "nonzero1",
    "nonzero2",
)
NEEDED = ("lfc_mean", "proba_de")  # what a DE table read back must hold to be drawn
GENE_CHUNK = 2048  # genes whose float64 LFC draws are held at once (n_samples x chunk)
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class Groups:
    """The rows of the two groups compared and how to name them."""

    rows1: np.ndarray
    rows2: np.ndarray
    name1: str
    name2: str


def differential_expression(
    model: Any,
    adata: Any,
    groupby: str,
    group1: Any,
    group2: Any = None,
    delta: float = 0.25,
    *,
    fdr: float = 0.05,
    n_samples: int = 5000,
    batch_correction: bool = True,
    pseudocount: float | None = None,
    seed: int = 0,
    layer: str | None = None,
) -> pd.DataFrame:
    """Which genes differ between two groups of cells, with posterior probabilities.

    Parameters
    ----------
    model : BaseVAE
        A fitted model with a count likelihood (nb, zinb, poisson...): its decoder's proportions
        are the normalised expression compared.
    adata : AnnData
        Cells with the model's genes, and ``obs`` columns ``groupby`` and the model's
        conditions (``[c.name for c in model.covariates_.columns]``).
    groupby : str
        The ``obs`` column that holds the groups, e.g. ``"cell_type"``.
    group1 : object
        The group of interest (a value of ``groupby``; compared as text).
    group2 : object, optional
        The reference group; None compares ``group1`` with all other cells.
    delta : float
        |LFC| (log2) below which a change counts as no change.
    fdr : float
        Target posterior expected false discovery rate of the calls ``is_de_fdr``.
    n_samples : int
        Posterior draws per group (cells drawn, a posterior draw each).
    batch_correction : bool
        Average each draw over the model's batch categories (when it has one categorical
        condition and ``groupby`` is not that condition), so that both groups are compared
        as if measured in every batch.
    pseudocount : float, optional
        ``eps`` added to the proportions before the log. Default: one count among all the
        cells of the group with fewer counts, 1 / (its total counts): the level below which
        the data cannot tell a gene's expression from none.
    seed : int
    layer : str, optional
        The AnnData layer of raw counts to use instead of ``X``.

    Returns
    -------
    DataFrame, indexed by gene (``model.features_``)
        ``lfc_mean``, ``lfc_median``, ``lfc_std`` of the posterior LFC (group1 over group2);
        ``proba_de`` = P(|LFC| > delta); ``bayes_factor`` = log(p / (1 - p)), p clipped to
        half a draw from 0 and 1; ``is_de_fdr``; ``scale1``, ``scale2`` (mean normalised
        expression); ``raw_mean1``, ``raw_mean2`` (mean counts) and ``nonzero1``,
        ``nonzero2`` (share of cells with a count). ``attrs`` hold the settings and group sizes.

    Examples
    --------
    >>> de = differential_expression(model, adata, "cell_type", "B", "T")  # doctest: +SKIP
    >>> de[de.is_de_fdr].sort_values("lfc_mean")  # doctest: +SKIP
    """
    delta, fdr = _check_numbers(delta, fdr, n_samples)
    if pseudocount is not None and (not _real(pseudocount) or not 0 <= pseudocount < math.inf):
        raise ValueError(f"pseudocount must be a finite number >= 0; got {pseudocount!r}")
    _check_model(model)
    if not is_anndata(adata):
        raise TypeError(
            f"differential expression needs an AnnData with the groups in obs; got "
            f"{type(adata).__name__}"
        )
    groups = select_groups(adata.obs, groupby, group1, group2)
    y = _conditions(model, adata)
    batch = _batches(model, groupby) if batch_correction else None
    genes = list(model.features_)
    _check_draws(n_samples, len(genes))
    rng = np.random.default_rng(seed)
    h1 = _draw(model, adata, groups.rows1, y, batch, n_samples, rng, seed, layer)
    h2 = _draw(model, adata, groups.rows2, y, batch, n_samples, rng, seed + 1, layer)
    raw1, raw2 = (_raw(adata, rows, genes, layer) for rows in (groups.rows1, groups.rows2))
    eps = pseudocount if pseudocount is not None else _pseudocount(raw1, raw2)
    table = lfc_summary(h1, h2, delta, eps)
    table["is_de_fdr"] = fdr_calls(table["proba_de"].to_numpy(), fdr)
    table["scale1"], table["scale2"] = h1.mean(0, dtype=np.float64), h2.mean(0, dtype=np.float64)
    for name, raw in (("1", raw1), ("2", raw2)):
        table[f"raw_mean{name}"], table[f"nonzero{name}"] = raw["mean"], raw["nonzero"]
    table.index = pd.Index(genes, name="gene")
    table.attrs.update(
        groupby=groupby,
        group1=groups.name1,
        group2=groups.name2,
        n_cells1=len(groups.rows1),
        n_cells2=len(groups.rows2),
        delta=delta,
        fdr=fdr,
        n_samples=n_samples,
        pseudocount=float(eps),
        batch_correction=batch is not None,
    )
    return table[list(COLUMNS)]


# ----------------------------------------------------------------------------- the numbers
def lfc_summary(h1: np.ndarray, h2: np.ndarray, delta: float, eps: float) -> pd.DataFrame:
    """Per gene, the posterior of LFC = log2(h1 + eps) - log2(h2 + eps) over paired draws.

    Parameters
    ----------
    h1, h2 : ndarray, (n_samples, n_genes)
        Draws of normalised expression, paired row by row (each row an independent draw).
    delta : float
        The smallest |LFC| that counts as a change.
    eps : float
        Pseudocount.

    Returns
    -------
    DataFrame with ``lfc_mean``, ``lfc_median``, ``lfc_std``, ``proba_de``, ``bayes_factor``
    (computed in float64, in chunks of genes to bound memory).
    """
    parts = []
    for start in range(0, h1.shape[1], GENE_CHUNK):
        cols = slice(start, start + GENE_CHUNK)
        a = np.log2(h1[:, cols].astype(np.float64) + eps)
        lfc = a - np.log2(h2[:, cols].astype(np.float64) + eps)  # (n_samples, chunk)
        parts.append(
            pd.DataFrame(
                {
                    "lfc_mean": lfc.mean(0),
                    "lfc_median": np.median(lfc, 0),
                    "lfc_std": lfc.std(0, ddof=1) if len(lfc) > 1 else np.zeros(lfc.shape[1]),
                    "proba_de": (np.abs(lfc) > delta).mean(0),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table["bayes_factor"] = bayes_factor(table["proba_de"].to_numpy(), len(h1))
    return table


def bayes_factor(proba: np.ndarray, n_draws: int) -> np.ndarray:
    """log(p / (1 - p)), with p kept half a draw away from 0 and 1: an estimate from
    ``n_draws`` draws cannot tell probabilities closer to 0 or 1 apart, and the log stays
    finite."""
    half = 0.5 / n_draws
    p = np.clip(np.asarray(proba, dtype=np.float64), half, 1 - half)
    return np.log(p) - np.log1p(-p)


def fdr_calls(proba_de: np.ndarray, fdr: float) -> np.ndarray:
    """The largest set of genes, most probable first, whose posterior expected false discovery
    rate (the mean of 1 - proba_de over the set) is at most ``fdr`` (as scvi-tools'
    ``_fdr_de_prediction``; Boyeau et al. 2023).

    Examples
    --------
    >>> fdr_calls(np.array([0.99, 0.5, 0.97]), 0.05).tolist()
    [True, False, True]
    """
    p = np.asarray(proba_de, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    expected = np.cumsum(1 - p[order]) / np.arange(1, len(p) + 1)  # non-decreasing
    n_called = int(np.sum(expected <= fdr + 1e-12))  # float sums of 1 - p = fdr exactly
    calls = np.zeros(len(p), dtype=bool)
    calls[order[:n_called]] = True
    return calls


# ----------------------------------------------------------------------------- draws
def _draw(
    model: Any,
    adata: Any,
    rows: np.ndarray,
    y: list[str] | None,
    batch: dict | None,
    n_samples: int,
    rng: np.random.Generator,
    seed: int,
    layer: str | None,
) -> np.ndarray:
    """(n_samples, n_genes) normalised expression: cells of ``rows`` drawn (all of them, in
    equal shares, when there are fewer cells than draws), one posterior draw each."""
    cells = rng.choice(rows, size=min(len(rows), n_samples), replace=False)
    per_cell = math.ceil(n_samples / len(cells))
    h = model.normalized_expression(
        adata[np.sort(cells)],
        y,
        batch=batch,
        library_size=1,
        n_draws=per_cell,
        mean=False,
        seed=seed,
        layer=layer,
    )  # (per_cell, n_cells, n_genes)
    h = np.asarray(h).reshape(-1, np.shape(h)[-1])
    return h[rng.choice(len(h), size=n_samples, replace=False)]


def _raw(adata: Any, rows: np.ndarray, genes: list[str], layer: str | None) -> dict:
    """Mean count and share of cells with a count, per gene of the model (NaN for a gene that
    the data does not name)."""
    X = adata.X if layer is None else adata.layers[layer]
    where = adata.var_names.get_indexer(genes)
    found = where >= 0
    mean = np.full(len(genes), np.nan)
    nonzero = np.full(len(genes), np.nan)
    part = X[rows][:, where[found]]
    mean[found] = np.asarray(part.mean(0, dtype=np.float64)).ravel()
    nonzero[found] = np.asarray((part != 0).mean(0), dtype=np.float64).ravel()
    total = float(np.asarray(part.sum(dtype=np.float64)))
    return {"mean": mean, "nonzero": nonzero, "total": total}


def _pseudocount(raw1: dict, raw2: dict) -> float:
    """One count among all the cells of the group with fewer counts, as a proportion."""
    total = min(raw1["total"], raw2["total"])
    return 1.0 / total if math.isfinite(total) and total > 1 else 1e-8


# ----------------------------------------------------------------------------- tables
def check_de_table(table: pd.DataFrame, source: str = "the DE table") -> pd.DataFrame:
    """``table`` if it has the columns a volcano plot needs, with numbers in them; else a
    ValueError naming what is missing (e.g. a table that ``vaekit de`` did not write)."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{source} must be a pandas DataFrame; got {type(table).__name__}")
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source} has no column(s) {missing}; give a table written by `vaekit de` "
            f"(its columns: {[str(c) for c in table.columns][:12]})"
        )
    for column in NEEDED:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(f"{source}: column {column!r} must hold numbers")
    if len(table) == 0:
        raise ValueError(f"{source} has no genes")
    return table


def read_de_table(path: str | os.PathLike) -> pd.DataFrame:
    """A table written by ``vaekit de`` (.tsv, .csv or .parquet, genes as rows), checked."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            table = pd.read_parquet(path)
        else:
            sep = "," if name.endswith((".csv", ".csv.gz")) else "\t"
            table = pd.read_csv(path, sep=sep, index_col=0)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # noqa: BLE001 - a parser's many errors: one message naming the file
        raise ValueError(
            f"{path}: cannot read it as a DE table ({type(err).__name__}: {err})"
        ) from None
    return check_de_table(table, str(path))


# ----------------------------------------------------------------------------- checks
def select_groups(obs: pd.DataFrame, groupby: str, group1: Any, group2: Any = None) -> Groups:
    """The row numbers of ``group1`` and ``group2`` (None: all other cells with a value) in
    ``obs[groupby]``, values compared as text; a ValueError naming what is wrong."""
    if not isinstance(groupby, str) or groupby not in obs.columns:
        raise ValueError(
            f"no obs column {groupby!r} to group the cells by; the columns: "
            f"{[str(c) for c in obs.columns][:20]} (give one with --groupby, or add it with "
            "--annotations)"
        )
    values = obs[groupby]
    text = values.astype(str).where(values.notna(), MISSING_GROUP).to_numpy()
    known = sorted(set(text) - {MISSING_GROUP})
    name1 = str(group1)
    rows1 = _group_rows(text, name1, groupby, known)
    if group2 is None:
        rows2 = np.flatnonzero((text != name1) & (text != MISSING_GROUP))
        name2 = "rest"
        if len(rows2) == 0:
            raise ValueError(
                f"every cell with a {groupby!r} value is in {name1!r}: no other cells to compare "
                "it with"
            )
    else:
        name2 = str(group2)
        if name2 == name1:
            raise ValueError(f"group1 and group2 are both {name1!r}; give two different groups")
        rows2 = _group_rows(text, name2, groupby, known)
    return Groups(rows1, rows2, name1, name2)


def _group_rows(text: np.ndarray, name: str, groupby: str, known: list[str]) -> np.ndarray:
    rows = np.flatnonzero(text == name)
    if len(rows) == 0:
        shown = ", ".join(repr(v) for v in known[:20]) + (", ..." if len(known) > 20 else "")
        raise ValueError(f"no cells have {groupby!r} = {name!r}; its values: {shown}")
    return rows


def _check_numbers(delta: Any, fdr: Any, n_samples: Any) -> tuple[float, float]:
    if not _real(delta) or not 0 <= delta < math.inf:
        raise ValueError(f"delta must be a finite number >= 0 (log2 fold change); got {delta!r}")
    if not _real(fdr) or not 0 < fdr < 1:
        raise ValueError(f"fdr must be a number between 0 and 1 (e.g. 0.05); got {fdr!r}")
    check_count("n_samples", n_samples, low=2, high=MAX_DRAWS)
    return float(delta), float(fdr)


def _check_draws(n_samples: int, n_genes: int) -> None:
    """Each group's draws are held at once: n_samples x n_genes values."""
    if n_samples * n_genes > MAX_VALUES:
        raise ValueError(
            f"{n_samples:,} draws x {n_genes:,} genes are too many values to hold "
            f"({n_samples * n_genes:,} > {MAX_VALUES:,}); give at most "
            f"{MAX_VALUES // n_genes:,} draws (n_samples, or --draws), or fewer genes"
        )


def _real(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _check_model(model: Any) -> None:
    """A count model: only its decoder's proportions are a normalised expression."""
    likelihood = model.module_.likelihood if hasattr(model, "module_") else None
    if likelihood is None:
        raise ValueError("the model is not fitted; fit it (or load a trained one) first")
    if not getattr(likelihood, "uses_library", False):
        raise ValueError(
            f"differential expression needs a model of raw counts (likelihood nb, zinb or "
            f"poisson); this one's likelihood is {model.settings_['likelihood']!r}: train one "
            "with --preset single_cell (or --likelihood nb) on counts"
        )


def _conditions(model: Any, adata: Any) -> list[str] | None:
    """The obs columns holding the model's conditions (checked present)."""
    if model.covariates_ is None:
        return None
    names = [c.name for c in model.covariates_.columns]
    missing = [n for n in names if n not in adata.obs.columns]
    if missing:
        raise ValueError(
            f"the model is conditional on obs column(s) {names}, but the data has no "
            f"{missing}; add them (e.g. with --annotations)"
        )
    return names


def _batches(model: Any, groupby: str) -> dict | None:
    """``{batch condition: its categories}`` to average the draws over: the model's one
    categorical condition, unless the groups are that condition (averaging over it would erase
    what is compared)."""
    if model.covariates_ is None:
        return None
    try:
        column = model.covariates_.batch_column()
    except ValueError:  # none categorical, or several: no one batch to average over
        kinds = {c.name: c.kind for c in model.covariates_.columns}
        warnings.warn(
            f"no batch correction: the model's conditions {kinds} hold no single categorical "
            "batch to average over; each cell keeps its own conditions",
            stacklevel=3,
        )
        return None
    if column.name == groupby:
        warnings.warn(
            f"the groups are the model's batch condition {groupby!r}: each cell keeps its own "
            "batch, without batch correction",
            stacklevel=3,
        )
        return None
    return {column.name: list(column.categories)}
