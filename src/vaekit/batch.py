"""One minibatch as the module reads it: the rows, the mask of observed entries, the encoded
conditions and the library sizes, built once per step (:meth:`vaekit.model.VAEModule.batch`)
instead of optional tensors passed separately."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """B rows of data with what goes with them.

    Attributes
    ----------
    x : Tensor
        (B, D) values as given; with missing entries, NaN where not observed.
    observed : Tensor or None
        (B, D) bool mask of the entries that count; None: every entry counts.
    condition : Tensor or None
        (B, n_covariates) encoded conditions of a conditional model.
    library : Tensor or None
        (B, 1) library sizes of count likelihoods; None for other likelihoods.

    Examples
    --------
    >>> b = Batch(torch.zeros(6, 3))
    >>> len(b.slice(4, 4)), len(b.repeat(2))
    (2, 12)
    """

    x: torch.Tensor
    observed: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    library: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def slice(self, start: int, size: int) -> Batch:
        """Rows ``start`` to ``start + size`` (fewer at the end)."""
        return Batch(*(_slice(t, start, size) for t in self._parts()))

    def repeat(self, k: int) -> Batch:
        """The rows repeated ``k`` times, draw-major: row i of copy j is row j * B + i."""
        return Batch(*(_repeat(t, k) for t in self._parts()))

    def _parts(self) -> tuple[torch.Tensor | None, ...]:
        return self.x, self.observed, self.condition, self.library


def _slice(t: torch.Tensor | None, start: int, size: int) -> torch.Tensor | None:
    return None if t is None else t[start : start + size]


def _repeat(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    return None if t is None else t.repeat(k, 1)
