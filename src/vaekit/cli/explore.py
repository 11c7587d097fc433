"""Commands that look inside a model: interpret, interpolate, traverse and plot latent."""

from __future__ import annotations

from pathlib import Path

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
    check_figure_path,
    conditions,
    plot_app,
    read,
    status,
)


@app.command(rich_help_panel="Look inside a model")
def interpret(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    annotations: Path = ANNOTATIONS,
    gene_sets: Path = typer.Option(
        None, "--gene-sets", help="GMT file of gene sets to test (with the built-in chrX/chrY)."
    ),
    top: int = typer.Option(20, "--top", help="Top genes per latent feature and sign."),
    sd: float = typer.Option(2.5, "--sd", help="High-weight genes: beyond mean +/- SD x this."),
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """What the latent features mean: gene loadings, top genes, associations with the sample
    annotations and gene-set enrichment, with a summary.md, written into the folder OUT."""
    import vaekit
    from vaekit.analysis._limits import check_count, check_positive
    from vaekit.analysis.findings import FILES
    from vaekit.analysis.findings import interpret as interpret_model
    from vaekit.data.writers import check_output_dir

    check_output_dir(out, FILES)  # a file, or a folder of the user's own files, is refused
    check_count("--top", top)
    check_positive("--sd", sd, "2.5")
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    with status(quiet, f"interpreting {model.module_.config.n_latent} latent features..."):
        result = interpret_model(
            model, adata, y=conditions(model), gene_sets=gene_sets, k=top, sd=sd
        )
        result.write(out)
        texts = _separation(model, adata)
    typer.echo(result.summary())
    echo_lines(texts)
    typer.echo(f"wrote loadings, top genes, associations and summary.md to {out}/")


def _separation(model: object, adata: object) -> list[str]:
    """How well the annotations are separated in the latent space beside PCA's (none without
    annotations)."""
    from vaekit.analysis.baselines import separation_baseline

    if adata.obs.shape[1] == 0:
        return []
    y = conditions(model)
    return baselines(lambda: separation_baseline(model, adata, adata.obs, y))[0]


@app.command(rich_help_panel="Look inside a model")
def interpolate(
    model_dir: Path = MODEL,
    data: Path = DATA,
    start: str = typer.Option(..., "--from", help="Start sample: its ID or 0-based row number."),
    end: str = typer.Option(..., "--to", help="End sample: its ID or 0-based row number."),
    out: Path = OUT,
    steps: int = typer.Option(8, help="Points on the path, both ends included."),
    method: str = typer.Option("linear", help="linear or slerp."),
    condition: str = typer.Option(None, "--condition", help="The condition of the whole path."),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
) -> None:
    """Decode the latent path between two samples of DATA: a row of frames (OUT.png) for image
    models, else a table with a row per step."""
    import vaekit
    from vaekit.analysis._limits import MAX_STEPS, check_count
    from vaekit.analysis.paths import find_sample, to_image_grid
    from vaekit.analysis.paths import interpolate as interpolate_path
    from vaekit.data.writers import check_output, check_output_name, write_png, write_table

    check_output_name(out)
    check_count("--steps", steps, low=2, high=MAX_STEPS)
    model = vaekit.load(model_dir)
    png = model.image_shape_ is not None and str(out).lower().endswith(".png")
    check_output(out, (".png",) if png else None)
    adata = read(data, transpose, annotations, layer)
    a, b = find_sample(adata, start), find_sample(adata, end)
    path = interpolate_path(model, a, b, steps, method, condition)
    if png:
        write_png(to_image_grid(path, model.image_shape_), out, scale=2)
    else:
        write_table(path.to_frame(), out)
    typer.echo(f"wrote a {method} path of {steps} steps from {start} to {end} to {out}")


@app.command(rich_help_panel="Look inside a model")
def traverse(
    model_dir: Path = MODEL,
    data: Path = typer.Argument(
        None, help="Data to order the latent features by KL and to take --sample from."
    ),
    out: Path = OUT,
    sample: str = typer.Option(
        None, "--sample", help="Traverse around this sample of DATA (ID or row number)."
    ),
    features: int = typer.Option(10, "--features", help="Show the N most used latent features."),
    limit: float = typer.Option(3.0, "--range", help="Offsets from -RANGE to RANGE."),
    steps: int = typer.Option(7, help="Offsets per latent feature."),
    condition: str = typer.Option(None, "--condition", help="The condition of the traversal."),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
) -> None:
    """Vary one latent feature at a time around a sample (or the origin), decoded: a grid
    (OUT.png, a row per feature) for image models, else a long table."""
    import vaekit
    from vaekit.analysis.paths import find_sample, to_image_grid, traversal_values
    from vaekit.analysis.paths import traverse as traverse_features
    from vaekit.data.writers import check_output, check_output_name, write_png, write_table

    if sample is not None and data is None:
        raise ValueError("--sample picks a sample of DATA; give DATA too")
    check_output_name(out)
    values = traversal_values(limit, steps)
    model = vaekit.load(model_dir)
    png = model.image_shape_ is not None and str(out).lower().endswith(".png")
    check_output(out, (".png",) if png else None)
    adata = None if data is None else read(data, transpose, annotations, layer)
    x = None if sample is None else find_sample(adata, sample)
    data_y = None if adata is None else conditions(model)
    result = traverse_features(model, x, features, values, condition, data=adata, data_y=data_y)
    if png:
        write_png(to_image_grid(result, model.image_shape_), out, scale=2)
    else:
        write_table(result.to_frame(), out)
    typer.echo(
        f"wrote latent features {result.features} (ordered by {result.ordered_by}) x "
        f"{len(values)} values to {out}"
    )


@plot_app.command("latent")
def plot_latent(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    color: str = typer.Option(None, "--color", help="Annotation column to colour by."),
    method: str = typer.Option("pca", "--method", help="pca, tsne or umap."),
    seed: int = typer.Option(0, help="Seed of t-SNE / UMAP."),
    annotations: Path = ANNOTATIONS,
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
) -> None:
    """A 2-D map of the latent means of DATA, coloured by an annotation (.png, .svg or .pdf)."""
    import vaekit
    from vaekit.analysis.latent_map import write_latent_map

    check_figure_path(out)
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    write_latent_map(model, adata, out, y=conditions(model), color=color, method=method, seed=seed)
    typer.echo(f"wrote a {method} map of {adata.n_obs} samples to {out}")
