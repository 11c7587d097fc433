"""Commands that find samples unlike the training data: score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vaekit.cli.baselines import anomaly_labels, baselines, echo_lines
from vaekit.cli.common import (
    ANNOTATIONS,
    DATA,
    LAYER,
    MODEL,
    OUT,
    QUIET,
    TRANSPOSE,
    app,
    conditions,
    read,
    status,
)

DEFAULT_FPR = 0.05


@app.command(rich_help_panel="Anomalies and missing values")
def score(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    method: str = typer.Option(
        None,
        help="elbo, iwae, reconstruction, deviance or mean_deviance (default: the stored "
        "calibration's method, else mean_deviance for Bernoulli and count models, else elbo).",
    ),
    control: Path = typer.Option(
        None, "--control", help="Control samples (not used in training) to calibrate against now."
    ),
    fpr: float = typer.Option(
        None, "--fpr", help=f"False-positive rate of the --control calibration [{DEFAULT_FPR}]."
    ),
    save_calibration: bool = typer.Option(
        False, "--save-calibration", help="Store the --control calibration in the model folder."
    ),
    contributions: Path = typer.Option(
        None, "--contributions", help="Also write per-feature contributions (samples x features)."
    ),
    anomalies: str = typer.Option(
        None,
        "--anomalies",
        help="Annotation column marking the known anomalies (1/true/yes/anomaly, else "
        "0/false/no/normal): prints the AUROC of the scores beside PCA's and IsolationForest's.",
    ),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """Anomaly scores of DATA (higher = less like the training data), with a flag and a p-value
    per sample when the model is calibrated (stored, or now with --control)."""
    import vaekit
    from vaekit.analysis.anomaly import default_method, get_score
    from vaekit.data.writers import check_output, write_table

    _check_options(control, fpr, save_calibration)
    for path in (out, contributions):
        if path is not None:
            check_output(path)
    model = vaekit.load(model_dir)
    stored = getattr(model, "calibration_", None)
    method = method or (stored.method if stored is not None else default_method(model))
    get_score(method)  # an unknown method fails before any reading
    adata = read(data, transpose, annotations, layer)
    truth = None if anomalies is None else anomaly_labels(adata, anomalies)
    y = conditions(model)
    controls = None
    with status(quiet, f"scoring {adata.n_obs} samples..."):
        if control is not None:
            controls = read(control, transpose, annotations, layer)
            model.calibrate(controls, y, fpr=DEFAULT_FPR if fpr is None else fpr, method=method)
        calibration = _usable(getattr(model, "calibration_", None), method)
        n_draws = None if calibration is None else calibration.n_draws
        table = _scores(model.anomaly_score(adata, y, method, n_draws=n_draws), calibration)
        table.index = adata.obs_names.rename("sample")
        parts = None if contributions is None else model.anomaly_contributions(adata, y)
        texts = _baselines(model, adata, table["score"], truth, controls, method, n_draws)
    # Written only once everything is computed, so a failure leaves no partial set of outputs.
    write_table(table, out)
    if parts is not None:
        write_table(parts, contributions)
    if save_calibration:
        from vaekit.saving import write_calibration

        write_calibration(model_dir, model.calibration_)
    typer.echo(_summary(table, method, calibration, out, stored))
    if save_calibration:
        typer.echo(f"stored the calibration in {model_dir}/")
    echo_lines(texts)


def _baselines(
    model: Any, adata: Any, scores: Any, truth: Any, controls: Any, method: str, n_draws: Any
) -> list[str]:
    """The AUROC of the scores beside the baselines', when anomalies or controls are known."""
    from vaekit.analysis.baselines import anomaly_baseline

    if truth is None and controls is None:
        return []
    y = conditions(model)
    control_scores = None
    if controls is not None:
        control_scores = model.anomaly_score(controls, y, method, n_draws=n_draws)

    def compute() -> Any:
        return anomaly_baseline(
            model, adata, scores.to_numpy(), truth, y=y, control=controls,
            control_scores=control_scores, control_y=y,
        )  # fmt: skip

    return baselines(compute)[0]


def _check_options(control: Path | None, fpr: float | None, save: bool) -> None:
    """--fpr and --save-calibration belong to a calibration made now, with --control."""
    if control is None and fpr is not None:
        raise ValueError(
            "--fpr sets the false-positive rate of a new calibration; give the control samples "
            "with --control FILE too"
        )
    if control is None and save:
        raise ValueError(
            "--save-calibration stores the calibration made with --control FILE; give --control"
        )


def _usable(calibration: Any, method: str) -> Any:
    """The calibration if it is for ``method`` (thresholds of other scores do not apply)."""
    return calibration if calibration is not None and calibration.method == method else None


def _scores(scores: Any, calibration: Any) -> Any:
    import pandas as pd

    table = pd.DataFrame({"score": scores})
    if calibration is not None:
        table["flag"] = calibration.flags(scores)
        table["p_value"] = calibration.p_values(scores)
    return table


def _summary(table: Any, method: str, calibration: Any, out: Path, stored: Any) -> str:
    text = f"wrote {method} anomaly scores of {len(table)} samples to {out}"
    if calibration is not None:
        return (
            f"{text}; {int(table['flag'].sum())} flagged at fpr {calibration.fpr} "
            f"(threshold {calibration.threshold:.4g}, {calibration.n_control} control samples)"
        )
    if stored is not None:
        return (
            f"{text}; no flags: the model is calibrated for {stored.method} scores, "
            f"give --control FILE to calibrate {method} scores"
        )
    return f"{text}; no flags: the model is not calibrated, give --control FILE"
