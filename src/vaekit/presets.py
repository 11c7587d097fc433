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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaekit.config import DECODERS, MISSING
from vaekit.data.preprocess import Log1p, MinMax, SelectVariable
from vaekit.likelihoods import get_likelihood
from vaekit.nn import ARCHITECTURES

DEFAULTS: dict[str, Any] = {
    "n_latent": 10,
    "hidden": (128,),
    "likelihood": "gaussian",
    "beta": 1.0,
    "kl_warmup": 0,
    "epochs": 100,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "decoder_hidden": None,  # mirror the encoder
    "decoder": "mlp",
    "architecture": None,  # auto: "conv" for images, "mlp" otherwise
    "activation": "relu",
    "batch_norm": False,
    "posterior_batch_norm": False,
    "dropout": 0.0,
    "validation_fraction": 0.1,
    "early_stopping": True,
    "patience": 10,
    "grad_clip": None,
    "loadings_l1": 0.0,
    "iw_samples": 1,
    "lr_patience": None,  # keep the learning rate
    "max_minutes": None,  # no time limit
    "missing": "error",  # NaN in X is refused
    "mask_rate": 0.0,
    "preprocess": (),
}

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
}


def resolve(params: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """Effective settings: the arguments that are not None, then the preset, then defaults."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    chosen = PRESETS.get(preset, {}) if preset else {}
    given = {k: v for k, v in params.items() if k in DEFAULTS and v is not None}
    return {**DEFAULTS, **chosen, **given}


def check_settings(s: dict[str, Any]) -> None:
    """Raise for settings out of range, naming the value received."""
    get_likelihood(s["likelihood"])
    checks = {
        "n_latent": _is_int(s["n_latent"], 1),
        "epochs": _is_int(s["epochs"], 1),
        "batch_size": _is_int(s["batch_size"], 1),
        "patience": _is_int(s["patience"], 1),
        "kl_warmup": _is_int(s["kl_warmup"], 0),
        "iw_samples": _is_int(s["iw_samples"], 1),
        "lr_patience": s["lr_patience"] is None or _is_int(s["lr_patience"], 1),
        "max_minutes": s["max_minutes"] is None
        or (_is_number(s["max_minutes"]) and s["max_minutes"] > 0),
        "lr": _is_number(s["lr"]) and s["lr"] > 0,
        "beta": _is_number(s["beta"]) and s["beta"] >= 0,
        "weight_decay": _is_number(s["weight_decay"]) and s["weight_decay"] >= 0,
        "loadings_l1": _is_number(s["loadings_l1"]) and s["loadings_l1"] >= 0,
        "dropout": _is_number(s["dropout"]) and 0 <= s["dropout"] < 1,
        "missing": isinstance(s["missing"], str) and s["missing"] in MISSING,
        "mask_rate": _is_number(s["mask_rate"])
        and 0 <= s["mask_rate"] < 1
        and (s["mask_rate"] == 0 or s["missing"] == "mask"),
        "validation_fraction": _is_number(s["validation_fraction"])
        and 0 <= s["validation_fraction"] < 1,
        "grad_clip": s["grad_clip"] is None or (_is_number(s["grad_clip"]) and s["grad_clip"] > 0),
        "hidden": all(_is_int(h, 1) for h in s["hidden"]),
        "decoder": s["decoder"] in DECODERS,
        "architecture": s["architecture"] is None
        or (isinstance(s["architecture"], str) and s["architecture"] in ARCHITECTURES),
    }
    expected = {
        "lr": "a number > 0",
        "beta": "a number >= 0",
        "weight_decay": "a number >= 0",
        "loadings_l1": "a number >= 0",
        "dropout": "a number in [0, 1)",
        "missing": f"one of {list(MISSING)}",
        "mask_rate": "a number in [0, 1), and above 0 only with missing='mask'",
        "validation_fraction": "a number in [0, 1)",
        "grad_clip": "a number > 0 or None",
        "hidden": "a tuple of positive integers",
        "kl_warmup": "an integer >= 0",
        "lr_patience": "a positive integer or None",
        "max_minutes": "a number > 0 or None",
        "decoder": f"one of {list(DECODERS)}",
        "architecture": f"None (auto) or one of {list(ARCHITECTURES)}",
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(
                f"{name} must be {expected.get(name, 'a positive integer')}; got {s[name]!r}"
            )


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
