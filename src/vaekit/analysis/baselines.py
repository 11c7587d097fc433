"""The figure a simple method gets beside vaekit's, on the same held-out samples.

A VAE with a linear Gaussian decoder contains probabilistic PCA, so PCA with as many components
as the model has latent features is the first thing a VAE must beat; IsolationForest and
KNNImputer are what an analyst tries first for anomalies and missing values. Each function here
returns a small table, one row per comparison:

``task, what, metric, vaekit, baseline, baseline_value, higher_is_better, better``

with ``.attrs["evaluated_on"]`` (the rows, and how the baseline was fitted without seeing
them) and ``.attrs["skipped"]`` (name -> reason). :func:`flags` words every row that the
baseline wins ("PCA beats the VAE on held-out reconstruction: 0.41 vs 0.52; ...").

The baselines read the values the model's decoder models (after its preprocessing), except for
count likelihoods, where both sides are compared on log1p of counts per 10,000 (a linear method
on raw counts is not what anyone would try).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.impute import KNNImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from vaekit.analysis._limits import check_count
from vaekit.analysis.imputation import _input_names, _prepare, dense_copy, impute, like
from vaekit.validation import is_anndata, resolve_y, take_rows

if TYPE_CHECKING:
    from vaekit.estimator import BaseVAE

MAX_ROWS = 2000  # rows a baseline fits and scores at most: a seeded random subset beyond
FOLDS = 5  # cross-fitting and cross-validation folds
NEIGHBOURS = 15  # of the kNN classifier that judges how well a space separates annotations
COUNTS_SCALE = 1e4  # counts per 10,000, as single-cell analyses normalise them
MAX_CLASSES = 50  # an annotation with more levels is read as an ID, not as classes
COLUMNS = [
    "task",
    "what",
    "metric",
    "vaekit",
    "baseline",
    "baseline_value",
    "higher_is_better",
    "better",
]


class BaselineSkipped(ValueError):
    """A baseline that cannot be computed on these data; the message says why and what to do."""


@dataclass(frozen=True)
class Task:
    """How a comparison is worded: what was compared, and what a baseline's win means."""

    wording: str  # after "PCA beats the VAE ..."
    meaning: str  # after the figures


# One row per kind of comparison: a new baseline is a function and a line here.
TASKS: dict[str, Task] = {
    "reconstruction": Task("on held-out reconstruction", "a linear model fits these data as well"),
    "separation": Task(
        "at separating {what}",
        "the latent space keeps less of this annotation than the first principal components",
    ),
    "anomaly": Task(
        "at ranking the anomalies", "the VAE score misses anomalies a simple method finds"
    ),
    "imputation": Task(
        "at imputing hidden entries", "the neighbours of a sample predict it better than the VAE"
    ),
}


# ---------------------------------------------------------------------------- the table
def _row(
    task: str, what: str, metric: str, ours: float, name: str, theirs: float, higher: bool
) -> dict[str, Any]:
    if ours == theirs:
        better = "tie"
    else:
        better = "vaekit" if (ours > theirs) == higher else name
    return dict(
        task=task,
        what=what,
        metric=metric,
        vaekit=float(ours),
        baseline=name,
        baseline_value=float(theirs),
        higher_is_better=higher,
        better=better,
    )


def _table(
    rows: list[dict], evaluated_on: str, skipped: dict[str, str] | None = None
) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["evaluated_on"] = evaluated_on
    table.attrs["skipped"] = dict(skipped or {})
    return table


def _short(name: str) -> str:
    """``PCA (8 components)`` -> ``PCA``: the method's name in a sentence."""
    return name.split(" (")[0]


def flags(table: pd.DataFrame) -> list[str]:
    """One plain sentence per comparison that the baseline wins.

    Examples
    --------
    >>> flags(reconstruction_baseline(model, X))  # doctest: +SKIP
    ['PCA beats the VAE on held-out reconstruction: 0.41 vs 0.52; a linear model fits these
    data as well']
    """
    out = []
    for row in table.itertuples():
        if row.better not in ("vaekit", "tie"):
            task = TASKS[row.task]
            out.append(
                f"{_short(row.baseline)} beats the VAE {task.wording.format(what=row.what)} "
                f"({row.metric}): {row.baseline_value:.4g} vs {row.vaekit:.4g}; {task.meaning}"
            )
    return out


def verdict(row: Any) -> str:
    """Which is better, in words: "PCA beats the VAE; a linear model fits these data as well",
    "the VAE is better" or "a tie"; ``row`` is one row of a baseline table."""
    if row.better == "tie":
        return "a tie"
    if row.better == "vaekit":
        return "the VAE is better"
    return f"{_short(row.baseline)} beats the VAE; {TASKS[row.task].meaning}"


def lines(table: pd.DataFrame) -> list[str]:
    """The table in words: where it was computed, a line per comparison, then the flags and
    what was skipped, for a command to print."""
    out = [f"baselines on {table.attrs.get('evaluated_on', 'the same samples')}:"]
    for row in table.itertuples():
        direction = "higher" if row.higher_is_better else "lower"
        winner = "VAE" if row.better == "vaekit" else _short(row.baseline)
        out.append(
            f"  {row.what}, {row.metric} ({direction} is better): VAE {row.vaekit:.4g}, "
            f"{row.baseline} {row.baseline_value:.4g} -> {'tie' if row.better == 'tie' else winner}"
        )
    out += [f"  baseline wins: {text}" for text in flags(table)]
    out += [
        f"  {name}: no baseline ({why})" for name, why in table.attrs.get("skipped", {}).items()
    ]
    return out


def to_json(table: pd.DataFrame) -> dict[str, Any]:
    """The table as JSON-ready values: ``evaluated_on``, ``comparisons``, ``flags``,
    ``skipped``."""
    return {
        "evaluated_on": table.attrs.get("evaluated_on"),
        "comparisons": [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in table.to_dict("records")
        ],
        "flags": flags(table),
        "skipped": dict(table.attrs.get("skipped", {})),
    }


# ---------------------------------------------------------------------------- rows and spaces
def _n_rows(X: Any) -> int:
    return int(X.n_obs) if is_anndata(X) else int(X.shape[0])


def _subsample(n: int, most: int, seed: int) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))


def _is_counts(model: BaseVAE) -> bool:
    return bool(model.module_.likelihood.uses_library)


def _per_10k(values: np.ndarray) -> np.ndarray:
    total = values.sum(1, keepdims=True)
    return np.log1p(values / np.where(total > 0, total, 1.0) * COUNTS_SCALE)


def metric_name(model: BaseVAE) -> str:
    """The space and metric of the reconstruction comparison for ``model``."""
    if _is_counts(model):
        return "MSE on log1p counts per 10,000"
    return "MSE on the model's input scale"


def model_space(model: BaseVAE, X: Any, y: Any = None, *, layer: str | None = None) -> np.ndarray:
    """(n, n_modelled) float64: X as the baselines read it, the values the decoder models
    (log1p counts per 10,000 for a count likelihood). Raises :class:`BaselineSkipped` for
    missing entries, which PCA cannot read."""
    table = model.prepare(X, y, layer=layer, allow_nan=True, encoder_only=True).table
    values = table.X.toarray() if sp.issparse(table.X) else np.asarray(table.X)
    values = values.astype(np.float64)
    if np.isnan(values).any():
        raise BaselineSkipped(
            f"the data hold {int(np.isnan(values).sum())} missing entries and PCA needs complete "
            "rows; impute them first (vaekit impute) to compare with PCA"
        )
    return _per_10k(values) if _is_counts(model) else values


def _reconstruction_space(model: BaseVAE, X: Any, y: Any, layer: str | None) -> np.ndarray:
    rec = model.reconstruct(X, y, layer=layer)
    rec = np.asarray(rec.to_numpy() if hasattr(rec, "to_numpy") else rec, dtype=np.float64)
    return _per_10k(rec) if _is_counts(model) else rec


# ---------------------------------------------------------------------------- PCA
def _components(k: int, n_fit: int, n_features: int) -> int:
    return max(1, min(k, n_features, n_fit - 1))


def pca_errors(train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """(n_test,) mean squared error per row of ``test`` reconstructed by PCA with ``k``
    components fitted on ``train`` (centred on train's means)."""
    pca = PCA(_components(k, len(train), train.shape[1]), random_state=0).fit(train)
    rec = pca.inverse_transform(pca.transform(test))
    return ((test - rec) ** 2).mean(1)


def min_rows(k: int, folds: int = FOLDS) -> int:
    """Rows that ``folds``-fold cross-fitting of PCA with ``k`` components needs: every fit
    keeps at least k + 1 rows."""
    n = max(folds, k + 1)
    while n - -(-n // folds) < k + 1:
        n += 1
    return n


def cross_fitted_errors(
    values: np.ndarray,
    k: int,
    folds: int = FOLDS,
    seed: int = 0,
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray] = pca_errors,
) -> np.ndarray:
    """(n,) ``fn(train, test, k)`` per row, each row scored by a fit on the other folds."""
    check_count("folds", folds, low=2)
    if len(values) < min_rows(k, folds):
        raise BaselineSkipped(
            f"{len(values)} samples are too few for {folds}-fold cross-fitting of PCA with {k} "
            f"components; give at least {min_rows(k, folds)} samples"
        )
    out = np.empty(len(values))
    for fit, score in KFold(folds, shuffle=True, random_state=seed).split(values):
        out[score] = fn(values[fit], values[score], k)
    return out


def reconstruction_baseline(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    *,
    train: Any = None,
    train_y: Any = None,
    layer: str | None = None,
    folds: int = FOLDS,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out reconstruction error of the VAE (``model.reconstruct``, the decoder's mean at
    the posterior mean) beside PCA's with as many components as the model's latent size, on
    the same rows of X, in the space :func:`metric_name` names.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData
        The held-out samples, scored by both.
    y : optional
        Conditions of X, for a conditional model.
    train : array-like or AnnData, optional
        Samples to fit PCA on (the model's training samples); without them PCA is
        cross-fitted on X: each row is scored by a PCA fitted on the other ``folds`` folds.
    train_y : optional
        Conditions of ``train``.
    max_rows : int
        Rows at most of X and of ``train`` (seeded random subsets beyond, said in the table's
        ``evaluated_on``).

    Examples
    --------
    >>> table = reconstruction_baseline(model, X_test, train=X_train)  # doctest: +SKIP
    >>> flags(table)  # doctest: +SKIP
    """
    check_count("max_rows", max_rows)
    rows = _subsample(_n_rows(X), max_rows, seed)
    Xe, ye = take_rows(X, rows), take_rows(resolve_y(X, y), rows)
    values = model_space(model, Xe, ye, layer=layer)
    k = model.module_.config.n_latent
    ours = float(((values - _reconstruction_space(model, Xe, ye, layer)) ** 2).mean())
    where = _rows_text(len(rows), _n_rows(X))
    if train is None:
        theirs = cross_fitted_errors(values, k, folds, seed).mean()
        where += f"; PCA {folds}-fold cross-fitted on them (each scored by a fit without it)"
    else:
        fit_rows = _subsample(_n_rows(train), max_rows, seed)
        train_y = take_rows(resolve_y(train, train_y), fit_rows)
        fitted = model_space(model, take_rows(train, fit_rows), train_y, layer=layer)
        theirs = pca_errors(fitted, values, k).mean()
        where += f"; PCA fitted on {_rows_text(len(fit_rows), _n_rows(train))} of the training data"
    name = _pca_name(_components(k, len(values), values.shape[1]))
    row = _row(
        "reconstruction",
        "held-out reconstruction",
        metric_name(model),
        ours,
        name,
        float(theirs),
        higher=False,
    )
    return _table([row], where)


def _pca_name(k: int) -> str:
    return f"PCA ({k} component{'s' if k != 1 else ''})"


def _rows_text(n: int, of: int) -> str:
    return f"{n:,} samples" if n == of else f"a random {n:,} of {of:,} samples"


# ---------------------------------------------------------------------------- annotations
def _classes(values: pd.Series) -> tuple[pd.Series | None, str]:
    """The annotation as class labels (missing values and one-member classes dropped), or
    None with the reason it is not a set of classes."""
    values = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    levels = values.astype(str)
    counts = levels.value_counts()
    if numeric and len(counts) > 2:
        return None, "numeric: not classes to separate"
    if len(counts) > MAX_CLASSES or len(counts) >= max(len(levels), 2) * 0.5 and len(counts) > 2:
        return None, f"{len(counts)} distinct values: an ID, not classes"
    levels = levels[levels.map(counts) >= 2]
    if levels.nunique() < 2:
        return None, "one class (with two or more samples): nothing to separate"
    return levels, ""


def _knn_figure(
    space: np.ndarray, labels: np.ndarray, folds: int, seed: int
) -> tuple[float, str, bool]:
    """(figure, metric, higher is better): cross-validated kNN AUROC for two classes, else
    accuracy."""
    n_splits = min(folds, int(pd.Series(labels).value_counts().min()))
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    fitted = len(labels) - -(-len(labels) // n_splits)  # rows of the smallest training fold
    knn = KNeighborsClassifier(min(NEIGHBOURS, fitted))
    classes = np.unique(labels)
    if len(classes) == 2:
        proba = cross_val_predict(knn, space, labels, cv=cv, method="predict_proba")[:, 1]
        auroc = roc_auc_score(labels == classes[1], proba)
        return auroc, f"{n_splits}-fold kNN AUROC", True
    predicted = cross_val_predict(knn, space, labels, cv=cv)
    return float((predicted == labels).mean()), f"{n_splits}-fold kNN accuracy", True


def separation_baseline(
    model: BaseVAE,
    X: Any,
    annotations: pd.DataFrame | pd.Series,
    y: Any = None,
    *,
    layer: str | None = None,
    folds: int = FOLDS,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """How well known annotations are separated in the VAE's latent space (posterior means)
    and in PCA's of the same size (fitted on the same rows, without the annotations): the
    cross-validated accuracy of a kNN classifier, or its AUROC for two classes.

    Parameters
    ----------
    annotations : DataFrame or Series
        One row per sample of X. Numeric columns with more than two values, IDs and columns
        with one class are skipped (reasons in ``.attrs["skipped"]``); when nothing is left,
        :class:`BaselineSkipped` says why.

    Examples
    --------
    >>> separation_baseline(model, adata, adata.obs[["cell_type"]])  # doctest: +SKIP
    """
    frame = annotations.to_frame() if isinstance(annotations, pd.Series) else annotations
    if len(frame) != _n_rows(X):
        raise ValueError(
            f"annotations have {len(frame)} rows but the data has {_n_rows(X)}; give one row per "
            "sample, in the same order"
        )
    rows = _subsample(_n_rows(X), max_rows, seed)
    Xe, ye = take_rows(X, rows), take_rows(resolve_y(X, y), rows)
    frame = frame.iloc[rows].reset_index(drop=True)
    latent = np.asarray(model.transform(Xe, ye, layer=layer), dtype=np.float64)
    values = model_space(model, Xe, ye, layer=layer)
    k = latent.shape[1]
    pca = PCA(_components(k, len(values), values.shape[1]), random_state=0).fit_transform(values)
    out, skipped = [], {}
    for name in frame.columns:
        labels, why = _classes(frame[name])
        if labels is None:
            skipped[str(name)] = why
            continue
        keep = labels.index.to_numpy()
        ours, metric, higher = _knn_figure(latent[keep], labels.to_numpy(), folds, seed)
        theirs, _, _ = _knn_figure(pca[keep], labels.to_numpy(), folds, seed)
        out.append(
            _row(
                "separation",
                str(name),
                metric,
                ours,
                _pca_name(pca.shape[1]),
                theirs,
                higher,
            )
        )
    if not out:
        raise BaselineSkipped(
            "no annotation to separate: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    where = f"{_rows_text(len(rows), _n_rows(X))}; PCA fitted on them, without the annotations"
    return _table(out, where, skipped)


# ---------------------------------------------------------------------------- anomalies
def _forest_scores(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    forest = IsolationForest(random_state=seed).fit(train)
    return -forest.score_samples(test)  # higher = more anomalous


BASELINE_SCORES: dict[str, Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]] = {
    "PCA reconstruction error": lambda fit, test, k, seed: pca_errors(fit, test, k),
    "IsolationForest": lambda fit, test, k, seed: _forest_scores(fit, test, seed),
}


def _cross_scored(
    values: np.ndarray, normal: np.ndarray, k: int, folds: int, seed: int, fn: Callable
) -> np.ndarray:
    """(n,) scores: each normal row by a fit on the other folds of the normal rows, each
    anomaly by the mean of the folds' fits."""
    rows = np.flatnonzero(normal)
    odd = np.flatnonzero(~normal)
    out = np.zeros(len(values))
    for fit, score in KFold(folds, shuffle=True, random_state=seed).split(rows):
        fitted = values[rows[fit]]
        out[rows[score]] = fn(fitted, values[rows[score]], k, seed)
        out[odd] += fn(fitted, values[odd], k, seed) / folds
    return out


def anomaly_baseline(
    model: BaseVAE,
    X: Any,
    scores: Sequence[float],
    is_anomaly: Sequence[bool] | None = None,
    *,
    y: Any = None,
    control: Any = None,
    control_scores: Sequence[float] | None = None,
    control_y: Any = None,
    layer: str | None = None,
    folds: int = FOLDS,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """The AUROC of the VAE's anomaly ``scores`` beside PCA reconstruction error's and
    IsolationForest's, on the same labelled samples. The baselines are fitted on the normal
    samples only, cross-fitted: a normal sample is scored by fits on the other folds.

    Parameters
    ----------
    X : array-like or AnnData
        The scored samples.
    scores : (n,) floats
        The VAE's scores of X, higher = more anomalous.
    is_anomaly : (n,) bools, optional
        Which samples of X are known anomalies; without it, every sample of X is taken as an
        anomaly against the ``control`` samples.
    control, control_scores, control_y : optional
        Normal samples, their VAE scores and conditions, added as normal samples.

    Examples
    --------
    >>> s = anomaly_score(model, X, method="mean_deviance")  # doctest: +SKIP
    >>> anomaly_baseline(model, X, s, is_anomaly=labels)  # doctest: +SKIP
    """
    scores = np.asarray(scores, dtype=np.float64)
    if is_anomaly is None and control is None:
        raise ValueError("give the known anomalies (is_anomaly) or normal samples (control)")
    if (control is None) != (control_scores is None):
        raise ValueError("give the control samples and their scores together")
    labels = np.ones(len(scores), bool) if is_anomaly is None else np.asarray(is_anomaly, bool)
    if labels.shape != scores.shape or len(scores) != _n_rows(X):
        raise ValueError(
            f"X has {_n_rows(X)} samples, scores {len(scores)} and labels {len(labels)}; give "
            "one of each per sample"
        )
    values, labels, scores = _labelled(model, X, y, labels, scores, layer, max_rows, seed)
    if control is not None:
        extra = _labelled(
            model,
            control,
            control_y,
            np.zeros(_n_rows(control), bool),
            np.asarray(control_scores, np.float64),
            layer,
            max_rows,
            seed,
        )
        values, labels, scores = (
            np.concatenate([a, b]) for a, b in zip((values, labels, scores), extra, strict=True)
        )
    n_normal, n_odd = int((~labels).sum()), int(labels.sum())
    k = model.module_.config.n_latent
    if n_odd == 0 or n_normal < min_rows(k, folds):
        raise BaselineSkipped(
            f"{n_normal} normal samples and {n_odd} anomalies: the AUROC needs one anomaly and "
            f"cross-fitting at least {min_rows(k, folds)} normal samples"
        )
    ours = roc_auc_score(labels, scores)
    out = [
        _row(
            "anomaly",
            "anomalies",
            "AUROC",
            ours,
            name,
            roc_auc_score(labels, _cross_scored(values, ~labels, k, folds, seed, fn)),
            True,
        )
        for name, fn in BASELINE_SCORES.items()
    ]
    source = "" if is_anomaly is None else "labelled "
    where = (
        f"{n_odd:,} {source}anomalies and {n_normal:,} normal samples"
        + (" (the scored samples against the controls)" if is_anomaly is None else "")
        + f"; baselines {folds}-fold cross-fitted on the normal samples ({_pca_name(k)})"
    )
    return _table(out, where)


def _labelled(
    model: BaseVAE,
    X: Any,
    y: Any,
    labels: np.ndarray,
    scores: np.ndarray,
    layer: str | None,
    max_rows: int,
    seed: int,
) -> tuple[np.ndarray, ...]:
    rows = _subsample(_n_rows(X), max_rows, seed)
    values = model_space(model, take_rows(X, rows), take_rows(resolve_y(X, y), rows), layer=layer)
    return values, labels[rows], scores[rows]


# ---------------------------------------------------------------------------- imputation
def imputation_baseline(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    *,
    share: float = 0.1,
    layer: str | None = None,
    max_rows: int = 200,
    neighbours: int = 5,
    seed: int = 0,
    **options: Any,
) -> pd.DataFrame:
    """RMSE on observed entries hidden at random, imputed by vaekit (:func:`impute` with
    ``options``) and by KNNImputer (``neighbours`` neighbours, fitted on the same incomplete
    rows), in X's own units.

    Parameters
    ----------
    share : float
        The share of the observed entries of the modelled features to hide, in (0, 1).
    max_rows : int
        Rows at most (a seeded random subset beyond): vaekit's imputation is the costly side.

    Examples
    --------
    >>> imputation_baseline(model, X_with_nan, share=0.2, refine_steps=0)  # doctest: +SKIP
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), e.g. 0.1; got {share!r}")
    rows = _subsample(_n_rows(X), max_rows, seed)
    Xe, ye = take_rows(X, rows), take_rows(resolve_y(X, y), rows)
    values = dense_copy(Xe, layer)
    hidden = _hide(values, _modelled_columns(model, Xe, ye, layer), share, seed)
    masked = np.where(hidden, np.nan, values)
    ours = dense_copy(
        impute(model, like(Xe, masked, layer), ye, layer=layer, seed=seed, **options), layer
    )
    theirs = KNNImputer(
        n_neighbors=min(neighbours, len(rows) - 1), keep_empty_features=True
    ).fit_transform(masked)
    truth = values[hidden]
    row = _row(
        "imputation",
        "hidden entries",
        "RMSE in the data's units",
        _rmse(ours[hidden], truth),
        f"KNNImputer ({neighbours} neighbours)",
        _rmse(theirs[hidden], truth),
        higher=False,
    )
    where = (
        f"{int(hidden.sum()):,} observed entries ({share:.0%}) hidden at random in "
        f"{_rows_text(len(rows), _n_rows(X))}"
    )
    return _table([row], where)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _modelled_columns(model: BaseVAE, X: Any, y: Any, layer: str | None) -> np.ndarray:
    """(n_columns,) bool: X's columns that the model models (only those can be imputed)."""
    values, positions, _ = _prepare(model, X, y, layer)
    modelled = set(model.features_)
    columns = np.zeros(values.shape[1], bool)
    for position, name in zip(positions, _input_names(model), strict=True):
        columns[position] = name in modelled
    return columns


def _hide(values: np.ndarray, columns: np.ndarray, share: float, seed: int) -> np.ndarray:
    """(n, d) bool: a random ``share`` of the observed entries of ``columns``, at least one."""
    observed = ~np.isnan(values) & columns[None, :]
    if len(values) < 2 or observed.sum() < 2:
        raise BaselineSkipped(
            f"{len(values)} samples with {int(observed.sum())} observed entries are too few "
            "to hide some and impute them; give at least 2 samples"
        )
    rng = np.random.default_rng(seed)
    where = np.flatnonzero(observed)
    picked = rng.choice(where, max(1, round(share * len(where))), replace=False)
    hidden = np.zeros(values.size, bool)
    hidden[picked] = True
    return hidden.reshape(values.shape)
