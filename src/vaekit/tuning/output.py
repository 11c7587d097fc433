"""What a tuning run leaves in its folder: the best model, the trials as a table, and a
self-contained HTML report with optuna's matplotlib plots, each written atomically."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from vaekit.atomic import atomic_file
from vaekit.report.document import Panel, Report, Section

MODEL_DIR, TRIALS_FILE, REPORT_FILE, STUDY_FILE = "model", "trials.csv", "report.html", "study.db"
# What `vaekit tune` writes in its folder (SQLite's journal beside the study while it runs).
FILES = (MODEL_DIR, TRIALS_FILE, REPORT_FILE, STUDY_FILE, f"{STUDY_FILE}-journal")


def trials_table(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, epochs, where it was pruned, and the
    settings drawn (``params_*``)."""
    df = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    df = df.rename(columns=lambda c: c.replace("user_attrs_", ""))
    for column in ("epochs", "seconds", "pruned_at_epoch"):
        if column not in df.columns:
            df[column] = pd.NA
    first = ["number", "state", "value", "seconds", "epochs", "pruned_at_epoch"]
    return df[first + [c for c in df.columns if c not in first]]


def write_trials(study: Any, path: Path) -> Path:
    """The trials table as CSV, atomically."""
    table = trials_table(study)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def write_model(result: Any, path: Path) -> None:
    """The refitted best model as an ordinary model folder (``vaekit.load`` reads it)."""
    metadata = {
        "tuning": {
            "study": result.study.study_name,
            "storage": result.storage,
            "trials": len(result.study.trials),
            "best_trial": result.study.best_trial.number,
            "settings": {k: _plain(v) for k, v in result.settings.items()},
            "test": result.test,
        }
    }
    result.model.save(path, metadata=json.loads(json.dumps(metadata, default=str)))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def write_report(result: Any, path: Path) -> Path:
    """The tuning report: a summary, the default vs tuned comparison on the test rows, the
    best settings, and optuna's optimisation history, importances and pruning curves."""
    study, test = result.study, result.test
    counts = trials_table(study)["state"].value_counts().to_dict()
    gain = test["tuned"] - test["default"]
    summary = [
        ("study", "Study", f"{study.study_name} ({result.storage or 'in memory'})"),
        ("trials", "Trials", ", ".join(f"{n} {s.lower()}" for s, n in counts.items())),
        ("objective", "Objective", f"{test['what']} on held-out validation rows"),
        ("default", "Defaults on the test rows", f"{test['default']:.3f}"),
        ("tuned", "Tuned on the test rows", f"{test['tuned']:.3f} ({gain:+.3f})"),
        ("n_test", "Test rows (never seen by the tuner)", str(test["n_test"])),
    ]
    report = Report(
        title="vaekit tuning report",
        subtitle=f"study {study.study_name}: best trial {study.best_trial.number}",
        summary=summary,
        numbers={**test, "trials": len(study.trials)},
        sections=[_settings_section(result), _plots_section(study)],
        footer="Written by vaekit tune; plots by optuna.visualization.matplotlib.",
    )
    return report.write(path)


def _settings_section(result: Any) -> Section:
    notes = [f"{k} = {_plain(v)}" for k, v in sorted(result.settings.items())]
    space = [f"{p.name}: {p.describe()}" for p in result.space.values()]
    fixed = [f"{k} = {_plain(v)} (fixed)" for k, v in sorted(result.fixed.items())]
    return Section(
        "best",
        "Best settings",
        "The best trial's settings (refitted on the training and validation rows); then the "
        "space searched and the fixed settings.",
        notes=notes + ["Searched: " + "; ".join(space)] + fixed,
    )


# title, caption, optuna.visualization.matplotlib function name
PLOTS: tuple[tuple[str, str, str], ...] = (
    ("Optimisation history", "The objective of each trial and the best so far.",
     "plot_optimization_history"),
    ("Parameter importances", "How much each setting explains the objective (fANOVA).",
     "plot_param_importances"),
    ("Pruning", "Each trial's validation ELBO per epoch; pruned trials stop early.",
     "plot_intermediate_values"),
)


def _plots_section(study: Any) -> Section:
    """optuna's plots that the study allows; one that it does not is a note, not an error."""
    from optuna.visualization import matplotlib as ovm

    section = Section("plots", "Search", "optuna's plots of the study.")
    for title, caption, name in PLOTS:
        try:
            fig = _figure(getattr(ovm, name), study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            section.notes.append(f"{title}: not drawn ({err})")
            continue
        section.panels.append(Panel.from_figure(fig, title, caption))
        _close(fig)
    return section


def _close(fig: Any) -> None:
    """Forget ``fig`` in pyplot's registry, where optuna's plots (``plt.subplots``) put it:
    vaekit itself never imports pyplot, so it closes the figure through optuna's import."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def _figure(plot: Callable, study: Any) -> Any:
    with warnings.catch_warnings():  # optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore")
        axes = plot(study)
    ax = axes.flat[0] if hasattr(axes, "flat") else axes
    fig = ax.figure
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    return fig


def write_all(result: Any, out: Path) -> dict[str, Path]:
    """The model folder, the trials table and the report in ``out``."""
    paths = {k: out / k for k in (MODEL_DIR, TRIALS_FILE, REPORT_FILE)}
    write_model(result, paths[MODEL_DIR])
    write_trials(result.study, paths[TRIALS_FILE])
    write_report(result, paths[REPORT_FILE])
    return paths
