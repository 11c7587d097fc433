"""Build a model's report from the model and data: numbers first, then the sections that apply."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaekit._version import __version__
from vaekit.analysis._factors import check_factors
from vaekit.analysis.associations import associate
from vaekit.analysis.baselines import to_json
from vaekit.analysis.differential import check_de_table
from vaekit.data.writers import check_output
from vaekit.plot import _data
from vaekit.report.document import Report
from vaekit.report.sections import SECTIONS, Context
from vaekit.report.summary import baseline_rows, baselines, held_out, numbers, summary_rows
from vaekit.vae import VAE
from vaekit.validation import is_anndata

SUFFIXES = (".html", ".htm")


def _annotations(X: Any, annotations: pd.DataFrame | None, n: int) -> pd.DataFrame | None:
    """The given annotations, else an AnnData's ``obs`` columns; one row per sample of X."""
    if annotations is None and is_anndata(X) and X.obs.shape[1]:
        annotations = X.obs
    if annotations is None:
        return None
    if not isinstance(annotations, pd.DataFrame):
        raise TypeError(f"annotations must be a pandas DataFrame; got {type(annotations).__name__}")
    if len(annotations) != n:
        raise ValueError(
            f"annotations have {len(annotations)} rows but the data has {n}; pass one row "
            "per sample, in the same order"
        )
    return annotations.rename(columns=str)  # names as associate() and the legends write them


def build_report(
    model: VAE,
    X: Any,
    y: Any = None,
    *,
    annotations: pd.DataFrame | None = None,
    layer: str | None = None,
    training_data: bool | None = None,
    title: str | None = None,
    data_name: str | None = None,
    importance_samples: int = 200,
    max_rows: int = 2000,
    seed: int = 0,
    de: pd.DataFrame | None = None,
    factors: Any = None,
) -> Report:
    """The report of a fitted model on data X: a summary table and the figures that apply.

    Parameters
    ----------
    model : VAE
        A fitted model.
    X : array-like or AnnData
        Data with the model's features: its training data, or new samples.
    y : optional
        Conditions of X, for a conditional model (values, or AnnData ``obs`` column names).
    annotations : DataFrame, optional
        One row per sample of X, to colour the latent maps by and test the latent features
        against; by default the ``obs`` columns of an AnnData.
    layer : str, optional
        The AnnData layer to use instead of ``X``.
    training_data : bool, optional
        Whether X is the data the model was trained on, in the same order; then the held-out
        numbers are computed on the validation rows that training set aside (recovered from the
        model's seed). By default, when X has the shape that ``vaekit train`` recorded.
    title, data_name : str, optional
        The page's title and a name for the data in its subtitle.
    importance_samples : int
        Draws per sample for the importance-sampled log-likelihood (0 to skip).
    max_rows : int
        Rows at most for the held-out numbers and for the figures (a random subset beyond).
    seed : int
    de : DataFrame, optional
        A table from :func:`vaekit.analysis.differential_expression`, shown as a volcano plot.
    factors : DataFrame or array, optional
        Known generative factors, one row per sample of X (numeric columns): adds the
        disentanglement scores and a factor x feature heatmap
        (:func:`vaekit.analysis.disentanglement`, on the rows shown).

    Returns
    -------
    Report
        ``report.numbers`` holds the values of the summary; ``report.write(path)`` the page.

    Examples
    --------
    >>> build_report(model, adata).write("report.html")  # doctest: +SKIP
    """
    tic = time.perf_counter()
    de = None if de is None else check_de_table(de)  # before any work
    n = _data.n_rows(X)
    annotations = _annotations(X, annotations, n)
    if factors is not None:
        check_factors(factors, n)  # before any work
    y = _data.conditions(X, y)
    n_features = int(X.n_vars if is_anndata(X) else X.shape[1])
    image = _data.image_shape(model)
    evaluated = held_out(model, n, n_features, training_data, max_rows, seed, data_name)
    values = numbers(model, X, y, evaluated, importance_samples, layer)
    values["annotations"] = [] if annotations is None else [str(c) for c in annotations.columns]
    shown = _data.subsample(n, max_rows, seed)
    X_shown, y_shown = _data.take_rows(X, shown), _data.take_conditions(y, shown)
    latent = model.transform(X_shown, y_shown, layer=layer)  # (n_shown, n_latent)
    ctx = Context(
        model=model,
        X=X_shown,
        y=y_shown,
        X_eval=_data.take_rows(X, evaluated.rows),
        y_eval=_data.take_conditions(y, evaluated.rows),
        annotations=None if annotations is None else annotations.iloc[shown],
        associations=_associations(latent, annotations, shown),
        image=image,
        layer=layer,
        latent=latent,
        seed=seed,
        de=de,
        disentanglement=_disentanglement(latent, factors, shown, seed),
    )
    if ctx.disentanglement is not None:
        values["disentanglement"] = {k: v for k, v in ctx.disentanglement.items() if k != "detail"}
    sections = [s for s in (build(ctx) for build in SECTIONS) if s is not None]
    compared = baselines(model, X, y, evaluated, annotations, layer, shown, seed)
    values["baselines"] = [t if isinstance(t, str) else to_json(t) for t in compared]
    extra, flagged = baseline_rows(compared)
    seconds = time.perf_counter() - tic
    values["report_seconds"] = seconds
    return Report(
        title=title or "VAE report",
        subtitle=_subtitle(data_name, n, len(shown)),
        summary=summary_rows(model, values, n, n_features, image) + extra,
        flagged=flagged,
        numbers=values,
        sections=sections,
        footer=f"Written by vaekit {__version__} in {seconds:.1f} s. Everything is in this "
        "one file: it reads offline and can be mailed as it is.",
    )


def _associations(
    latent: np.ndarray, annotations: pd.DataFrame | None, shown: np.ndarray
) -> pd.DataFrame | None:
    """Every latent feature tested against every annotation, once for all the sections."""
    if annotations is None or annotations.shape[1] == 0:
        return None
    return associate(latent, annotations.iloc[shown].reset_index(drop=True))


def _disentanglement(
    latent: np.ndarray, factors: Any, shown: np.ndarray, seed: int
) -> dict[str, Any] | None:
    """The disentanglement metrics of the rows shown, when factors were given."""
    # scikit-learn, imported only when factors are given
    from vaekit.analysis.disentanglement_metrics import disentanglement

    if factors is None:
        return None
    rows = factors.iloc[shown] if isinstance(factors, pd.DataFrame) else np.asarray(factors)[shown]
    return disentanglement(latent, rows, seed=seed)


def _subtitle(data_name: str | None, n: int, n_shown: int) -> str:
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    data = f"on {data_name}" if data_name else f"on {n:,} samples"
    shown = f"; figures of a random {n_shown:,} of them" if n_shown < n else ""
    return f"{data}{shown}, written {when}"


def check_report_path(path: str | os.PathLike) -> Path:
    """Raise before any work when ``path`` is not a writable ``.html`` file name."""
    return check_output(path, SUFFIXES)


def write_report(
    model: VAE, X: Any, path: str | os.PathLike, y: Any = None, **options: Any
) -> Path:
    """Build the report (see :func:`build_report`) and write it to ``path`` atomically; the
    path is checked first, so a wrong name fails before any work.

    Examples
    --------
    >>> write_report(vaekit.load("model"), adata, "report.html")  # doctest: +SKIP
    """
    check_report_path(path)
    return build_report(model, X, y, **options).write(path)
