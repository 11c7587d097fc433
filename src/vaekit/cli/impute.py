"""The command that fills in missing values: impute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vaekit.cli.baselines import baselines, echo_lines
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


@app.command(rich_help_panel="Anomalies and missing values")
def impute(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    n_iter: int = typer.Option(
        50, "--n-iter", help="Steps of the pseudo-Gibbs chain, or of the encoder's fill-in."
    ),
    method: str = typer.Option("importance", help="importance (MIWAE) or gibbs (pseudo-Gibbs)."),
    draws: int = typer.Option(1000, "--draws", help="Importance draws per sample."),
    samples: int = typer.Option(None, "--samples", hidden=True),  # the old name of --draws
    refine_steps: int = typer.Option(
        100, "--refine-steps", help="Steps fitting each sample's importance proposal (0: none)."
    ),
    imputations: int = typer.Option(
        None, "--imputations", help="M draws per missing entry: one table, an imputation column."
    ),
    baseline_share: float = typer.Option(
        0.1,
        "--baseline-share",
        help="Share of observed entries hidden in up to 200 samples, imputed by the model and "
        "by KNNImputer to compare their RMSE (0: no comparison).",
    ),
    seed: int = typer.Option(0),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """DATA with its empty or NaN cells filled in by the model, in DATA's own units.

    OUT is a table (.tsv/.csv/.parquet; with --imputations, M stacked copies after an
    `imputation` column), or .h5ad for a copy of the AnnData with X completed.
    """
    import vaekit
    from vaekit.data.writers import check_output

    h5ad = str(out).lower().endswith(".h5ad")
    check_output(out, (".h5ad",) if h5ad else None)
    if h5ad and imputations is not None:
        raise ValueError("--imputations writes a table; give OUT a .tsv, .csv or .parquet name")
    _check_counts(n_iter, draws if samples is None else samples, refine_steps, imputations)
    if not 0 <= baseline_share < 1:
        raise ValueError(f"--baseline-share must be in [0, 1), e.g. 0.1; got {baseline_share}")
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    n_missing = _count_missing(adata, layer)
    with status(quiet, f"imputing {n_missing} entries..."):
        result = model.impute(
            adata,
            conditions(model),
            n_iter=n_iter,
            n_draws=draws if samples is None else samples,
            n_imputations=imputations,
            method=method,
            seed=seed,
            layer=layer,
            refine_steps=refine_steps,
        )
        texts = _baseline(model, adata, baseline_share, layer, method=method, n_iter=n_iter,
                          n_draws=draws if samples is None else samples,
                          refine_steps=refine_steps)  # fmt: skip
    _write(result, out, h5ad, layer)
    copies = "" if imputations is None else f" ({imputations} imputations)"
    typer.echo(
        f"imputed {n_missing} missing entries of {adata.n_obs} samples x {adata.n_vars} "
        f"features by {method}{copies}; wrote {out}"
    )
    echo_lines(texts)


def _baseline(model: Any, adata: Any, share: float, layer: str | None, **options: Any) -> list:
    """The model's RMSE on hidden observed entries beside KNNImputer's (none for share 0)."""
    from vaekit.analysis.baselines import imputation_baseline

    if share == 0:
        return []
    y = conditions(model)
    return baselines(
        lambda: imputation_baseline(model, adata, y, share=share, layer=layer, **options)
    )[0]


def _check_counts(n_iter: int, draws: int, refine_steps: int, imputations: int | None) -> None:
    """The flags' counts, before reading anything (the library checks them again)."""
    from vaekit.analysis._limits import MAX_DRAWS, MAX_IMPUTATIONS, check_count

    check_count("--n-iter", n_iter, high=MAX_DRAWS)
    check_count("--draws", draws, high=MAX_DRAWS)
    check_count("--refine-steps", refine_steps, low=0, high=MAX_DRAWS)
    if imputations is not None:
        check_count("--imputations", imputations, high=MAX_IMPUTATIONS)


def _count_missing(adata: Any, layer: str | None) -> int:
    import numpy as np

    X = adata.X if layer is None else adata.layers[layer]
    values = X.data if hasattr(X, "toarray") else np.asarray(X)
    return int(np.isnan(values).sum())


def _write(result: Any, out: Path, h5ad: bool, layer: str | None) -> None:
    """The completed AnnData(s) as a .h5ad or as one table."""
    import pandas as pd

    from vaekit.data.writers import write_h5ad, write_table

    if h5ad:
        write_h5ad(result, out)
        return
    copies = result if isinstance(result, list) else [result]
    frames = [_frame(a, layer) for a in copies]
    if isinstance(result, list):
        for i, frame in enumerate(frames, start=1):
            frame.insert(0, "imputation", i)
    write_table(pd.concat(frames), out)


def _frame(adata: Any, layer: str | None) -> Any:
    import pandas as pd

    X = adata.X if layer is None else adata.layers[layer]
    values = X.toarray() if hasattr(X, "toarray") else X
    return pd.DataFrame(values, index=adata.obs_names, columns=adata.var_names)
