"""Commands that show a model: report (one HTML page), plot training and plot reconstructions."""

from __future__ import annotations

from pathlib import Path

import typer

from vaekit.analysis._limits import MAX_DRAWS, check_count
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

MAX_IMAGES = 1000  # images in one figure of reconstructions: beyond, nothing can be seen


@app.command(rich_help_panel="Look inside a model")
def report(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    annotations: Path = ANNOTATIONS,
    importance_samples: int = typer.Option(
        200, "--importance-samples", "-k", help="Draws for log p(x) (0 to skip)."
    ),
    max_rows: int = typer.Option(
        2000, "--max-rows", help="Samples at most for the numbers and figures (random beyond)."
    ),
    de: Path = typer.Option(None, "--de", help="A table of `vaekit de`: adds a volcano plot."),
    factors: Path = typer.Option(
        None,
        "--factors",
        help="Known generative factors per sample (numeric columns, matched by sample ID): adds "
        "the disentanglement scores and a factor x feature heatmap.",
    ),
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """One self-contained HTML page (OUT.html) of the model on DATA: a summary of its numbers
    and the figures that apply. Held-out numbers are on the validation samples when DATA is the
    training data, else on DATA; --annotations colour the latent maps and are tested."""
    import vaekit
    from vaekit.analysis.differential import read_de_table
    from vaekit.cli.factors import read_factors
    from vaekit.report import build_report, check_report_path

    check_report_path(out)
    check_count("-k", importance_samples, low=0, high=MAX_DRAWS)
    check_count("--max-rows", max_rows)
    de_table = None if de is None else read_de_table(de)
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    table = None if factors is None else read_factors(factors, adata.obs_names)
    with status(quiet, f"writing the report on {adata.n_obs} samples..."):
        result = build_report(
            model,
            adata,
            conditions(model),
            title=f"vaekit report: {Path(model_dir).resolve().name}",
            data_name=str(data),
            importance_samples=importance_samples,
            max_rows=max_rows,
            de=de_table,
            factors=table,
        )
        result.write(out)
    v = result.numbers
    ll = f", log p(x) {v['log_likelihood']:.2f}" if "log_likelihood" in v else ""
    typer.echo(
        f"ELBO {v['elbo']:.2f}{ll} nats per sample on {v['evaluated_on']}; "
        f"{v['active_units']} of {v['n_latent']} latent features active"
    )
    typer.echo(f"wrote the report to {out} in {v['report_seconds']:.1f} s")


@plot_app.command("training")
def plot_training(model_dir: Path = MODEL, out: Path = OUT) -> None:
    """Loss, reconstruction and KL per epoch, train against validation (.png, .svg or .pdf)."""
    import vaekit
    from vaekit.plot import save_figure, training_curves

    check_figure_path(out)
    model = vaekit.load(model_dir)
    save_figure(training_curves(model), out)
    typer.echo(f"wrote the curves of {len(model.history_)} epochs to {out}")


@plot_app.command("reconstructions")
def plot_reconstructions(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    n: int = typer.Option(20, "-n", help="Images shown (image models)."),
    annotations: Path = ANNOTATIONS,
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
) -> None:
    """Reconstructions of DATA: images above their reconstructions for image models, else
    reconstructed against observed values and each feature's correlation."""
    import vaekit
    from vaekit.plot import reconstruction_pairs, reconstruction_scatter, save_figure
    from vaekit.plot._data import image_shape

    check_figure_path(out)
    check_count("-n", n, high=MAX_IMAGES)
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    if image_shape(model) is not None:
        fig = reconstruction_pairs(model, adata, conditions(model), n=n)
    else:
        fig = reconstruction_scatter(model, adata, conditions(model))
    save_figure(fig, out)
    typer.echo(f"wrote the reconstructions of {adata.n_obs} samples to {out}")
