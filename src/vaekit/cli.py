"""The vaekit command line: each command parses, calls the API, prints. No logic of its own."""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from vaekit._version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders for expression tables, single-cell counts, images and more.",
)

DATA = typer.Argument(..., help="Data file or folder (CSV/TSV, Parquet, .h5ad, 10x, images...).")
MODEL = typer.Argument(..., help="A model folder written by `vaekit train`.")
OUT = typer.Option(..., "-o", "--out", help="Where to write.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display.")
TRANSPOSE = typer.Option(None, "--transpose", help="The file has genes as rows.")
ANNOTATIONS = typer.Option(None, "--annotations", help="Sample annotation table (CSV/TSV).")
LAYER = typer.Option(None, "--layer", help="AnnData layer to use instead of X.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train a VAE and use it: see `vaekit COMMAND --help`."""


def _read(
    path: Path,
    transpose: bool | None = None,
    annotations: Path | None = None,
    layer: str | None = None,
) -> Any:
    from vaekit.data.readers import read

    options = {"transpose": bool(transpose), "annotations": annotations, "layer": layer}
    return read(path, **{k: v for k, v in options.items() if v})


def _status(quiet: bool, text: str):
    from contextlib import nullcontext

    from rich.console import Console

    console = Console(stderr=True)
    return nullcontext() if quiet or not console.is_terminal else console.status(text)


def _y(model: Any) -> list[str] | None:
    """A conditional model reads its conditions from the obs columns it was trained on."""
    return None if model.covariates_ is None else [c.name for c in model.covariates_.columns]


@app.command()
def train(
    data: Path = DATA,
    out: Path = OUT,
    annotations: Path = ANNOTATIONS,
    condition: str = typer.Option(None, help="Annotation column(s) to condition on, a,b."),
    likelihood: str = typer.Option(
        None, help="gaussian, bernoulli, continuous_bernoulli, poisson, nb or zinb."
    ),
    latent: int = typer.Option(None, help="Number of latent features."),
    hidden: str = typer.Option(None, help="Hidden layer sizes, e.g. 400,200 ('' for none)."),
    epochs: int = typer.Option(None),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, help="Adam learning rate."),
    beta: float = typer.Option(None, help="KL weight (beta-VAE)."),
    warmup: int = typer.Option(None, help="KL warm-up epochs."),
    preset: str = typer.Option(None, help="Named settings: expression or tybalt."),
    decoder: str = typer.Option(None, help="mlp, or linear (exact gene loadings, as LDVAE)."),
    architecture: str = typer.Option(
        None, help="mlp or conv (default: conv for images read as images, else mlp)."
    ),
    l1: float = typer.Option(None, "--l1", help="L1 penalty on the loadings (sparse features)."),
    select: int = typer.Option(None, help="Keep the N most variable features (0: all)."),
    select_by: str = typer.Option(None, "--select-by", help="variance or mad."),
    scale: str = typer.Option(None, help="minmax, zscore, center or none."),
    log1p: bool = typer.Option(None, "--log1p/--no-log1p", help="log(1 + x) first."),
    normalize: bool = typer.Option(
        None, "--normalize/--no-normalize", help="Library-size normalisation first."
    ),
    transpose: bool = TRANSPOSE,
    layer: str = LAYER,
    seed: int = typer.Option(None),
    config: Path = typer.Option(None, "--config", help="YAML settings; flags override them."),
    quiet: bool = QUIET,
) -> None:
    """Train a VAE on DATA and save it to a model folder."""
    flags = {k: v for k, v in locals().items() if k not in ("data", "out", "config", "quiet")}
    from vaekit import VAE
    from vaekit.atomic import check_parent
    from vaekit.settings import merge, read_options, read_settings, vae_arguments

    settings = merge(read_settings(config), flags)
    check_parent(out)
    adata = _read(data, **read_options(settings))
    model = VAE(**vae_arguments(settings), verbose=not quiet)
    y = settings["condition"].split(",") if settings.get("condition") else None
    model.fit(adata, y)
    command = shlex.join(["vaekit", *sys.argv[1:]])
    model.save(
        out,
        metadata={
            "command": command,
            "settings": _jsonable(settings),
            "data": str(data),
            "shape": list(adata.shape),
        },
    )
    h = model.history_.iloc[model.best_epoch_]
    val = f", validation loss {h['val_loss']:.3f}" if "val_loss" in h else ""
    typer.echo(
        f"trained on {adata.n_obs} samples x {adata.n_vars} features: "
        f"{len(model.history_)} epochs in {model.training_seconds_:.1f} s, best epoch "
        f"{model.best_epoch_}{val}"
    )
    typer.echo(f"saved the model to {out}/")


@app.command()
def encode(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
) -> None:
    """Latent coordinates (posterior means) of DATA, keyed by sample ID.

    For .h5ad input, OUT is a copy of the file with obsm["X_vaekit"].
    """
    import vaekit
    from vaekit.data.writers import check_output, write_h5ad, write_table

    h5ad = str(data).endswith(".h5ad")
    check_output(out, (".h5ad",) if h5ad else None)
    model = vaekit.load(model_dir)
    adata = _read(data, transpose, annotations, layer)
    latent = model.transform(adata, _y(model))
    if h5ad:
        adata.obsm["X_vaekit"] = latent
        write_h5ad(adata, out)
    else:
        import pandas as pd

        write_table(
            pd.DataFrame(latent, index=adata.obs_names, columns=model.get_feature_names_out()), out
        )
    typer.echo(f"wrote {latent.shape[1]} latent features of {latent.shape[0]} samples to {out}")


@app.command()
def reconstruct(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
) -> None:
    """Expected reconstructions of DATA (in the model's preprocessed feature space)."""
    import vaekit
    from vaekit.data.writers import check_output, write_table

    check_output(out)
    model = vaekit.load(model_dir)
    adata = _read(data, transpose, annotations, layer)
    rec = model.reconstruct(adata, _y(model))
    write_table(rec, out)
    typer.echo(
        f"wrote reconstructions of {rec.shape[0]} samples x {rec.shape[1]} features to {out}"
    )


@app.command()
def generate(
    model_dir: Path = MODEL,
    n: int = typer.Option(16, "-n", help="Samples (per class, for a label-conditioned model)."),
    condition: str = typer.Option(None, "--condition", help="The condition, e.g. a label."),
    out: Path = OUT,
    seed: int = typer.Option(0),
    mean: bool = typer.Option(False, "--mean", help="Decoder means instead of draws."),
) -> None:
    """New samples from the prior: a PNG grid for image models (OUT.png), else a table."""
    import pandas as pd

    import vaekit
    from vaekit.analysis import generate as generate_samples
    from vaekit.data.writers import check_output, image_grid, write_png, write_table

    model = vaekit.load(model_dir)
    png = model.image_shape_ is not None and str(out).lower().endswith(".png")
    check_output(out, (".png",) if png else None)
    result = generate_samples(model, n, condition, seed=seed, mean=mean)
    if png:
        per_class = result.conditions is not None and condition is None  # a row per class
        n_cols = n if per_class else math.ceil(math.sqrt(len(result.samples)))
        picture = image_grid(result.samples, model.image_shape_, n_cols=n_cols)
        write_png(picture, out, scale=2)
    else:
        table = pd.DataFrame(
            result.samples,
            columns=model.features_,
            index=[f"sample_{i}" for i in range(len(result.samples))],
        )
        if result.conditions is not None:
            table.insert(0, "condition", result.conditions)
        write_table(table, out)
    typer.echo(f"wrote {len(result.samples)} samples to {out}")


@app.command()
def evaluate(
    model_dir: Path = MODEL,
    data: Path = DATA,
    importance_samples: int = typer.Option(
        1000, "--importance-samples", "-k", help="Draws for log p(x) (0 to skip)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """ELBO, reconstruction, KL and importance-sampled log-likelihood of DATA, per sample; and
    how many latent features are active, with the KL of each."""
    import vaekit
    from vaekit.analysis import evaluate as evaluate_model

    model = vaekit.load(model_dir)
    adata = _read(data, transpose, annotations, layer)
    with _status(quiet or as_json, f"evaluating {adata.n_obs} samples..."):
        result = evaluate_model(model, adata, _y(model), importance_samples=importance_samples)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    kl = result.pop("kl_per_feature")
    typer.echo(f"{adata.n_obs} samples, nats per sample:")
    for key, value in result.items():
        typer.echo(
            f"  {key:>20}: {value:.4f}" if isinstance(value, float) else f"  {key:>20}: {value}"
        )
    order = sorted(range(len(kl)), key=lambda j: -kl[j])
    typer.echo("  KL per latent feature, most used first:")
    typer.echo("    " + ", ".join(f"z{j} {kl[j]:.2f}" for j in order))


@app.command()
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
    from vaekit.analysis.findings import interpret as interpret_model
    from vaekit.atomic import check_parent

    check_parent(out)
    model = vaekit.load(model_dir)
    adata = _read(data, transpose, annotations, layer)
    with _status(quiet, f"interpreting {model.module_.config.n_latent} latent features..."):
        result = interpret_model(model, adata, y=_y(model), gene_sets=gene_sets, k=top, sd=sd)
        result.write(out)
    typer.echo(result.summary())
    typer.echo(f"wrote loadings, top genes, associations and summary.md to {out}/")


@app.command()
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
    from vaekit.analysis.paths import find_sample, to_image_grid
    from vaekit.analysis.paths import interpolate as interpolate_path
    from vaekit.data.writers import check_output, write_png, write_table

    model = vaekit.load(model_dir)
    png = model.image_shape_ is not None and str(out).lower().endswith(".png")
    check_output(out, (".png",) if png else None)
    adata = _read(data, transpose, annotations, layer)
    a, b = find_sample(adata, start), find_sample(adata, end)
    path = interpolate_path(model, a, b, steps, method, condition)
    if png:
        write_png(to_image_grid(path, model.image_shape_), out, scale=2)
    else:
        write_table(path.to_frame(), out)
    typer.echo(f"wrote a {method} path of {steps} steps from {start} to {end} to {out}")


@app.command()
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
    from vaekit.data.writers import check_output, write_png, write_table

    if sample is not None and data is None:
        raise ValueError("--sample picks a sample of DATA; give DATA too")
    model = vaekit.load(model_dir)
    png = model.image_shape_ is not None and str(out).lower().endswith(".png")
    check_output(out, (".png",) if png else None)
    values = traversal_values(limit, steps)
    adata = None if data is None else _read(data, transpose, annotations, layer)
    x = None if sample is None else find_sample(adata, sample)
    data_y = None if adata is None else _y(model)
    result = traverse_features(model, x, features, values, condition, data=adata, data_y=data_y)
    if png:
        write_png(to_image_grid(result, model.image_shape_), out, scale=2)
    else:
        write_table(result.to_frame(), out)
    typer.echo(
        f"wrote latent features {result.features} (ordered by {result.ordered_by}) x "
        f"{len(values)} values to {out}"
    )


plot_app = typer.Typer(no_args_is_help=True, help="Figures of a model and data.")
app.add_typer(plot_app, name="plot")


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
    from vaekit.analysis.latent_map import figure_format, write_latent_map

    figure_format(out)
    model = vaekit.load(model_dir)
    adata = _read(data, transpose, annotations, layer)
    write_latent_map(model, adata, out, y=_y(model), color=color, method=method, seed=seed)
    typer.echo(f"wrote a {method} map of {adata.n_obs} samples to {out}")


@app.command()
def info(model_dir: Path = MODEL) -> None:
    """What a model folder holds: data, architecture, preprocessing and training."""
    import vaekit

    model = vaekit.load(model_dir)
    s, h = model.settings_, model.history_
    lines = {
        "features in / modelled": f"{model.n_features_in_} / {len(model.features_)}",
        "likelihood": s["likelihood"],
        "latent features": s["n_latent"],
        "architecture": model.module_.config.architecture,
        "hidden layers": f"{tuple(s['hidden'])} (decoder {model.module_.config.decoder_layers})",
        "preset": s.get("preset") or model.preset or "-",
        "preprocess": ", ".join(f"{p['name']}" for p in model.preprocessor_.to_config()) or "-",
        "conditions": "-"
        if model.covariates_ is None
        else ", ".join(f"{c.name} ({c.kind})" for c in model.covariates_.columns),
        "image shape": model.image_shape_ or "-",
        "epochs trained / best": f"{len(h)} / {model.best_epoch_}",
        "training seconds": f"{model.training_seconds_:.1f}",
        "command": model.metadata_.get("command", "-"),
    }
    for key, value in lines.items():
        typer.echo(f"{key:>24}: {value}")


@app.command()
def demo(
    out: Path = typer.Option(Path("vaekit-demo"), "-o", "--out", help="Folder to write into."),
    epochs: int = typer.Option(200, help="Most epochs to train (early stopping may end sooner)."),
    quiet: bool = QUIET,
) -> None:
    """Train a conditional VAE on scikit-learn's 8x8 digits and write what it produced."""
    from vaekit.demo import run_demo

    result = run_demo(out, epochs=epochs, verbose=not quiet)
    for key, value in result.summary.items():
        typer.echo(f"{key:>32}: {value}")
    typer.echo(f"\nwrote the model, latent coordinates, summary and figures to {result.folder}/")


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}


def main() -> None:
    """Console entry point: user errors become one line and exit code 2, never a traceback.

    Usage errors (unknown command, bad option) are typer's own: usage text and exit code 2.
    """
    try:
        app()
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as err:
        _fail(err, 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
        _fail(f"{type(err).__name__}: {err}", 1)


def _fail(message: object, code: int) -> None:
    if os.environ.get("VAEKIT_DEBUG"):
        raise
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
