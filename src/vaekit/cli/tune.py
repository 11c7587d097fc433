"""`vaekit tune`: search a VAE's settings with optuna, refit the best, compare with defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vaekit.cli.common import ANNOTATIONS, DATA, LAYER, QUIET, TRANSPOSE, app, read

TUNE_OUT = typer.Option(
    ..., "-o", "--out", help="Folder for model/, trials.csv, report.html (and study.db)."
)


@app.command(rich_help_panel="Train and use a model")
def tune(
    data: Path = DATA,
    out: Path = TUNE_OUT,
    trials: int = typer.Option(
        50, "--trials", min=1, help="Trials the study should hold, completed or pruned "
        "(failed ones do not count; a resumed study runs only those missing)."
    ),
    timeout: str = typer.Option(
        None, "--timeout", help="Start no trial after this long: 90s, 30m, 2h."
    ),
    storage: str = typer.Option(
        None, "--storage", help="Study database URL: sqlite:///study.db, postgresql://user@host/db "
        "(several workers may share it); by default SQLite in OUT/study.db."
    ),
    study: str = typer.Option("vaekit", "--study", help="Study name; the same name continues it."),
    space: Path = typer.Option(
        None, "--space", help="YAML search space keyed by setting names, e.g. n_latent: [2, 32], "
        "lr: {low: 1.0e-4, high: 1.0e-2, log: true}, hidden: {choices: ['', '128']}, beta: 1.0 "
        "(a value fixes it)."
    ),
    config: Path = typer.Option(
        None, "--config", help="YAML settings every trial takes untouched (as `vaekit train "
        "--config`)."
    ),
    objective: str = typer.Option(
        "iwae", "--objective", help="On held-out rows: iwae (importance-sampled "
        "log-likelihood), elbo, separation:COLUMN (silhouette of an annotation's groups in the "
        "latent space) or auroc:COLUMN (anomaly AUROC against the anomalies COLUMN marks)."
    ),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Prune poor trials early."),
    draws: int = typer.Option(100, "--draws", min=1, help="Importance samples per row (iwae)."),
    heartbeat: int = typer.Option(
        60, "--heartbeat", min=1, help="Seconds between a trial's heartbeats in the database: a "
        "trial whose worker died is failed after two missed beats and retried."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seeds the split and the sampler."),
    annotations: Path = ANNOTATIONS,
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """Tune a VAE's settings on DATA with optuna and save the best model.

    Trials train on part of the rows and are scored on held-out ones; the best settings are
    refitted and compared with the defaults on test rows the tuner never saw.
    """
    from vaekit.data.writers import check_output_dir
    from vaekit.settings import READ_KEYS, read_settings
    from vaekit.tuning import parse_timeout, read_space, tune
    from vaekit.tuning.output import FILES
    from vaekit.tuning.study import check_storage_url
    from vaekit.tuning.study import objective as check_objective

    # Every input is checked before DATA is read or anything is written.
    check_output_dir(out, FILES)
    seconds = parse_timeout(timeout)
    check_objective(objective)
    if storage is not None:
        check_storage_url(storage)
    read_space(space)
    settings = read_settings(config)
    y = settings.pop("condition", None)
    fixed = {k: v for k, v in settings.items() if k not in READ_KEYS and k != "labels"}
    adata = read(data, transpose, annotations, layer)
    result = tune(
        adata, y.split(",") if y else None, out=out, n_trials=trials, timeout=seconds,
        storage_url=storage, study_name=study, space=space, fixed=fixed,
        objective_name=objective, prune=prune, n_draws=draws, heartbeat=heartbeat, seed=seed,
        verbose=not quiet,
    )
    _print(result, out)


def _print(result: Any, out: Path) -> None:
    test, best = result.test, result.study.best_trial
    typer.echo(
        f"best trial {best.number} of {len(result.study.trials)}: {test['objective']} "
        f"{best.value:.3f} on the validation rows"
    )
    typer.echo(
        f"on {test['n_test']} test rows: defaults {test['default']:.3f}, tuned "
        f"{test['tuned']:.3f} ({test['tuned'] - test['default']:+.3f})"
    )
    typer.echo(f"saved the model to {out}/model/, the trials to {out}/trials.csv and the "
               f"report to {out}/report.html")
