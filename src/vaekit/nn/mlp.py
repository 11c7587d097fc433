"""A multilayer perceptron that can take a condition vector at every layer."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}


def with_condition(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """``h`` (B, n) with the condition ``c`` (B, n_cov) appended; ``h`` alone without one."""
    return h if c is None else torch.cat([h, c], dim=-1)


def mlp_size(
    n_in: int, hidden: tuple[int, ...], n_cov: int = 0, batch_norm: bool = False
) -> tuple[int, int]:
    """(parameters and buffers, output width) of ``MLP(n_in, hidden, n_cov, batch_norm=...)``,
    counted without building it.

    Examples
    --------
    >>> mlp_size(64, (128, 32), n_cov=2)
    (12768, 32)
    """
    values = 0
    for n_out in hidden:
        values += (n_in + n_cov + 1) * n_out + (4 * n_out + 1 if batch_norm else 0)
        n_in = n_out
    return values, n_in


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout], once per hidden size.

    The condition ``c`` is concatenated to the input of every layer (as scVI's
    ``inject_covariates``), so deep layers cannot forget it.

    Parameters
    ----------
    n_in : int
        Input width (without the condition).
    hidden : tuple of int
        Layer widths; ``()`` makes the identity.
    n_cov : int
        Width of the condition vector.
    activation : str
        Key of :data:`ACTIVATIONS`.
    batch_norm : bool
    dropout : float
    """

    def __init__(
        self,
        n_in: int,
        hidden: tuple[int, ...],
        n_cov: int = 0,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        layers = []
        for n_out in hidden:
            block: list[nn.Module] = [nn.Linear(n_in + n_cov, n_out)]
            if batch_norm:
                block.append(nn.BatchNorm1d(n_out))
            block.append(ACTIVATIONS[activation]())
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*block))
            n_in = n_out
        self.layers = nn.ModuleList(layers)
        self.n_out = n_in

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(with_condition(x, c))
        return x
