"""Convolutional encoder and decoder for images that arrive as flattened rows (B, C * H * W).

Both are :class:`~vaekit.nn.MLP` subclasses: the encoder puts strided convolutions in front
of its dense layers, the decoder puts transposed convolutions behind them. So the condition
enters the dense layers exactly as in the MLP, and ``layers[0]`` of the decoder is still the
layer that reads z (where loadings and ``loadings_l1`` look).

The decoder ends in feature maps, not in x's parameters: :class:`PixelOutput`, a 1x1
convolution, turns them (with the condition at every pixel) into C parameter maps. It takes
the place of the likelihood's dense output layer, which for images would need
(channels * H * W) x (C * H * W) weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.nn.mlp import ACTIVATIONS, MLP, mlp_size

# Every convolution halves the image: kernel 4, stride 2, padding 1 map a side n to n // 2,
# and the transposed convolution maps m back to 2 * m + output_padding.
KERNEL, STRIDE, PADDING = 4, 2, 1
# Halving stops before feature maps get narrower than this: on 8x8 digits, maps halved down
# to 1x1 made the decoder so deep that it learned the mean image and ignored z.
MIN_SIDE = 4


def feature_map_sides(side: int, n_layers: int) -> list[int]:
    """Side length of the image and after each of ``n_layers`` stride-2 convolutions.

    Examples
    --------
    >>> feature_map_sides(28, 3)
    [28, 14, 7, 3]
    """
    sides = [side]
    for _ in range(n_layers):
        sides.append(sides[-1] // 2)
    return sides


def conv_depth(image_shape: tuple[int, ...], n_channels: int) -> int:
    """How many stride-2 convolutions an image gets: as many of the ``n_channels`` as keep
    both sides of the feature maps at least :data:`MIN_SIDE` (4) pixels.

    Examples
    --------
    >>> [conv_depth((1, side, side), 3) for side in (8, 28, 32, 64)]
    [1, 2, 3, 3]
    """
    side = min(image_shape[1:])
    depth = 0
    while depth < n_channels and side // 2 ** (depth + 1) >= MIN_SIDE:
        depth += 1
    return depth


def check_image_shape(image_shape: tuple[int, ...]) -> None:
    """Raise unless ``image_shape`` is (C, H, W) with H and W of at least 8 pixels."""
    if len(image_shape) != 3 or not all(isinstance(v, int) and v >= 1 for v in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) of positive integers; got {image_shape}")
    if min(image_shape[1:]) < 2 * MIN_SIDE:
        raise ValueError(
            f"images of shape {tuple(image_shape)} are too small for convolutions: H and W "
            f"must be >= {2 * MIN_SIDE}; use architecture='mlp'"
        )


class ConvEncoder(MLP):
    """Strided convolutions, flattened, then the dense layers of an MLP.

    x (B, C * H * W) -> (B, C, H, W) -> [Conv2d(k4, s2, p1) -> [BatchNorm2d] -> activation]
    per channel count -> flatten -> MLP ``hidden`` (with the condition) -> (B, n_out).

    Parameters
    ----------
    image_shape : tuple of int
        (C, H, W) of one image.
    channels : tuple of int
        Output channels of each convolution; each halves H and W (rounding down). The first
        :func:`conv_depth` of them are used (``self.channels``), so that maps stay >= 4 wide.
    hidden : tuple of int
        Dense layers after the convolutions; ``()`` gives the flattened feature maps.
    n_cov, activation, batch_norm, dropout
        As :class:`~vaekit.nn.MLP` (dropout acts on the dense layers only).

    Examples
    --------
    >>> enc = ConvEncoder((1, 28, 28), (32, 64), hidden=(128,))
    >>> enc(torch.rand(5, 784)).shape
    torch.Size([5, 128])
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: tuple[int, ...],
        hidden: tuple[int, ...],
        n_cov: int = 0,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        check_image_shape(image_shape)
        channels = tuple(channels[: conv_depth(image_shape, len(channels))])
        n_channels, height, width = image_shape
        h = feature_map_sides(height, len(channels))[-1]
        w = feature_map_sides(width, len(channels))[-1]
        super().__init__(channels[-1] * h * w, hidden, n_cov, activation, batch_norm, dropout)
        self.image_shape, self.channels = tuple(image_shape), channels
        self.convs = nn.Sequential(
            *(
                _block(nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING), activation, batch_norm)
                for c_in, c_out in zip((n_channels, *channels[:-1]), channels, strict=True)
            )
        )
        _he_init(self)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.convs(x.reshape(-1, *self.image_shape))  # (B, channels[-1], h, w)
        return super().forward(maps.flatten(1), c)


class ConvDecoder(MLP):
    """The dense layers of an MLP, reshaped into feature maps and upsampled to H x W.

    z (B, n_latent) -> MLP ``hidden`` + one layer of channels[-1] * h * w (with the condition)
    -> (B, channels[-1], h, w) -> [ConvTranspose2d(k4, s2, p1) -> [BatchNorm2d] -> activation]
    mirroring :class:`ConvEncoder` -> (B, channels[0], H, W), flattened. Each transposed
    convolution's ``output_padding`` restores the row or column an odd side lost, so the
    maps are exactly H x W for any H, W >= 8.

    Parameters
    ----------
    image_shape : tuple of int
        (C, H, W) of one image.
    channels : tuple of int
        The encoder's channels (the first :func:`conv_depth` of them); the decoder runs
        through them backwards and ends with ``channels[0]`` maps (``n_channels``), for
        :class:`PixelOutput`.
    n_latent : int
    hidden : tuple of int
        Dense layers between z and the first feature maps.
    n_cov, activation, batch_norm, dropout
        As :class:`~vaekit.nn.MLP`.

    Examples
    --------
    >>> dec = ConvDecoder((3, 9, 10), (8, 16), n_latent=4, hidden=(32,))
    >>> dec(torch.rand(5, 4)).shape  # (B, 8 * 9 * 10)
    torch.Size([5, 720])
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: tuple[int, ...],
        n_latent: int,
        hidden: tuple[int, ...],
        n_cov: int = 0,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        check_image_shape(image_shape)
        channels = tuple(channels[: conv_depth(image_shape, len(channels))])
        _, height, width = image_shape
        heights = feature_map_sides(height, len(channels))
        widths = feature_map_sides(width, len(channels))
        self.start = (channels[-1], heights[-1], widths[-1])
        dense = (*hidden, math.prod(self.start))
        super().__init__(n_latent, dense, n_cov, activation, batch_norm, dropout)
        blocks = []
        for j in reversed(range(len(channels))):  # mirrors encoder layer j: sides[j + 1] -> [j]
            c_out = channels[max(j - 1, 0)]
            extra = (heights[j] - 2 * heights[j + 1], widths[j] - 2 * widths[j + 1])
            up = nn.ConvTranspose2d(
                channels[j], c_out, KERNEL, STRIDE, PADDING, output_padding=extra
            )
            blocks.append(_block(up, activation, batch_norm))
        self.deconvs = nn.Sequential(*blocks)
        self.channels, self.n_channels = channels, channels[0]
        self.n_out = channels[0] * height * width
        _he_init(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        maps = super().forward(z, c).view(-1, *self.start)  # (B, channels[-1], h, w)
        return self.deconvs(maps).flatten(1)  # (B, channels[0] * H * W)


class PixelOutput(nn.Module):
    """The likelihood's output layer for images: a 1x1 convolution, the same linear map at
    every pixel, from the decoder's feature maps and the condition to C parameter maps.

    It reads what :class:`~vaekit.model.VAEModule` gives a likelihood: the decoder's output
    (B, n_channels * H * W) with the condition (B, n_cov) appended.

    Parameters
    ----------
    n_channels : int
        Feature maps coming from the decoder.
    image_shape : tuple of int
        (C, H, W): C parameter maps of H x W.
    n_cov : int
        Width of the condition, broadcast to every pixel.

    Examples
    --------
    >>> out = PixelOutput(8, (3, 10, 10), n_cov=2)
    >>> out(torch.rand(5, 8 * 100 + 2)).shape  # (B, 3 * 10 * 10)
    torch.Size([5, 300])
    """

    def __init__(self, n_channels: int, image_shape: tuple[int, int, int], n_cov: int = 0) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.image_shape = tuple(image_shape)
        self.conv = nn.Conv2d(n_channels + n_cov, image_shape[0], kernel_size=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        _, height, width = self.image_shape
        n_maps = self.n_channels * height * width
        maps = h[:, :n_maps].reshape(-1, self.n_channels, height, width)
        cond = h[:, n_maps:, None, None].expand(-1, -1, height, width)  # (B, n_cov, H, W)
        return self.conv(torch.cat([maps, cond], dim=1)).flatten(1)  # (B, C * H * W)


def conv_encoder_size(
    image_shape: tuple[int, ...],
    channels: tuple[int, ...],
    hidden: tuple[int, ...],
    n_cov: int = 0,
    batch_norm: bool = False,
) -> tuple[int, int]:
    """(parameters and buffers, output width) of :class:`ConvEncoder`, counted without
    building it (``image_shape`` checked as by :func:`check_image_shape`).

    Examples
    --------
    >>> conv_encoder_size((1, 28, 28), (32, 64), hidden=(128,))
    (434912, 128)
    """
    channels = tuple(channels[: conv_depth(image_shape, len(channels))])
    n_channels, height, width = image_shape
    convs = sum(
        _conv_size(c_in, c_out, KERNEL, batch_norm)
        for c_in, c_out in zip((n_channels, *channels[:-1]), channels, strict=True)
    )
    flat = channels[-1] * feature_map_sides(height, len(channels))[-1]
    dense, n_out = mlp_size(flat * feature_map_sides(width, len(channels))[-1], hidden, n_cov,
                            batch_norm)
    return convs + dense, n_out


def conv_decoder_size(
    image_shape: tuple[int, ...],
    channels: tuple[int, ...],
    n_latent: int,
    hidden: tuple[int, ...],
    n_cov: int = 0,
    batch_norm: bool = False,
) -> tuple[int, int]:
    """(parameters and buffers, output width) of :class:`ConvDecoder`, counted without
    building it."""
    channels = tuple(channels[: conv_depth(image_shape, len(channels))])
    _, height, width = image_shape
    start = (
        channels[-1]
        * feature_map_sides(height, len(channels))[-1]
        * feature_map_sides(width, len(channels))[-1]
    )
    dense, _ = mlp_size(n_latent, (*hidden, start), n_cov, batch_norm)
    deconvs = sum(
        _conv_size(channels[j], channels[max(j - 1, 0)], KERNEL, batch_norm)
        for j in range(len(channels))
    )
    return dense + deconvs, channels[0] * height * width


def pixel_output_size(n_channels: int, image_shape: tuple[int, ...], n_cov: int = 0) -> int:
    """Parameters of :class:`PixelOutput`, counted without building it."""
    return _conv_size(n_channels + n_cov, image_shape[0], 1, False)


def _conv_size(c_in: int, c_out: int, kernel: int, batch_norm: bool) -> int:
    """Weights and bias of a (transposed) convolution, with its batch norm's values."""
    return c_in * c_out * kernel * kernel + c_out + (4 * c_out + 1 if batch_norm else 0)


def _he_init(module: nn.Module) -> None:
    """He et al. (2015) initialisation of every linear and (transposed) convolution layer.

    PyTorch's default scales weights down (a gain of 1/sqrt(3)), so through the many layers
    of a conv decoder the signal from z faded and the posterior collapsed on digits; He's
    initialisation keeps the scale through ReLU layers.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def _block(layer: nn.Module, activation: str, batch_norm: bool) -> nn.Sequential:
    out_channels = layer.out_channels
    norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
    return nn.Sequential(layer, *norm, ACTIVATIONS[activation]())
