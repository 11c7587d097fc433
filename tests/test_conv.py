"""Convolutional encoder and decoder: shapes, fitting on images, conditions, the automatic
choice of architecture, saving, and the errors for settings that cannot work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.config import ModelConfig
from vaekit.model import VAEModule
from vaekit.nn import ConvDecoder, ConvEncoder, PixelOutput
from vaekit.nn.conv import conv_depth, feature_map_sides

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 64, 64), (1, 8, 8), (3, 9, 13)]
FAST = dict(n_latent=2, hidden=(16,), epochs=2, batch_size=64, seed=0, verbose=False)


def digit_rows(digits, n=300):
    return digits[0][:n], digits[2][:n]


@pytest.mark.parametrize("shape", SHAPES)
def test_encoder_and_decoder_shapes(shape):
    c, h, w = shape
    channels = (4, 8, 16)
    x = torch.rand(2, c * h * w)
    encoder = ConvEncoder(shape, channels, hidden=(12,))
    assert encoder(x).shape == (2, 12)
    decoder = ConvDecoder(shape, channels, n_latent=3, hidden=(12,))
    maps = decoder.deconvs(torch.rand(2, *decoder.start))
    assert maps.shape == (2, channels[0], h, w)  # exactly H x W, odd sides included
    assert encoder.channels == decoder.channels == channels[: conv_depth(shape, 3)]
    out = PixelOutput(decoder.n_channels, shape)(decoder(torch.rand(2, 3)))
    assert out.shape == (2, c * h * w)


def test_feature_map_sides_follow_the_convolution_formula():
    # floor((n + 2 * padding - kernel) / stride) + 1 with kernel 4, stride 2, padding 1
    for n in range(8, 70):
        assert feature_map_sides(n, 3) == [
            n,
            (n - 2) // 2 + 1,
            ((n - 2) // 2 - 1) // 2 + 1,
            (((n - 2) // 2 - 1) // 2 - 1) // 2 + 1,
        ]


def test_images_are_halved_while_feature_maps_stay_at_least_4_pixels_wide():
    assert [conv_depth((1, s, s), 3) for s in (8, 15, 16, 28, 32, 64)] == [1, 1, 2, 2, 3, 3]
    assert conv_depth((3, 64, 9), 3) == 1


def test_pixel_output_applies_one_linear_map_at_every_pixel_with_the_condition():
    out = PixelOutput(4, (3, 5, 6), n_cov=2)
    maps, cond = torch.rand(7, 4, 5, 6), torch.rand(7, 2)
    got = out(torch.cat([maps.flatten(1), cond], dim=1)).view(7, 3, 5, 6)
    weight, bias = out.conv.weight[:, :, 0, 0], out.conv.bias  # (3, 6), (3,)
    expected = (
        torch.einsum("ok,bkhw->bohw", weight[:, :4], maps)
        + (cond @ weight[:, 4:].T)[:, :, None, None]
        + bias[None, :, None, None]
    )
    torch.testing.assert_close(got, expected)


def test_module_with_conv_gives_likelihoods_over_the_image():
    config = ModelConfig(
        n_input=3 * 32 * 32,
        n_latent=4,
        architecture="conv",
        image_shape=(3, 32, 32),
        likelihood="continuous_bernoulli",
        n_covariates=2,
        batch_norm=True,
    )
    module = VAEModule(config)
    x, c = torch.rand(5, 3 * 32 * 32), torch.rand(5, 2)
    out = module.loss(x, c)
    assert out.reconstruction.shape == (5,) and torch.isfinite(out.loss)
    assert module.decode(torch.randn(5, 4), c).mean.shape == (5, 3 * 32 * 32)


def test_conv_vae_learns_the_8x8_digits(digits):
    X, _ = digit_rows(digits)
    model = vaekit.VAE(
        **{**FAST, "n_latent": 4, "hidden": (64,), "batch_size": 32, "epochs": 15},
        likelihood="bernoulli",
        lr=3e-3,
        image_shape=(1, 8, 8),
    ).fit(X)
    assert model.settings_["architecture"] == "conv"
    assert isinstance(model.module_.encoder, ConvEncoder)
    assert model.image_shape_ == (1, 8, 8)
    # better than predicting the mean image for every digit
    recon = model.reconstruct(X)
    assert np.mean((recon - X) ** 2) < np.mean((X.mean(0) - X) ** 2)
    history = model.history_["train_loss"]
    assert history.iloc[-1] < history.iloc[0]


def test_conv_vae_fits_three_channel_32x32_images():
    X = np.random.default_rng(0).random((40, 3 * 32 * 32), dtype=np.float32)
    model = vaekit.VAE(**FAST, likelihood="gaussian", image_shape=(3, 32, 32)).fit(X)
    assert model.module_.config.image_shape == (3, 32, 32)
    assert model.transform(X).shape == (40, 2)
    assert model.sample(3).shape == (3, 3 * 32 * 32)


def test_conditional_conv_vae_decodes_differently_per_label(digits):
    X, y = digit_rows(digits)
    model = vaekit.VAE(**FAST, likelihood="bernoulli", image_shape=(8, 8)).fit(X, y)
    assert model.module_.config.n_covariates == 10
    assert model.transform(X, y).shape == (len(X), 2)
    # Each label reaches the decoder as its own one-hot condition, in the labels' order:
    # decoded by hand from the module with e_0, e_1 and e_9.
    z = np.zeros((3, 2), dtype=np.float32)
    decoded = model.decode(z, y=[0, 1, 9])
    module = model.module_.eval()
    with torch.no_grad():
        by_hand = module.decode(torch.as_tensor(z), torch.eye(10)[[0, 1, 9]]).mean.numpy()
    np.testing.assert_allclose(decoded, by_hand, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pass y"):
        model.transform(X)


def write_pngs(folder, mode, n=12, side=8):
    rng = np.random.default_rng(0)
    channels = 3 if mode == "RGB" else 1
    for i in range(n):
        label = folder / str(i % 2)
        label.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            label / f"{i}.png"
        )


@pytest.mark.parametrize("mode, shape", [("L", (1, 8, 8)), ("RGB", (3, 8, 8))])
def test_auto_picks_conv_for_images_read_from_pngs(tmp_path, mode, shape):
    write_pngs(tmp_path / "images", mode)
    adata = vaekit.read(tmp_path / "images")
    model = vaekit.VAE(**FAST, likelihood="bernoulli").fit(adata, "label")
    assert model.settings_["architecture"] == "conv"
    assert model.module_.config.image_shape == shape
    assert model.get_params()["architecture"] is None  # the argument stays "auto"


def test_auto_picks_mlp_for_tables_and_for_images_with_selected_pixels(tmp_path, digits):
    X, _ = digit_rows(digits)
    model = vaekit.VAE(**FAST, likelihood="bernoulli").fit(X)
    assert model.settings_["architecture"] == "mlp"
    assert model.module_.config.image_shape is None
    write_pngs(tmp_path / "images", "L")
    adata = vaekit.read(tmp_path / "images")
    select = vaekit.VAE(**FAST, likelihood="bernoulli", preprocess=["minmax"])
    assert select.fit(adata).settings_["architecture"] == "conv"  # every pixel kept
    from vaekit.data.preprocess import SelectVariable

    select.set_params(preprocess=[SelectVariable(20)])
    assert select.fit(adata).settings_["architecture"] == "mlp"  # no longer images
    with pytest.raises(ValueError, match=r"64 pixels.*20 features"):
        select.set_params(architecture="conv").fit(adata)


@pytest.mark.parametrize(
    "kwargs", [dict(likelihood="poisson"), dict(decoder="linear"), dict(image_shape=(4, 4))]
)
def test_auto_picks_mlp_for_images_that_conv_cannot_model(kwargs):
    X = np.random.default_rng(0).integers(0, 2, (20, 16 if "image_shape" in kwargs else 64))
    model = vaekit.VAE(**{**FAST, "likelihood": "bernoulli", "image_shape": (8, 8), **kwargs})
    assert model.fit(X.astype(np.float32)).settings_["architecture"] == "mlp"


def test_saved_conv_model_loads_with_identical_outputs(tmp_path, digits):
    X, y = digit_rows(digits, 100)
    model = vaekit.VAE(**FAST, likelihood="bernoulli", image_shape=(1, 8, 8)).fit(X, y)
    model.save(tmp_path / "m")
    loaded = vaekit.load(tmp_path / "m")
    assert loaded.module_.config == model.module_.config
    assert loaded.get_params() == model.get_params()
    assert loaded.image_shape_ == (1, 8, 8) and loaded.settings_["architecture"] == "conv"
    np.testing.assert_array_equal(loaded.transform(X, y), model.transform(X, y))
    np.testing.assert_array_equal(loaded.reconstruct(X, y), model.reconstruct(X, y))
    np.testing.assert_array_equal(loaded.sample(4, y=3, seed=1), model.sample(4, y=3, seed=1))


def test_model_config_round_trips_and_old_configs_load():
    config = ModelConfig(n_input=192, architecture="conv", image_shape=(3, 8, 8))
    d = config.to_dict()
    assert d["image_shape"] == [3, 8, 8] and d["conv_channels"] == [32, 64, 128]
    assert ModelConfig.from_dict(d) == config
    old = {k: v for k, v in d.items() if k not in ("architecture", "image_shape", "conv_channels")}
    assert ModelConfig.from_dict(old) == ModelConfig(n_input=192)


@pytest.mark.parametrize(
    "kwargs, X_shape, match",
    [
        (dict(architecture="conv"), (20, 64), r"needs the images' shape.*image_shape"),
        (dict(image_shape=(1, 9, 9)), (20, 64), r"\(1, 9, 9\) have 81 pixels.*64 features"),
        (dict(image_shape=(8, 8, 8, 8)), (20, 64), r"image_shape must be.*\(8, 8, 8, 8\)"),
        (dict(image_shape="8x8"), (20, 64), r"image_shape must be.*'8x8'"),
        (dict(architecture="cnn"), (20, 64), r"architecture must be.*'cnn'"),
        (dict(image_shape=(4, 4), architecture="conv"), (20, 16), r"too small.*>= 8"),
        (
            dict(image_shape=(8, 8), architecture="conv", likelihood="poisson"),
            (20, 64),
            r"supports.*'poisson'",
        ),
        (
            dict(image_shape=(8, 8), architecture="conv", decoder="linear"),
            (20, 64),
            r"no 'linear' decoder",
        ),
    ],
)
def test_bad_conv_settings_say_what_to_do(kwargs, X_shape, match):
    X = np.random.default_rng(0).integers(0, 2, X_shape).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        vaekit.VAE(**{**FAST, "likelihood": "bernoulli", **kwargs}).fit(X)
