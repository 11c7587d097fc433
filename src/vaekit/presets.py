"""Named sets of VAE settings. An argument given to :class:`vaekit.VAE` (not None) overrides the
preset's value; the preset overrides :data:`DEFAULTS`.

``tybalt`` reproduces Tybalt (Way & Greene 2018, "Extracting a biologically relevant latent space
from cancer transcriptomes with variational autoencoders"): log2(x + 1) expression, the 5,000
genes of largest mean absolute deviation (pandas' ``mad()``, which Tybalt's code used; the paper
says median), min-max scaled to [0, 1], 100 latent features, an encoder with no hidden layer whose
mean and log-variance pass through batch norm, a single-layer decoder, cross-entropy
(Bernoulli-style) loss, Adam lr 0.0005, batch 50, 50 epochs, KL warm-up over the first epoch
(Tybalt's kappa = 1).

Where vaekit departs from Tybalt's code on purpose:

- Tybalt passes the batch-normalised mean and log-variance through a ReLU. On the log-variance
  that forces every posterior variance to be >= 1 (the prior's), and on the mean it forbids
  negative coordinates; vaekit keeps the batch norm and drops the ReLU.
- Tybalt's Keras warm-up read its KL weight once, when the graph was built, so the weight never
  changed; vaekit's weight reaches the loss at every epoch.
- Tybalt trained on 90% and reported on the other 10%; vaekit's ``validation_fraction`` (10%)
  plays that part, and early stopping is off, as Tybalt ran a fixed 50 epochs.

``expression`` is vaekit's recommendation for a bulk expression table as it comes (normalised,
not log-transformed values, a few hundred samples): Tybalt's model, changed where measurements
on TCGA showed it fails to give a known factor (sex) a latent feature of its own that holds on
new samples (``benchmarks/tcga_sex.py``; the ablations are in ``benchmarks/README.md``):

- an L1 penalty on the decoder's weights (``loadings_l1``, a Laplace prior on the loadings).
  With a Gaussian prior on z and a one-layer decoder, any rotation of the latent space fits
  the data equally well, so a factor carried by ~20 genes (sex) ends up spread over features
  that also carry the cancer type; sparse loadings single it out, as sparse PCA or ICA would;
- the 1,000 genes of largest variance of log2(x + 1), not 5,000 by mean absolute deviation,
  so a factor of a few dozen genes is not drowned in thousands that only tell cancers apart;
- ~2,000 Adam steps (300 epochs of batches of 32 on ~250 samples) instead of Tybalt's ~250,
  which stop long before the model has settled;
- no batch norm on the posterior; Bernoulli cross-entropy on min-max scaled values, 100
  latent features and a linear encoder and decoder, as Tybalt.

``single_cell`` is for raw single-cell counts (UMIs), scVI's model (Lopez et al. 2018) at its
default sizes: a negative binomial likelihood with one dispersion per gene, each cell's
observed library size, 10 latent features, one hidden layer of 128 units with batch norm and
dropout 0.1, Adam (lr 1e-3, weight decay 1e-6, batches of 128), and the conditions (a batch
column) entering the decoder only, so that the latent space is read from the counts alone
and new batches can be encoded. Where it departs from scVI: the KL weight rises over 50
epochs rather than 400, and training stops early once the validation loss has not improved
for 20 epochs after that (scVI runs 400 epochs on a data set of this size).
"""

from __future__ import annotations

from typing import Any

from vaekit.data.preprocess import Log1p, MinMax, SelectVariable

# The estimator's entry points: defaults and checks come from the settings table.
from vaekit.options import DEFAULTS, check_settings

__all__ = ["DEFAULTS", "PRESETS", "check_settings", "fixed", "resolve"]

# Each preset is a plain dict of overrides of DEFAULTS, keyed by VAE argument names.
PRESETS: dict[str, dict[str, Any]] = {
    "tybalt": {
        "preprocess": (Log1p(base=2), SelectVariable(5000, "mad"), MinMax()),
        "n_latent": 100,
        "hidden": (),
        "posterior_batch_norm": True,
        "likelihood": "bernoulli",
        "lr": 0.0005,
        "batch_size": 50,
        "epochs": 50,
        "kl_warmup": 1,
        "early_stopping": False,
    },
    "expression": {
        "preprocess": (Log1p(base=2), SelectVariable(1000, "variance"), MinMax()),
        "n_latent": 100,
        "hidden": (),
        "likelihood": "bernoulli",
        "lr": 1e-3,
        "batch_size": 32,
        "epochs": 300,
        "early_stopping": False,
        "loadings_l1": 0.03,
    },
    "single_cell": {
        "likelihood": "nb",
        "n_latent": 10,
        "hidden": (128,),
        "batch_norm": True,
        "dropout": 0.1,
        "encode_covariates": False,
        "lr": 1e-3,
        "weight_decay": 1e-6,
        "batch_size": 128,
        "epochs": 400,
        "kl_warmup": 50,
        "early_stopping": True,
        "patience": 20,
    },
}


def resolve(params: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """Effective settings: the arguments that are not None, then the preset, then defaults."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    chosen = PRESETS.get(preset, {}) if preset else {}
    given = {k: v for k, v in params.items() if k in DEFAULTS and v is not None}
    return {**DEFAULTS, **chosen, **given}


def fixed(params: dict[str, Any], preset: str | None) -> set[str]:
    """The settings given (not None) or set by the preset: the automatic settings
    (:mod:`vaekit.auto`) leave them alone."""
    given = {k for k, v in params.items() if k in DEFAULTS and v is not None}
    return given | set(PRESETS.get(preset, {}) if preset else ())
