"""Analyses built on a fitted model (:class:`vaekit.estimator.BaseVAE`).

The names below are imported on first use (:pep:`562`): importing one analysis loads only
what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaekit._lazy import lazy_exports

if TYPE_CHECKING:
    from vaekit.analysis.anomaly import anomaly_score, calibrate, contributions
    from vaekit.analysis.associations import associate
    from vaekit.analysis.differential import differential_expression
    from vaekit.analysis.evaluation import evaluate
    from vaekit.analysis.expression import normalized_expression, predict_labels
    from vaekit.analysis.generation import generate
    from vaekit.analysis.interpretation import heaviest, high_weight_genes, loadings, top_genes
    from vaekit.analysis.mapping import extend
    from vaekit.analysis.paths import (
        LatentPath,
        Traversal,
        interpolate,
        midpoint,
        to_image_grid,
        traverse,
    )
    from vaekit.calibration import Calibration

# public name -> the module that defines it
_EXPORTS = {
    "Calibration": "vaekit.calibration",
    "LatentPath": "vaekit.analysis.paths",
    "Traversal": "vaekit.analysis.paths",
    "anomaly_score": "vaekit.analysis.anomaly",
    "associate": "vaekit.analysis.associations",
    "calibrate": "vaekit.analysis.anomaly",
    "contributions": "vaekit.analysis.anomaly",
    "differential_expression": "vaekit.analysis.differential",
    "evaluate": "vaekit.analysis.evaluation",
    "extend": "vaekit.analysis.mapping",
    "generate": "vaekit.analysis.generation",
    "heaviest": "vaekit.analysis.interpretation",
    "high_weight_genes": "vaekit.analysis.interpretation",
    "interpolate": "vaekit.analysis.paths",
    "loadings": "vaekit.analysis.interpretation",
    "midpoint": "vaekit.analysis.paths",
    "normalized_expression": "vaekit.analysis.expression",
    "predict_labels": "vaekit.analysis.expression",
    "to_image_grid": "vaekit.analysis.paths",
    "top_genes": "vaekit.analysis.interpretation",
    "traverse": "vaekit.analysis.paths",
}

__all__ = [
    "Calibration",
    "LatentPath",
    "Traversal",
    "anomaly_score",
    "associate",
    "calibrate",
    "contributions",
    "differential_expression",
    "evaluate",
    "extend",
    "generate",
    "heaviest",
    "high_weight_genes",
    "interpolate",
    "loadings",
    "midpoint",
    "normalized_expression",
    "predict_labels",
    "to_image_grid",
    "top_genes",
    "traverse",
]


__getattr__, __dir__ = lazy_exports("vaekit.analysis", globals(), _EXPORTS)
