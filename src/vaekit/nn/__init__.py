"""Network building blocks, and the architectures built from them, looked up by name.

An architecture builds the encoder body (x -> features for the posterior heads) and the
decoder body (z -> features for the likelihood) of a :class:`~vaekit.model.VAEModule` from its
:class:`~vaekit.config.ModelConfig`. Both bodies take the condition ``c`` in ``forward(x, c)``
and say their output width in ``n_out``; the module appends ``c`` to what they return. An
architecture may also give the likelihood's output layer (``output``), when a dense
``Linear(n_hidden, n_features)`` does not suit it, as for images. A new architecture is one
:class:`Architecture` and one line in :data:`ARCHITECTURES`; its ``size`` counts what it would
build, so that a model too large for memory is refused before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import nn

from vaekit.config import ModelConfig
from vaekit.likelihoods import LIKELIHOODS, get_likelihood
from vaekit.nn.conv import (
    ConvDecoder,
    ConvEncoder,
    PixelOutput,
    check_image_shape,
    conv_decoder_size,
    conv_encoder_size,
    pixel_output_size,
)
from vaekit.nn.mlp import ACTIVATIONS, MLP, mlp_size


class Footprint(NamedTuple):
    """What an architecture builds, counted from the config alone (see ``Architecture.size``).

    Attributes
    ----------
    values : int
        Parameters and buffers of the encoder and decoder bodies and the output layer.
    encoder_out, decoder_out : int
        The bodies' output widths (``n_out``, without the condition).
    """

    values: int
    encoder_out: int
    decoder_out: int


class Architecture(NamedTuple):
    """Builders of one kind of network, each from a :class:`~vaekit.config.ModelConfig`.

    Attributes
    ----------
    encoder, decoder : callable
        ``config -> nn.Module``: the bodies, called in this order (after ``check``).
    output : callable or None
        ``config -> nn.Module`` mapping the decoder's output (with the condition) to the
        likelihood's parameters, (B, n_input); None keeps the likelihood's dense layer.
    size : callable
        ``config -> Footprint``: what ``encoder``, ``decoder`` and ``output`` would build,
        counted without building it (called after ``check``).
    check : callable
        ``config -> None``; raises ValueError for settings the architecture cannot build.
    """

    encoder: Callable[[ModelConfig], nn.Module]
    decoder: Callable[[ModelConfig], nn.Module]
    size: Callable[[ModelConfig], Footprint]
    output: Callable[[ModelConfig], nn.Module] | None = None
    check: Callable[[ModelConfig], None] = lambda config: None


def _layer(c: ModelConfig) -> dict[str, Any]:
    return {"activation": c.activation, "batch_norm": c.batch_norm, "dropout": c.dropout}


def _check_conv(c: ModelConfig) -> None:
    if c.image_shape is None:
        raise ValueError(
            "architecture 'conv' needs the images' shape (C, H, W) in image_shape; "
            "read the images with vaekit.read, pass image_shape, or use architecture='mlp'"
        )
    if not c.conv_channels or not all(isinstance(n, int) and n >= 1 for n in c.conv_channels):
        raise ValueError(f"conv_channels must be positive integers; got {c.conv_channels}")
    check_image_shape(c.image_shape)
    # The per-pixel output layer replaces the likelihood's dense one (Likelihood.per_pixel).
    if not get_likelihood(c.likelihood).per_pixel:
        per_pixel = [name for name, cls in LIKELIHOODS.items() if cls.per_pixel]
        raise ValueError(
            f"architecture 'conv' supports the likelihoods {per_pixel}; got "
            f"{c.likelihood!r}: choose one of those, or architecture='mlp'"
        )
    if c.decoder != "mlp":
        raise ValueError(
            f"architecture 'conv' has no {c.decoder!r} decoder; use decoder='mlp' with it, "
            "or architecture='mlp'"
        )


def _mlp_size(c: ModelConfig) -> Footprint:
    e = c.encoder_config  # its input and conditions
    encoder, encoder_out = mlp_size(e.n_input, c.hidden, e.n_covariates, c.batch_norm)
    decoder, decoder_out = mlp_size(c.n_latent, c.decoder_layers, c.n_covariates, c.batch_norm)
    return Footprint(encoder + decoder, encoder_out, decoder_out)


def _conv_size(c: ModelConfig) -> Footprint:
    e = c.encoder_config  # with missing="mask", one more map per channel
    encoder, encoder_out = conv_encoder_size(
        e.image_shape, c.conv_channels, c.hidden, e.n_covariates, c.batch_norm
    )
    decoder, decoder_out = conv_decoder_size(
        c.image_shape, c.conv_channels, c.n_latent, c.decoder_layers, c.n_covariates,
        c.batch_norm,
    )
    output = pixel_output_size(c.conv_channels[0], c.image_shape, c.n_covariates)
    return Footprint(encoder + decoder + output, encoder_out, decoder_out)


def _conv_decoder(c: ModelConfig) -> ConvDecoder:
    return ConvDecoder(
        c.image_shape, c.conv_channels, c.n_latent, c.decoder_layers, c.n_covariates, **_layer(c)
    )


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(
        encoder=lambda c: MLP(c.n_input, c.hidden, c.n_covariates, **_layer(c)),
        decoder=lambda c: MLP(c.n_latent, c.decoder_layers, c.n_covariates, **_layer(c)),
        size=_mlp_size,
    ),
    "conv": Architecture(
        encoder=lambda c: ConvEncoder(
            c.image_shape, c.conv_channels, c.hidden, c.n_covariates, **_layer(c)
        ),
        decoder=_conv_decoder,
        size=_conv_size,
        output=lambda c: PixelOutput(c.conv_channels[0], c.image_shape, c.n_covariates),
        check=_check_conv,
    ),
}


def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``.

    Examples
    --------
    >>> from vaekit.config import ModelConfig
    >>> get_architecture("mlp").encoder(ModelConfig(n_input=64)).n_out
    128
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}"
        ) from None


__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "Architecture",
    "Footprint",
    "ConvDecoder",
    "ConvEncoder",
    "MLP",
    "PixelOutput",
    "get_architecture",
]
