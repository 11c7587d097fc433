"""Network building blocks."""

from vaekit.nn.mlp import ACTIVATIONS, MLP

__all__ = ["ACTIVATIONS", "MLP"]
