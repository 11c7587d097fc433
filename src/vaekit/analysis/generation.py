"""New samples from the prior, one set per class when a model is conditioned on a label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vaekit.analysis._limits import check_count, check_size
from vaekit.estimator import BaseVAE


@dataclass
class Generated:
    """Samples (n, n_features) and the condition of each (None when unconditional)."""

    samples: np.ndarray
    conditions: list | None


def generate(
    model: BaseVAE,
    n: int,
    condition: str | float | None = None,
    *,
    seed: int = 0,
    mean: bool = False,
) -> Generated:
    """``n`` samples; for a model conditioned on one categorical column and no ``condition``,
    ``n`` samples of each category, category by category.

    ``condition`` may be given as text (from a command line): it is matched to the model's
    categories by their text, or read as a number for a continuous condition.
    """
    check_count("n", n)
    check_size(f"generating {n:,} samples", _rows(model, n, condition), len(model.features_))
    encoder = model.covariates_
    if encoder is None:
        if condition is not None:
            raise ValueError("this model is not conditional; drop the condition")
        return Generated(model.sample(n, seed=seed, mean=mean), None)
    if condition is not None:
        value = encoder.parse(condition)
        return Generated(model.sample(n, y=value, seed=seed, mean=mean), [value] * n)
    column = encoder.columns[0]
    if len(encoder.columns) != 1 or column.kind != "categorical":
        names = [c.name for c in encoder.columns]
        raise ValueError(f"this model is conditional on {names}; give the condition to use")
    labels = [c for c in column.categories for _ in range(n)]
    return Generated(
        model.sample(len(labels), y=np.array(labels, dtype=object), seed=seed, mean=mean), labels
    )


def _rows(model: BaseVAE, n: int, condition: Any) -> int:
    """Samples :func:`generate` returns: ``n`` of each class of a label-conditioned model."""
    columns = [] if model.covariates_ is None else model.covariates_.columns
    if condition is None and len(columns) == 1 and columns[0].kind == "categorical":
        return n * len(columns[0].categories)
    return n
