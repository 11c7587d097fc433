"""The optuna side of tuning: the storage, the objectives, and one trial's fit.

A trial fits a VAE on the tuning rows with the drawn settings, reports the held-out
validation ELBO (beta = 1, so comparable across betas and warm-ups) after every epoch for the
pruner, and returns its objective on the validation rows it never trained on.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaekit.settings import vae_arguments
from vaekit.train import PosteriorCollapseWarning
from vaekit.tuning.space import Param, as_setting
from vaekit.vae import VAE

# A killed worker's trial is failed once its heartbeat is this many heartbeats late (optuna's
# default grace period is 2), then retried this many times at most.
GRACE_BEATS = 2
MAX_RETRY = 3
SCHEMES = ("sqlite", "postgresql", "mysql")


# ---------------------------------------------------------------------------- objectives
@dataclass(frozen=True)
class Objective:
    """A score of a fitted model on rows it did not train on; higher is better."""

    name: str
    what: str
    score: Callable[[VAE, Any, Any, int], float]
    column: str | None = None  # the annotation it reads, checked before any trial

    def check(self, X: Any) -> None:
        """Raise ValueError when X lacks the annotation this objective reads."""
        if self.column is not None:
            _column(X, self.column)


def _iwae(model: VAE, X: Any, y: Any, n_draws: int) -> float:
    return float(np.mean(model.log_likelihood(X, y, n_draws=n_draws)))


def _elbo(model: VAE, X: Any, y: Any, n_draws: int) -> float:
    return float(np.mean(model.score_samples(X, y, n_draws=min(n_draws, 10))))


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("iwae", "importance-sampled log-likelihood (nats per sample)", _iwae),
        Objective("elbo", "ELBO (nats per sample)", _elbo),
    )
}


def _column(X: Any, column: str) -> np.ndarray:
    """The annotation ``column`` of the rows of X (an AnnData from :func:`vaekit.read`)."""
    obs = getattr(X, "obs", None)
    if obs is None or column not in obs.columns:
        known = [] if obs is None else list(map(str, obs.columns))
        raise ValueError(
            f"objective needs the annotation column {column!r}; the data have {known} (give "
            "the annotations with --annotations FILE)"
        )
    return obs[column].to_numpy()


def _separation(column: str) -> Callable[[VAE, Any, Any, int], float]:
    """How well the latent space separates the groups of ``column``: the silhouette of the
    posterior means (-1 to 1)."""

    def score(model: VAE, X: Any, y: Any, n_draws: int) -> float:
        from sklearn.metrics import silhouette_score

        groups = _column(X, column).astype(str)
        if len(set(groups)) < 2:
            raise ValueError(f"column {column!r} has one group in the held-out rows; need 2+")
        return float(silhouette_score(model.transform(X, y), groups))

    return score


ANOMALY = {"1", "1.0", "true", "yes", "anomaly", "anomalous"}
NORMAL = {"0", "0.0", "false", "no", "normal", "control"}


def _auroc(column: str) -> Callable[[VAE, Any, Any, int], float]:
    """The anomaly AUROC of -ELBO against the labelled anomalies of ``column``."""

    def score(model: VAE, X: Any, y: Any, n_draws: int) -> float:
        from sklearn.metrics import roc_auc_score

        words = [str(v).strip().lower() for v in _column(X, column)]
        unknown = sorted(set(words) - ANOMALY - NORMAL)
        if unknown:
            raise ValueError(
                f"column {column!r} has {unknown[0]!r}; mark anomalies 1/true/yes/anomaly and "
                "the others 0/false/no/normal"
            )
        truth = np.array([w in ANOMALY for w in words])
        if truth.all() or not truth.any():
            raise ValueError(f"column {column!r} needs anomalies and normal rows in each split")
        return float(roc_auc_score(truth, model.anomaly_score(X, y, n_draws=min(n_draws, 10))))

    return score


# objectives of an annotation column, written NAME:COLUMN
BY_COLUMN: dict[str, tuple[str, Callable[[str], Callable]]] = {
    "separation": ("latent separation (silhouette) of", _separation),
    "auroc": ("anomaly AUROC against", _auroc),
}


def objective(choice: str | Callable) -> Objective:
    """The :class:`Objective` named ``choice`` (``iwae``, ``elbo``, ``separation:COLUMN``,
    ``auroc:COLUMN``), or a user's ``score(model, X, y) -> float``."""
    if callable(choice):
        name = getattr(choice, "__name__", "score")
        return Objective(name, f"{name} (user score)", lambda m, X, y, n: float(choice(m, X, y)))
    kind, _, column = str(choice).partition(":")
    if kind in BY_COLUMN and column:
        what, make = BY_COLUMN[kind]
        return Objective(str(choice), f"{what} {column!r}", make(column), column)
    if choice not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {choice!r}; choose one of {sorted(OBJECTIVES)}, "
            f"{', '.join(k + ':COLUMN' for k in BY_COLUMN)}, or pass a function "
            "score(model, X, y) -> float (higher is better)"
        )
    return OBJECTIVES[choice]


# ---------------------------------------------------------------------------- time
UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_timeout(text: str | float | None) -> float | None:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"`` or ``"2h"`` (None: no limit)."""
    if text is None or isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", str(text))
        if match is None:
            raise ValueError(
                f"timeout must be a duration like 90s, 30m or 2h; got {text!r}"
            )
        seconds = float(match.group(1)) * UNITS[match.group(2) or ""]
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"timeout must be a positive duration like 30m; got {text!r}")
    return seconds


# ---------------------------------------------------------------------------- storage
def storage(url: str | None, heartbeat: int | None) -> Any:
    """An optuna storage: in memory for None, else the database at ``url`` with a heartbeat
    every ``heartbeat`` seconds, so that a killed worker's trial is marked failed and retried
    (:class:`optuna.storages.RetryFailedTrialCallback`), never counted as a result."""
    import optuna
    import sqlalchemy

    if url is None:
        return optuna.storages.InMemoryStorage()
    scheme = check_storage_url(url)
    try:
        with warnings.catch_warnings():  # optuna calls the heartbeat experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            beats = {} if heartbeat is None else _heartbeat(heartbeat)
            return _open(_with_driver(url), beats)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as err:
        reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
        raise ValueError(
            f"cannot open the study storage {shown_url(url)} ({scheme}): {reason}; check the "
            "URL, that the server runs and its driver is installed"
        ) from None


def _open(url: str, beats: dict[str, Any], attempts: int = 5) -> Any:
    """optuna's RDBStorage at ``url``. Workers started together on a new database race to
    create its tables, and all but one fail, on a duplicate key or (PostgreSQL, with older
    SQLAlchemy) a table that "already exists": they try again, and find them."""
    import optuna
    import sqlalchemy

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, **beats)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            raced = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err)
            if not raced or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """``url`` with a PostgreSQL driver that is installed: SQLAlchemy 2.1 reads a plain
    ``postgresql://`` as psycopg 3, and vaekit's ``postgres`` extra installs psycopg2."""
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    installed = {m: importlib.util.find_spec(m) is not None for m in ("psycopg", "psycopg2")}
    if parsed.drivername != "postgresql" or installed["psycopg"] or not installed["psycopg2"]:
        return url
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _heartbeat(seconds: int) -> dict[str, Any]:
    """RDBStorage's heartbeat arguments; optuna 4.9 renamed the retry callback and its
    argument (the old names warn, and go in 6.0)."""
    import optuna

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    parameters = inspect.signature(optuna.storages.RDBStorage).parameters
    if retry is not None and "heartbeat_stale_trial_callback" in parameters:
        callback = {"heartbeat_stale_trial_callback": retry(max_retry=MAX_RETRY)}
    else:
        retry = optuna.storages.RetryFailedTrialCallback
        callback = {"failed_trial_callback": retry(max_retry=MAX_RETRY)}
    return {"heartbeat_interval": seconds, "grace_period": GRACE_BEATS * seconds, **callback}


def check_storage_url(url: str) -> str:
    """The database of ``url``, refused unless one optuna stores studies in."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        parsed = None
    scheme = None if parsed is None else parsed.get_backend_name()
    if scheme not in SCHEMES:
        raise ValueError(
            f"storage must be a database URL such as sqlite:///study.db or "
            f"postgresql://user@host/db; got {shown_url(url)!r}"
        )
    return scheme


def shown_url(url: str) -> str:
    """``url`` without its password, for messages and the report."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# ---------------------------------------------------------------------------- one trial
def pruning_callback(trial: Any) -> Callable[[int, dict], None]:
    """A ``fit`` callback that reports each epoch's validation ELBO (beta = 1) to ``trial``
    and raises :class:`optuna.TrialPruned` when the study's pruner says so."""
    import optuna

    def report(epoch: int, record: dict) -> None:
        if "val_reconstruction" not in record:  # no validation rows: nothing to prune on
            return
        value = -(record["val_reconstruction"] + record["val_kl"])
        if not math.isfinite(value):
            return
        trial.report(value, epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", int(epoch))
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    return report


def settings_of(params: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """VAE keyword arguments: the fixed settings and a trial's drawn values."""
    drawn = {k: as_setting(k, v) for k, v in params.items()}
    return vae_arguments({**fixed, **drawn})


def run_trial(
    trial: Any,
    space: dict[str, Param],
    fixed: dict[str, Any],
    data: Any,
    score: Objective,
    n_draws: int,
    prune: bool,
) -> float:
    """Fit on ``data.train``, prune on its per-epoch validation ELBO, score ``data.valid``."""
    params = {name: p.suggest(trial) for name, p in space.items()}
    model = VAE(**settings_of(params, fixed), seed=data.seed, verbose=False)
    with warnings.catch_warnings():  # a poor trial's collapsed features: its value says so
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        model.fit(data.train, data.y_train, callback=pruning_callback(trial) if prune else None)
    trial.set_user_attr("epochs", len(model.history_))
    trial.set_user_attr("seconds", round(float(model.training_seconds_), 3))
    value = score.score(model, data.valid, data.y_valid, n_draws)
    return value if math.isfinite(value) else math.nan  # optuna fails a NaN trial
