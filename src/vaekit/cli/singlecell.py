"""Single-cell commands: normalize (denoised expression) and de (differential expression)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vaekit.cli.common import (
    ANNOTATIONS,
    DATA,
    LAYER,
    MODEL,
    OUT,
    QUIET,
    TRANSPOSE,
    app,
    check_figure_path,
    conditions,
    read,
    status,
)

PANEL = "Single cell"
LAYER_NAME = "vaekit_normalized"  # the layer `vaekit normalize` writes into an .h5ad copy


@app.command(rich_help_panel=PANEL)
def de(
    model_dir: Path = MODEL,
    data: Path = DATA,
    groupby: str = typer.Option(..., "--groupby", help="obs column of the groups, e.g. cell_type."),
    group1: str = typer.Option(..., "--group1", help="The group of interest."),
    group2: str = typer.Option(None, "--group2", help="The reference group (default: the rest)."),
    out: Path = OUT,
    delta: float = typer.Option(0.25, "--delta", help="Smallest |log2 fold change| that counts."),
    fdr: float = typer.Option(0.05, "--fdr", help="Target false discovery rate of the calls."),
    draws: int = typer.Option(5000, "--draws", help="Posterior draws per group."),
    batch_correction: bool = typer.Option(
        True, "--batch-correction/--no-batch-correction", help="Average over the model's batches."
    ),
    figure: Path = typer.Option(None, "--volcano", help="Also draw a volcano plot (.png...)."),
    seed: int = typer.Option(0),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """Differentially expressed genes between two groups of cells (scvi-tools' "change" mode):
    per gene the posterior log2 fold change, P(|LFC| > delta), a Bayes factor and calls at the
    target FDR, as a table OUT (.tsv/.csv/.parquet), most probable first."""
    import vaekit
    from vaekit.analysis._limits import MAX_DRAWS, check_count
    from vaekit.analysis.differential import differential_expression
    from vaekit.data.writers import check_output, write_table

    check_output(out)
    if figure is not None:
        check_figure_path(figure)
    check_count("--draws", draws, low=2, high=MAX_DRAWS)
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    with status(quiet, f"comparing {group1} with {group2 or 'the rest'}..."):
        table = differential_expression(
            model,
            adata,
            groupby,
            group1,
            group2,
            delta,
            fdr=fdr,
            n_samples=draws,
            batch_correction=batch_correction,
            seed=seed,
            layer=layer,
        )
    strength = table.assign(size=table["lfc_mean"].abs())  # ties of proba_de: largest first
    order = strength.sort_values(["proba_de", "size"], ascending=False, kind="stable").index
    write_table(table.loc[order], out)
    if figure is not None:
        from vaekit.plot import save_figure, volcano

        save_figure(volcano(table), figure)
    a = table.attrs
    typer.echo(
        f"{int(table['is_de_fdr'].sum())} of {len(table)} genes differ between {a['group1']} "
        f"({a['n_cells1']} cells) and {a['group2']} ({a['n_cells2']} cells) at FDR {fdr:g} "
        f"(|LFC| > {delta:g}); wrote {out}" + (f" and {figure}" if figure else "")
    )


@app.command(rich_help_panel=PANEL)
def normalize(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    batch: str = typer.Option(
        None, "--batch", help="Every cell as if from this batch (comma-separated: the average)."
    ),
    library_size: float = typer.Option(1e4, "--library-size", help="Counts per cell (1: shares)."),
    draws: int = typer.Option(
        None, "--draws", help="Posterior draws averaged per cell.", show_default="25"
    ),
    seed: int = typer.Option(0),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """Denoised, library-normalised expression of DATA (the decoder's mean at LIBRARY_SIZE
    counts per cell). OUT is a cells x genes table (.tsv/.csv/.parquet), or .h5ad for a copy
    of DATA with the layer "vaekit_normalized" (NaN for genes the model does not use)."""
    import vaekit
    from vaekit.analysis._limits import MAX_DRAWS, check_count, check_positive
    from vaekit.data.writers import check_output

    h5ad = str(out).lower().endswith(".h5ad")
    check_output(out, (".h5ad",) if h5ad else None)
    check_positive("--library-size", library_size, "1e4")
    if draws is not None:
        check_count("--draws", draws, high=MAX_DRAWS)
    model = vaekit.load(model_dir)
    counterfactual = _batch(model, batch)
    adata = read(data, transpose, annotations, layer)
    with status(quiet, f"normalising {adata.n_obs} cells..."):
        values = model.normalized_expression(
            adata,
            conditions(model),
            batch=counterfactual,
            library_size=library_size,
            seed=seed,
            layer=layer,
            **({} if draws is None else {"n_draws": draws}),  # else the library's default
        )
    _write(adata, values, list(model.features_), out, h5ad)
    where = f" as if from batch {batch}" if batch else ""
    typer.echo(
        f"wrote the normalised expression of {values.shape[0]} cells x {values.shape[1]} genes"
        f"{where} to {out}"
    )


def _batch(model: Any, text: str | None) -> Any:
    """--batch as the model's categories: one, or a list to average over."""
    if text is None:
        return None
    if model.covariates_ is None:
        raise ValueError("--batch sets the model's batch, but this model has no conditions")
    values = [model.covariates_.parse(part.strip()) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


def _write(adata: Any, values: Any, genes: list[str], out: Path, h5ad: bool) -> None:
    import numpy as np
    import pandas as pd

    from vaekit.data.writers import write_h5ad, write_table

    if not h5ad:
        write_table(pd.DataFrame(values, index=adata.obs_names, columns=genes), out)
        return
    layer = np.full(adata.shape, np.nan, dtype=np.float32)
    where = adata.var_names.get_indexer(genes)
    if (where < 0).all() and len(genes) == adata.n_vars:  # a model fitted on unnamed columns
        where = np.arange(len(genes))
    layer[:, where[where >= 0]] = np.asarray(values)[:, where >= 0]
    adata.layers[LAYER_NAME] = layer
    write_h5ad(adata, out)
