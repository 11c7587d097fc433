"""Query mapping (scArches' idea, Lotfollahi et al. 2022): add the new batches of a query data
set to a trained reference model by training only the weights those batches add, so that a
lab maps its cells onto a shared reference without retraining it, and the reference's latent
coordinates do not move.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from vaekit import fitting, surgery
from vaekit._runtime import epoch_progress, seeded
from vaekit.labels import LabelClasses, resolve_labels
from vaekit.train import PosteriorCollapseWarning, train
from vaekit.validation import resolve_y

# Epochs of query training by default: scArches' surgery trains for a few hundred epochs on
# a small query; early stopping on the query's validation loss usually ends it sooner.
DEFAULT_EPOCHS = 200


def extend(
    model: Any,
    query: Any,
    batch: Any = None,
    *,
    labels: Any = None,
    epochs: int | None = None,
    seed: int | None = None,
    layer: str | None = None,
) -> Any:
    """Map the cells of ``query`` onto ``model``: its new batches get weights of their own,
    trained on the query alone; every weight the reference had stays fixed.

    Parameters
    ----------
    model : vaekit.VAE
        Fitted with conditions (a batch column), architecture ``"mlp"``.
    query : AnnData, array-like or sparse matrix
        Counts of the query cells, with the model's features.
    batch : obs column name(s) or values
        The query cells' conditions, as ``y`` was in ``fit`` (by default the obs columns of
        the model's conditions). Categories the model lacks are the new batches; the query
        must have at least one.
    labels : obs column name or values, optional
        Labels of some query cells (classes the model learned); they steer the new weights
        through the classifier, as scANVI's query training does.
    epochs : int, optional
        Most epochs of query training (default :data:`DEFAULT_EPOCHS`; early stopping and
        the other training settings are the model's).
    seed : int, optional
    layer : str, optional

    Returns
    -------
    model
        The same model, extended in place (unchanged if mapping fails).
    """
    covariates = model.covariates_
    if covariates is None:
        raise ValueError(
            "extend maps new batches onto a model fitted with a batch condition (y); this "
            "model has no conditions: encode the query with model.transform instead"
        )
    if batch is None:
        batch = model._obs_conditions(query)
        if batch is None:
            raise ValueError(f"pass batch=: the query's values of {covariates.names}")
    new = copy.deepcopy(model)
    n = query.shape[0] if hasattr(query, "shape") else len(query)
    y = resolve_y(query, batch)
    new.covariates_ = covariates.extended(y, n)
    added = {
        c.name: c.categories[len(old.categories):]
        for c, old in zip(new.covariates_.columns, covariates.columns, strict=True)
        if c.kind == "categorical" and len(c.categories) > len(old.categories)
    }
    if not added:
        raise ValueError(
            f"the query's batches are all in the reference ({covariates.names}): there is "
            "nothing new to map; encode the query with model.transform"
        )
    widths = [c.width for c in new.covariates_.columns]
    hooks = surgery.add_condition_columns(
        new.module_, [c.width for c in covariates.columns], widths
    )
    prepared = new.prepare(query, y, layer=layer)
    targets = _targets(model, query, labels, n)
    # the reference's weights are the start: never set afresh (init)
    settings = {**new.settings_, "checkpoint_dir": None, "kl_warmup": 0, "weight_decay": 0.0,
                "init": "random"}
    settings["epochs"] = settings["epochs"] if epochs is None else epochs
    seed = new.seed_ if seed is None else seed
    config = fitting.train_config(settings, seed)
    with (
        seeded(seed, new._device),
        epoch_progress(config.epochs, new.verbose) as progress,
        warnings.catch_warnings(),
    ):
        # The latent space is the reference's, fixed: how many features it uses was said
        # when it was trained.
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        result = train(new.module_, prepared.rows, prepared.covariates, config, progress,
                       labels=None if targets is None else targets.to(new._device))
    surgery.release(new.module_, hooks)
    new.module_.eval()
    new.mapped_ = [*getattr(model, "mapped_", []), _record(added, result, len(prepared))]
    model.__dict__.update(new.__dict__)
    return model


def _targets(model: Any, query: Any, labels: Any, n: int) -> Any:
    if labels is None:
        return None
    if getattr(model, "labels_", None) is None:
        raise ValueError("labels= needs a model fitted with labels; this one learned none")
    values = resolve_labels(query, labels, n)
    return LabelClasses(list(model.labels_)).encode(values, strict=True)


def _record(added: dict[str, list], result: Any, n: int) -> dict[str, Any]:
    """What one mapping did, for ``mapped_``."""
    best = result.history[result.best_epoch]
    return {
        "batches": {k: [v.item() if isinstance(v, np.generic) else v for v in vs]
                    for k, vs in added.items()},
        "cells": n,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "val_loss": best.get("val_loss"),
        "seconds": result.seconds,
    }

