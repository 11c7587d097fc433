"""Frozen settings for the torch module (round-trips through JSON) and the training loop.

The user-facing defaults, checks and help of these fields are rows of :mod:`vaekit.options`
(the estimator's layer, which the core does not import); tests/test_options.py holds the
defaults here equal to the table's. ``ModelConfig`` still checks the invariants it cannot
be built without, as it is also read from model files and built directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


def _tuple_or_none(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(v) for v in value)


@dataclass(frozen=True)
class DecoderKind:
    """What one choice of ``decoder`` builds.

    Attributes
    ----------
    hidden_layers : bool
        Whether it has hidden layers (``hidden`` mirrored, or ``decoder_hidden``).
    batch_norm_output : bool
        Whether the likelihood's output layer is batch-normalised, as in LDVAE's linear
        decoder (Svensson et al. 2020).
    """

    hidden_layers: bool
    batch_norm_output: bool


# Factor on the condition where the decoder reads it (ModelConfig.condition_scale) in new
# models; older models read it unscaled (1).
CONDITION_SCALE = 20.0

DECODERS: dict[str, DecoderKind] = {
    "mlp": DecoderKind(hidden_layers=True, batch_norm_output=False),
    "linear": DecoderKind(hidden_layers=False, batch_norm_output=True),
}
# What NaN in x means: "error" (NaN is refused before it reaches the module) or "mask" (a
# missing entry: the encoder reads x with its mask, the likelihood scores observed entries).
MISSING: tuple[str, ...] = ("error", "mask")
# The arithmetic of the training step's networks: "fp32", or "bf16" (autocast: matrix products
# in bfloat16, the likelihood and the KL in float32). Evaluation is always float32.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
# Starting weights: random (PyTorch's), or probabilistic PCA's solution (VAEModule.init_ppca).
INITS: tuple[str, ...] = ("random", "pca")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`~vaekit.model.VAEModule`.

    Parameters
    ----------
    n_input : int
        Number of features of x.
    n_latent : int
        Dimension of z.
    hidden : tuple of int
        Encoder hidden layer sizes; ``()`` maps x to the posterior with one linear layer.
    decoder_hidden : tuple of int or None
        Decoder hidden layer sizes; ``None`` mirrors ``hidden``.
    likelihood : str
        Name of the likelihood in :data:`vaekit.likelihoods.LIKELIHOODS`.
    activation : str
        Name of the activation in :data:`vaekit.nn.ACTIVATIONS`.
    batch_norm, dropout
        Applied after every hidden linear layer.
    posterior_batch_norm : bool
        Batch norm on the encoder's mean and log-variance outputs (Tybalt's encoder).
    decoder : str
        ``"mlp"`` (hidden layers ``decoder_layers``) or ``"linear"``: z maps to the likelihood's
        parameters by one linear layer and a batch norm, so each latent feature's weights are
        its exact gene loadings (LDVAE, Svensson et al. 2020).
    n_covariates : int
        Width of the encoded condition vector (0 for an unconditional VAE).
    architecture : str
        Name of the networks in :data:`vaekit.nn.ARCHITECTURES`: ``"mlp"`` (dense layers) or
        ``"conv"`` (strided convolutions for images, whose ``hidden`` and ``decoder_hidden``
        are the dense layers between the feature maps and z).
    image_shape : tuple of int or None
        (C, H, W) of the images when x holds images flattened from that shape (C * H * W must
        be ``n_input``); None for other data. The conv architecture needs it.
    conv_channels : tuple of int
        Channels of the conv encoder's stride-2 convolutions (the decoder mirrors them). Each
        halves the image; as many are used as keep the feature maps at least 4 pixels wide
        (one for 8x8, two for 28x28, three for 32x32 and larger), so H, W >= 8.
    missing : str
        ``"error"``, or ``"mask"``: NaN entries of x are missing. The encoder then reads x with
        NaN set to 0 next to the 0/1 mask of observed entries (twice the features; for images,
        twice the channels), as partial VAEs do (Ma et al. 2019; Mattei & Frellsen 2019), and
        the likelihood sums over observed entries only.
    encode_covariates : bool
        Whether the conditions enter the encoder as well as the decoder. With False (scVI's
        default) z is computed from x alone, so the latent coordinates of a sample need no
        condition, also one the model has not seen (a new batch).
    n_labels : int
        Classes of the label classifier on the posterior mean (scANVI's idea: trained jointly
        on the samples that have a label); 0 for none.
    mask_rate : float
        With ``missing="mask"``, in training only: each sample hides a share u ~ U(0,
        mask_rate) of its observed entries from the encoder (not from the likelihood), so that
        the encoder learns to read partial inputs from complete data (Ma et al. 2019).
    condition_scale : float
        Conditional models: factor on the condition where the decoder reads it (at every
        layer and the output), so that its weights learn as fast as those on z; 1 for models
        saved before the setting existed.
    """

    n_input: int
    n_latent: int = 10
    hidden: tuple[int, ...] = (128,)
    decoder_hidden: tuple[int, ...] | None = None
    likelihood: str = "gaussian"
    activation: str = "relu"
    batch_norm: bool = False
    posterior_batch_norm: bool = False
    dropout: float = 0.0
    n_covariates: int = 0
    decoder: str = "mlp"
    architecture: str = "mlp"
    image_shape: tuple[int, ...] | None = None
    conv_channels: tuple[int, ...] = (32, 64, 128)
    missing: str = "error"
    mask_rate: float = 0.0
    encode_covariates: bool = True
    n_labels: int = 0
    condition_scale: float = CONDITION_SCALE

    def __post_init__(self) -> None:
        if self.missing not in MISSING:
            raise ValueError(f"unknown missing={self.missing!r}; choose one of {list(MISSING)}")
        if not 0 <= self.mask_rate < 1:
            raise ValueError(f"mask_rate must be in [0, 1); got {self.mask_rate!r}")
        if self.mask_rate and self.missing != "mask":
            raise ValueError(
                f"mask_rate={self.mask_rate} hides entries from a mask-aware encoder; "
                "set missing='mask' as well"
            )
        if not 0 < self.condition_scale < math.inf:
            raise ValueError(f"condition_scale must be > 0; got {self.condition_scale!r}")
        if self.n_labels == 1 or self.n_labels < 0:
            raise ValueError(f"n_labels must be 0 (no classifier) or >= 2; got {self.n_labels}")
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; choose one of {list(DECODERS)}")
        if not DECODERS[self.decoder].hidden_layers and self.decoder_hidden:
            raise ValueError(
                f"a {self.decoder} decoder has no hidden layers; "
                f"got decoder_hidden={self.decoder_hidden}"
            )
        shape = self.image_shape
        if shape is not None and (len(shape) != 3 or math.prod(shape) != self.n_input):
            raise ValueError(
                f"image_shape must be (C, H, W) with C * H * W = n_input = {self.n_input}; "
                f"got {shape}"
            )

    @property
    def decoder_layers(self) -> tuple[int, ...]:
        """Hidden layer sizes of the decoder, ``()`` for a linear one."""
        if not DECODERS[self.decoder].hidden_layers:
            return ()
        return tuple(reversed(self.hidden)) if self.decoder_hidden is None else self.decoder_hidden

    @property
    def encoder_config(self) -> ModelConfig:
        """The configuration the encoder body is built from: with ``missing="mask"`` it reads
        x and its mask, so twice the features (for images, twice the channels: the mask is
        one more map per channel); without ``encode_covariates`` it reads no condition."""
        c = self if self.encode_covariates else replace(self, n_covariates=0)
        if c.missing != "mask":
            return c
        shape = c.image_shape
        shape = None if shape is None else (2 * shape[0], *shape[1:])
        return replace(c, n_input=2 * c.n_input, image_shape=shape)

    @property
    def output_batch_norm(self) -> bool:
        """Whether the likelihood's output layer is batch-normalised (the linear decoder)."""
        return DECODERS[self.decoder].batch_norm_output

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        for key in ("decoder_hidden", "image_shape", "conv_channels"):
            d[key] = None if d[key] is None else list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model config has unknown keys {sorted(unknown)}")
        d = dict(d)
        d.setdefault("condition_scale", 1.0)  # older models' decoders read it unscaled
        d["hidden"] = _tuple_or_none(d.get("hidden", cls.hidden))
        # Keys added later (architecture, image_shape, conv_channels, missing, mask_rate) may
        # be missing from older config.json files: the defaults describe those models.
        for key in ("decoder_hidden", "image_shape", "conv_channels"):
            if key in d:
                d[key] = _tuple_or_none(d[key])
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`vaekit.train.train`; see :class:`vaekit.VAE` for their meaning."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta: float = 1.0
    kl_warmup: int = 0
    objective: str = "elbo"
    mi_weight: float = 1.0
    tc_weight: float = 1.0
    dimension_kl_weight: float = 1.0
    tc_estimator: str = "mws"
    capacity_max: float | None = None
    capacity_epochs: int | None = None
    capacity_weight: float = 1000.0
    validation_fraction: float = 0.1
    early_stopping: bool = True
    patience: int = 10
    grad_clip: float | None = None
    loadings_l1: float = 0.0
    iw_samples: int = 1
    lr_patience: int | None = None
    init: str = "random"
    max_minutes: float | None = None
    checkpoint_dir: str | None = None
    checkpoint_minutes: float | None = 10.0
    keep_checkpoints: int = 2
    classification_weight: float = 50.0
    precision: str = "fp32"
    cuda_graph: bool = False
    seed: int | None = None

    def kl_weight(self, epoch: int) -> float:
        """KL weight of epoch ``epoch`` (0-based): beta, ramped up linearly from 0 over
        ``kl_warmup`` epochs (Bowman et al. 2016; Sonderby et al. 2016)."""
        if self.kl_warmup <= 0:
            return self.beta
        return self.beta * min(1.0, epoch / self.kl_warmup)
