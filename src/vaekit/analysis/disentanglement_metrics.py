"""Disentanglement metrics of latent codes against known generative factors: MIG, DCI, SAP,
the FactorVAE score and the beta-VAE score, with disentanglement_lib's estimators
(Locatello et al. 2019, github.com/google-research/disentanglement_lib).

The FactorVAE and beta-VAE scores are defined by interventions: draw samples that share one
factor's value while the others vary at random. With observational ``(Z, factors)`` only, a
group is built by drawing rows (with replacement) among those that share the fixed factor's
value. On a full factorial design (the dSprites grid) those rows are a uniform draw of the
other factors, so this is exactly the paper's procedure; on other designs the other factors
follow their distribution given the fixed one.

(The module is not named ``disentanglement``: importing a submodule sets the package's
attribute of that name, which would hide the lazily exported function.)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from vaekit.analysis._factors import Factors, check_codes, check_factors, histogram_bins

# (training, test) samples per metric: disentanglement_lib's defaults (MIG 10000; SAP 10000 /
# 5000; FactorVAE and beta-VAE 10000 / 5000 votes or points of BATCH pairs), except DCI, whose
# tree ensembles are the cost: 2000 / 1000 keeps a 20000-row call at seconds on one core.
SIZES = {
    "mig": (10_000, 0),
    "dci": (2_000, 1_000),
    "sap": (10_000, 5_000),
    "factorvae": (10_000, 5_000),
    "betavae": (10_000, 5_000),
}
BATCH = 64  # samples per group (FactorVAE) and pairs per point (beta-VAE), as in both papers
VARIANCE_SAMPLES = 10_000  # rows for the FactorVAE score's global variances
# DCI's random forests (Eastwood & Williams 2018 used lasso and random forests): all features
# tried at each split, so that a code equal to a factor takes all of its importance; leaves of
# at least MIN_LEAF rows, which on codes unrelated to a factor stops the trees fitting noise
# (and cuts their cost threefold)
TREES = 20
MIN_LEAF = 10


def disentanglement(
    Z: Any,
    factors: Any,
    *,
    discrete: Any = None,
    seed: int = 0,
    n_samples: int | None = None,
) -> dict[str, Any]:
    """How well latent codes ``Z`` separate known generative factors, by five metrics.

    - ``mig`` (Chen et al. 2018): per factor, the gap between the two latent features with the
      highest mutual information with it, over the factor's entropy; averaged. Latents are
      binned into 20 equal-width bins (continuous factors too), discrete MI in nats.
    - ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (Eastwood &
      Williams 2018): importances of each feature for predicting each factor (a random forest
      of 20 trees per factor, as in the paper; disentanglement_lib uses boosted trees, which
      cost minutes here); 1 - entropy of each feature's importances over factors, weighted by
      its share (disentanglement), of each factor's over features (completeness); and the
      held-out accuracy (discrete) or R^2 clipped at 0 (continuous), averaged.
    - ``sap`` (Kumar et al. 2018): a score per feature and factor - held-out balanced linear
      SVM accuracy (discrete) or squared correlation (continuous) - and the mean over
      factors of the gap between the top two features. A one-vs-rest linear rule on one
      code cannot isolate the middle levels of a factor with more than two, so even codes
      equal to the factors score below 1 there (as in disentanglement_lib).
    - ``factorvae_score`` (Kim & Mnih 2018): groups of 64 samples with one factor fixed; the
      feature of least variance (scaled by its variance over all samples) votes for the
      factor; a majority-vote classifier's held-out accuracy.
    - ``betavae_score`` (Higgins et al. 2017): mean absolute code differences of 64 pairs that
      share one factor; a logistic regression's held-out accuracy at naming the factor.

    The last two are intervention metrics, here with groups drawn from rows that share the
    fixed factor's value (exact on a full factorial design such as dSprites; see the module
    docstring). Continuous factors are binned (20 bins) to form groups.

    Parameters
    ----------
    Z : array, (n_samples, n_latent)
        Latent codes, e.g. ``model.transform(X)``; at least 2 features.
    factors : DataFrame or array, (n_samples, n_factors)
        Known generative factors, numeric, same rows as ``Z``; column names name them.
    discrete : sequence of bool, optional
        Per factor, whether it is discrete. Default: at most 20 distinct values, or
        integer-valued with at most 64.
    seed : int
        Seed of every random draw: results are deterministic given it.
    n_samples : int, optional
        Training samples (points, votes) of each metric, with half as many held out. Default
        (and cap, so that 20000 rows take seconds): MIG 10000; DCI 2000 + 1000; SAP 10000 + 5000;
        FactorVAE and beta-VAE 10000 + 5000 (each of 64 samples). Rows are drawn without
        replacement where there are enough.

    Returns
    -------
    dict
        The seven scores (floats in [0, 1]), and ``detail``: ``factors`` (per factor: name,
        ``kind`` discrete or continuous, ``bins``, ``feature`` (0-based) with the highest
        mutual information, its normalised ``mutual_information`` and the MIG ``gap``),
        ``mutual_information`` (n_factors x n_latent, normalised by the factor's entropy),
        ``importance`` (n_factors x n_latent, DCI), ``sap_scores`` (n_factors x n_latent),
        ``seed`` and ``samples`` (training, test) per metric.

    Examples
    --------
    >>> scores = disentanglement(model.transform(X), factors)  # doctest: +SKIP
    >>> scores["mig"], scores["detail"]["factors"][0]["feature"]  # doctest: +SKIP
    """
    z = check_codes(Z)
    f = check_factors(factors, len(z), discrete)
    sizes = _sizes(n_samples, len(z))
    # one independent stream per metric: each result depends on the seed alone
    streams = np.random.SeedSequence(seed).spawn(len(SIZES))
    rngs = {name: np.random.default_rng(s) for name, s in zip(SIZES, streams, strict=True)}
    mi, gaps, mig = _mig(z, f, rngs["mig"], sizes["mig"][0])
    importance, informativeness = _dci(z, f, rngs["dci"], sizes["dci"])
    d, c = dci_scores(importance)
    sap_matrix = _sap_matrix(z, f, rngs["sap"], sizes["sap"])
    per_factor = [
        {
            "name": name,
            "kind": "discrete" if f.discrete[j] else "continuous",
            "bins": f.bins[j],
            "feature": int(np.argmax(mi[j])),
            "mutual_information": float(mi[j].max()),
            "gap": float(gaps[j]),
        }
        for j, name in enumerate(f.names)
    ]
    return {
        "mig": mig,
        "dci_disentanglement": d,
        "dci_completeness": c,
        "dci_informativeness": informativeness,
        "sap": gap_score(sap_matrix),
        "factorvae_score": _factorvae(z, f, rngs["factorvae"], sizes["factorvae"]),
        "betavae_score": _betavae(z, f, rngs["betavae"], sizes["betavae"]),
        "detail": {
            "factors": per_factor,
            "mutual_information": mi,
            "importance": importance,
            "sap_scores": sap_matrix,
            "seed": seed,
            "samples": sizes,
        },
    }


def _sizes(n_samples: int | None, n: int) -> dict[str, tuple[int, int]]:
    """(training, test) sizes per metric: the defaults, or ``n_samples`` and half of it."""
    if n_samples is not None and (
        not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 2
    ):
        raise ValueError(f"n_samples must be an integer >= 2; got {n_samples!r}")
    out = {}
    for name, (train, test) in SIZES.items():
        if n_samples is not None:
            train, test = min(train, int(n_samples)), min(test, int(n_samples) // 2) if test else 0
        if name in ("mig", "dci", "sap") and train + test > n:  # rows: split what there is
            train, test = (n, 0) if not test else (n - n // 3, n // 3)
        out[name] = (train, test)
    return out


def _split(rng: np.random.Generator, n: int, train: int, test: int) -> tuple[np.ndarray, ...]:
    rows = rng.permutation(n)
    return rows[:train], rows[train : train + test]


# --- MIG (Chen et al. 2018) -------------------------------------------------------------------


def mutual_information(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Discrete mutual information (nats) of each factor (columns of ``labels``) with each
    discretised feature (columns of ``codes``): (n_factors, n_latent)."""
    return np.array(
        [[mutual_info_score(y, c) for c in codes.T] for y in labels.T], dtype=np.float64
    )


def mig_score(mi: np.ndarray, entropies: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-factor gaps and their mean: (top - second mutual information) / entropy, per row of
    ``mi`` (n_factors, n_latent)."""
    top = np.sort(mi, axis=1)[:, ::-1]
    gaps = (top[:, 0] - top[:, 1]) / entropies
    return gaps, float(gaps.mean())


def _mig(
    z: np.ndarray, f: Factors, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, float]:
    rows = _split(rng, len(z), n, 0)[0]
    # bins over all rows, as the continuous factors' bins are: identical codes bin identically
    codes = np.column_stack([histogram_bins(z[:, i]) for i in range(z.shape[1])])[rows]
    labels = f.labels[rows]
    entropies = np.array([mutual_info_score(y, y) for y in labels.T])
    if np.any(entropies <= 0):
        name = f.names[int(np.argmin(entropies))]
        raise ValueError(
            f"factor {name!r} takes one value in the {n} rows MIG drew; give more rows"
        )
    mi = mutual_information(codes, labels)
    gaps, mig = mig_score(mi, entropies)
    return mi / entropies[:, None], gaps, mig


# --- DCI (Eastwood & Williams 2018) -----------------------------------------------------------


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness from an importance matrix (n_factors, n_latent)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.sum() == 0:  # nothing predicts anything: disentanglement_lib's uniform importances
        r = np.ones_like(r)
    k, d = r.shape
    per_code = 1.0 - _entropy(r, k, axis=0)  # (d,) over factors
    per_factor = 1.0 - _entropy(r, d, axis=1)  # (k,) over codes
    return float(per_code @ (r.sum(0) / r.sum())), float(per_factor @ (r.sum(1) / r.sum()))


def _entropy(r: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy in base ``base`` along ``axis`` (0 for a one-element distribution, whose
    normalisation log(1) would divide by 0); an all-zero column counts as uniform."""
    if base == 1:
        return np.zeros(r.shape[1 - axis])
    with np.errstate(invalid="ignore", divide="ignore"):
        h = entropy(r, base=base, axis=axis)
    return np.nan_to_num(h, nan=1.0)


def _dci(
    z: np.ndarray, f: Factors, rng: np.random.Generator, sizes: tuple[int, int]
) -> tuple[np.ndarray, float]:
    train, test = _split(rng, len(z), *sizes)
    importance, scores = [], []
    for j in range(len(f.names)):
        forest = RandomForestClassifier if f.discrete[j] else RandomForestRegressor
        model = forest(
            n_estimators=TREES,
            max_features=None,
            min_samples_leaf=MIN_LEAF,
            random_state=int(rng.integers(2**31)),
        )
        target = f.labels[:, j] if f.discrete[j] else f.values[:, j]
        model.fit(z[train], target[train])
        importance.append(model.feature_importances_)
        held = test if len(test) else train  # under 3 rows there is none to hold out
        scores.append(max(0.0, model.score(z[held], target[held])))
    return np.array(importance), float(np.mean(scores))


# --- SAP (Kumar et al. 2018) ------------------------------------------------------------------


def gap_score(scores: np.ndarray) -> float:
    """The mean over factors (rows) of the gap between the two highest scores (SAP)."""
    top = np.sort(np.asarray(scores, dtype=np.float64), axis=1)[:, ::-1]
    return float(np.mean(top[:, 0] - top[:, 1]))


def _sap_matrix(
    z: np.ndarray, f: Factors, rng: np.random.Generator, sizes: tuple[int, int]
) -> np.ndarray:
    """(n_factors, n_latent): held-out balanced linear SVM accuracy of each feature alone for
    a discrete factor, squared correlation on the training rows for a continuous one."""
    train, test = _split(rng, len(z), *sizes)
    out = np.zeros((len(f.names), z.shape[1]))
    for j in range(len(f.names)):
        for i in range(z.shape[1]):
            x = z[:, i : i + 1]
            if f.discrete[j]:
                out[j, i] = _accuracy(
                    LinearSVC(C=0.01, class_weight="balanced"), x, f.labels[:, j], train, test
                )
            else:
                out[j, i] = _r2(x[train, 0], f.values[train, j])
    return out


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    if np.var(x) <= 1e-12:  # a constant feature explains nothing
        return 0.0
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: Any) -> float:
    """Held-out accuracy of ``model``; a training set of one class predicts that class."""
    test = train if not len(test) else test
    if np.unique(y[train]).size < 2:
        return float(np.mean(y[test] == y[train][0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the score is what is measured
        model.fit(x[train], y[train])
    return float(model.score(x[test], y[test]))


# --- FactorVAE score (Kim & Mnih 2018) and beta-VAE score (Higgins et al. 2017) ---------------


def _partners(f: Factors, j: int, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each anchor row (any shape), a random row with the same value of factor ``j``."""
    labels = f.labels[:, j]
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    value = labels[anchors]
    return order[starts[value] + (rng.random(anchors.shape) * counts[value]).astype(np.intp)]


def _factorvae(
    z: np.ndarray, f: Factors, rng: np.random.Generator, sizes: tuple[int, int]
) -> float:
    rows = rng.choice(len(z), min(VARIANCE_SAMPLES, len(z)), replace=False)
    scale = np.var(z[rows], axis=0, ddof=1)
    active = scale > 0  # a constant feature has no variance to compare
    if not active.any():
        return 0.0
    votes = [_votes(z[:, active] / np.sqrt(scale[active]), f, rng, n) for n in sizes]
    classifier = np.argmax(votes[0], axis=0)  # each feature names the factor it voted most for
    held_out = votes[1]
    return float(held_out[classifier, np.arange(held_out.shape[1])].sum() / held_out.sum())


def _votes(z: np.ndarray, f: Factors, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n_factors, n_latent) counts of (fixed factor, feature of least scaled variance)."""
    k = len(f.names)
    fixed = rng.integers(k, size=n)
    votes = np.zeros((k, z.shape[1]), dtype=np.int64)
    for j in range(k):
        anchors = rng.integers(len(z), size=int((fixed == j).sum()))
        group = _partners(f, j, np.repeat(anchors[:, None], BATCH, axis=1), rng)  # (m, BATCH)
        least = np.argmin(np.var(z[group], axis=1, ddof=1), axis=1)
        np.add.at(votes[j], least, 1)
    return votes


def _betavae(z: np.ndarray, f: Factors, rng: np.random.Generator, sizes: tuple[int, int]) -> float:
    train, test = (_points(z, f, rng, n) for n in sizes)
    model = LogisticRegression(max_iter=1000)
    x, y = np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]])
    return _accuracy(model, x, y, np.arange(len(train[1])), np.arange(len(train[1]), len(y)))


def _points(
    z: np.ndarray, f: Factors, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points: mean |z1 - z2| over BATCH pairs sharing a random factor, and the factor."""
    fixed = rng.integers(len(f.names), size=n)
    x = np.zeros((n, z.shape[1]))
    for j in range(len(f.names)):
        at = np.flatnonzero(fixed == j)
        first = rng.integers(len(z), size=(len(at), BATCH))
        x[at] = np.abs(z[first] - z[_partners(f, j, first, rng)]).mean(axis=1)
    return x, fixed
