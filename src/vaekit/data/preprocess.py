"""Preprocessing steps fitted with the model, saved in its files and applied again at encode time.

Each step is a small named object: its settings go to ``config.json``, its fitted arrays to
``weights.safetensors``; nothing is pickled. A new step is one class with ``@register_step``.
Steps run in the order given, at most one of each kind (normalise, transform, select, scale);
an order that makes no sense (log1p after zscore, say) is refused, naming the steps.

NaN entries (missing values, ``VAE(missing="mask")``) pass through every step as NaN, and the
fitted statistics are those of the observed entries. Every step can be inverted
(:meth:`Preprocessor.inverse_transform`), so imputed values go back to the user's space.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from vaekit.data.streaming import StreamStats
from vaekit.validation import check_dense_fits

Matrix = np.ndarray | sp.csr_matrix

STEPS: dict[str, type[Step]] = {}
# The usual order of the kinds (as scanpy's): where `override` puts a step of a new kind, and
# the order an error message suggests.
ORDER = ("normalize", "transform", "select", "scale")
BLOCK_VALUES = 2**22  # values per block of rows when a sparse matrix becomes dense (16 MB)


def register_step(cls: type[Step]) -> type[Step]:
    """Make a step available by its ``name`` (in settings files and model files)."""
    STEPS[cls.name] = cls
    return cls


class Step:
    """A preprocessing step. Subclasses set ``name`` and ``kind`` and override what they need.

    Attributes
    ----------
    keeps_counts : bool
        True when the output of raw counts is still raw counts (count likelihoods allow only
        such steps).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    keeps_counts: ClassVar[bool] = False
    state_keys: ClassVar[tuple[str, ...]] = ()  # fitted arrays, saved with the model

    def params(self) -> dict[str, Any]:
        """Constructor arguments, as JSON."""
        return {}

    def fit(self, X: Matrix) -> Step:
        return self

    @property
    def needs(self) -> frozenset[str]:
        """The statistics :meth:`fit_stats` reads (:data:`vaekit.data.streaming.NEEDS`);
        empty when the step has nothing to fit."""
        return frozenset()

    def fit_stats(self, stats: StreamStats | None) -> Step:
        """Fit from statistics of the input gathered a block of rows at a time (the same
        result as :meth:`fit` up to rounding), for data that never fit in memory."""
        return self

    def stats_after(self, stats: StreamStats) -> StreamStats | None:
        """The statistics of this step's output, when they follow from its input's (a
        selection of columns); None when the step changes the values."""
        return None

    def transform(self, X: Matrix) -> Matrix:
        raise NotImplementedError

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        """``Y``, in this step's output space, back to its input space; ``X`` is what the step
        was given (a normalisation needs its row totals, a selection its other columns)."""
        raise NotImplementedError(f"preprocess step {self.name!r} cannot be inverted")

    def select(self, names: list[str]) -> list[str]:
        """Names of the output features."""
        return names

    @property
    def signed(self) -> bool:
        """Whether the output may be negative whatever the input (centring)."""
        return False

    def cannot_follow(self, step: Step) -> str | None:
        """Why this step makes no sense after ``step``, or None when it may follow it."""
        return None

    def state(self) -> dict[str, np.ndarray]:
        """Fitted arrays, by attribute name."""
        return {key: getattr(self, key) for key in self.state_keys}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = sorted(set(self.state_keys) - set(state))
        if missing:
            raise ValueError(f"preprocess step {self.name!r} lacks its fitted {missing}")
        for key in self.state_keys:
            setattr(self, key, state[key])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()


@register_step
class NormalizeTotal(Step):
    """Library-size normalisation: each sample scaled to ``target_sum`` total
    (the median total of the training samples when None)."""

    name, kind, state_keys = "normalize_total", "normalize", ("target_",)

    def __init__(self, target_sum: float | None = None) -> None:
        self.target_sum = target_sum

    def params(self) -> dict[str, Any]:
        return {"target_sum": self.target_sum}

    def fit(self, X: Matrix) -> Step:
        return self._fit_totals(lambda: _row_sums(X))

    @property
    def needs(self) -> frozenset[str]:
        return frozenset(() if self.target_sum is not None else ("rows",))

    def fit_stats(self, stats: StreamStats) -> Step:
        return self._fit_totals(lambda: stats.totals)

    def _fit_totals(self, totals: Callable[[], np.ndarray]) -> Step:
        if self.target_sum is not None:
            target = self.target_sum
        else:
            values = totals()
            target = np.median(values[values > 0])
        self.target_ = np.array([target], dtype=np.float64)  # (1,): safetensors-friendly
        return self

    def transform(self, X: Matrix) -> Matrix:
        scale = self._scale(X)
        if sp.issparse(X):
            return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ X)
        return X * scale[:, None].astype(np.float32)

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        scale = self._scale(X)
        inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
        return Y * inverse[:, None].astype(np.float32)

    def cannot_follow(self, step: Step) -> str | None:
        if step.keeps_counts:
            return None
        return f"{step.name} changes the counts whose totals normalize_total scales"

    def _scale(self, X: Matrix) -> np.ndarray:
        """(n,) the factor that brings each sample's total to the target (0 for empty ones)."""
        totals = _row_sums(X)
        return np.divide(
            float(self.target_[0]), totals, out=np.zeros_like(totals), where=totals > 0
        )


@register_step
class Log1p(Step):
    """log(1 + x), natural or in ``base`` (Tybalt used log2(x + 1))."""

    name, kind = "log1p", "transform"

    def __init__(self, base: float | None = None) -> None:
        self.base = base

    def params(self) -> dict[str, Any]:
        return {"base": self.base}

    def transform(self, X: Matrix) -> Matrix:
        values = X.data if sp.issparse(X) else X
        if (values <= -1).any():  # would become -inf or NaN, and NaN would read as missing
            raise ValueError(
                f"log1p needs values > -1; the data hold {np.nanmin(values):g}. Pass "
                "non-negative values (counts or expression), or leave out log1p"
            )
        if sp.issparse(X):
            X = X.copy()
            X.data = np.log1p(X.data) / self._divisor
            return X
        return np.log1p(X) / self._divisor

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        return np.expm1(Y * self._divisor)

    def cannot_follow(self, step: Step) -> str | None:
        if not step.signed:
            return None
        return f"{step.name} gives negative values, and log1p needs values above -1"

    @property
    def _divisor(self) -> np.float32:
        return np.float32(1.0 if self.base is None else np.log(self.base))


@register_step
class SelectVariable(Step):
    """Keep the ``n`` most variable features, by ``method``: ``"variance"``, or ``"mad"``, the
    mean absolute deviation from the mean (pandas' old ``mad()``, which Tybalt used)."""

    name, kind, keeps_counts, state_keys = "select_variable", "select", True, ("index_",)
    METHODS: ClassVar[tuple[str, ...]] = ("variance", "mad")

    def __init__(self, n: int = 5000, method: str = "variance") -> None:
        self.n = n
        self.method = method

    def params(self) -> dict[str, Any]:
        return {"n": self.n, "method": self.method}

    def fit(self, X: Matrix) -> Step:
        self._check()
        return self._choose(_variance(X) if self.method == "variance"
                            else _mean_absolute_deviation(X))

    @property
    def needs(self) -> frozenset[str]:
        return frozenset(("columns",) if self.method == "variance" else ("columns", "deviation"))

    def fit_stats(self, stats: StreamStats) -> Step:
        self._check()
        return self._choose(stats.var if self.method == "variance" else stats.deviation)

    def stats_after(self, stats: StreamStats) -> StreamStats | None:
        return stats.columns(self.index_)

    def _check(self) -> None:
        if self.method not in self.METHODS:
            raise ValueError(f"unknown selection method {self.method!r}; use one of {self.METHODS}")
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"select needs a positive number of features; got {self.n!r}")

    def _choose(self, spread: np.ndarray) -> Step:
        n = min(self.n, len(spread))
        # stable sort: ties keep the original column order, so the choice is reproducible
        self.index_ = np.sort(np.argsort(-spread, kind="stable")[:n])
        return self

    def transform(self, X: Matrix) -> Matrix:
        return X[:, self.index_]

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        """X with the selected features replaced by Y; the others keep X's values."""
        out = np.array(_dense(X), dtype=np.float32)
        out[:, self.index_] = Y
        return out

    def select(self, names: list[str]) -> list[str]:
        return [names[i] for i in self.index_]

    def cannot_follow(self, step: Step) -> str | None:
        if not isinstance(step, ZScore):
            return None
        return "zscore gives every feature unit variance, leaving nothing to rank them by"


@register_step
class MinMax(Step):
    """Scale each feature to [0, 1] by its training minimum and maximum; new values outside
    that range are clipped, so [0, 1] likelihoods can score them."""

    name, kind, state_keys = "minmax", "scale", ("min_", "range_")

    def fit(self, X: Matrix) -> Step:
        dense = _dense(X)
        return self._fit_range(_column("min", dense), _column("max", dense))

    needs = property(lambda self: frozenset(("columns",)))

    def fit_stats(self, stats: StreamStats) -> Step:
        return self._fit_range(stats.min, stats.max)

    def _fit_range(self, low: np.ndarray, high: np.ndarray) -> Step:
        self.min_ = low.astype(np.float32)
        self.range_ = _nonzero(high - self.min_)
        return self

    def transform(self, X: Matrix) -> Matrix:
        return np.clip((_dense(X) - self.min_) / self.range_, 0.0, 1.0).astype(np.float32)

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        return (Y * self.range_ + self.min_).astype(np.float32)


class _Standardise(Step):
    """Subtract each feature's training mean (unless ``center=False``) and divide by a spread.

    ``center=False`` only divides, so that a sparse matrix stays sparse; centring fills in
    every zero, so the output of sparse input is then dense (built a block of rows at a time:
    the input is never densified whole besides the output).
    """

    kind = "scale"

    def __init__(self, center: bool = True) -> None:
        if not isinstance(center, (bool, np.bool_)):
            raise TypeError(f"center must be true or false; got {center!r}")
        self.center = bool(center)

    def params(self) -> dict[str, Any]:
        # The default is left out, so model files keep the keys older readers know.
        return {} if self.center else {"center": False}

    @property
    def signed(self) -> bool:
        return self.center

    needs = property(lambda self: frozenset(("columns",)))

    def transform(self, X: Matrix) -> Matrix:
        return _affine(X, self.mean_ if self.center else None, self._divisor)

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        shift = self.mean_ if self.center else np.float32(0)
        return (Y * self._divisor + shift).astype(np.float32)

    @property
    def _divisor(self) -> np.ndarray:
        raise NotImplementedError


@register_step
class ZScore(_Standardise):
    """Centre each feature and scale it to unit variance (training mean and SD); with
    ``center=False`` only scale it, which keeps sparse input sparse."""

    name, state_keys = "zscore", ("mean_", "std_")

    def fit(self, X: Matrix) -> Step:
        return self._fit_moments(*_mean_and("var", X))

    def fit_stats(self, stats: StreamStats) -> Step:
        return self._fit_moments(stats.mean, stats.var)

    def _fit_moments(self, mean: np.ndarray, variance: np.ndarray) -> Step:
        self.mean_ = mean.astype(np.float32)
        self.std_ = _nonzero(np.sqrt(variance))
        return self

    @property
    def _divisor(self) -> np.ndarray:
        return self.std_


@register_step
class Center(_Standardise):
    """Centre each feature and divide all of them by one number, the root of their mean
    variance: values become of order 1 while the genes that vary most keep the most variance,
    so a Gaussian likelihood still weighs them most (z-scoring would make every gene equal).
    ``center=False`` only divides, which keeps sparse input sparse."""

    name, state_keys = "center", ("mean_", "scale_")

    def fit(self, X: Matrix) -> Step:
        return self._fit_moments(*_mean_and("var", X))

    def fit_stats(self, stats: StreamStats) -> Step:
        return self._fit_moments(stats.mean, stats.var)

    def _fit_moments(self, mean: np.ndarray, variance: np.ndarray) -> Step:
        self.mean_ = mean.astype(np.float32)
        self.scale_ = _nonzero(np.sqrt(np.atleast_1d(variance.mean())))
        return self

    @property
    def _divisor(self) -> np.ndarray:
        return self.scale_


class Preprocessor:
    """Steps run in the order given; fitted on the training data, saved with the model.

    Parameters
    ----------
    steps : sequence of Step, str or dict
        ``"log1p"``, ``{"name": "select_variable", "n": 2000}`` or ``SelectVariable(2000)``;
        at most one of each kind, in an order that makes sense (see :func:`check_order`).

    Examples
    --------
    >>> pre = Preprocessor(["log1p", SelectVariable(2, "mad"), "minmax"])
    >>> pre.fit_transform(np.array([[1.0, 5, 0], [3, 0, 0], [0, 9, 1]]), ["a", "b", "c"]).shape
    (3, 2)
    """

    def __init__(self, steps: Sequence[Step | str | dict] = ()) -> None:
        self.steps = [make_step(s) for s in steps]
        kinds = [s.kind for s in self.steps]
        repeated = sorted({k for k in kinds if kinds.count(k) > 1})
        if repeated:
            raise ValueError(f"preprocess has more than one step of kind {repeated}: {self.steps}")
        check_order(self.steps)

    @property
    def keeps_counts(self) -> bool:
        return all(s.keeps_counts for s in self.steps)

    def fit_transform(self, X: Matrix, names: list[str]) -> Matrix:
        for step in self.steps:
            X = step.fit(X).transform(X)
        self.features_ = self.output_features(names)
        return X

    def fit_stream(
        self, blocks: Callable[[], Iterable[Matrix]], names: list[str]
    ) -> Preprocessor:
        """Fit every step from statistics gathered a block of rows at a time, for data that
        never fit in memory: ``blocks()`` starts a new pass over the rows. A pass is made only
        where a step needs statistics of an input not yet summarised: for
        ``[normalize_total, log1p, select_variable, zscore]``, one for the row totals, then one
        for the columns of the log-normalised values, which both the selection and the
        z-scores are fitted from; a ``mad`` selection adds one (it needs the means first).

        Examples
        --------
        >>> X = np.array([[1.0, 5, 0], [3, 0, 0], [0, 9, 1]])
        >>> pre = Preprocessor(["log1p", SelectVariable(2), "zscore"])
        >>> pre.fit_stream(lambda: (X[:2], X[2:]), ["a", "b", "c"]).features_
        ['a', 'b']
        """
        stats = None
        for i, step in enumerate(self.steps):
            if step.needs and (stats is None or not step.needs <= stats.has):
                stats = StreamStats.of(blocks, self.steps[:i], {"rows", "columns", *step.needs})
            step.fit_stats(stats)  # None for a step that needs none
            stats = None if stats is None else step.stats_after(stats)
        self.features_ = self.output_features(names)
        return self

    def transform(self, X: Matrix) -> Matrix:
        for step in self.steps:
            X = step.transform(X)
        return X

    def inverse_transform(self, Y: np.ndarray, X: Matrix) -> np.ndarray:
        """``Y`` (n, modelled features), in the space the model sees, back to the space of
        ``X`` (n, input features), the data that were transformed: the steps inverted in
        reverse order; features that were not selected keep X's values.

        Examples
        --------
        >>> pre = Preprocessor(["log1p", "zscore"])
        >>> X = np.array([[1.0, 5.0], [3.0, 0.0]])
        >>> np.allclose(pre.inverse_transform(pre.fit_transform(X, ["a", "b"]), X), X)
        True
        """
        inputs = []
        for step in self.steps:
            inputs.append(X)
            X = step.transform(X)
        for step, X_in in zip(reversed(self.steps), reversed(inputs), strict=True):
            Y = step.inverse_transform(Y, X_in)
        return Y

    def output_features(self, names: list[str]) -> list[str]:
        for step in self.steps:
            names = step.select(names)
        return names

    def to_config(self) -> list[dict[str, Any]]:
        return [{"name": s.name, **s.params()} for s in self.steps]

    def state(self) -> dict[str, np.ndarray]:
        """Fitted arrays of every step, keyed ``"{position}.{attribute}"``."""
        return {f"{i}.{k}": v for i, s in enumerate(self.steps) for k, v in s.state().items()}

    @classmethod
    def from_config(cls, config: list[dict], state: dict[str, np.ndarray]) -> Preprocessor:
        pre = cls(config)
        for i, step in enumerate(pre.steps):
            prefix = f"{i}."
            step.set_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        return pre


def check_order(steps: Sequence[Step]) -> None:
    """Raise ValueError, naming the steps and an order that works, when a step makes no sense
    after one before it (:meth:`Step.cannot_follow`)."""
    for i, later in enumerate(steps):
        for earlier in steps[:i]:
            why = later.cannot_follow(earlier)
            if why is not None:
                names = [s.name for s in steps]
                usual = [s.name for s in sorted(steps, key=lambda s: ORDER.index(s.kind))]
                raise ValueError(
                    f"preprocess {names} runs {later.name} after {earlier.name}, which makes no "
                    f"sense: {why}. Steps run in the order given; list them as {usual}"
                )


def make_step(spec: Step | str | dict) -> Step:
    """A fresh step from a Step (copied: the caller's object is never fitted), a name or a dict."""
    if isinstance(spec, Step):
        return copy.deepcopy(spec)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise TypeError(f"a preprocess step is a Step, a name or a dict with 'name'; got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] not in STEPS:
        raise ValueError(f"unknown preprocess step {spec['name']!r}; choose one of {sorted(STEPS)}")
    try:
        return STEPS[spec["name"]](**kwargs)
    except TypeError as err:
        raise ValueError(f"preprocess step {spec['name']!r}: {err}") from None


def _row_sums(X: Matrix) -> np.ndarray:
    """Row totals; with NaN entries (missing), the total of the observed ones scaled up by
    the share observed, as the VAE's library size (0 for a sample with nothing observed)."""
    values = X.data if sp.issparse(X) else X
    missing = np.isnan(values)
    if not missing.any():
        return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    if sp.issparse(X):
        observed = sp.csr_matrix((np.where(missing, 0, values), X.indices, X.indptr), X.shape)
        n_missing = sp.csr_matrix((missing.astype(np.float64), X.indices, X.indptr), X.shape)
        totals, n_missing = (np.asarray(m.sum(axis=1)).ravel() for m in (observed, n_missing))
    else:
        totals, n_missing = np.nansum(X, axis=1, dtype=np.float64), missing.sum(1)
    share = 1.0 - n_missing / X.shape[1]
    return np.divide(totals, share, out=np.zeros_like(totals), where=share > 0)


def _dense(X: Matrix) -> np.ndarray:
    if not sp.issparse(X):
        return X
    check_dense_fits(X.shape, "a dense copy of the sparse data", X.dtype.itemsize)
    return X.toarray()


def _column(stat: str, X: np.ndarray) -> np.ndarray:
    """A statistic of each column (``"mean"``, ``"std"``, ``"var"``, ``"min"``, ``"max"``) over
    its observed entries: numpy's nan-aware version when X holds NaN (missing entries), else
    the plain one, which keeps the results on complete data exactly as they were."""
    return getattr(np, f"nan{stat}" if np.isnan(X).any() else stat)(X, axis=0)


def _mean_and(stat: str, X: Matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and ``"std"`` or ``"var"`` over its observed entries; a sparse
    matrix's in float64 from its stored values, without densifying it."""
    if not sp.issparse(X):
        return _column("mean", X), _column(stat, X)
    from sklearn.utils.sparsefuncs import mean_variance_axis  # it skips NaN

    mean, variance = mean_variance_axis(sp.csr_matrix(X, dtype=np.float64), axis=0)
    return mean, np.sqrt(variance) if stat == "std" else variance


def _affine(X: Matrix, shift: np.ndarray | None, divisor: np.ndarray) -> Matrix:
    """(X - shift) / divisor per column, float32. Sparse X stays sparse without a shift; with
    one (which fills in the zeros) the dense output is built a block of rows at a time."""
    if not sp.issparse(X):
        return ((X if shift is None else X - shift) / divisor).astype(np.float32)
    if shift is None:
        out = sp.csr_matrix(X, dtype=np.float32, copy=True)
        per_column = np.broadcast_to(divisor, (X.shape[1],))  # Center's one number, or one each
        out.data = (out.data / per_column[out.indices]).astype(np.float32)
        return out
    check_dense_fits(X.shape, "the centred (dense) copy of the sparse data")
    out = np.empty(X.shape, dtype=np.float32)
    rows = max(1, BLOCK_VALUES // max(1, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        out[start : start + rows] = (X[start : start + rows].toarray() - shift) / divisor
    return out


def _nonzero(spread: np.ndarray) -> np.ndarray:
    """Constant features get a divisor of 1 (they become 0), not a division by zero."""
    return np.where(spread > 0, spread, 1.0).astype(np.float32)


def _variance(X: Matrix) -> np.ndarray:
    if sp.issparse(X):
        from sklearn.utils.sparsefuncs import mean_variance_axis  # it skips NaN

        return mean_variance_axis(sp.csr_matrix(X, dtype=np.float64), axis=0)[1]
    return np.nanvar(X, 0, dtype=np.float64) if np.isnan(X).any() else X.var(0, dtype=np.float64)


def _mean_absolute_deviation(X: Matrix, block: int = 2048) -> np.ndarray:
    """mean |x - mean(x)| per column, a block of columns at a time (sparse stays sparse
    outside the block)."""
    out = np.empty(X.shape[1])
    for start in range(0, X.shape[1], block):
        cols = _dense(X[:, start : start + block]).astype(np.float64)
        out[start : start + block] = _column("mean", np.abs(cols - _column("mean", cols)))
    return out


def override(
    steps: Sequence[Step | str | dict],
    *,
    normalize: bool | None = None,
    log1p: bool | None = None,
    select: int | None = None,
    select_by: str | None = None,
    scale: str | None = None,
) -> list[Step]:
    """``steps`` with some replaced, as command-line flags ask (None leaves a kind as it is):
    a replaced step keeps its place, a step of a new kind goes where its kind usually comes.

    ``scale`` is ``"minmax"``, ``"zscore"``, ``"center"`` or ``"none"``; ``select=0`` drops the
    selection.
    """
    steps = list(Preprocessor(steps).steps)
    by_kind = {s.kind: s for s in steps}
    if normalize is not None:
        keep = by_kind.get("normalize", NormalizeTotal())
        _set(steps, "normalize", keep if normalize else None)
    if log1p is not None:
        _set(steps, "transform", by_kind.get("transform", Log1p()) if log1p else None)
    if select is not None or select_by is not None:
        current = by_kind.get("select", SelectVariable())
        n = current.n if select is None else select
        _set(steps, "select", SelectVariable(n, select_by or current.method) if n else None)
    if scale is not None:
        scalers = {"minmax": MinMax, "zscore": ZScore, "center": Center, "none": None}
        if scale not in scalers:
            raise ValueError(f"unknown scale {scale!r}; use one of {sorted(scalers)}")
        _set(steps, "scale", scalers[scale]() if scalers[scale] else None)
    return Preprocessor(steps).steps


def _set(steps: list[Step], kind: str, step: Step | None) -> None:
    """Put ``step`` in place of the step of its kind, or, for a new kind, before the first step
    whose kind usually comes later; None removes the kind."""
    at = next((i for i, s in enumerate(steps) if s.kind == kind), None)
    if at is not None:
        del steps[at]
    if step is None:
        return
    if at is None:
        later = (i for i, s in enumerate(steps) if ORDER.index(s.kind) > ORDER.index(kind))
        at = next(later, len(steps))
    steps.insert(at, step)
