"""Hyperparameter tuning on optuna: :func:`tune` searches the settings of a VAE on held-out
rows, refits the best, and compares it with the defaults on a test split it never saw.

The rows are split once, by ``seed``: a test share that only the final comparison reads, a
validation share that scores each trial, and the rest that trials train on (their own
``validation_fraction`` of it drives early stopping and pruning). A study kept in a database
(``storage``) continues where it stopped, and several processes may share it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.auto import profile
from vaekit.data.writers import check_output_dir
from vaekit.presets import check_settings, resolve
from vaekit.settings import PREPROCESS_KEYS, VAE_KEYS, canonical, typed, vae_arguments
from vaekit.train import TrainingDiverged
from vaekit.tuning.output import FILES, STUDY_FILE, write_all
from vaekit.tuning.space import Param, default_space, merged, read_space
from vaekit.tuning.study import (
    objective,
    parse_timeout,
    run_trial,
    settings_of,
    shown_url,
    storage,
)
from vaekit.vae import VAE
from vaekit.validation import is_anndata, take_rows

__all__ = ["Param", "Split", "TuneResult", "default_space", "parse_timeout", "read_space", "tune"]

STUDY = "vaekit"
DONE_STATES = ("COMPLETE", "PRUNED")  # what counts towards n_trials; FAIL never does


@dataclass(frozen=True)
class Split:
    """The rows of X and y: ``train`` (trials fit on it), ``valid`` (trials are scored on it),
    ``test`` (only the final comparison reads it); ``rows`` holds each part's indices."""

    train: Any
    valid: Any
    test: Any
    y_train: Any
    y_valid: Any
    y_test: Any
    rest: Any  # train and valid: what the best settings and the defaults are refitted on
    y_rest: Any
    rows: dict[str, np.ndarray]
    seed: int


def split_rows(
    X: Any, y: Any, test_fraction: float, valid_fraction: float, seed: int
) -> Split:
    """A seeded split of the rows of X (and y) into train, validation and test parts."""
    for name, share in (("test_fraction", test_fraction), ("valid_fraction", valid_fraction)):
        if not 0 < share < 0.5:
            raise ValueError(f"{name} must be in (0, 0.5); got {share!r}")
    n = X.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = (max(1, round(share * n)) for share in (test_fraction, valid_fraction))
    if n - n_test - n_valid < 2:
        raise ValueError(f"{n} samples are too few to tune on; give at least 10")
    rows = {
        "test": np.sort(order[:n_test]),
        "valid": np.sort(order[n_test : n_test + n_valid]),
        "train": np.sort(order[n_test + n_valid :]),
        "rest": np.sort(order[n_test:]),
    }
    parts = {k: take_rows(X, r) for k, r in rows.items()}
    ys = {k: _y_rows(X, y, r) for k, r in rows.items()}
    return Split(
        parts["train"], parts["valid"], parts["test"], ys["train"], ys["valid"], ys["test"],
        parts["rest"], ys["rest"], rows, seed,
    )


def _y_rows(X: Any, y: Any, rows: np.ndarray) -> Any:
    """y for ``rows``; names of an AnnData's obs columns stay names."""
    if is_anndata(X) and (isinstance(y, str) or _names(y)):
        return y
    return take_rows(y, rows)


def _names(y: Any) -> bool:
    return isinstance(y, (list, tuple)) and bool(y) and all(isinstance(v, str) for v in y)


@dataclass
class TuneResult:
    """What :func:`tune` found.

    Attributes
    ----------
    study : optuna.study.Study
    settings : dict
        The best trial's settings with the fixed ones: :class:`vaekit.VAE` arguments.
    model, default_model : VAE
        The best settings and the defaults (with the fixed settings), each fitted on the
        training and validation rows.
    test : dict
        The objective on the test rows: ``{"objective", "default", "tuned", "n_test"}``.
    split : Split
    space : dict of Param
    fixed : dict
    storage : str or None
        The study's database URL, without its password.
    """

    study: Any
    settings: dict[str, Any]
    model: VAE
    default_model: VAE
    test: dict[str, Any]
    split: Split
    space: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    storage: str | None = None


def tune(
    X: Any,
    y: Any = None,
    *,
    out: str | Path | None = None,
    n_trials: int = 50,
    timeout: str | float | None = None,
    storage_url: str | None = None,
    study_name: str = STUDY,
    space: str | Path | dict | None = None,
    fixed: dict[str, Any] | None = None,
    objective_name: str | Callable = "iwae",
    prune: bool = True,
    pruner: Any = None,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    n_draws: int = 100,
    heartbeat: int | None = 60,
    seed: int = 0,
    verbose: bool = False,
) -> TuneResult:
    """Search VAE settings with optuna, refit the best, and compare it with the defaults on
    test rows that no trial saw.

    Parameters
    ----------
    X : array-like, DataFrame, sparse matrix or AnnData, (n_samples, n_features)
    y : optional
        Conditions, as for :meth:`vaekit.VAE.fit`.
    out : path, optional
        A folder (created if missing) for the best model (``model/``), the trials
        (``trials.csv``), the report (``report.html``) and, without ``storage_url``, the
        study (``study.db``, SQLite).
    n_trials : int
        Trials the study should hold, completed or pruned (failed ones do not count); a
        resumed study runs only those still missing.
    timeout : str or float, optional
        Stop starting trials after this long: seconds, or ``"30m"``, ``"2h"``.
    storage_url : str, optional
        ``sqlite:///study.db``, ``postgresql://user@host/db``...; None keeps the study in
        memory. The same URL and ``study_name`` continue a study.
    space : path, dict or None
        Overrides of :func:`default_space` (see :mod:`vaekit.tuning.space`).
    fixed : dict, optional
        Settings every trial takes untouched (they leave the search space).
    objective_name : str or callable
        ``"iwae"`` (importance-sampled log-likelihood), ``"elbo"``, ``"separation:COLUMN"``
        (silhouette of an annotation's groups in the latent space; X an AnnData),
        ``"auroc:COLUMN"`` (anomaly AUROC against the rows COLUMN marks as anomalies), or
        ``score(model, X, y)`` returning a float to maximise.
    prune, pruner :
        Prune trials on the per-epoch validation ELBO; ``pruner`` (an optuna pruner)
        replaces the default :class:`optuna.pruners.MedianPruner`.
    n_draws : int
        Importance samples per row for ``"iwae"``.
    heartbeat : int or None
        Seconds between a running trial's heartbeats in a database storage: a trial whose
        worker died is failed after two missed beats and retried.

    Examples
    --------
    >>> result = vaekit.tune(X, n_trials=20, timeout="10m")  # doctest: +SKIP
    >>> result.test  # doctest: +SKIP
    {'objective': 'iwae', 'default': -512.3, 'tuned': -498.1, 'n_test': 200}
    """
    out = None if out is None else check_output_dir(out, FILES)
    score = objective(objective_name)
    seconds = parse_timeout(timeout)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer; got {n_trials!r}")
    tuned, fixed_from_space = read_space(space)
    fixed = {**fixed_from_space, **_fixed(fixed)}
    given_seed = fixed.pop("seed", None)  # the tuner's seed is every fit's seed
    seed = seed if given_seed is None else given_seed
    split = split_rows(X, y, test_fraction, valid_fraction, seed)
    score.check(split.valid)
    search = merged(default_space(profile(_matrix(split.train))), tuned, fixed)
    store, storage_url = _storage(storage_url, out, heartbeat)
    study = _study(store, study_name, split, score.name, X)
    _optimize(study, search, fixed, split, score, n_draws, prune, pruner, n_trials, seconds,
              verbose)
    best = _best(study)
    settings = settings_of(best.params, fixed)  # the preprocessing flags become its steps
    model, default = (_refit(s, split, seed) for s in (settings, vae_arguments(fixed)))
    test = {
        "objective": score.name,
        "what": score.what,
        "default": score.score(default, split.test, split.y_test, n_draws),
        "tuned": score.score(model, split.test, split.y_test, n_draws),
        "n_test": len(split.rows["test"]),
    }
    shown = None if storage_url is None else shown_url(storage_url)
    result = TuneResult(study, settings, model, default, test, split, search, fixed, shown)
    if out is not None:
        write_all(result, out)
    return result


def _storage(url: str | None, out: Path | None, heartbeat: int | None) -> tuple[Any, str | None]:
    """The study's storage and its URL: ``url``, else SQLite in ``out``, else memory. A
    given URL is opened before ``out`` is created, so that a bad one leaves nothing behind."""
    if url is None and out is not None:
        out.mkdir(exist_ok=True)
        url = f"sqlite:///{out.resolve() / STUDY_FILE}"
        return storage(url, heartbeat), url
    store = storage(url, heartbeat)
    if out is not None:
        out.mkdir(exist_ok=True)
    return store, url


def _fixed(fixed: dict[str, Any] | None) -> dict[str, Any]:
    """The fixed settings, typed and checked now (not in every trial): model settings and
    preprocessing flags only."""
    fixed = canonical(dict(fixed or {}), "fixed settings")
    other = sorted(set(fixed) - set(VAE_KEYS) - set(PREPROCESS_KEYS))
    if other:
        raise ValueError(
            f"fixed settings {other} are not settings of the model; give the conditions as y"
        )
    fixed = typed(fixed)
    arguments = vae_arguments(fixed)
    check_settings(resolve(arguments, arguments.get("preset")))
    return fixed


def _matrix(X: Any) -> Any:
    """The values :func:`vaekit.auto.profile` reads."""
    if is_anndata(X):
        return X.X
    return X.values if hasattr(X, "values") and not hasattr(X, "tocsr") else X


def _study(store: Any, name: str, split: Split, objective_name: str, X: Any) -> Any:
    """The study ``name`` in ``store``, created or loaded; refused when it was run on other
    data, another split or another objective."""
    import optuna

    # A failed trial's error reaches the caller; optuna's own log of it would be a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        storage=store, study_name=name, direction="maximize", load_if_exists=True
    )
    key = {
        "shape": list(X.shape),
        "seed": split.seed,
        "rows": {k: len(v) for k, v in split.rows.items()},
        "objective": objective_name,
    }
    before = study.user_attrs.get("vaekit")
    if before is None:
        study.set_user_attr("vaekit", key)
    elif before != key:
        raise ValueError(
            f"study {name!r} was run on {before}, not {key}: give the same data, seed and "
            "objective to continue it, or a new study name"
        )
    return study


def _optimize(
    study: Any,
    space: dict[str, Param],
    fixed: dict[str, Any],
    split: Split,
    score: Any,
    n_draws: int,
    prune: bool,
    pruner: Any,
    n_trials: int,
    seconds: float | None,
    verbose: bool,
) -> None:
    """Run trials until the study holds ``n_trials`` completed or pruned ones, or time is up."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    states = tuple(getattr(TrialState, s) for s in DONE_STATES)
    if len(study.get_trials(deepcopy=False, states=states)) >= n_trials:
        return
    # Seeded by the trials so far: a resumed study or a second worker draws new points.
    study.sampler = optuna.samplers.TPESampler(seed=split.seed + len(study.trials))
    study.pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=5)
    callbacks = [MaxTrialsCallback(n_trials, states=states)]
    if verbose:
        callbacks.append(_say)
    study.optimize(
        lambda t: run_trial(t, space, fixed, split, score, n_draws, prune),
        timeout=seconds,
        callbacks=callbacks,
        catch=(TrainingDiverged,),  # a diverged trial fails; the study goes on
    )


def _say(study: Any, trial: Any) -> None:
    """One line per trial on stderr: its value, or why it has none."""
    state = trial.state.name.lower()
    if state == "pruned":
        text = f"pruned after epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
    elif trial.value is not None:
        text = f"{trial.value:.3f} in {trial.user_attrs.get('seconds', 0):.1f} s"
    else:
        text = state
    print(f"trial {trial.number}: {text}", file=sys.stderr)


def _best(study: Any) -> Any:
    """The best completed trial; raise when none completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        counts = {}
        for t in study.trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        raise ValueError(
            f"no trial of study {study.study_name!r} completed ({counts or 'none ran'}); give "
            "more trials or a longer timeout"
        )
    return study.best_trial


def _refit(settings: dict[str, Any], split: Split, seed: int) -> VAE:
    """A VAE of ``settings`` fitted on the training and validation rows."""
    return VAE(**settings, seed=seed, verbose=False).fit(split.rest, split.y_rest)
