"""`vaekit evaluate --factors`: disentanglement metrics of a model's latent codes against a
table of known generative factors, matched to the data's samples by ID as --annotations are."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer


def read_factors(path: Path, samples: pd.Index) -> pd.DataFrame:
    """The factors table at ``path``, one row per sample of ``samples`` in that order; its ID
    column is found as :func:`~vaekit.data.readers.annotations.join_annotations` finds it."""
    from anndata import AnnData

    from vaekit.data.readers.annotations import join_annotations

    holder = AnnData(obs=pd.DataFrame(index=samples.astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unmatched samples: the error below
        join_annotations(holder, path)
    table = holder.obs
    if table.shape[1] == 0:
        raise ValueError(
            f"--factors {path} has no columns besides the sample IDs; give one numeric column "
            "per generative factor"
        )
    missing = table.isna().all(axis=1).to_numpy()
    if missing.any():
        raise ValueError(
            f"--factors {path} has no row (or only empty values) for {int(missing.sum())} of the "
            f"{len(table)} samples, "
            f"e.g. {list(table.index[missing][:3])}; give every sample of DATA a row"
        )
    return table


def disentanglement_of(
    model: Any, adata: Any, y: Any, path: Path, factors: pd.DataFrame, seed: int
) -> dict[str, Any]:
    """The metrics of ``model``'s posterior means on ``adata``, JSON-ready: matrices as lists
    of rows, features named ``z0``, ``z1``..."""
    from vaekit.analysis import disentanglement

    n_latent = model.module_.config.n_latent
    if n_latent < 2:
        raise ValueError(
            f"the model has {n_latent} latent feature: disentanglement metrics compare "
            "features, so they need at least 2"
        )
    Z = model.transform(adata, y)
    try:
        result = disentanglement(Z, factors, seed=seed)
    except ValueError as err:
        raise ValueError(f"--factors {path}: {err}") from None
    detail = result["detail"]
    for key in ("mutual_information", "importance", "sap_scores"):
        detail[key] = np.asarray(detail[key]).tolist()
    detail["samples"] = {k: list(v) for k, v in detail["samples"].items()}
    detail["latent_features"] = [f"z{i}" for i in range(Z.shape[1])]
    return result


def echo_disentanglement(result: dict[str, Any]) -> None:
    """The scores, then per factor the feature that carries it and how exclusively."""
    typer.echo("disentanglement (0 to 1, higher is better):")
    for key, value in result.items():
        if key != "detail":
            typer.echo(f"  {key:>20}: {value:.4f}")
    typer.echo("  per factor: the latent feature with the most mutual information, and its gap")
    for f in result["detail"]["factors"]:
        typer.echo(
            f"  {f['name']:>20}: z{f['feature']} (normalised MI {f['mutual_information']:.3f}, "
            f"gap {f['gap']:.3f}; {f['kind']}, {f['bins']} {_unit(f['kind'])})"
        )


def _unit(kind: str) -> str:
    return "levels" if kind == "discrete" else "bins"
