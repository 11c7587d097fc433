"""Commands that train a model and use it directly: train, encode, reconstruct, generate,
evaluate, info and demo."""

from __future__ import annotations

import inspect
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from vaekit import distributed
from vaekit.analysis._limits import MAX_DRAWS, check_count
from vaekit.atomic import atomic_file
from vaekit.cli.baselines import baselines, echo_lines, training_split
from vaekit.cli.common import (
    ANNOTATIONS,
    BACKED,
    DATA,
    LAYER,
    MODEL,
    OUT,
    QUIET,
    TRANSPOSE,
    app,
    conditions,
    jsonable,
    read,
    status,
)
from vaekit.options import Setting
from vaekit.settings import ROWS, merge, read_options, read_settings, vae_arguments
from vaekit.train import TrainingInterrupted


def train(**given: Any) -> None:
    """Train a VAE on DATA and save it to a model folder.

    Every setting of vaekit.VAE has a flag. A settings file (--config) takes the same names
    as the Python API (n_latent: 20, dropout: 0.1...); flags override it.
    """
    from vaekit import VAE
    from vaekit.data.writers import check_output_dir

    data, out, config, quiet, resume = (
        given.pop(k) for k in ("data", "out", "config", "quiet", "resume")
    )
    settings = merge(read_settings(config), given)
    check_output_dir(out, MODEL_FILES)  # before training; saving checks again
    if resume and not settings.get("checkpoint_dir"):
        raise ValueError("--resume needs --checkpoint-dir: the folder the checkpoints went to")
    adata = read(data, **{"backed": None, **read_options(settings)})  # None: by size
    model = VAE(**vae_arguments(settings), verbose=not quiet)
    y = settings["condition"].split(",") if settings.get("condition") else None
    command = shlex.join(["vaekit", *sys.argv[1:]])
    try:
        model.fit(adata, y, labels=settings.get("labels") or None, resume=resume)
    except TrainingInterrupted as err:
        again = command if resume else f"{command} --resume"
        err.args = (str(err).replace("fit(..., resume=True)", again),)
        raise
    finally:
        main = distributed.world().main
        distributed.leave()
    if not main:  # under torchrun, rank 0 alone writes and reports
        return
    model.save(
        out,
        metadata={
            "command": command,
            "settings": jsonable(settings),
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


def _option(setting: Setting) -> inspect.Parameter:
    """The typer option of one row of the settings table: its flags, help, and the default
    it takes when neither the flag nor the settings file gives it."""
    c = setting.constraint
    choices = c.choices()
    text = setting.help + (f" One of: {', '.join(choices)}." if choices else "")
    shown = _shown(setting.default) if setting.resolved and setting.default is not None else False
    option = typer.Option(None, *setting.flags, help=text, show_default=shown)
    return inspect.Parameter(setting.name, KEYWORD, default=option, annotation=c.cli_type)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "''"
    return str(value)


KEYWORD = inspect.Parameter.KEYWORD_ONLY
# What a model folder holds (vaekit.persist): a folder of only these may be replaced.
MODEL_FILES = ("config.json", "weights.safetensors")
CONFIG = typer.Option(None, "--config", help="YAML settings; flags override them.")
RESUME = typer.Option(
    False, "--resume", help="Continue from the newest checkpoint in --checkpoint-dir."
)
train.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("data", KEYWORD, default=DATA, annotation=Path),
        inspect.Parameter("out", KEYWORD, default=OUT, annotation=Path),
        inspect.Parameter("annotations", KEYWORD, default=ANNOTATIONS, annotation=Path),
        *(_option(s) for s in ROWS.values() if s.cli),
        inspect.Parameter("transpose", KEYWORD, default=TRANSPOSE, annotation=bool),
        inspect.Parameter("layer", KEYWORD, default=LAYER, annotation=str),
        inspect.Parameter("backed", KEYWORD, default=BACKED, annotation=bool),
        inspect.Parameter("config", KEYWORD, default=CONFIG, annotation=Path),
        inspect.Parameter("resume", KEYWORD, default=RESUME, annotation=bool),
        inspect.Parameter("quiet", KEYWORD, default=QUIET, annotation=bool),
    ]
)
app.command(rich_help_panel="Train and use a model")(train)


@app.command(rich_help_panel="Train and use a model")
def extend(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    batch: str = typer.Option(
        None,
        "--batch",
        help="Annotation column(s) of the query's batches, a,b (default: the "
        "model's condition columns).",
    ),
    labels: str = typer.Option(None, "--labels", help="Annotation column of query labels."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Most epochs of query training."),
    seed: int = typer.Option(None, "--seed", min=0, help="Random seed."),
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    quiet: bool = QUIET,
) -> None:
    """Map a query's new batches onto a trained model (scArches): only the new batches'
    weights are trained, and the extended model is saved to OUT; the reference's latent
    coordinates do not move."""
    import vaekit
    from vaekit.data.writers import check_output_dir

    check_output_dir(out, MODEL_FILES)
    model = vaekit.load(model_dir)
    model.verbose = not quiet
    adata = read(data, transpose, annotations, layer)
    y = batch.split(",") if batch else conditions(model)
    model.extend(adata, y, labels=labels or None, epochs=epochs, seed=seed)
    model.save(out, metadata={**model.metadata_, "extended": shlex.join(["vaekit", *sys.argv[1:]])})
    added = model.mapped_[-1]
    typer.echo(
        f"mapped {added['cells']} cells of new batches {added['batches']} in "
        f"{added['epochs']} epochs ({added['seconds']:.1f} s); saved the model to {out}/"
    )


@app.command(rich_help_panel="Train and use a model")
def encode(
    model_dir: Path = MODEL,
    data: Path = DATA,
    out: Path = OUT,
    transpose: bool = TRANSPOSE,
    annotations: Path = ANNOTATIONS,
    layer: str = LAYER,
    backed: bool = BACKED,
) -> None:
    """Latent coordinates (posterior means) of DATA, keyed by sample ID; for a model fitted
    with labels, also each sample's predicted label and its probability.

    For .h5ad input, OUT is a copy of the file with obsm["X_vaekit"] (and obs["vaekit_label"],
    obs["vaekit_label_probability"], obsm["vaekit_label_probabilities"]); a backed file is
    copied as it is, its matrix never loaded.
    """
    import pandas as pd

    import vaekit
    from vaekit.data import backed_files as backed_data
    from vaekit.data.writers import check_output, write_h5ad, write_table

    h5ad = str(data).endswith(".h5ad")
    check_output(out, (".h5ad",) if h5ad else None)
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer, backed)
    latent = model.transform(adata, conditions(model))
    labels, proba = (None, None)
    if getattr(model, "labels_", None) is not None:
        labels, proba = model.predict_labels(adata, conditions(model))
        proba.index = adata.obs_names
    if h5ad:
        adata.obsm["X_vaekit"] = latent
        if labels is not None:
            adata.obs["vaekit_label"] = pd.Categorical([str(v) for v in labels])
            adata.obs["vaekit_label_probability"] = proba.max(axis=1).to_numpy()
            adata.obsm["vaekit_label_probabilities"] = proba.set_axis(
                [str(c) for c in proba.columns], axis=1
            )
        (backed_data.write_h5ad if adata.isbacked else write_h5ad)(adata, out)
    else:
        table = pd.DataFrame(latent, index=adata.obs_names, columns=model.get_feature_names_out())
        if labels is not None:
            table["label"] = labels
            table["label_probability"] = proba.max(axis=1).to_numpy()
        write_table(table, out)
    also = "" if labels is None else " with predicted labels"
    typer.echo(
        f"wrote {latent.shape[1]} latent features of {latent.shape[0]} samples{also} to {out}"
    )


@app.command(rich_help_panel="Train and use a model")
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
    adata = read(data, transpose, annotations, layer)
    rec = model.reconstruct(adata, conditions(model))
    write_table(rec, out)
    typer.echo(
        f"wrote reconstructions of {rec.shape[0]} samples x {rec.shape[1]} features to {out}"
    )


@app.command(rich_help_panel="Train and use a model")
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
    from vaekit.data.writers import (
        check_output,
        check_output_name,
        image_grid,
        write_png,
        write_table,
    )

    check_output_name(out)
    check_count("-n", n)
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


@app.command(rich_help_panel="Train and use a model")
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
    factors: Path = typer.Option(
        None,
        "--factors",
        help="Known generative factors per sample (CSV/TSV, numeric columns, matched by sample "
        "ID as --annotations): adds the disentanglement metrics (MIG, DCI, SAP, FactorVAE and "
        "beta-VAE scores).",
    ),
    out: Path = typer.Option(None, "-o", "--out", help="Also write the results as JSON (.json)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draws."),
    quiet: bool = QUIET,
) -> None:
    """ELBO, reconstruction, KL and importance-sampled log-likelihood of DATA, per sample; and
    how many latent features are active, with the KL of each. With --factors, how well the
    latent features separate known generative factors."""
    import vaekit
    from vaekit.analysis import evaluate as evaluate_model
    from vaekit.cli.factors import disentanglement_of, echo_disentanglement, read_factors
    from vaekit.data.writers import check_output

    check_count("-k", importance_samples, low=0, high=MAX_DRAWS)
    if out is not None:
        check_output(out, (".json",))
    model = vaekit.load(model_dir)
    adata = read(data, transpose, annotations, layer)
    table = None if factors is None else read_factors(factors, adata.obs_names)
    with status(quiet or as_json, f"evaluating {adata.n_obs} samples..."):
        result = evaluate_model(
            model, adata, conditions(model), importance_samples=importance_samples, seed=seed
        )
        texts, compared = baselines(lambda: _reconstruction_baseline(model, adata))
        disentangled = (
            None
            if table is None
            else disentanglement_of(model, adata, conditions(model), factors, table, seed)
        )
    everything = {**result, "baselines": compared}
    if disentangled is not None:
        everything["disentanglement"] = disentangled
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(everything, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(everything, indent=2))
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
    echo_lines(texts)
    if disentangled is not None:
        echo_disentanglement(disentangled)
    if out is not None:
        typer.echo(f"wrote the results to {out}")


def _reconstruction_baseline(model: Any, adata: Any) -> Any:
    """PCA beside the VAE on held-out rows: the validation rows when DATA is the training
    data (PCA fitted on the training rows), else DATA, PCA cross-fitted on it."""
    from vaekit.analysis.baselines import reconstruction_baseline

    split = training_split(model, adata)
    if split is None:
        table = reconstruction_baseline(model, adata, conditions(model))
        table.attrs["evaluated_on"] += "; the VAE's figure is held out if it never saw DATA"
        return table
    held, fitted = split
    table = reconstruction_baseline(
        model, adata[held], conditions(model), train=adata[fitted], train_y=conditions(model)
    )
    where = table.attrs["evaluated_on"]
    table.attrs["evaluated_on"] = f"the validation samples held out in training: {where}"
    return table


@app.command(rich_help_panel="Train and use a model")
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
    for i, note in enumerate(s.get("auto") or []):  # the automatic settings (vaekit.auto)
        typer.echo(f"{'chosen from the data' if i == 0 else '':>24}: {note}")


@app.command(rich_help_panel="Train and use a model")
def demo(
    out: Path = typer.Option(Path("vaekit-demo"), "-o", "--out", help="Folder to write into."),
    epochs: int = typer.Option(200, help="Most epochs to train (early stopping may end sooner)."),
    quiet: bool = QUIET,
) -> None:
    """Train a conditional VAE on scikit-learn's 8x8 digits and write what it produced."""
    from vaekit.data.writers import check_output_dir
    from vaekit.demo import DEMO_FILES, run_demo

    check_output_dir(out, DEMO_FILES)  # before importing and training anything
    result = run_demo(out, epochs=epochs, verbose=not quiet)
    for key, value in result.summary.items():
        typer.echo(f"{key:>32}: {value}")
    typer.echo(f"\nwrote the model, latent coordinates, summary and figures to {result.folder}/")
