"""What :meth:`vaekit.VAE.fit` works out before training: the model's table, its architecture
and configuration, the training settings and the library-size prior."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit import auto, checkpoint
from vaekit.config import ModelConfig, TrainConfig
from vaekit.data import DenseRows, SparseRows
from vaekit.data.backed import BackedMatrix
from vaekit.data.backed_files import backed_table, is_backed, matrix_key, stored_table
from vaekit.data.preprocess import Preprocessor
from vaekit.likelihoods import get_likelihood
from vaekit.model import VAEModule, ppca_unmet, require_ppca
from vaekit.nn import get_architecture
from vaekit.options import DEFAULTS, RESUMABLE, feeding
from vaekit.validation import (
    Table,
    align_features,
    as_table,
    check_finite,
    check_observed,
    check_support,
    is_anndata,
)


def fit_tables(
    X: Any, layer: str | None, settings: dict[str, Any], fixed: set[str], masked: bool
) -> tuple[Table, Table, Preprocessor]:
    """X validated, the preprocessed table the model reads and the fitted preprocessor. The
    settings nobody gave (not in ``fixed``) are chosen from the data first (:mod:`vaekit.auto`):
    preprocessing from the raw values, the others from what the model will see. A backed
    AnnData is never loaded: its preprocessing is fitted from block statistics and its data
    checked in one streaming pass."""
    if "likelihood" in fixed and get_likelihood(settings["likelihood"]).support.name != "real":
        fixed = fixed | {"preprocess"}  # z-scores would leave the support the user chose
    if is_backed(X):
        return _backed_tables(X, layer, settings, fixed, masked)
    table = as_table(X, layer=layer, allow_nan=masked)
    check_observed(table)
    automatic(settings, fixed, table.X, auto.PREPROCESS_RULES)
    preprocessor = Preprocessor(settings["preprocess"])
    names = table.feature_names or [f"x{i}" for i in range(table.X.shape[1])]
    data = preprocessor.fit_transform(table.X, names)
    automatic(settings, fixed, data, auto.RULES)
    data = model_table(data, table, preprocessor, settings["likelihood"], masked)
    return table, data, preprocessor


def _backed_tables(
    X: Any, layer: str | None, settings: dict[str, Any], fixed: set[str], masked: bool
) -> tuple[Table, Table, Preprocessor]:
    """:func:`fit_tables` for a backed AnnData: the preprocessing fitted from statistics
    gathered a block of rows at a time, then applied to each block as it is read; the data
    checked in one streaming pass; the matrix never loaded."""
    if masked:
        _refuse_masked()
    raw = _backed_matrix(X, layer)
    try:
        automatic(settings, fixed, raw, auto.PREPROCESS_RULES)
        preprocessor = Preprocessor(settings["preprocess"])
        names = [str(v) for v in X.var_names]
        preprocessor.fit_stream(lambda: (rows for _, rows in raw.blocks()), names)
        if preprocessor.steps:
            raw.preprocessed(preprocessor.transform)
        automatic(settings, fixed, raw, auto.RULES)
    finally:
        raw.close()
    likelihood = settings["likelihood"]
    table = backed_table(X, layer, get_likelihood(likelihood).support, likelihood, preprocessor)
    return (stored_table(X, layer) if preprocessor.steps else table), table, preprocessor


def _refuse_masked() -> None:
    raise ValueError(
        "backed data are read as stored, without missing='mask'; impute or remove the missing "
        "entries first, or read the file into memory (vaekit.read without backed=True)"
    )


def _backed_matrix(adata: Any, layer: str | None) -> BackedMatrix:
    path = Path(adata.filename)
    return BackedMatrix(path, matrix_key(adata, layer, path))


def input_tables(
    X: Any,
    layer: str | None,
    allow_nan: bool,
    nan_hint: str,
    fitted: tuple[int, Any],
    preprocessor: Preprocessor,
    likelihood: str,
) -> tuple[Table, Table, Table]:
    """(X as given, X matched to the ``fitted`` (count, names) features, the preprocessed
    table) for a fitted model; a backed AnnData is checked in one streaming pass."""
    n_features, names = fitted
    if is_backed(X):
        _check_backed_features(X, n_features, names)  # before anything is read
        if allow_nan:
            _refuse_masked()
        support = get_likelihood(likelihood).support
        table = backed_table(X, layer, support, likelihood, preprocessor)
        given = stored_table(X, layer) if preprocessor.steps else table
        return given, given, table
    given = as_table(X, layer=layer, allow_nan=allow_nan, nan_hint=nan_hint)
    inputs = align_features(given, n_features, names)
    data = model_table(
        preprocessor.transform(inputs.X), inputs, preprocessor, likelihood, allow_nan
    )
    return given, inputs, data


def _check_backed_features(adata: Any, n_features: int, names: Any) -> None:
    """Raise unless a backed AnnData holds the model's features in its order."""
    expected = None if names is None else [str(v) for v in names]
    if adata.n_vars != n_features or expected not in (None, [str(v) for v in adata.var_names]):
        raise ValueError(
            f"{adata.filename} must hold the model's {n_features} features in its order "
            "to be read backed; read it into memory (vaekit.read without backed=True), "
            "which matches features by name"
        )


def automatic(
    settings: dict[str, Any], fixed: set[str], X: Any, rules: tuple[auto.Rule, ...]
) -> None:
    """Fill the settings nobody gave by ``rules`` (:mod:`vaekit.auto`) on the data X, in
    place, and add their notes to ``settings["auto"]``."""
    chosen, notes = auto.choose(rules, auto.profile(X), fixed, settings)
    settings.update(chosen)
    settings["auto"] = [*settings.get("auto", []), *notes]


def model_table(
    X: Any, table: Table, preprocessor: Preprocessor, likelihood: str, allow_nan: bool = False
) -> Table:
    """The preprocessed data as a Table named by the modelled features, checked against the
    likelihood (messages then name the column as the model sees it); NaN (missing entries)
    pass when ``allow_nan``."""
    support = get_likelihood(likelihood).support
    if support.raw_counts and not preprocessor.keeps_counts:
        raise ValueError(
            f"likelihood {likelihood!r} models raw counts, but preprocess "
            f"{preprocessor.to_config()} changes them (only feature selection keeps counts); "
            "drop those steps or use likelihood='gaussian'"
        )
    out = Table(X, preprocessor.features_, table.sample_names)
    if preprocessor.steps:
        check_finite(out, "X after preprocessing", allow_nan)
    check_support(out, support, likelihood)
    return out


def model_config(
    s: dict[str, Any],
    n_input: int,
    cov: torch.Tensor | None,
    image_shape: tuple | None,
    n_labels: int = 0,
) -> ModelConfig:
    """The module's configuration: the settings that feed it (:mod:`vaekit.options`), and what
    the data tell (``n_input``, the width of the conditions, the (C, H, W) of image rows, the
    number of label classes)."""
    given = {k: _frozen(s[k]) for k in feeding("model")}
    n_covariates = 0 if cov is None else cov.shape[1]
    return ModelConfig(
        n_input=n_input,
        n_covariates=n_covariates,
        image_shape=image_shape,
        n_labels=n_labels,
        **given,
    )


def _frozen(value: Any) -> Any:
    """Layer sizes as a tuple, as the frozen config compares and hashes them."""
    return tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else value


def settle_init(settings: dict[str, Any], fixed: set[str], config: ModelConfig) -> None:
    """An automatic ``init="pca"`` (:mod:`vaekit.auto`) that the model cannot take, with the
    conditions ``fit`` was given say, falls back in place to random weights and the default
    learning rate, and says so in ``settings["auto"]``.

    Raises
    ------
    ValueError
        For an explicit ``init="pca"`` that the model cannot take, naming what it lacks.
    """
    unmet = ppca_unmet(config)
    if settings["init"] != "pca" or not unmet:
        return
    if "init" in fixed:
        require_ppca(config)
    settings["init"] = "random"
    notes = [n for n in settings["auto"] if not n.startswith(("init = ", "lr = "))]
    if "lr" not in fixed:
        settings["lr"] = DEFAULTS["lr"]
    settings["auto"] = [*notes, f"init = 'random': pca would need {unmet}"]


def train_config(s: dict[str, Any], seed: int) -> TrainConfig:
    """The training loop's settings (:mod:`vaekit.options`), with the seed drawn by ``fit``."""
    given = {k: s[k] for k in feeding("train")}
    if given["checkpoint_dir"] is not None:
        given["checkpoint_dir"] = str(given["checkpoint_dir"])
    return TrainConfig(**given, seed=seed)


def training_seed(seed: int | None, s: dict[str, Any], resume: bool) -> int:
    """The seed given; else, on resume, the seed of the newest checkpoint; else a new one."""
    if seed is not None:
        return seed
    if resume and s["checkpoint_dir"] is not None:
        saved = checkpoint.saved_seed(s["checkpoint_dir"])
        if saved is not None:
            return saved
    return int(np.random.default_rng().integers(2**31))


def checkpoints(
    s: dict[str, Any], seed: int, config: ModelConfig, table: Table, y: Any
) -> checkpoint.Checkpoints | None:
    """The run's checkpoint folder, with what identifies the run: the seed, the settings, the
    module's configuration and a fingerprint of the data; None without ``checkpoint_dir``."""
    if s["checkpoint_dir"] is None:
        return None
    settings = {k: v for k, v in s.items() if k != "preprocess"}
    settings["preprocess"] = Preprocessor(s["preprocess"]).to_config()
    settings["model"] = config.to_dict()
    identity = {
        "seed": seed,
        "settings": json.loads(json.dumps(settings, default=str)),
        "data": checkpoint.fingerprint(table.X, table.feature_names, table.sample_names, y),
    }
    return checkpoint.Checkpoints(
        s["checkpoint_dir"], s["checkpoint_minutes"], s["keep_checkpoints"], identity, RESUMABLE
    )


def fit_library(module: VAEModule, rows: DenseRows | SparseRows) -> None:
    """Log-normal of the library sizes, from which :meth:`VAE.sample` draws them."""
    if module.likelihood.uses_library:
        log_totals = np.log(_library_sizes(module, rows))
        module.library_log_mean.fill_(float(log_totals.mean()))
        module.library_log_std.fill_(float(log_totals.std()))


def _library_sizes(module: VAEModule, rows: DenseRows | SparseRows) -> np.ndarray:
    """(n,) library sizes as the module sees them: the row totals, or, with missing entries,
    the module's estimate from the observed ones (a block of rows at a time)."""
    if module.config.missing != "mask":
        return rows.row_sums()
    blocks = torch.arange(len(rows)).split(4096)
    return torch.cat([module.library(rows.take(idx)) for idx in blocks]).cpu().numpy().ravel()


def image_shapes(
    X: Any, given_shape: Any, settings: dict[str, Any], n_input: int
) -> tuple[tuple[int, ...] | None, tuple | None]:
    """(the image shape to record, (C, H, W) of the modelled rows or None): the shape the user
    gave, else the one the data carry; checked against the rows when conv is asked for."""
    shape = anndata_image_shape(X) if given_shape is None else parse_image_shape(given_shape)
    strict = given_shape is not None or settings["architecture"] == "conv"
    return shape, rows_shape(shape, n_input, strict)


def anndata_image_shape(X: Any) -> tuple[int, ...] | None:
    """The image shape an AnnData carries in ``uns["vaekit"]``, or None."""
    if not is_anndata(X):
        return None
    shape = X.uns.get("vaekit", {}).get("image_shape")
    return None if shape is None else tuple(int(v) for v in shape)


def auto_architecture(
    s: dict[str, Any], n_input: int, cov: torch.Tensor | None, chw: tuple | None
) -> str:
    """The architecture for ``architecture=None``: conv for whole images it can model (its
    ``check`` passes), dense layers for everything else."""
    if chw is None:
        return "mlp"
    try:
        get_architecture("conv").check(
            model_config({**s, "architecture": "conv"}, n_input, cov, chw)
        )
    except ValueError:  # e.g. tiny images, or counts: the MLP models them
        return "mlp"
    return "conv"


def parse_image_shape(shape: Any) -> tuple[int, ...]:
    """The ``image_shape`` argument as a tuple, checked."""
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) in (2, 3)
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape)
        and all(v >= 1 for v in shape)
    )
    if not ok:
        raise ValueError(
            f"image_shape must be (H, W) or (C, H, W) of positive integers; got {shape!r}"
        )
    return tuple(int(v) for v in shape)


def rows_shape(shape: tuple[int, ...] | None, n_input: int, strict: bool) -> tuple | None:
    """(C, H, W) of the rows the model sees ((H, W) means one channel), or None when they are
    not whole images: no shape is known, or preprocessing selected some of the pixels. Then
    ``strict`` (an image shape was given, or a conv architecture asked for) raises."""
    if shape is None:
        return None
    chw = (1, *shape) if len(shape) == 2 else tuple(shape)
    if math.prod(chw) == n_input:
        return chw
    if strict:
        raise ValueError(
            f"images of shape {shape} have {math.prod(chw)} pixels, but the model sees "
            f"{n_input} features (after preprocessing); pass the image_shape of the rows, "
            "keep every pixel in preprocess, or use architecture='mlp'"
        )
    return None
