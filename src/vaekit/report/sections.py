"""The report's sections: each looks at the model and the data and returns the figures that
apply (image figures for image models, table figures otherwise, annotation figures when there
are annotations), with captions that say what to look for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaekit import plot
from vaekit.analysis.findings import SIGNIFICANT
from vaekit.plot import _data
from vaekit.report.document import Section, add_figure
from vaekit.report.factors import factors
from vaekit.vae import VAE

MAX_MAPS = 3  # latent maps, one per annotation
MAX_GENE_PANELS = 3
LOADING_ROWS = 500  # rows over which a deep decoder's Jacobian loadings are averaged


@dataclass
class Context:
    """What the sections draw from: the model, the rows shown and the held-out rows (with
    their conditions), the annotations of the rows shown, and their latent means."""

    model: VAE
    X: Any
    y: Any
    X_eval: Any
    y_eval: Any
    annotations: pd.DataFrame | None
    associations: pd.DataFrame | None
    image: tuple[int, ...] | None
    layer: str | None
    latent: np.ndarray
    seed: int = 0
    de: pd.DataFrame | None = None  # a differential expression table to show, when given
    disentanglement: dict | None = None  # vaekit.analysis.disentanglement, when factors given

    @property
    def conditional(self) -> bool:
        return self.model.covariates_ is not None

    @property
    def inputs(self) -> str:
        """What to call the model's inputs: named columns of a table are most often genes."""
        return "genes" if hasattr(self.model, "feature_names_in_") else "inputs"


_add = add_figure


# ----------------------------------------------------------------------------- training
def training(ctx: Context) -> Section:
    """Loss curves, and how much each latent feature is used."""
    section = Section("training", "Training", "How the loss fell, epoch by epoch.")
    _add(
        section,
        "Training curves",
        "Training and validation curves should fall and flatten together; a validation curve "
        "that turns up while the training curve keeps falling is overfitting, and early "
        "stopping keeps the best epoch (dashed). While the KL weight (dotted, right axis) "
        "warms up, the loss counts the KL less, so judge the curves after the warm-up.",
        lambda: plot.training_curves(ctx.model),
    )
    _add(
        section,
        "Latent features in use",
        "A latent feature with a KL near zero (grey) carries no information about the sample: "
        "its posterior is the prior. Many such features mean a smaller latent space would do, "
        "or that training wants a longer warm-up or a lower beta. The heatmap shows when each "
        "feature came into use during training.",
        lambda: plot.kl_per_feature(ctx.model, ctx.X_eval, ctx.y_eval, layer=ctx.layer),
    )
    return section


# ----------------------------------------------------------------------------- reconstructions
def reconstructions(ctx: Context) -> Section:
    """Held-out samples beside their reconstructions (images), or the two compared (tables)."""
    section = Section(
        "reconstructions",
        "Reconstructions",
        "Held-out samples encoded and decoded again (the decoder's mean at the posterior mean).",
    )
    if ctx.image is not None:
        _add(
            section,
            "Images and their reconstructions",
            "Each reconstruction should keep the identity and shape of the image above it; some "
            "blur is expected, since this is the decoder's mean, not a draw.",
            lambda: plot.reconstruction_pairs(
                ctx.model, ctx.X_eval, ctx.y_eval, n=20, layer=ctx.layer
            ),
        )
    else:
        _add(
            section,
            "Reconstructed against observed values",
            "Left, every value: points should gather along the dashed line y = x. Right, each "
            "feature's correlation between observed and reconstructed values across samples: "
            "near 1 the model follows the feature sample by sample, near 0 it predicts little "
            "more than its mean. Values are compared after the model's preprocessing.",
            lambda: plot.reconstruction_scatter(ctx.model, ctx.X_eval, ctx.y_eval, layer=ctx.layer),
        )
    return section


# ----------------------------------------------------------------------------- generation
def generation(ctx: Context) -> Section:
    """Samples from the prior: a grid (images), or their moments against the data's (tables)."""
    section = Section(
        "samples", "Samples from the model", "New samples: z drawn from N(0, I), decoded."
    )
    if ctx.image is not None:
        per_class = (
            "; for a model conditioned on a label, a row per label" if ctx.conditional else ""
        )
        _add(
            section,
            "Samples from the prior",
            "They should look like the data" + per_class + ". Smeared or mixed images come "
            "from regions of the latent space that the encoder leaves empty.",
            lambda: _prior_samples(ctx),
        )
    else:
        _add(
            section,
            "Samples against the data, feature by feature",
            "Each point is a feature. Means on the line y = x: the samples have the data's "
            "levels. Standard deviations below the line: the samples vary less than the data, "
            "often because the decoder averages over what the latent space does not hold.",
            lambda: plot.sample_moments(ctx.model, ctx.X, ctx.y, layer=ctx.layer, seed=ctx.seed),
        )
    return section


def _prior_samples(ctx: Context) -> Figure:
    try:
        # 10 per label of a label-conditioned model, else a 6 x 6 grid
        return plot.prior_samples(ctx.model, 10 if ctx.conditional else 36, seed=ctx.seed)
    except ValueError:  # conditional on several or continuous columns: take the data's first
        condition = _data.take_conditions(ctx.y, np.array([0]))
        return plot.prior_samples(ctx.model, 36, condition=condition, seed=ctx.seed)


# ----------------------------------------------------------------------------- latent paths
def paths(ctx: Context) -> Section | None:
    """Interpolations and traversals, for image models: decoded tables are hard to read."""
    if ctx.image is None:
        return None
    section = Section(
        "paths",
        "Moving through the latent space",
        "Decoded points along straight lines in the latent space.",
    )
    n = _data.n_rows(ctx.X_eval)
    pairs = [(i, i + 1) for i in range(0, min(n - 1, 8), 2)]
    if pairs:
        _add(
            section,
            "Interpolations between held-out samples",
            "Each row decodes the straight line between the posterior means of two held-out "
            "samples (numbered as in the reconstructions). Plausible images all along, changing "
            "smoothly, show a continuous latent space; a sudden jump or a blurred middle shows "
            "a gap.",
            lambda: plot.interpolation_grid(
                ctx.model, ctx.X_eval, pairs, ctx.y_eval, layer=ctx.layer
            ),
        )
    _add(
        section,
        "Traversals of the most used latent features",
        "Each row moves one latent feature from -3 to +3 prior standard deviations around a "
        "held-out sample, the others fixed; rows are ordered by KL (in brackets). A row that "
        "does not change is an unused feature; a row that changes one property only (width, "
        "slant...) is a disentangled one.",
        lambda: plot.traversal_grid(
            ctx.model, ctx.X_eval, 0, ctx.y_eval, features=min(8, ctx.latent.shape[1])
        ),
    )
    return section


# ----------------------------------------------------------------------------- latent maps
def map_columns(associations: pd.DataFrame | None, most: int = MAX_MAPS) -> list[str]:
    """The annotations to colour latent maps by: those tested (not IDs, not single-valued),
    strongest association first, each a split of the samples not already shown under another
    name (TCGA's sample_type and sample_type_code, say)."""
    if associations is None or associations.empty:
        return []
    frame = associations.assign(effect=plot.effect_size(associations).abs())
    profiles = frame.pivot(index="feature", columns="annotation", values="effect")
    chosen: list[str] = []
    for name in profiles.max().sort_values(ascending=False, kind="stable").index:
        if not any(np.allclose(profiles[name], profiles[c], atol=1e-9) for c in chosen):
            chosen.append(str(name))
    return chosen[:most]


def maps(ctx: Context) -> Section:
    """Latent maps coloured by the annotations that the latent features track best."""
    section = Section(
        "latent-map",
        "Latent map",
        f"The posterior means of {len(ctx.latent):,} samples, projected on their first two "
        "principal components.",
    )
    columns = map_columns(ctx.associations)
    colours: list[tuple[str, Any]] = [(c, ctx.annotations[c]) for c in columns]
    if not colours and ctx.conditional:
        colours = _condition_colour(ctx.y)
    if ctx.conditional:
        section.notes.append(
            "The model is conditional: its encoder and decoder are given the condition, so the "
            "latent space need not separate it (and ideally does not)."
        )
    for name, values in colours or [(None, None)]:
        what = f" coloured by {name}" if name else ""
        _add(
            section,
            f"Latent map{what}",
            "Groups that separate show what the latent space captured without being told; a "
            "gradient along an axis shows a continuous factor.",
            lambda v=values: plot.latent_map(ctx.latent, _reset(v), seed=ctx.seed),
        )
    return section


def _condition_colour(y: Any) -> list[tuple[str, Any]]:
    """A conditional model's one condition column, to colour the map by when there are no
    annotations (a map that does not separate it is what the model should give)."""
    if isinstance(y, pd.DataFrame):
        return [(str(y.columns[0]), y.iloc[:, 0])] if y.shape[1] == 1 else []
    if np.ndim(y) == 1:
        return [("condition", pd.Series(np.asarray(y), name="condition"))]
    return []


def _reset(values: Any) -> Any:
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else values


# ----------------------------------------------------------------------------- meaning
def meaning(ctx: Context) -> Section | None:
    """Associations with the annotations and, for tables, the genes behind the features."""
    found = ctx.associations
    if found is None and ctx.image is not None:
        return None
    tracks = "Which sample annotations each latent feature tracks" if found is not None else ""
    drives = f"which {ctx.inputs} drive it" if ctx.image is None else ""
    intro = " and ".join(t for t in (tracks, drives) if t) + "."
    section = Section("meaning", "What the latent features mean", intro[0].upper() + intro[1:])
    if found is not None:
        _add(
            section,
            "Latent features against annotations",
            "Each cell is one test: the rank-biserial correlation (2 AUROC - 1) for an "
            "annotation with levels, Spearman's rho for a number; bold where q < 0.05. A "
            "feature that tracks one annotation strongly and nothing else is a clean factor.",
            lambda: plot.association_heatmap(found),
        )
        for name, reason in found.attrs.get("skipped", {}).items():
            section.notes.append(f"{name}: not tested ({reason}).")
        _add(
            section,
            "Which feature carries each annotation",
            "Mutual information of each annotation with each feature (binned), over the "
            "annotation's entropy; the row label gives the gap between the best feature and "
            "the second (MIG): near 1, one feature alone carries it; near 0, it is shared.",
            lambda: plot.factor_heatmap(_carriers(ctx)),
        )
    if ctx.image is None:
        features, titles = gene_features(ctx, found)
        which = "the features that track annotations" if titles else "the most used features"
        _add(
            section,
            f"Top {ctx.inputs} of {which}",
            f"The {ctx.inputs} that weigh most on each feature, read from the decoder: red "
            "ones rise with the feature, blue ones fall. Known biology among them (sex-"
            "chromosome genes on a feature that tracks sex) confirms what the feature means.",
            lambda: plot.gene_weights(_loadings(ctx), features, k=12, titles=titles),
        )
    return section


def _carriers(ctx: Context) -> dict[str, Any]:
    from vaekit.analysis.carriers import annotation_carriers  # scikit-learn: only when drawn

    return annotation_carriers(ctx.latent, ctx.annotations.reset_index(drop=True))


def gene_features(ctx: Context, found: pd.DataFrame | None) -> tuple[list[int], list[str]]:
    """The features to show genes for: the best one per annotation where it is significant,
    else the most used ones (by their KL at the best epoch), with a title line for each."""
    features, titles = [], []
    if found is not None:
        for name, rows in found.groupby("annotation", sort=False):
            best = rows.iloc[0]
            if best.q < SIGNIFICANT and int(best.feature) not in features:
                features.append(int(best.feature))
                effect = plot.effect_size(rows.iloc[:1]).iloc[0]
                titles.append(f"{name} ({effect:+.2f})")
    if not features:
        kl = ctx.model.history_.filter(regex=r"^kl_z\d+$").iloc[ctx.model.best_epoch_]
        features = [int(c[4:]) for c in kl.sort_values(ascending=False).index]
        features = features or list(range(ctx.latent.shape[1]))  # a history without KL
    return features[:MAX_GENE_PANELS], titles[:MAX_GENE_PANELS]


def _loadings(ctx: Context) -> pd.DataFrame:
    rows = _data.subsample(len(ctx.latent), LOADING_ROWS, ctx.seed)
    X, y = _data.take_rows(ctx.X, rows), _data.take_conditions(ctx.y, rows)
    return ctx.model.loadings(X, y, layer=ctx.layer, n_samples=len(rows), seed=ctx.seed)


# ----------------------------------------------------------------------------- anomalies
def anomalies(ctx: Context) -> Section | None:
    """The anomaly scores of the data against the threshold, for a calibrated model."""
    calibration = getattr(ctx.model, "calibration_", None)
    if calibration is None:
        return None
    section = Section(
        "anomalies",
        "Anomaly scores",
        f"Scores of the {len(ctx.latent):,} samples shown, against the threshold calibrated on "
        "control samples.",
    )
    fpr = getattr(calibration, "fpr", None)
    expected = "" if fpr is None else f" (about {fpr:.0%} of samples like the controls)"
    _add(
        section,
        "Anomaly scores and the calibrated threshold",
        "The outlined histogram is the control samples the threshold was set on; samples to "
        f"the right of the red line are flagged{expected}. A second mode far right of the "
        "controls is a group the model has not seen.",
        lambda: plot.anomaly_histogram(_scores(ctx, calibration), calibration),
    )
    return section


def _scores(ctx: Context, calibration: Any) -> np.ndarray:
    return ctx.model.anomaly_score(
        ctx.X,
        ctx.y,
        calibration.method,
        layer=ctx.layer,
        n_draws=getattr(calibration, "n_draws", None),
    )


# ----------------------------------------------------------------------------- DE
def differential(ctx: Context) -> Section | None:
    """The volcano plot of a differential expression table, when the report was given one."""
    if ctx.de is None:
        return None
    section = Section(
        "differential",
        "Differential expression",
        "Posterior log fold changes between two groups of cells (vaekit de).",
    )
    _add(
        section,
        "Volcano plot",
        "Each point is a gene: its mean log2 fold change against the posterior probability "
        "that it changes by more than delta. Coloured genes are called at the target false "
        "discovery rate (red up, blue down in the first group); the strongest are named.",
        lambda: plot.volcano(ctx.de),
    )
    return section


SECTIONS: list[Callable[[Context], Section | None]] = [
    training,
    reconstructions,
    generation,
    paths,
    maps,
    meaning,
    factors,
    anomalies,
    differential,
]
