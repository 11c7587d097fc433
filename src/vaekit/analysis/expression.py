"""Single-cell readouts of a fitted model: denoised, library-normalised expression (also as if
every cell came from one chosen batch) and the labels its classifier predicts.

These are scVI's ``get_normalized_expression`` (with ``transform_batch``) and scANVI's
``predict`` (Lopez et al. 2018; Xu et al. 2021), computed from vaekit's module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from vaekit.analysis._limits import MAX_DRAWS, check_count, check_size
from vaekit.batch import Batch

# Draws of z per cell averaged into normalised expression by default: the Monte Carlo error
# of the mean is then a fifth of the posterior's spread.
DEFAULT_DRAWS = 25


def normalized_expression(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    batch: Any = None,
    library_size: float = 1e4,
    n_draws: int = DEFAULT_DRAWS,
    mean: bool = True,
    seed: int = 0,
    layer: str | None = None,
) -> np.ndarray:
    """Denoised expression of each cell: the decoder's mean count of each gene for a library
    of ``library_size`` counts, averaged over posterior draws of z.

    Parameters
    ----------
    model : vaekit.VAE
        Fitted with a count likelihood (``"nb"``, ``"zinb"``, ``"poisson"``).
    X : AnnData, array-like or sparse matrix
        Counts of the cells, with the features the model was fitted on.
    y : optional
        The cells' conditions, for a conditional model; an AnnData's obs columns of the
        model's conditions are read when y is None.
    batch : category, list of categories or dict, optional
        None: each cell as observed, in its own batch. A category of the model's batch
        condition: every cell decoded as if it came from that batch (a counterfactual
        batch; the encoder still reads the cell as it is). A list: the average over those
        batches (batch-corrected expression). ``{column: category or list}`` names the
        condition when the model has several categorical ones.
    library_size : float
        Counts per cell the expression is scaled to (1 gives proportions summing to 1).
    n_draws : int
        Posterior draws of z per cell.
    mean : bool
        Average over the draws: (n_cells, n_genes); else every draw: (n_draws, n_cells,
        n_genes).
    seed : int
        Seed of the draws.
    layer : str, optional
        AnnData layer holding the counts.

    Returns
    -------
    ndarray of float32
        Columns in the order of ``model.features_``.

    Examples
    --------
    >>> expr = model.normalized_expression(adata, batch="lab2")  # doctest: +SKIP
    """
    n_draws = check_count("n_draws", n_draws, high=MAX_DRAWS)
    if not (isinstance(library_size, (int, float)) and math.isfinite(library_size)
            and library_size > 0):
        raise ValueError(f"library_size must be a positive number; got {library_size!r}")
    module = model.module_
    if not module.likelihood.uses_library:  # before any work; the module says the same
        raise ValueError(
            "normalised expression needs a model of counts (likelihood poisson, nb or zinb); "
            f"this one's likelihood is {module.config.likelihood!r}"
        )
    column, categories = _batches(model, batch)
    only_batch = column is not None and len(model.covariates_.columns) == 1
    prepared = model.prepare(X, y, layer=layer, encoder_only=only_batch)
    check_size("normalised expression", len(prepared) * (1 if mean else n_draws),
               module.config.n_input)

    def draws(b: Batch) -> torch.Tensor:
        qz = module.encode(b.x, b.condition)
        targets = _conditions(model, b, column, categories)
        # With mean, one running sum: (draws, rows, genes) at once would not fit in memory.
        shape = (1 if mean else n_draws, len(b), module.config.n_input)
        out = torch.zeros(shape, device=b.x.device)
        for d in range(n_draws):
            z = qz.loc + qz.scale * torch.randn_like(qz.loc)
            for c in targets:
                out[0 if mean else d] += module.expression(z, c)
        out *= library_size / len(targets) / (n_draws if mean else 1)
        return out[0] if mean else out

    parts = model.map_batches(prepared, draws, seed=seed)
    return torch.cat(parts, dim=0 if mean else 1).cpu().numpy()


def predict_labels(
    model: Any, X: Any, y: Any = None, *, layer: str | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The label the model's classifier gives each cell, from its posterior mean, and the
    probability of every class.

    Parameters
    ----------
    model : vaekit.VAE
        Fitted with ``labels``.
    X : AnnData, array-like or sparse matrix
    y : optional
        The cells' conditions, needed only when they enter the encoder
        (``encode_covariates=True``); otherwise cells of any batch, seen or not, are read.
    layer : str, optional

    Returns
    -------
    labels : ndarray
        (n_cells,) the most probable class.
    probabilities : DataFrame
        (n_cells, n_classes), columns named by class, rows by sample when X names them.
    """
    classes = getattr(model, "labels_", None)
    if classes is None:
        raise ValueError("this model learned no labels; fit it with labels=... to predict them")
    module = model.module_
    prepared = model.prepare(X, y, layer=layer, encoder_only=True)
    parts = model.map_batches(
        prepared, lambda b: module.classify(module.encode(b.x, b.condition)).softmax(-1)
    )
    probabilities = torch.cat(parts).double().cpu().numpy()
    index = prepared.given.sample_names
    frame = pd.DataFrame(probabilities, columns=list(classes), index=index)
    return np.asarray(classes, dtype=object)[probabilities.argmax(1)], frame


def _batches(model: Any, batch: Any) -> tuple[str | None, list]:
    """(the batch condition's name, the categories to decode under); (None, []) for
    ``batch=None``. Categories are checked against the model's."""
    if batch is None:
        return None, []
    covariates = model.covariates_
    if covariates is None:
        raise ValueError(
            "batch= needs a model fitted with a batch condition (y); this one has none"
        )
    key = None
    if isinstance(batch, dict):
        if len(batch) != 1:
            raise ValueError(f"batch as a dict names one condition; got {list(batch)}")
        key, batch = next(iter(batch.items()))
    column = covariates.batch_column(key)
    categories = list(batch) if isinstance(batch, (list, tuple, np.ndarray, pd.Index)) else [batch]
    if not categories:
        raise ValueError("batch is an empty list; give at least one batch")
    known = [str(c) for c in column.categories]
    unknown = [c for c in categories if str(c) not in known]
    if unknown:
        raise ValueError(
            f"batch {unknown[:5]} is not a category of {column.name!r}: "
            f"{column.categories[:20]}; map a new batch first with model.extend(...)"
        )
    return column.name, categories


def _conditions(
    model: Any, b: Batch, column: str | None, categories: list
) -> list[torch.Tensor | None]:
    """The decoder's conditions for the cells of ``b``: their own, or each counterfactual."""
    if column is None:
        return [b.condition]
    covariates = model.covariates_
    own = b.condition
    if own is None:  # the batch is the only condition, not read from the data
        own = torch.zeros((len(b), covariates.width), device=b.x.device)
    return [covariates.with_category(own, column, c) for c in categories]
