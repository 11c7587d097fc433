"""Automatic settings: what ``vaekit.VAE()`` uses for a setting nobody gave, chosen from the
data it is fitted on.

A deep VAE with fixed sizes fits noise on a few hundred samples and leaves most latent
features unused, where probabilistic PCA (a VAE with linear Gaussian maps) does well; on tens
of thousands of images a hidden layer wins. The rules below, one table, choose from the number
of samples and features and the kind of values (counts, 0/1, [0, 1], skewed positive values,
any real values); every explicit setting and every preset's value wins over them. The choices
made are recorded as one line each in ``settings_["auto"]`` (and the report), e.g.
``"300 samples < 1,000 -> hidden ()"``. Measured against PCA, IsolationForest and KNNImputer
in ``benchmarks/defaults.py`` (figures in benchmarks/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from vaekit.options import DEFAULTS

# Values inspected to tell the kind of data: enough to see integers and ranges, cheap on any
# size (a random choice of rows would cost a copy of the matrix for a backed file).
PROFILE_ROWS = 5_000
SKEWED = 1.0  # median feature skewness above which positive values are log-transformed
SMALL, LARGE = 1_000, 10_000  # samples: linear maps below SMALL, a wider layer from LARGE
STEPS = 4_000  # optimisation steps a run aims at (epochs follow from the batches per epoch)
PCA_LR_SCALE = 0.2  # init="pca": lr at most this over the number of features (see _pca_lr)


@dataclass(frozen=True)
class Profile:
    """What the rules read from the data: samples, features and the kind of values."""

    n_samples: int
    n_features: int
    kind: str  # one of KINDS
    head: Any = field(default=None, repr=False, compare=False)  # the rows the kind was read from

    @cached_property
    def signal_rank(self) -> int:
        """Directions the data carry beyond noise (:func:`_signal_rank`), when a rule asks."""
        return 10 if self.head is None else _signal_rank(self.head)

    @property
    def describe(self) -> str:
        return f"{self.n_samples:,} samples x {self.n_features:,} features of {self.kind}"


KINDS = {
    "counts": "non-negative integers (counts)",
    "binary": "0/1 values",
    "unit": "values in [0, 1]",
    "skewed": "skewed non-negative values",
    "real": "real values",
}


def profile(X: Any) -> Profile:
    """The :class:`Profile` of a (samples x features) matrix, dense or sparse; the kind is read
    from its first rows (NaN, missing entries, ignored)."""
    n, d = X.shape
    rows = min(n, PROFILE_ROWS)
    if hasattr(X, "read"):  # a backed file's reader: its first block, as training reads it
        head = X.read(0, min(rows, X.block_rows))
    else:
        head = X[:rows]
    values = head.data if sp.issparse(head) else np.asarray(head).ravel()
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return Profile(n, d, _kind(values, head), head)


def _kind(values: np.ndarray, head: Any) -> str:
    if values.size == 0:
        return "real"
    low, high = values.min(), values.max()
    integral = bool(np.all(values == np.round(values)))
    if low >= 0 and high <= 1:
        return "binary" if integral else "unit"
    if low >= 0 and integral:
        return "counts"
    if low >= 0 and _median_skewness(head) > SKEWED:
        return "skewed"
    return "real"


def _signal_rank(head: Any) -> int:
    """How many eigenvalues of the features' correlation matrix exceed the largest that
    independent noise would give, (1 + sqrt(d / n))^2 (Marchenko & Pastur 1967): the number
    of directions the data carry beyond noise. Features that do not vary are left out, and
    the rows with a missing entry."""
    X = head.toarray() if sp.issparse(head) else np.asarray(head, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    X = X[~np.isnan(X).any(1)]
    sd = X.std(0) if len(X) else np.zeros(X.shape[1])
    X = X[:, sd > 0]
    n, d = X.shape
    if n < 3 or d < 2:
        return 1
    Z = (X - X.mean(0)) / X.std(0)
    # The eigenvalues of Z'Z / n are the squared singular values of Z / sqrt(n).
    eigen = np.linalg.svd(Z / np.sqrt(n), compute_uv=False) ** 2
    return int((eigen > (1 + np.sqrt(d / n)) ** 2).sum())


def _median_skewness(head: Any) -> float:
    X = head.toarray() if sp.issparse(head) else np.asarray(head, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    mean, sd = np.nanmean(X, 0), np.nanstd(X, 0)
    varying = sd > 0
    if not varying.any():
        return 0.0
    third = np.nanmean((X[:, varying] - mean[varying]) ** 3, 0)
    n = np.sum(~np.isnan(X[:, varying]), 0)
    # the adjusted estimator G1 (pandas' and scipy's bias=False): the plain moment ratio
    # runs low in small samples (11 log-normal expression samples: 0.98 where G1 gives 1.14)
    adjust = np.sqrt(n * (n - 1.0)) / np.maximum(n - 2.0, 1.0)
    return float(np.median(third / sd[varying] ** 3 * adjust))


@dataclass(frozen=True)
class Rule:
    """One row of the table: ``setting`` takes ``value(profile, settings)`` (the settings
    given or chosen so far) when ``when(profile)`` and that value is not None; the first rule
    of a setting that applies decides. ``why`` says when, for ``settings_["auto"]``."""

    setting: str
    why: str
    when: Callable[[Profile], bool]
    value: Callable[[Profile, dict[str, Any]], Any]


def _always(p: Profile) -> bool:
    return True


def _batch(p: Profile) -> int:
    """Minibatches of 128, fewer rows for small data (at least ~8 steps per epoch)."""
    return int(min(128, max(16, 2 ** math.floor(math.log2(max(p.n_samples // 8, 1))))))


def _epochs(p: Profile, batch_size: int) -> int:
    """About :data:`STEPS` steps of ``batch_size`` rows, from 20 to 1,000 epochs."""
    steps_per_epoch = max(1, math.ceil(0.9 * p.n_samples / batch_size))
    return int(min(1000, max(20, round(STEPS / steps_per_epoch))))


def _linear_gaussian(s: dict[str, Any]) -> bool:
    """Whether the settings make a model that :meth:`vaekit.model.VAEModule.init_ppca` can set
    (conditions, unknown here, are checked when the model is built)."""
    return (s["hidden"] == () and s["decoder_hidden"] in (None, ()) and s["likelihood"] ==
            "isotropic_gaussian" and s["architecture"] in (None, "mlp") and s["missing"] != "mask"
            and not s["posterior_batch_norm"])


def _init(p: Profile, s: dict[str, Any]) -> str | None:
    return "pca" if _linear_gaussian(s) else None


def _pca_lr(p: Profile, s: dict[str, Any]) -> float | None:
    """Adam moves every weight by about ``lr`` a step, so a linear encoder's output by up to
    ``lr`` times the features: from probabilistic PCA's optimum, 1e-3 on 20,000 genes jumps
    away from it at the first steps (the loss rose fivefold on TCGA), 1e-5 stays."""
    if s["init"] != "pca":
        return None
    return float(min(DEFAULTS["lr"], PCA_LR_SCALE / p.n_features))


def _hidden_large(p: Profile) -> tuple[int, ...]:
    return (int(min(512, max(128, p.n_features // 2))),)


# Preprocessing is chosen first, from the raw values; the other rules read the data as the
# model will see them (after the preprocessing given or chosen).
PREPROCESS_RULES: tuple[Rule, ...] = (
    Rule("preprocess", "skewed non-negative values -> log1p, then z-scores",
         lambda p: p.kind == "skewed", lambda p, s: ("log1p", "zscore")),
    Rule("preprocess", "real values -> z-scores", lambda p: p.kind == "real",
         lambda p, s: ("zscore",)),
)
RULES: tuple[Rule, ...] = (
    Rule("likelihood", "counts -> nb", lambda p: p.kind == "counts", lambda p, s: "nb"),
    Rule("likelihood", "0/1 values -> bernoulli", lambda p: p.kind == "binary",
         lambda p, s: "bernoulli"),
    Rule("likelihood", "values in [0, 1] -> bernoulli", lambda p: p.kind == "unit",
         lambda p, s: "bernoulli"),
    Rule("likelihood", "real values, under 1,000 samples -> isotropic_gaussian (as PCA)",
         lambda p: p.n_samples < SMALL, lambda p, s: "isotropic_gaussian"),
    Rule("likelihood", "real values -> gaussian", _always, lambda p, s: "gaussian"),
    Rule("n_latent", "under 1,000 samples -> the correlation matrix's eigenvalues above "
         "noise's (Marchenko-Pastur edge), 2 to 10", lambda p: p.n_samples < SMALL,
         lambda p, s: int(min(10, max(2, p.signal_rank)))),
    Rule("hidden", "under 1,000 samples -> no hidden layer (linear maps, as PCA)",
         lambda p: p.n_samples < SMALL, lambda p, s: ()),
    Rule("hidden", "10,000 samples or more -> one layer of features/2 (128 to 512)",
         lambda p: p.n_samples >= LARGE, lambda p, s: _hidden_large(p)),
    Rule("init", "under 1,000 samples, linear maps and isotropic_gaussian -> pca (probabilistic "
         "PCA's solution, the ELBO's optimum; Adam from random weights drifts when features >> "
         "samples)", lambda p: p.n_samples < SMALL, _init),
    Rule("lr", "with init pca -> 0.2 / features, at most 0.001 (Adam's steps would leave PCA's "
         "optimum)", lambda p: p.n_samples < SMALL, _pca_lr),
    Rule("condition_scale", "under 2,000 samples -> 3 (20 lets the label alone decode: z "
         "collapses)", lambda p: p.n_samples < 2_000, lambda p, s: 3.0),
    Rule("batch_size", "under 1,024 samples -> batches of n/8 (16 to 128)",
         lambda p: p.n_samples < 1024, lambda p, s: _batch(p)),
    Rule("epochs", f"about {STEPS:,} steps (20 to 1,000 epochs)", _always,
         lambda p, s: _epochs(p, s["batch_size"])),
    Rule("patience", "a tenth of the epochs (10 to 50)", _always,
         lambda p, s: int(min(50, max(10, s["epochs"] // 10)))),
)


def choose(
    rules: tuple[Rule, ...], p: Profile, fixed: set[str], settings: dict | None = None
) -> tuple[dict, list[str]]:
    """The values of the first rule that applies to each setting not in ``fixed``, and one
    line per choice for ``settings_["auto"]``; ``settings`` are those resolved so far
    (by default :data:`~vaekit.options.DEFAULTS`)."""
    chosen: dict[str, Any] = {}
    notes: list[str] = []
    for rule in rules:
        if rule.setting in fixed or rule.setting in chosen or not rule.when(p):
            continue
        value = rule.value(p, {**DEFAULTS, **(settings or {}), **chosen})
        if value is None:  # the rule does not apply to these settings
            continue
        chosen[rule.setting] = value
        notes.append(f"{rule.setting} = {_show(value)}: {rule.why}")
    return chosen, notes


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def table() -> list[dict[str, str]]:
    """The rules as rows (setting, when, for the README and the report)."""
    return [{"setting": r.setting, "rule": r.why} for r in (*PREPROCESS_RULES, *RULES)]
