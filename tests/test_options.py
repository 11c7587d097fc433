"""The settings table (vaekit.options) against everything that must agree with it."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import MISSING, fields

import pytest
import typer

from vaekit import VAE
from vaekit.cli import app
from vaekit.config import ModelConfig, TrainConfig
from vaekit.options import BY_NAME, DEFAULTS, SETTINGS, check_settings, feeding, suggest
from vaekit.presets import PRESETS, resolve


def test_vae_signature_is_the_table():
    params = inspect.signature(VAE.__init__).parameters
    assert list(params)[1:] == [s.name for s in SETTINGS]
    assert {k: p.default for k, p in params.items() if k != "self"} == {
        s.name: s.api_default for s in SETTINGS
    }


def field_defaults(config: type) -> dict:
    return {f.name: f.default for f in fields(config) if f.default is not MISSING}


def test_config_defaults_are_the_tables():
    train = field_defaults(TrainConfig)
    assert set(feeding("train")) == set(train) - {"seed"}
    assert {k: DEFAULTS[k] for k in feeding("train")} == {k: train[k] for k in feeding("train")}
    model = field_defaults(ModelConfig)
    assert set(feeding("model")) <= set(model)
    # architecture=None is "auto": fit names one before it builds the ModelConfig
    names = [k for k in feeding("model") if k != "architecture"]
    assert {k: DEFAULTS[k] for k in names} == {k: model[k] for k in names}


def docstring_defaults() -> dict[str, str | None]:
    """name -> the text in brackets after its type in VAE's Parameters section (None: none)."""
    doc = next(c.__doc__ for c in VAE.__mro__ if c.__doc__ and "Parameters\n" in c.__doc__)
    section = doc.split("Parameters\n")[1].split("Attributes\n")[0]
    found: dict[str, str | None] = {}
    for names, brackets in re.findall(r"^    (\w+(?:, \w+)*) :[^\[\n]*(\[.*\])?$", section, re.M):
        names = names.split(", ")
        if len(names) > 1:  # "epochs, batch_size : [100, 128]"
            values = ast.literal_eval(brackets)
            found.update({n: repr(v) for n, v in zip(names, values, strict=True)})
        else:
            found[names[0]] = brackets[1:-1] if brackets else None
    return found


def test_docstring_lists_every_setting_with_the_tables_default():
    documented = docstring_defaults()
    assert set(documented) == set(BY_NAME)
    for name in DEFAULTS:
        shown = documented[name]
        assert shown is not None, f"{name}'s default is not shown"
        try:
            value = ast.literal_eval(shown)
        except (ValueError, SyntaxError):  # words, e.g. [auto]: what None means
            value = None
        assert value == DEFAULTS[name], name


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_overrides_of_known_settings(preset):
    assert set(PRESETS[preset]) <= set(DEFAULTS)
    check_settings(resolve({}, preset))


def test_defaults_pass_their_own_checks():
    check_settings(dict(DEFAULTS))


@pytest.mark.parametrize(
    "name", [n for n in DEFAULTS if n != "preprocess" and not BY_NAME[n].constraint.ok("bad-value")]
)
def test_a_bad_value_names_the_setting_what_it_takes_and_what_it_got(name):
    with pytest.raises(ValueError) as err:
        check_settings({**DEFAULTS, name: "bad-value"})
    message = str(err.value)
    assert name in message and "'bad-value'" in message
    assert "one of" in message or BY_NAME[name].constraint.text in message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("n_latent", 0, "n_latent must be a positive integer; got 0"),
        ("n_latent", True, "n_latent must be a positive integer; got True"),
        ("kl_warmup", -1, "kl_warmup must be an integer >= 0; got -1"),
        ("dropout", 1.0, "dropout must be a number in [0, 1); got 1.0"),
        ("lr", 0, "lr must be a number > 0; got 0"),
        ("beta", -0.5, "beta must be a number >= 0; got -0.5"),
        ("grad_clip", 0, "grad_clip must be a number > 0 or None; got 0"),
        ("lr_patience", 0.5, "lr_patience must be a positive integer or None; got 0.5"),
        ("hidden", (64, 0), "hidden must be a tuple of positive integers; got (64, 0)"),
        ("hidden", 64, "hidden must be a tuple of positive integers; got 64"),
        ("early_stopping", "yes", "early_stopping must be True or False; got 'yes'"),
        ("missing", "drop", "missing must be one of ['error', 'mask']; got 'drop'"),
        ("likelihood", "gamma", "unknown likelihood 'gamma'; choose one of"),
        ("activation", "swish", "unknown activation 'swish'; choose one of"),
        ("architecture", "cnn", "architecture must be one of ['mlp', 'conv'] or None; got"),
    ],
)
def test_check_messages(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_settings({**DEFAULTS, name: value})


def test_mask_rate_needs_missing_mask():
    check_settings({**DEFAULTS, "mask_rate": 0.3, "missing": "mask"})
    with pytest.raises(ValueError, match=r"above 0 only with missing='mask'; got 0.3"):
        check_settings({**DEFAULTS, "mask_rate": 0.3})


def test_train_has_a_flag_for_every_setting():
    command = typer.main.get_command(app).commands["train"]
    flags = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for s in SETTINGS:
        if s.cli:
            assert ("--" + s.name.replace("_", "-")) in flags, s.name
            assert {"--" + a for a in s.aliases} <= flags
    assert {"--normalize", "--log1p", "--select", "--scale", "--quiet"} <= flags  # preprocess
    assert [s.name for s in SETTINGS if not s.cli] == ["preprocess", "verbose"]


def test_suggest_names_the_nearest_known_name():
    assert suggest("dorpout", DEFAULTS) == " (did you mean 'dropout'?)"
    assert suggest("zzzz", DEFAULTS) == ""
