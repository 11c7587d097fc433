"""The report's numbers: which rows are held out, the model's ELBO and log-likelihood on them,
and the summary table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vaekit._version import __version__
from vaekit.analysis.baselines import (
    BaselineSkipped,
    reconstruction_baseline,
    separation_baseline,
    verdict,
)
from vaekit.analysis.evaluation import evaluate
from vaekit.plot import _data
from vaekit.train import seeded_split
from vaekit.vae import VAE

TIMES, MINUS = "\u00d7", "\u2212"


@dataclass
class HeldOut:
    """Rows of DATA to evaluate on and, in words, what they are."""

    rows: np.ndarray
    description: str
    fitted: np.ndarray | None = None  # the training rows, when DATA is the training data


def is_training_data(model: VAE, n: int, n_features: int) -> bool:
    """Whether DATA has the shape of the data the command line trained the model on (a model
    trained from Python does not record it)."""
    shape = (getattr(model, "metadata_", None) or {}).get("shape")
    return shape is not None and list(shape) == [n, n_features]


def validation_rows(model: VAE, n: int) -> np.ndarray:
    """The rows that training held out for validation, as the model stores them; for a model
    saved before vaekit stored them, drawn again as :func:`vaekit.train.train` drew them
    (:func:`vaekit.train.seeded_split` with the model's seed, on this torch release)."""
    stored = getattr(model, "validation_rows_", None)
    if stored is None:
        _, validation, _ = seeded_split(n, model.settings_["validation_fraction"], model.seed_)
        return np.sort(validation.numpy())
    rows = np.asarray(stored, dtype=np.int64)
    if len(rows) and rows.max() >= n:
        raise ValueError(
            f"the model held out row {rows.max()} in training, but DATA has {n} rows; pass the "
            "data it was trained on, or training_data=False"
        )
    return rows


def held_out(
    model: VAE,
    n: int,
    n_features: int,
    training_data: bool | None = None,
    most: int | None = None,
    seed: int = 0,
    data_name: str | None = None,
) -> HeldOut:
    """The rows to report held-out numbers on.

    Parameters
    ----------
    model : VAE
    n, n_features : int
        Shape of DATA.
    training_data : bool, optional
        Whether DATA is the data the model was trained on, in the same order: then its
        validation rows are used. By default, when DATA has the shape recorded by
        ``vaekit train``.
    most : int, optional
        Rows at most (a seeded random subset beyond).
    seed : int
    data_name : str, optional
        What DATA is, for the description.
    """
    if training_data is None:
        training_data = is_training_data(model, n, n_features)
    fitted = None
    if not training_data:
        rows, text = np.arange(n), f"{data_name or 'DATA as given'} ({n:,} samples)"
    else:
        rows = validation_rows(model, n)
        fitted = np.setdiff1d(np.arange(n), rows) if len(rows) else None
        text = f"the {len(rows):,} validation samples held out in training"
        if getattr(model, "validation_rows_", None) is None:
            text += " (drawn again from its seed)"
        if len(rows) == 0:
            rows = np.arange(n)
            text = f"the {n:,} training samples (training held none out: optimistic numbers)"
    if most is not None and len(rows) > most:
        rows = rows[_data.subsample(len(rows), most, seed)]
        text += f", a random {most:,} of them"
    return HeldOut(rows, text, fitted)


def baselines(
    model: VAE,
    X: Any,
    y: Any,
    rows: HeldOut,
    annotations: pd.DataFrame | None,
    layer: str | None,
    shown: np.ndarray,
    seed: int = 0,
) -> list[pd.DataFrame | str]:
    """The baseline tables (:mod:`vaekit.analysis.baselines`) on the held-out rows: PCA's
    reconstruction (fitted on the training rows when DATA is the training data, else
    cross-fitted) and, with annotations, their separation; a string says why one is not
    computed. Annotations are separated on the rows ``shown`` in the latent maps."""
    take, cond = _data.take_rows, _data.take_conditions
    X_eval, y_eval = take(X, rows.rows), cond(y, rows.rows)
    train = {} if rows.fitted is None else {
        "train": take(X, rows.fitted), "train_y": cond(y, rows.fitted)
    }  # fmt: skip
    tasks = [
        lambda: reconstruction_baseline(model, X_eval, y_eval, layer=layer, seed=seed, **train)
    ]
    if annotations is not None and annotations.shape[1]:
        X_shown, y_shown, frame = take(X, shown), cond(y, shown), annotations.iloc[shown]
        tasks.append(lambda: separation_baseline(model, X_shown, frame, y_shown, layer=layer))
    out: list[pd.DataFrame | str] = []
    for task in tasks:
        try:
            out.append(task())
        except BaselineSkipped as err:
            out.append(str(err))
    if not isinstance(out[0], str):  # say which held-out rows, as the ELBO's row does
        out[0].attrs["evaluated_on"] = f"{rows.description}: {out[0].attrs['evaluated_on']}"
    return out


def baseline_rows(tables: list[pd.DataFrame | str]) -> tuple[list[tuple[str, str, str]], set]:
    """(key, label, text) summary rows of the baselines, and the keys of those the baseline
    wins (the report flags them)."""
    rows, flagged = [], set()
    for i, table in enumerate(tables):
        if isinstance(table, str):
            rows.append((f"baseline_{i}", "Baseline", f"not computed: {table}"))
            continue
        rows.append((f"baselines_on_{i}", "Baselines on", table.attrs["evaluated_on"]))
        texts = _baseline_texts(table)
        for j, (row, text) in enumerate(zip(table.itertuples(), texts, strict=True)):
            key = f"baseline_{row.task}_{j}"
            rows.append((key, f"Baseline: {row.what}", text))
            if row.better not in ("vaekit", "tie"):
                flagged.add(key)
    return rows, flagged


def _baseline_texts(table: pd.DataFrame) -> list[str]:
    """Per row: the two figures, the metric, and which is better, in words."""
    texts = []
    for row in table.itertuples():
        direction = "higher" if row.higher_is_better else "lower"
        text = (
            f"VAE {row.vaekit:.4g}, {row.baseline} {row.baseline_value:.4g} ({row.metric}, "
            f"{direction} is better): "
        )
        texts.append(text + verdict(row))
    return texts



def numbers(
    model: VAE, X: Any, y: Any, rows: HeldOut, importance_samples: int, layer: str | None
) -> dict[str, Any]:
    """The model's numbers for the summary: :func:`vaekit.analysis.evaluate` on the held-out
    rows, and what the model records of its training."""
    result = evaluate(
        model,
        _data.take_rows(X, rows.rows),
        _data.take_conditions(y, rows.rows),
        layer=layer,
        importance_samples=importance_samples,
    )
    history = model.history_
    return {
        **result,
        "evaluated_on": rows.description,
        "likelihood": model.settings_["likelihood"],
        "epochs": len(history),
        "best_epoch": int(model.best_epoch_),
        "training_seconds": float(model.training_seconds_),
        "rollback_epochs": rollback_epochs(history),
        "resumes": list(getattr(model, "resumes_", None) or []),
        "command": (getattr(model, "metadata_", None) or {}).get("command"),
        "version": __version__,
    }


def rollback_epochs(history: pd.DataFrame) -> list[int]:
    """The epochs that training did again after the loss diverged (roll-back, half the
    learning rate): where the ``rollbacks`` count rises."""
    if "rollbacks" not in history:
        return []
    counts = history["rollbacks"].fillna(0).astype(int)
    rises = counts.diff().fillna(counts.iloc[0]) > 0
    return [int(e) for e in history.index[rises.to_numpy()]]


def interruptions(values: dict[str, Any]) -> str | None:
    """What interrupted training, in words; None when nothing did."""
    parts = []
    epochs = values.get("rollback_epochs") or []
    if epochs:
        parts.append(
            f"the loss diverged {len(epochs)} time(s); training rolled back and went on with "
            f"half the learning rate at epoch(s) {', '.join(map(str, epochs))}"
        )
    resumes = values.get("resumes") or []
    if resumes:
        where = ", ".join(f"epoch {r['epoch']} step {r['step']}" for r in resumes)
        parts.append(f"resumed from checkpoints {len(resumes)} time(s) ({where})")
    return "; ".join(parts) or None


def _architecture(model: VAE) -> str:
    config = model.module_.config
    hidden = ", ".join(str(h) for h in model.settings_["hidden"]) or "none"
    decoder = model.settings_.get("decoder") or "mlp"
    decoder = "" if decoder == "mlp" else f", {decoder} decoder"
    return f"{config.architecture}, hidden layers ({hidden}){decoder}"


def _preprocessing(model: VAE) -> str:
    """The steps with their settings, e.g. ``log1p(base=2), select_variable(n=1000, ...)``."""
    texts = []
    for step in model.preprocessor_.to_config():
        options = ", ".join(f"{k}={v}" for k, v in step.items() if k != "name" and v is not None)
        texts.append(f"{step['name']}({options})" if options else step["name"])
    return ", ".join(texts) or "none"


def _conditions(model: VAE) -> str:
    if model.covariates_ is None:
        return "none"
    return ", ".join(f"{c.name} ({c.kind})" for c in model.covariates_.columns)


def _data_text(model: VAE, n: int, n_features: int, image: tuple | None) -> str:
    text = f"{n:,} samples {TIMES} {n_features:,} features"
    if image is not None:
        text += f" (images {f' {TIMES} '.join(str(v) for v in image)})"
    if len(model.features_) != n_features:
        text += f"; {len(model.features_):,} modelled after preprocessing"
    return text


def summary_rows(
    model: VAE, values: dict[str, Any], n: int, n_features: int, image: tuple | None
) -> list[tuple[str, str, str]]:
    """(key, label, text) rows of the summary table, in reading order."""
    ll = values.get("log_likelihood")
    k = values.get("importance_samples")
    command = values["command"]
    rows = [
        ("data", "Data", _data_text(model, n, n_features, image)),
        ("likelihood", "Likelihood", values["likelihood"]),
        ("n_latent", "Latent features", str(values["n_latent"])),
        ("architecture", "Architecture", _architecture(model)),
        ("preprocess", "Preprocessing", _preprocessing(model)),
        *(
            [("auto", "Chosen from the data", "; ".join(notes))]
            if (notes := model.settings_.get("auto"))
            else []
        ),
        ("conditions", "Conditions", _conditions(model)),
        ("annotations", "Annotations", ", ".join(values["annotations"]) or "none"),
        ("epochs", "Epochs trained / best", f"{values['epochs']} / {values['best_epoch']}"),
        ("evaluated_on", "Held-out numbers on", values["evaluated_on"]),
        (
            "elbo",
            "ELBO",
            f"{values['elbo']:.2f} nats per sample = E_q log p(x|z) "
            f"{-values['reconstruction']:.2f} {MINUS} KL {values['kl']:.2f}",
        ),
    ]
    if ll is not None:
        rows.append(("log_likelihood", f"log p(x), IWAE with k = {k}", f"{ll:.2f} nats per sample"))
    rows += [
        (
            "active_units",
            "Active latent features",
            f"{values['active_units']} of {values['n_latent']}",
        ),
        ("training_seconds", "Training time", f"{values['training_seconds']:.1f} s"),
        *(
            [("interruptions", "Interruptions", text)]
            if (text := interruptions(values))
            else []
        ),
        ("version", "vaekit", values["version"]),
        ("command", "Trained by", command)
        if command
        else ("trained_by", "Trained by", "Python (no command recorded)"),
    ]
    return rows
