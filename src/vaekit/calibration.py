"""A threshold on anomaly scores, calibrated on control samples: stored with a model (so
:mod:`vaekit.saving` imports it), computed by :func:`vaekit.analysis.anomaly.calibrate`."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vaekit._deprecation import draws_keyword


@dataclass(frozen=True, eq=False)
class Calibration:
    """A threshold on anomaly scores set from control samples, with their sorted scores.

    ``threshold`` is the conformal quantile of the control scores (Vovk et al. 2005): with n
    control scores it is the ceil((n + 1)(1 - fpr))-th smallest, so that a new sample from
    the control distribution scores above it with probability at most ``fpr`` (and at least
    ``fpr - 1 / (n + 1)``). A score is flagged exactly when its p-value is <= ``fpr``.

    Attributes
    ----------
    method : str
        The score it applies to (a key of :data:`vaekit.analysis.anomaly.SCORES`).
    fpr : float
        The false-positive rate asked for.
    threshold : float
        Scores above it are flagged.
    control_scores : ndarray
        The control samples' scores, sorted ascending (read-only).
    n_draws : int or None
        Posterior draws of the scores; new scores must use the same number.
    """

    method: str
    fpr: float
    threshold: float
    control_scores: np.ndarray = field(repr=False)
    n_draws: int | None = None

    def __post_init__(self) -> None:
        scores = np.sort(np.asarray(self.control_scores, dtype=np.float64).ravel())
        scores.flags.writeable = False  # frozen all the way down: flags must not drift
        object.__setattr__(self, "control_scores", scores)

    @classmethod
    @draws_keyword
    def fit(
        cls, control_scores: np.ndarray, fpr: float, method: str, n_draws: int | None = None
    ) -> Calibration:
        """The calibration of ``control_scores`` at false-positive rate ``fpr``."""
        check_fpr(fpr)
        scores = np.sort(np.asarray(control_scores, dtype=np.float64).ravel())
        if not np.isfinite(scores).all():
            raise ValueError(
                "some control samples have NaN or infinite scores; remove them before calibrating"
            )
        k = _conformal_rank(len(scores), fpr)
        if k > len(scores):
            raise ValueError(
                f"{len(scores)} control samples cannot calibrate fpr={fpr}: the threshold needs "
                f"at least {min_control(fpr)} (about 1/fpr); give more control samples or a "
                "larger fpr"
            )
        return cls(method, float(fpr), float(scores[k - 1]), scores, n_draws)

    @property
    def n_samples(self) -> int | None:
        """Deprecated name of :attr:`n_draws`."""
        warnings.warn(
            "Calibration.n_samples is renamed n_draws (n_samples counts rows, as in "
            "scikit-learn); read n_draws instead",
            FutureWarning,
            stacklevel=2,
        )
        return self.n_draws

    @property
    def n_control(self) -> int:
        return len(self.control_scores)

    def flags(self, scores: Any) -> np.ndarray:
        """Boolean array: True where a score is above the threshold."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def p_values(self, scores: Any) -> np.ndarray:
        """Conformal p-values, (1 + #control scores >= score) / (n_control + 1): the share of
        control samples at least as anomalous; small = unusual. In (0, 1]."""
        scores = np.asarray(scores, dtype=np.float64)
        at_least = self.n_control - np.searchsorted(self.control_scores, scores, side="left")
        return (1.0 + at_least) / (self.n_control + 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings and control scores (floats written by ``json`` round-trip)."""
        return {
            "method": self.method,
            "fpr": self.fpr,
            "threshold": self.threshold,
            "n_draws": self.n_draws,
            "control_scores": self.control_scores.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Rebuild from :meth:`to_dict`'s output, checking what it finds."""
        missing = sorted({"method", "fpr", "threshold", "control_scores"} - set(d))
        if missing:
            raise ValueError(f"the stored calibration lacks {missing}; calibrate again")
        if not isinstance(d["method"], str) or not d["method"]:
            raise ValueError(f"the stored calibration's method is {d['method']!r}; calibrate again")
        check_fpr(d["fpr"])
        n = d.get("n_draws", d.get("n_samples"))  # folders saved before the rename
        return cls(
            str(d["method"]),
            float(d["fpr"]),
            float(d["threshold"]),
            np.asarray(d["control_scores"], dtype=np.float64),
            None if n is None else int(n),
        )


def check_fpr(fpr: float) -> None:
    """Raise unless ``fpr`` is a number strictly between 0 and 1."""
    if isinstance(fpr, bool) or not isinstance(fpr, numbers.Real) or not 0 < fpr < 1:
        raise ValueError(
            f"fpr must be a number between 0 and 1 (exclusive), e.g. 0.05; got {fpr!r}"
        )


# Rounding slack: (19 + 1) * (1 - 0.05) must give rank 19, not 20.
_SLACK = 1e-9


def _conformal_rank(n: int, fpr: float) -> int:
    """1-based rank of the conformal quantile among n control scores (may exceed n)."""
    return math.ceil((n + 1) * (1 - fpr) - _SLACK)


def min_control(fpr: float) -> int:
    """The fewest control samples whose conformal quantile at ``fpr`` exists (rank <= n):
    n >= (1 - fpr) / fpr, 19 for fpr = 0.05."""
    return max(1, math.ceil((1 - fpr) / fpr - _SLACK))
