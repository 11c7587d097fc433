"""Figures of a fitted VAE, one function per figure, each returning a matplotlib ``Figure``.

Nothing here uses pyplot: figures are built from :class:`matplotlib.figure.Figure` directly,
so they touch no global state, are never shown by themselves, and can be drawn from any thread.
Save them with :func:`save_figure` (PNG, SVG or PDF by the suffix, written atomically).

Examples
--------
>>> from vaekit import plot
>>> fig = plot.training_curves(model)  # doctest: +SKIP
>>> plot.save_figure(plot.reconstruction_pairs(model, X_test), "pairs.png")  # doctest: +SKIP
"""

from vaekit.analysis.latent_map import embed, figure_format, latent_map, plot_latent, save_figure
from vaekit.plot.anomaly import anomaly_histogram
from vaekit.plot.differential import volcano
from vaekit.plot.factors import factor_heatmap
from vaekit.plot.genes import association_heatmap, effect_size, gene_weights
from vaekit.plot.images import (
    interpolation_grid,
    prior_samples,
    reconstruction_pairs,
    traversal_grid,
)
from vaekit.plot.tables import column_correlation, reconstruction_scatter, sample_moments
from vaekit.plot.training import kl_per_feature, training_curves

__all__ = [
    "anomaly_histogram",
    "association_heatmap",
    "column_correlation",
    "effect_size",
    "embed",
    "factor_heatmap",
    "figure_format",
    "gene_weights",
    "interpolation_grid",
    "kl_per_feature",
    "latent_map",
    "plot_latent",
    "prior_samples",
    "reconstruction_pairs",
    "reconstruction_scatter",
    "sample_moments",
    "save_figure",
    "training_curves",
    "traversal_grid",
    "volcano",
]
