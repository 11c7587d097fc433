"""Analyses built on a fitted :class:`vaekit.VAE`."""

from vaekit.analysis.anomaly import Calibration, anomaly_score, calibrate, contributions
from vaekit.analysis.associations import associate
from vaekit.analysis.evaluation import evaluate
from vaekit.analysis.generation import generate
from vaekit.analysis.interpretation import heaviest, high_weight_genes, top_genes
from vaekit.analysis.paths import (
    LatentPath,
    Traversal,
    interpolate,
    midpoint,
    to_image_grid,
    traverse,
)

__all__ = [
    "Calibration",
    "LatentPath",
    "Traversal",
    "anomaly_score",
    "associate",
    "calibrate",
    "contributions",
    "evaluate",
    "generate",
    "heaviest",
    "high_weight_genes",
    "interpolate",
    "midpoint",
    "to_image_grid",
    "top_genes",
    "traverse",
]
