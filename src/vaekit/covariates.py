"""Conditions y of a conditional VAE, encoded as one float vector per sample.

Columns with a floating-point dtype are continuous (standardised); every other column (integer
labels, strings, booleans, categories) is categorical (one-hot). The fitted state is plain JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from vaekit.validation import check_length


@dataclass
class Covariate:
    """One column of y: its name, kind and fitted state."""

    name: str
    kind: str  # "categorical" or "continuous"
    categories: list | None = None
    mean: float | None = None
    std: float | None = None

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1

    def encode(self, values: pd.Series) -> np.ndarray:
        """(n, width) float32 columns."""
        if self.kind == "continuous":
            return ((values.to_numpy(np.float64) - self.mean) / self.std)[:, None]
        lookup = {c: i for i, c in enumerate(self.categories)}
        codes = values.map(lambda v: lookup.get(_plain(v), -1)).to_numpy()
        if (codes < 0).any():
            unseen = sorted({str(v) for v in values[codes < 0]})
            raise ValueError(
                f"y column {self.name!r} has categories the model was not fitted on: "
                f"{unseen[:5]}; known categories: {self.categories[:20]}"
            )
        return np.eye(len(self.categories), dtype=np.float32)[codes]


class CovariateEncoder:
    """Fitted encoder of y; see the module docstring for how column kinds are chosen."""

    def __init__(self, columns: list[Covariate]) -> None:
        self.columns = columns

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    @classmethod
    def fit(cls, y: Any, n: int) -> CovariateEncoder:
        frame = _as_frame(y, n)
        return cls([_fit_column(str(name), frame[name]) for name in frame.columns])

    def transform(self, y: Any, n: int, broadcast: bool = False) -> torch.Tensor:
        """(n, width) float32 tensor; with ``broadcast``, a single row of y is repeated n times."""
        frame = self._matched(y, n, broadcast)
        parts = [c.encode(frame[c.name]) for c in self.columns]
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))

    def _matched(self, y: Any, n: int, broadcast: bool = False) -> pd.DataFrame:
        """y as a frame whose columns are the model's conditions, by name or by position."""
        frame = _as_frame(y, n, broadcast=broadcast)
        names = self.names
        if len(frame.columns) != len(names):
            raise ValueError(f"y has {len(frame.columns)} column(s); the model expects {names}")
        frame.columns = names if _default_names(frame) else [str(c) for c in frame.columns]
        missing = [n_ for n_ in names if n_ not in frame.columns]
        if missing:
            raise ValueError(f"y lacks column(s) {missing}; the model expects {names}")
        return frame

    def extended(self, y: Any, n: int) -> CovariateEncoder:
        """A copy whose categorical columns also hold the categories of y they lack, appended
        in sorted order (new batches of a query: :func:`vaekit.analysis.extend`)."""
        frame = self._matched(y, n)
        columns = []
        for c in self.columns:
            categories = c.categories
            if c.kind == "categorical":
                known = {str(v) for v in categories}
                seen = {_plain(v) for v in frame[c.name]}
                new = sorted((v for v in seen if str(v) not in known),
                             key=lambda v: (str(type(v)), v))
                categories = [*categories, *new]
            columns.append(Covariate(c.name, c.kind, categories, c.mean, c.std))
        return CovariateEncoder(columns)

    def parse(self, text: str | float) -> object:
        """The value of a one-column condition written as text: the category whose text it is,
        or a number for a continuous condition."""
        if len(self.columns) != 1:
            names = [c.name for c in self.columns]
            raise ValueError(f"the model is conditional on {names}; one value cannot set them all")
        column = self.columns[0]
        if column.kind == "continuous":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"condition {column.name!r} is a number; got {text!r}") from None
        for category in column.categories:
            if str(category) == str(text):
                return category
        raise ValueError(
            f"condition {text!r} is not a category of {column.name!r}: {column.categories[:20]}"
        )

    def block(self, name: str) -> tuple[int, int]:
        """(start, stop) of column ``name``'s part of the encoded vector."""
        start = 0
        for c in self.columns:
            if c.name == name:
                return start, start + c.width
            start += c.width
        raise ValueError(f"the model has no condition {name!r}; its conditions: {self.names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def batch_column(self, key: str | None = None) -> Covariate:
        """The categorical condition that a batch is a category of: ``key``, or the only
        categorical condition."""
        found = [c for c in self.columns if c.kind == "categorical" and key in (None, c.name)]
        if len(found) != 1:
            kinds = {c.name: c.kind for c in self.columns}
            raise ValueError(
                f"cannot tell which condition is the batch among {kinds}: pass it as "
                "batch={column: category}" if key is None else
                f"{key!r} is not a categorical condition of the model; its conditions: {kinds}"
            )
        return found[0]

    def with_category(self, cov: torch.Tensor, name: str, category: Any) -> torch.Tensor:
        """``cov`` (n, width) with condition ``name`` set to ``category`` in every row."""
        column = self.batch_column(name)
        known = [str(c) for c in column.categories]
        if str(category) not in known:
            raise ValueError(
                f"{category!r} is not a category of {name!r}: {column.categories[:20]}"
            )
        start, stop = self.block(name)
        out = cov.clone()
        out[:, start:stop] = 0
        out[:, start + known.index(str(category))] = 1
        return out

    def to_dict(self) -> list[dict]:
        return [asdict(c) for c in self.columns]

    @classmethod
    def from_dict(cls, d: list[dict]) -> CovariateEncoder:
        return cls([Covariate(**c) for c in d])


def _fit_column(name: str, values: pd.Series) -> Covariate:
    if pd.api.types.is_float_dtype(values):
        std = float(values.std(ddof=0))
        return Covariate(name, "continuous", mean=float(values.mean()), std=std if std > 0 else 1.0)
    categories = sorted({_plain(v) for v in values}, key=lambda v: (str(type(v)), v))
    return Covariate(name, "categorical", categories=categories)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so categories round-trip through JSON."""
    return v.item() if isinstance(v, np.generic) else v


def _default_names(frame: pd.DataFrame) -> bool:
    return list(frame.columns) == list(range(frame.shape[1]))


def _as_frame(y: Any, n: int, broadcast: bool = False) -> pd.DataFrame:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, pd.Series):
        frame = y.reset_index(drop=True).to_frame()  # an unnamed Series becomes column 0
    elif isinstance(y, pd.DataFrame):
        frame = y.reset_index(drop=True)
    else:
        arr = np.asarray(y)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        frame = pd.DataFrame(arr.reshape(len(arr), -1) if arr.ndim == 1 else arr)
    if broadcast and len(frame) == 1 and n != 1:
        frame = frame.loc[np.zeros(n, dtype=int)].reset_index(drop=True)
    check_length(len(frame), n, "y")
    if frame.isna().to_numpy().any():
        col = frame.columns[frame.isna().any().to_numpy()][0]
        raise ValueError(f"y column {col!r} has missing values; fill or drop those samples")
    for col in frame.columns:
        if pd.api.types.is_float_dtype(frame[col]) and not np.isfinite(frame[col]).all():
            raise ValueError(f"y column {col!r} has infinite values; fix or drop those samples")
    return frame
