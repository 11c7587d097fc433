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
    from vaekit.analysis.baselines import (
        BaselineSkipped,
        anomaly_baseline,
        imputation_baseline,
        reconstruction_baseline,
        separation_baseline,
    )
    from vaekit.analysis.differential import differential_expression
    from vaekit.analysis.disentanglement_metrics import disentanglement
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
    "BaselineSkipped": "vaekit.analysis.baselines",
    "Calibration": "vaekit.calibration",
    "LatentPath": "vaekit.analysis.paths",
    "Traversal": "vaekit.analysis.paths",
    "anomaly_score": "vaekit.analysis.anomaly",
    "anomaly_baseline": "vaekit.analysis.baselines",
    "associate": "vaekit.analysis.associations",
    "calibrate": "vaekit.analysis.anomaly",
    "contributions": "vaekit.analysis.anomaly",
    "differential_expression": "vaekit.analysis.differential",
    "disentanglement": "vaekit.analysis.disentanglement_metrics",
    "evaluate": "vaekit.analysis.evaluation",
    "extend": "vaekit.analysis.mapping",
    "generate": "vaekit.analysis.generation",
    "heaviest": "vaekit.analysis.interpretation",
    "imputation_baseline": "vaekit.analysis.baselines",
    "high_weight_genes": "vaekit.analysis.interpretation",
    "interpolate": "vaekit.analysis.paths",
    "loadings": "vaekit.analysis.interpretation",
    "midpoint": "vaekit.analysis.paths",
    "normalized_expression": "vaekit.analysis.expression",
    "predict_labels": "vaekit.analysis.expression",
    "reconstruction_baseline": "vaekit.analysis.baselines",
    "separation_baseline": "vaekit.analysis.baselines",
    "to_image_grid": "vaekit.analysis.paths",
    "top_genes": "vaekit.analysis.interpretation",
    "traverse": "vaekit.analysis.paths",
}

__all__ = [
    "BaselineSkipped",
    "Calibration",
    "LatentPath",
    "Traversal",
    "anomaly_baseline",
    "anomaly_score",
    "associate",
    "calibrate",
    "contributions",
    "differential_expression",
    "disentanglement",
    "evaluate",
    "extend",
    "generate",
    "heaviest",
    "high_weight_genes",
    "imputation_baseline",
    "interpolate",
    "loadings",
    "midpoint",
    "normalized_expression",
    "predict_labels",
    "reconstruction_baseline",
    "separation_baseline",
    "to_image_grid",
    "top_genes",
    "traverse",
]


__getattr__, __dir__ = lazy_exports("vaekit.analysis", globals(), _EXPORTS)
