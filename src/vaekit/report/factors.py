"""The report's section on known generative factors: the disentanglement scores, and which
latent feature carries each factor (:func:`vaekit.analysis.disentanglement`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaekit import plot
from vaekit.report.document import Section, add_figure

if TYPE_CHECKING:
    from vaekit.report.sections import Context

NAMES = {
    "mig": "MIG",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "completeness",
    "dci_informativeness": "informativeness",
    "sap": "SAP",
    "factorvae_score": "FactorVAE score",
    "betavae_score": "beta-VAE score",
}


def factors(ctx: Context) -> Section | None:
    """The scores and a factor x feature heatmap, when the report was given factors."""
    result = ctx.disentanglement
    if result is None:
        return None
    scores = ", ".join(f"{label} {result[key]:.2f}" for key, label in NAMES.items())
    section = Section(
        "factors",
        "Known generative factors",
        f"How well the latent features separate the known factors, on the {len(ctx.latent):,} "
        f"samples shown (0 to 1, higher is better): {scores}.",
    )
    add_figure(
        section,
        "Mutual information of each factor with each feature",
        "Each row is a factor, divided by its entropy; the row label gives its MIG gap (best "
        "feature minus second). A disentangled code has one bright cell per row and column; a "
        "factor spread over several features is entangled.",
        lambda: plot.factor_heatmap(result, "mutual_information"),
    )
    add_figure(
        section,
        "Importance of each feature for predicting each factor (DCI)",
        "Random-forest importances, each row summing to 1: DCI disentanglement asks that each "
        "feature predict one factor, completeness that each factor be predicted by one feature.",
        lambda: plot.factor_heatmap(result, "importance"),
    )
    return section
