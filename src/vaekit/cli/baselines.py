"""What the commands share to show a baseline beside vaekit's figure: the lines and JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def baselines(compute: Callable[[], Any]) -> tuple[list[str], dict[str, Any]]:
    """(the lines to print, the JSON) of ``compute``, a function of
    :mod:`vaekit.analysis.baselines`; a baseline that these data do not allow
    (:class:`~vaekit.analysis.baselines.BaselineSkipped`) is one stated line, not an error."""
    from vaekit.analysis.baselines import BaselineSkipped, lines, to_json

    try:
        table = compute()
    except BaselineSkipped as err:
        return [f"baselines: skipped ({err})"], {"skipped": str(err)}
    return lines(table), to_json(table)


def echo_lines(texts: list[str]) -> None:
    for text in texts:
        typer.echo(text)


def training_split(model: Any, adata: Any) -> tuple[Any, Any] | None:
    """(held-out rows, training rows) of DATA when it is the model's training data, as
    `vaekit train` recorded its shape and the model its validation rows; else None."""
    import numpy as np

    from vaekit.report.summary import is_training_data, validation_rows

    if not is_training_data(model, adata.n_obs, adata.n_vars):
        return None
    held = validation_rows(model, adata.n_obs)
    if len(held) == 0:
        return None
    return held, np.setdiff1d(np.arange(adata.n_obs), held)


ANOMALY = {"1", "true", "yes", "anomaly", "anomalous", "1.0"}
NORMAL = {"0", "false", "no", "normal", "control", "0.0"}


def anomaly_labels(adata: Any, column: str) -> Any:
    """(n,) bool: the annotation ``column`` of DATA read as known anomalies; raises naming the
    column and the first value that is neither an anomaly nor normal."""
    import numpy as np

    if column not in adata.obs.columns:
        raise ValueError(
            f"--anomalies {column!r}: no such annotation column; the annotations have "
            f"{list(map(str, adata.obs.columns))} (give them with --annotations FILE)"
        )
    values = adata.obs[column]
    words = values.astype(str).str.strip().str.lower()
    bad = ~(words.isin(ANOMALY) | words.isin(NORMAL)) | values.isna().to_numpy()
    if bad.any():
        where = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"--anomalies {column!r}: sample {adata.obs_names[where]!r} has "
            f"{values.iloc[where]!r}; mark anomalies 1/true/yes/anomaly and the others "
            "0/false/no/normal"
        )
    return words.isin(ANOMALY).to_numpy()
