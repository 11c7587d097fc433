"""Analyses built on a fitted :class:`vaekit.VAE`."""

from vaekit.analysis.associations import associate
from vaekit.analysis.evaluation import evaluate
from vaekit.analysis.generation import generate
from vaekit.analysis.interpretation import heaviest, high_weight_genes, top_genes

__all__ = ["associate", "evaluate", "generate", "heaviest", "high_weight_genes", "top_genes"]
