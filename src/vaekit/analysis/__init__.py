"""Analyses built on a fitted :class:`vaekit.VAE`."""

from vaekit.analysis.evaluation import evaluate
from vaekit.analysis.generation import generate

__all__ = ["evaluate", "generate"]
