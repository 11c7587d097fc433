"""Hostile model folders, used through every command that loads a model.

Each case copies the shared model (:meth:`Kit.copy_model`) and damages the copy: its
config.json (every key of the schema in vaekit.schema: types, ranges, sizes, path-like
names), its weights (truncated, a disguised pickle, wrong names, shapes and dtypes, NaN and
infinite values) or the folder itself (missing, a file, empty, a symlink loop).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from corpus import Case, Kit

# The commands that load a model, each given the model folder: what they read and write
# lies under kit.tmp, so a failing run must leave nothing behind.
COMMANDS: dict[str, Callable[[Kit, Path], list]] = {
    "info": lambda k, m: ["info", m],
    "encode": lambda k, m: ["encode", m, k.table, "-o", k.tmp / "z.csv"],
    "evaluate": lambda k, m: ["evaluate", m, k.table, "-k", "10"],
    "generate": lambda k, m: ["generate", m, "-n", "4", "-o", k.tmp / "gen.csv"],
    "reconstruct": lambda k, m: ["reconstruct", m, k.table, "-o", k.tmp / "rec.csv"],
    "interpret": lambda k, m: ["interpret", m, k.table, "-o", k.tmp / "interp"],
    "score": lambda k, m: ["score", m, k.table, "-o", k.tmp / "s.csv"],
}
ORDER = list(COMMANDS)


class Marker:
    """A pickle whose loading would create the file ``path``: the harness asserts that a
    failing run creates nothing, so the file's absence proves it never ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _command(i: int) -> str:
    return ORDER[i % len(ORDER)]


def _config(model: Path) -> dict:
    return json.loads((model / "config.json").read_text())


def _write_config(model: Path, config) -> None:
    (model / "config.json").write_text(json.dumps(config))


class Whole:
    """What an edit returns to replace the whole of config.json (anything else it returns
    is ignored: it changed the dict in place)."""

    def __init__(self, value: object) -> None:
        self.value = value


def config_case(name: str, edit: Callable[[dict], object], match: str, i: int) -> Case:
    """A case whose config.json is ``edit``-ed (in place, or replaced by a :class:`Whole`)."""

    def make(kit: Kit) -> list:
        model = kit.copy_model()
        config = _config(model)
        replaced = edit(config)
        _write_config(model, replaced.value if isinstance(replaced, Whole) else config)
        return COMMANDS[_command(i)](kit, model)

    return Case(f"models/{name}", make, match=match)


def weights_case(name: str, edit: Callable[[dict], None], match: str, i: int) -> Case:
    """A case whose weights are ``edit``-ed (a dict of tensors, changed in place)."""

    def make(kit: Kit) -> list:
        model = kit.copy_model()
        weights = load_file(model / "weights.safetensors")
        edit(weights)
        save_file(weights, model / "weights.safetensors")
        return COMMANDS[_command(i)](kit, model)

    return Case(f"models/{name}", make, match=match)


def file_case(name: str, damage: Callable[[Kit, Path], Path], match: str, i: int,
              code: int = 2) -> Case:
    """A case whose folder is damaged by ``damage(kit, model) -> folder to load``."""

    def make(kit: Kit) -> list:
        return COMMANDS[_command(i)](kit, damage(kit, kit.copy_model()))

    return Case(f"models/{name}", make, code=code, match=match)


def _both(key: str, value) -> Callable[[dict], None]:
    """Set a setting that feeds the module in both ``model`` and ``settings``."""

    def edit(config: dict) -> None:
        config["model"][key] = value
        config["settings"][key] = value

    return edit


def _set(path: str, value) -> Callable[[dict], None]:
    """Set the key at the dotted ``path`` (created if missing)."""

    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            config = config[part]
        config[last] = value

    return edit


def _drop(path: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            config = config[part]
        del config[last]

    return edit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _replace(model: Path, name: str, content: bytes | None) -> Path:
    """``model/name`` replaced by ``content``, or by a folder when None."""
    (model / name).unlink()
    if content is None:
        (model / name).mkdir()
    else:
        (model / name).write_bytes(content)
    return model


def _truncated(model: Path) -> Path:
    data = (model / "weights.safetensors").read_bytes()
    (model / "weights.safetensors").write_bytes(data[: len(data) // 2])
    return model


def _pickle(kit: Kit, model: Path) -> Path:
    payload = pickle.dumps(Marker(kit.tmp / "PICKLE_RAN"))
    return _replace(model, "weights.safetensors", payload)


def _huge_header(model: Path) -> Path:
    """A safetensors header declaring a 4 TB tensor that the file does not hold."""
    header = json.dumps(
        {"z": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}
    ).encode()
    return _replace(model, "weights.safetensors", struct.pack("<Q", len(header)) + header)


def _fifo(model: Path) -> Path:
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    return model


def _link_loop(kit: Kit, model: Path) -> Path:
    loop = kit.tmp / "loop"
    loop.symlink_to(loop)
    return loop


def _a_file(kit: Kit, model: Path) -> Path:
    return kit.write("model.txt", "not a model")


def _empty(kit: Kit, model: Path) -> Path:
    (kit.tmp / "empty").mkdir()
    return kit.tmp / "empty"


def _set_tensor(name: str, value: float) -> Callable[[dict], None]:
    def edit(weights: dict) -> None:
        weights[name] = weights[name].clone()
        weights[name].view(-1)[0] = value

    return edit


def _preprocess(steps: list, state: dict) -> Callable[[Kit, Path], Path]:
    """A model whose config lists the preprocessing ``steps`` and whose weights hold the
    arrays ``state`` (without "preprocess." prefix)."""

    def damage(kit: Kit, model: Path) -> Path:
        config = _config(model)
        config["preprocess"] = steps
        _write_config(model, config)
        weights = load_file(model / "weights.safetensors")
        weights.update({f"preprocess.{k}": v for k, v in state.items()})
        save_file(weights, model / "weights.safetensors")
        return model

    return damage


def _conditions(width: int, columns: list) -> Callable[[dict], None]:
    """A model conditional on ``columns``, ``width`` wide."""

    def edit(config: dict) -> None:
        config["model"]["n_covariates"] = width
        config["covariates"] = columns

    return edit


def _categorical(categories) -> list:
    return [{"name": "c", "kind": "categorical", "categories": categories}]


CONFIGS = [
    # the file as a whole
    ("config-list", lambda c: Whole([c]), "holds a list"),
    ("config-string", lambda c: Whole("model"), "holds a string"),
    ("config-null", lambda c: Whole(None), "holds null"),
    ("config-number", lambda c: Whole(7), "holds a number"),
    ("format-version-99", _set("format_version", 99), "format version 99"),
    ("format-version-text", _set("format_version", "1"), "format version '1'"),
    ("format-version-missing", _drop("format_version"), "format version None"),
    ("lacks-training", _drop("training"), "lacks ['training']"),
    ("unknown-key", _set("weights_path", "/etc/passwd"), "not a key vaekit knows"),
    ("vaekit-version-number", _set("vaekit_version", 3), "vaekit_version"),
    # model: types, ranges, registries, path-like names
    ("model-list", _set("model", [12, 3]), "model must be a JSON object"),
    ("model-lacks-n-input", _drop("model.n_input"), "lacks ['n_input']"),
    ("model-unknown-key", _set("model.layers", 3), "model.layers is not a key"),
    ("n-latent-negative", _both("n_latent", -1), "model.n_latent"),
    ("n-latent-float", _both("n_latent", 1.5), "model.n_latent"),
    ("n-latent-text", _both("n_latent", "3"), "model.n_latent"),
    ("n-latent-bool", _both("n_latent", True), "model.n_latent"),
    ("n-latent-disagrees", _set("settings.n_latent", 4), "settings.n_latent"),
    ("n-input-zero", _set("model.n_input", 0), "model.n_input"),
    ("n-input-not-features", _set("model.n_input", 13), "features must be a list of 13"),
    ("hidden-200000", _both("hidden", [200000]), "does not match its config.json"),
    # two layers: refused on any machine (one would need 84 GB, which a large server has)
    ("hidden-300000000", _both("hidden", [300000000, 300000000]), "bytes"),
    ("hidden-deep-and-wide", _both("hidden", [100000] * 50), "bytes"),
    ("hidden-nested", _both("hidden", [[8]]), "model.hidden"),
    ("hidden-text", _both("hidden", "8"), "model.hidden"),
    ("hidden-negative", _both("hidden", [-8]), "model.hidden"),
    ("hidden-zero", _both("hidden", [0]), "model.hidden"),
    ("decoder-hidden-float", _both("decoder_hidden", [8.5]), "model.decoder_hidden"),
    ("likelihood-path", _both("likelihood", "../../etc/passwd"), "model.likelihood"),
    ("likelihood-slash", _both("likelihood", "gaussian/../nb"), "model.likelihood"),
    ("likelihood-unknown", _both("likelihood", "student_t"), "model.likelihood"),
    ("likelihood-number", _both("likelihood", 3), "model.likelihood"),
    ("activation-unknown", _both("activation", "swish"), "model.activation"),
    ("activation-path", _both("activation", "/bin/sh"), "model.activation"),
    ("architecture-unknown", _both("architecture", "transformer"), "model.architecture"),
    ("architecture-path", _both("architecture", "../conv"), "model.architecture"),
    ("architecture-null", _both("architecture", None), "model.architecture"),
    ("architecture-conv-no-shape", _both("architecture", "conv"), "image_shape"),
    ("decoder-unknown", _both("decoder", "rnn"), "model.decoder"),
    ("missing-unknown", _both("missing", "maybe"), "model.missing"),
    ("dropout-two", _both("dropout", 2.0), "model.dropout"),
    ("batch-norm-text", _both("batch_norm", "yes"), "model.batch_norm"),
    ("mask-rate-without-mask", _both("mask_rate", 0.5), "mask_rate"),
    ("model-image-shape-wrong", _set("model.image_shape", [1, 2, 3]), "image_shape"),
    ("n-covariates-negative", _set("model.n_covariates", -1), "model.n_covariates"),
    ("conv-channels-empty-text", _set("model.conv_channels", "32"), "model.conv_channels"),
    # params and settings: each value by its row of vaekit.options
    ("params-list", _set("params", []), "params must be a JSON object"),
    ("device-tpu", _set("params.device", "tpu:99"), "params.device"),
    ("device-meta", _set("params.device", "meta"), "params.device"),
    ("device-path", _set("params.device", "../../dev/mem"), "params.device"),
    ("device-number", _set("params.device", 0), "params.device"),
    ("params-unknown", _set("params.pickle_path", "x.pkl"), "params.pickle_path"),
    ("params-epochs-negative", _set("params.epochs", -1), "params.epochs"),
    ("params-lr-inf", _set("params.lr", float("inf")), "params.lr"),
    ("params-preset-path", _set("params.preset", "../../etc/passwd"), "params.preset"),
    ("params-preprocess-path", _set("params.preprocess", [{"name": "../x"}]),
     "params.preprocess[0].name"),
    ("settings-list", _set("settings", ["gaussian"]), "settings must be a JSON object"),
    ("settings-lack-likelihood", _drop("settings.likelihood"), "lacks ['likelihood']"),
    ("settings-likelihood-disagrees", _set("settings.likelihood", "nb"), "settings.likelihood"),
    ("settings-beta-inf", _set("settings.beta", float("inf")), "settings.beta"),
    ("settings-beta-nan", _set("settings.beta", float("nan")), "settings.beta"),
    ("settings-epochs-float", _set("settings.epochs", 1.7), "settings.epochs"),
    ("settings-preprocess-path", _set("settings.preprocess", [{"name": "/etc/passwd"}]),
     "settings.preprocess[0].name"),
    # features
    ("n-features-in-negative", _set("n_features_in", -1), "n_features_in"),
    ("n-features-in-text", _set("n_features_in", "12"), "n_features_in"),
    ("feature-names-short", lambda c: c["feature_names"].pop(), "feature_names"),
    ("feature-names-numbers", _set("feature_names", list(range(12))), "feature_names"),
    ("features-string", _set("features", "g0,g1"), "features"),
    ("features-long", lambda c: c["features"].append("g12"), "features must be a list of 12"),
    ("image-shape-zero", _set("image_shape", [0, 12]), "image_shape"),
    ("image-shape-text", _set("image_shape", "3x4"), "image_shape"),
    ("image-shape-other-size", _set("image_shape", [5, 5]), "image_shape"),
    # preprocessing
    ("preprocess-dict", _set("preprocess", {"name": "log1p"}), "preprocess must be a list"),
    ("preprocess-path", _set("preprocess", [{"name": "../../etc/passwd"}]),
     "preprocess[0].name"),
    ("preprocess-slash", _set("preprocess", [{"name": "log1p/../../x"}]), "preprocess[0].name"),
    ("preprocess-string-step", _set("preprocess", ["log1p"]), "preprocess[0]"),
    ("preprocess-list-param", _set("preprocess", [{"name": "log1p", "base": [2]}]),
     "preprocess[0].base"),
    ("preprocess-unknown-param", _set("preprocess", [{"name": "log1p", "bogus": 1}]),
     "preprocess"),
    ("preprocess-lacks-array", _set("preprocess", [{"name": "zscore"}]),
     "missing ['preprocess.0.mean_', 'preprocess.0.std_']"),
    # conditions
    ("covariates-without-width", _set("covariates", _categorical(["a", "b"])), "covariates"),
    ("covariates-string", _set("covariates", "batch"), "covariates"),
    ("covariates-width-missing", _set("model.n_covariates", 2), "covariates"),
    ("covariates-kind-unknown", _conditions(1, [{"name": "c", "kind": "ordinal"}]),
     "covariates[0].kind"),
    ("covariates-std-zero", _conditions(1, [{"name": "c", "kind": "continuous", "mean": 0,
                                            "std": 0}]), "covariates[0].std"),
    ("covariates-nested-categories", _conditions(1, _categorical([[1]])),
     "covariates[0].categories"),
    ("covariates-wrong-width", _conditions(3, _categorical(["a", "b"])), "covariates"),
    ("covariates-duplicated", _conditions(2, _categorical(["a", "a"])), "covariates"),
    ("covariates-path-name", _conditions(1, [{"name": 5, "kind": "continuous", "mean": 0,
                                             "std": 1}]), "covariates[0].name"),
    # training record
    ("history-list", _set("training.history", [1, 2]), "training.history"),
    ("history-ragged", lambda c: c["training"]["history"]["train_loss"].pop(),
     "training.history"),
    ("history-no-epoch", _drop("training.history.epoch"), "lacks ['epoch']"),
    ("history-text", _set("training.history.train_loss", ["a", "b"]),
     "training.history.train_loss"),
    ("history-epochs-shuffled", _set("training.history.epoch", [1, 0]),
     "training.history.epoch"),
    ("best-epoch-99", _set("training.best_epoch", 99), "training.best_epoch"),
    ("best-epoch-negative", _set("training.best_epoch", -1), "training.best_epoch"),
    ("best-epoch-text", _set("training.best_epoch", "0"), "training.best_epoch"),
    ("seconds-negative", _set("training.seconds", -1), "training.seconds"),
    ("seed-text", _set("training.seed", "x"), "training.seed"),
    ("validation-rows-text", _set("training.validation_rows", "all"),
     "training.validation_rows"),
    ("metadata-list", _set("metadata", ["x"]), "metadata must be a JSON object"),
    ("metadata-command-number", _set("metadata.command", 5), "metadata.command"),
    ("metadata-settings-list", _set("metadata.settings", [1]), "metadata.settings"),
    # calibration
    ("calibration-method-path", _set("calibration", {
        "method": "../../x", "fpr": 0.1, "threshold": 1.0, "control_scores": [1.0]}),
     "calibration.method"),
    ("calibration-fpr-two", _set("calibration", {
        "method": "elbo", "fpr": 2, "threshold": 1.0, "control_scores": [1.0]}),
     "calibration.fpr"),
    ("calibration-scores-empty", _set("calibration", {
        "method": "elbo", "fpr": 0.1, "threshold": 1.0, "control_scores": []}),
     "calibration.control_scores"),
    ("calibration-scores-nan", _set("calibration", {
        "method": "elbo", "fpr": 0.1, "threshold": 1.0, "control_scores": [float("nan")]}),
     "calibration.control_scores"),
    ("calibration-string", _set("calibration", "elbo"), "calibration"),
]

WEIGHTS = [
    ("weights-wrong-shape", lambda w: w.update({"z_mean.weight": torch.zeros(3, 9)}),
     "wrong shapes"),
    ("weights-missing-tensor", lambda w: w.pop("z_mean.bias"), "missing ['z_mean.bias']"),
    ("weights-extra-tensor", lambda w: w.update({"../../etc/passwd": torch.zeros(1)}),
     "unexpected"),
    ("weights-float64", lambda w: w.update({"z_mean.bias": w["z_mean.bias"].double()}),
     "wrong dtypes"),
    ("weights-int", lambda w: w.update({"z_mean.bias": torch.zeros(3, dtype=torch.int64)}),
     "wrong dtypes"),
    ("weights-nan", _set_tensor("encoder.layers.0.0.weight", float("nan")), "hold NaN"),
    ("weights-inf", _set_tensor("z_mean.weight", float("inf")), "infinite"),
    ("weights-scale-inf", _set_tensor("likelihood.log_scale", float("inf")), "infinite"),
    ("weights-scale-overflows", _set_tensor("likelihood.log_scale", 1000.0), "log_scale"),
    ("weights-library-sd-negative", _set_tensor("library_log_std", -1.0), "library_log_std"),
]

FILES = [
    ("folder-missing", lambda k, m: k.tmp / "nowhere", "no vaekit model"),
    ("folder-is-a-file", _a_file, "no vaekit model"),
    ("folder-empty", _empty, "lacks config.json"),
    ("folder-symlink-loop", _link_loop, "link loop"),
    ("config-missing", lambda k, m: (m / "config.json").unlink() or m, "lacks config.json"),
    ("config-is-a-folder", lambda k, m: _replace(m, "config.json", None), "not a regular file"),
    ("config-fifo", lambda k, m: _fifo(m), "not a regular file"),
    ("config-empty", lambda k, m: _replace(m, "config.json", b""), "not valid JSON"),
    ("config-truncated", lambda k, m: _replace(
        m, "config.json", (m / "config.json").read_bytes()[:100]), "not valid JSON"),
    ("config-binary", lambda k, m: _replace(m, "config.json", b"\xff\xfe\x00garbage"),
     "not valid JSON"),
    ("config-nested-200000", lambda k, m: _replace(
        m, "config.json", _nested(200_000).encode()), "nests"),
    ("weights-missing", lambda k, m: (m / "weights.safetensors").unlink() or m,
     "lacks weights.safetensors"),
    ("weights-is-a-folder", lambda k, m: _replace(m, "weights.safetensors", None),
     "not a regular file"),
    ("weights-empty", lambda k, m: _replace(m, "weights.safetensors", b""),
     "not a readable safetensors"),
    ("weights-truncated", lambda k, m: _truncated(m), "not a readable safetensors"),
    ("weights-text", lambda k, m: _replace(m, "weights.safetensors", b"hello world" * 10),
     "not a readable safetensors"),
    ("weights-huge-header", lambda k, m: _huge_header(m), "not a readable safetensors"),
    ("weights-pickle", _pickle, "never unpickles"),
    ("weights-torch-zip", lambda k, m: _replace(m, "weights.safetensors", b"PK\x03\x04zip"),
     "never unpickles"),
    ("preprocess-wrong-length", _preprocess(
        [{"name": "zscore"}], {"0.mean_": torch.zeros(5), "0.std_": torch.ones(5)}),
     "do not fit"),
    ("preprocess-index-out-of-range", _preprocess(
        [{"name": "select_variable", "n": 12, "method": "variance"}],
        {"0.index_": torch.tensor([*range(11), 99])}), "do not fit"),
    ("preprocess-selects-other", _preprocess(
        [{"name": "select_variable", "n": 12, "method": "variance"}],
        {"0.index_": torch.tensor([*range(11), 0])}), "select other features"),
    ("preprocess-array-nan", _preprocess(
        [{"name": "zscore"}], {"0.mean_": torch.full((12,), float("nan")),
                               "0.std_": torch.ones(12)}), "hold NaN"),
    # loads and works: a model saved on a GPU opens on this machine's CPU (with a warning)
    ("device-cuda-elsewhere", lambda k, m: _device(m, "cuda:7"), "", 0),
]


def _device(model: Path, device: str) -> Path:
    config = _config(model)
    config["params"]["device"] = device
    _write_config(model, config)
    return model


CASES = (
    [config_case(n, edit, match, i) for i, (n, edit, match) in enumerate(CONFIGS)]
    + [weights_case(n, edit, match, i) for i, (n, edit, match) in enumerate(WEIGHTS)]
    + [
        file_case(n, damage, match, i, *rest)
        for i, (n, damage, match, *rest) in enumerate(FILES)
    ]
)
