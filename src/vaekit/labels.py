"""Labels that a model learns to predict (cell types, say), given for some samples only.

A sample without a label holds a missing value (NaN, None, "") or one of :data:`UNKNOWN`; the
classes are the other distinct values. The fitted state (the classes) is plain JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

# Values that mean "no label" (scvi-tools' unlabeled_category is "Unknown" by convention).
UNKNOWN = frozenset({"", "unknown", "Unknown", "UNKNOWN", "unlabeled", "unlabelled", "nan"})


class LabelClasses:
    """The classes of a label column and their indices, in sorted order.

    Parameters
    ----------
    classes : list
        Distinct class values (strings or integers), at least two.

    Examples
    --------
    >>> labels = LabelClasses.fit(["B", "T", "unknown", None, "T"])
    >>> labels.classes, labels.encode(["T", "Unknown", "B"]).tolist()
    (['B', 'T'], [1, -1, 0])
    """

    def __init__(self, classes: list) -> None:
        if len(classes) < 2:
            raise ValueError(
                f"labels need at least two classes to learn from; got {classes}: give labels "
                "of two or more kinds (missing values and 'unknown' mark unlabelled samples)"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(f"label classes must be distinct; got {classes}")
        self.classes = list(classes)
        self._index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, values: Any) -> LabelClasses:
        """The classes of ``values``: its distinct known values, sorted."""
        known = [v for v in _values(values) if not _unknown(v)]
        return cls(sorted(set(known), key=lambda v: (str(type(v)), v)))

    def encode(self, values: Any, strict: bool = False) -> torch.Tensor:
        """(n,) int64 class indices, -1 for an unlabelled sample; with ``strict``, a label of
        a class not among :attr:`classes` is refused (else it counts as unlabelled)."""
        plain = _values(values)
        codes = [-1 if _unknown(v) else self._index.get(v, -2) for v in plain]
        unseen = sorted({str(v) for v, c in zip(plain, codes, strict=True) if c == -2})
        if unseen and strict:
            raise ValueError(
                f"labels {unseen[:5]} are not among the classes the model learned: "
                f"{self.classes[:20]}; mark them 'unknown' to leave those samples unlabelled"
            )
        return torch.tensor([max(c, -1) for c in codes], dtype=torch.int64)

    def to_list(self) -> list:
        return list(self.classes)


def resolve_labels(X: Any, labels: Any, n: int) -> list | None:
    """The labels given: ``labels`` itself (one per sample), or the ``obs`` column of the
    AnnData X that it names; None for None."""
    if labels is None:
        return None
    if isinstance(labels, str):
        obs = getattr(X, "obs", None)
        if obs is None:
            raise TypeError(
                f"labels={labels!r} names a column, which needs an AnnData with that obs "
                "column; pass the labels themselves instead"
            )
        if labels not in obs.columns:
            raise ValueError(
                f"obs has no column {labels!r} for the labels; its columns: {list(obs.columns)}"
            )
        labels = obs[labels]
    values = _values(labels)
    if len(values) != n:
        raise ValueError(f"labels has {len(values)} values; X has {n} samples")
    return values


def _values(values: Any) -> list:
    """Plain Python values (NumPy scalars unwrapped), one per sample."""
    array = np.asarray(pd.Series(values).astype(object).to_numpy(), dtype=object)
    if array.ndim != 1:
        raise ValueError(f"labels must be one value per sample; got shape {array.shape}")
    return [_plain(v.item() if isinstance(v, np.generic) else v) for v in array]


def _plain(value: Any) -> Any:
    """A label as JSON keeps it: whole numbers as int (a column of integer labels with a gap
    reads as floats), flags as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unknown(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        if np.isnan(value):
            return True
        raise ValueError(
            f"labels must be categories (text or whole numbers); got {value!r}: a continuous "
            "value is a condition (y), not a label"
        )
    if isinstance(value, (int, bool)):
        return False
    if isinstance(value, str):
        return value.strip() in UNKNOWN
    raise TypeError(
        f"labels must be text or integers; got {value!r} of type {type(value).__name__}"
    )
