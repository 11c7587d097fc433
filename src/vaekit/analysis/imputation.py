"""Missing values (NaN) filled in by a fitted VAE, in the user's own space and container.

Two methods, looked up by name in :data:`IMPUTERS`:

- ``"importance"`` (the default): E[x_miss | x_obs] ~ sum_k w_k E[x_miss | z_k], with z_k drawn
  from a proposal q and w_k proportional to p(x_obs | z_k) p(z_k) / q(z_k), scoring the
  observed entries only (Mattei & Frellsen 2019, MIWAE). Multiple imputations resample the z_k
  by their weights and draw x_miss from p(x | z_k). The weights correct for an imperfect
  proposal, so it also works for a model fitted on complete data, whose encoder then reads the
  missing entries filled in by ``n_iter`` encode-decode steps. The encoder's proposal is then
  fitted to each sample's observed entries by ``refine_steps`` steps of gradient ascent on its
  ELBO (semi-amortised inference, Kim et al. 2018): with many entries missing, the encoder's
  guess can be so far from the posterior that one draw in thousands carries all the weight.
- ``"gibbs"``: Rezende et al. (2014)'s pseudo-Gibbs chain: encode the completed x, draw z,
  draw the missing entries from p(x | z), again ``n_iter`` times. The point estimate averages
  E[x_miss | z_t] over the second half of the chain; multiple imputations are the last states
  of independent chains.

Both start from a first guess: a mask-aware model (``missing="mask"``) decodes its posterior
mean of the observed entries; a model fitted on complete data starts from its own mean,
E[x] under the prior, as no value of x reads as "unknown" to its encoder.

Values are imputed in the space the model sees (after preprocessing) and mapped back through
the inverse of each preprocessing step. A feature the model does not model (left out by
feature selection) cannot be imputed: NaN there is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted
from torch.distributions import Normal

from vaekit._deprecation import draws_keyword
from vaekit._runtime import chunk_rows
from vaekit.analysis._limits import MAX_DRAWS, MAX_IMPUTATIONS, check_count
from vaekit.batch import Batch
from vaekit.iwae import row_values
from vaekit.model import VAEModule, prior_kl
from vaekit.validation import check_observed, is_anndata

if TYPE_CHECKING:
    from vaekit.estimator import BaseVAE, Prepared

# On the CPU (a GPU sizes both from its free memory, block_rows and draw_rows):
BLOCK_ROWS = 1024  # samples imputed together: bounds the memory of preprocessing and draws
MAX_DRAW_VALUES = 2**25  # decoded values per importance block (samples x draws x features)
# Decoded values per refinement step, kept with their activations for the backward pass: a
# conv decoder holds ~50 values per pixel, so this bounds a step to a few hundred MB.
MAX_REFINE_VALUES = 2**19
REFINE_DRAWS = 8  # draws per sample and step of the refinement's ELBO gradient
PRIOR_DRAWS = 64  # draws from the prior that estimate a model's mean E[x]


@dataclass(frozen=True)
class Request:
    """What an imputer is asked: ``n_iter`` steps, ``n_draws`` importance draws,
    ``n_imputations`` draws per sample (None: one point estimate, the conditional mean) and
    ``refine_steps`` steps fitting each sample's importance proposal."""

    n_iter: int
    n_draws: int
    n_imputations: int | None
    refine_steps: int = 0
    seed: int = 0
    first_row: int = 0  # of the block being imputed, in X

    def generators(self, n: int) -> list[torch.Generator]:
        """One generator per row of the block, seeded by the row's place in X: a row's draws
        are the same whatever chunks of rows are drawn together."""
        states = (np.random.SeedSequence([self.seed, self.first_row + i]) for i in range(n))
        return [torch.Generator().manual_seed(int(s.generate_state(1)[0])) for s in states]

    @property
    def n_out(self) -> int:
        return self.n_imputations or 1


Imputer = Callable[[VAEModule, Batch, Request], torch.Tensor]  # (n_out, B, D) completed rows


@draws_keyword
def impute(
    model: BaseVAE,
    X: Any,
    y: Any = None,
    *,
    n_iter: int = 50,
    n_draws: int = 1000,
    n_imputations: int | None = None,
    method: str = "importance",
    seed: int = 0,
    layer: str | None = None,
    refine_steps: int = 100,
) -> Any:
    """X with its NaN entries filled in by ``model``; observed entries are returned unchanged.

    Parameters
    ----------
    model : vaekit.VAE
        Fitted, with or without ``missing="mask"`` (a mask-aware encoder imputes better).
    X : array-like, DataFrame, sparse matrix, tensor or AnnData, (n_samples, n_features)
        NaN marks the missing entries (of a sparse matrix: stored NaN; implicit zeros are
        observed zeros).
    y : optional
        Conditions of a conditional model.
    n_iter : int
        ``"gibbs"``: steps of the chain. ``"importance"`` with a model fitted without
        ``missing="mask"``: encode-decode steps that fill in the encoder's input.
    n_draws : int
        Importance draws per sample (``"importance"``).
    n_imputations : int, optional
        Return this many completed copies of X, each with its own draw of the missing
        entries (multiple imputation), instead of one with their conditional mean.
    method : str
        A key of :data:`IMPUTERS`: ``"importance"`` or ``"gibbs"``.
    seed : int
    layer : str, optional
        The AnnData layer to complete instead of ``X``.
    refine_steps : int
        ``"importance"``: steps of Adam that fit each sample's proposal to its observed
        entries before the draws (:func:`refine`); 0 draws from the encoder's
        proposal as it is (the module's docstring says why; figures in benchmarks/README.md,
        imputation.py).

    Returns
    -------
    same type as X, or a list of ``n_imputations`` of them
        Values in X's own space (preprocessing inverted), same shape, index and columns.

    Examples
    --------
    >>> X_full = impute(model, X_with_nan)  # doctest: +SKIP
    >>> draws = impute(model, X_with_nan, n_imputations=5)  # doctest: +SKIP
    """
    check_is_fitted(model, "module_")
    request = replace(_request(method, n_iter, n_draws, n_imputations, refine_steps), seed=seed)
    values, positions, prepared = _prepare(model, X, y, layer)
    missing = np.isnan(values[:, positions])
    if missing.any():
        filled = _impute_rows(model, prepared, IMPUTERS[method], request, seed)
        completed = [_fill(values, positions, missing, f) for f in filled]
    else:
        completed = [values] * request.n_out
    out = [like(X, v, layer) for v in completed]
    return out if n_imputations is not None else out[0]


def _request(
    method: str, n_iter: Any, n_draws: Any, n_imputations: Any, refine_steps: Any
) -> Request:
    if method not in IMPUTERS:
        raise ValueError(f"unknown imputation method {method!r}; choose one of {list(IMPUTERS)}")
    check_count("n_iter", n_iter, high=MAX_DRAWS)
    check_count("n_draws", n_draws, high=MAX_DRAWS)
    if n_imputations is not None:  # Rubin's rules want 5 to 100 copies, not millions
        check_count("n_imputations", n_imputations, high=MAX_IMPUTATIONS)
    check_count("refine_steps", refine_steps, low=0, high=MAX_DRAWS)
    return Request(
        int(n_iter),
        int(n_draws),
        None if n_imputations is None else int(n_imputations),
        int(refine_steps),
    )


def _prepare(
    model: BaseVAE, X: Any, y: Any, layer: str | None
) -> tuple[np.ndarray, list[int], Prepared]:
    """(X's values as a float64 copy, the columns of X that are the model's input features in
    its order, X and y prepared for the model); raises for input it cannot impute."""
    prepared = model.prepare(X, y, layer=layer, allow_nan=True)  # NaN: what is to be imputed
    table = prepared.given
    check_observed(table, columns=False)  # a feature may be all NaN: others predict it
    values = dense_copy(X, layer)
    expected = getattr(model, "feature_names_in_", None)
    if expected is None or table.feature_names is None:
        positions = list(range(model.n_features_in_))
    else:
        index = {name: i for i, name in enumerate(table.feature_names)}
        positions = [index[name] for name in expected]
    _check_modelled(model, values, positions, table.feature_names)
    return values, positions, prepared


def _check_modelled(
    model: Any, values: np.ndarray, positions: list[int], names: list[str] | None
) -> None:
    """Raise when NaN lies in a column the model does not model: one it was not fitted on,
    or one its feature selection left out."""
    input_names = _input_names(model)
    modelled = set(model.features_)
    keep = {p for p, name in zip(positions, input_names, strict=True) if name in modelled}
    bad = [j for j in np.flatnonzero(np.isnan(values).any(0)) if j not in keep]
    if bad:
        shown = [names[j] if names is not None else f"column {j}" for j in bad[:5]]
        raise ValueError(
            f"X has NaN in {len(bad)} feature(s) that the model does not model, e.g. {shown}; "
            f"it can impute only its {len(modelled)} modelled features (model.features_; "
            "the others were left out by feature selection or were not in the training data). "
            "Fill those features otherwise, drop them, or fit a model that keeps them"
        )


def _input_names(model: Any) -> list[str]:
    """The names fit gave the input features (those of X, else x0, x1, ...)."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(model.n_features_in_)]


def _impute_rows(
    model: BaseVAE, prepared: Prepared, imputer: Imputer, request: Request, seed: int
) -> list[np.ndarray]:
    """``request.n_out`` arrays (n, n_features_in_), each X completed in the input space of
    the model (its features, in its order), a block of samples at a time."""
    module, pre = model.module_, model.preprocessor_
    size = block_rows(module)
    starts = iter(range(0, len(prepared), size))

    def block(b: Batch) -> list[torch.Tensor]:
        # Every model scores only the entries that are not NaN: they are what is known.
        r = replace(request, first_row=next(starts))
        return list(imputer(module, module.batch(b.x, b.condition, ~b.x.isnan()), r))

    blocks = model.map_batches(prepared, block, seed=seed, batch_rows=size)
    parts: list[list[np.ndarray]] = [[] for _ in range(request.n_out)]
    for start, draws in zip(range(0, len(prepared), size), blocks, strict=True):
        X_in = prepared.inputs.X[start : start + size]
        for i, draw in enumerate(draws):  # (n_out, b, D)
            parts[i].append(pre.inverse_transform(draw.cpu().numpy(), X_in))
    return [np.concatenate(p) for p in parts]


def block_rows(module: VAEModule) -> int:
    """Samples imputed together: :data:`BLOCK_ROWS` on the CPU; on a GPU as many as its free
    memory holds (their host-side preprocessing is a few float64 copies of the rows)."""
    device = next(module.parameters()).device
    return chunk_rows(device, row_values(module.config), BLOCK_ROWS)


def draw_rows(module: VAEModule, device: torch.device) -> int:
    """Decoded rows (samples x draws) per importance block: :data:`MAX_DRAW_VALUES` values
    on the CPU; on a GPU as many rows as its free memory holds."""
    return chunk_rows(device, row_values(module.config), MAX_DRAW_VALUES // module.config.n_input)


def _fill(
    values: np.ndarray, positions: list[int], missing: np.ndarray, filled: np.ndarray
) -> np.ndarray:
    """A copy of ``values`` whose NaN in the model's columns hold ``filled``'s values."""
    out = values.copy()
    block = out[:, positions]
    block[missing] = filled[missing]
    out[:, positions] = block
    return out


# ---------------------------------------------------------------------------- imputers
def importance(module: VAEModule, batch: Batch, r: Request) -> torch.Tensor:
    """(n_out, B, D) x completed by importance-weighted draws (MIWAE; Mattei & Frellsen
    2019) from the encoder's proposal, refined for each sample; drawn a few samples at a time
    so that the decoded values (128 MB) stay bounded."""
    qz = module.encode(_proposal_input(module, batch, r.n_iter), batch.condition)
    gens = r.generators(len(batch))
    if r.refine_steps:
        qz = _refine(module, batch, qz, r.refine_steps, gens)
    step = max(1, draw_rows(module, batch.x.device) // r.n_draws)
    parts = [
        _importance_block(
            module, batch.slice(i, step), _normal_rows(qz, i, step), r, gens[i : i + step]
        )
        for i in range(0, len(batch), step)
    ]
    return torch.cat(parts, dim=1)


def refine(
    module: VAEModule,
    batch: Batch,
    qz: Normal,
    steps: int = 100,
    lr: float = 0.05,
    n_draws: int = REFINE_DRAWS,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> Normal:
    """q(z) of each sample of the batch fitted to that sample alone by ``steps`` of Adam on its
    ELBO, starting from ``qz``: semi-amortised inference (Kim et al. 2018).

    The encoder's q(z | x) is fitted to the data on average; for a sample with many
    entries missing it can be far from the true posterior (the amortisation gap), which
    leaves importance sampling with a few useful draws out of thousands. Only the batch's
    ``observed`` entries are scored (build it with ``module.batch(x, c, ~x.isnan())``); the
    KL is in closed form; the module's own weights are neither changed nor given gradients.
    ``generator`` seeds the draws; a list of them, one per sample, makes each sample's
    refinement independent of the samples refined with it.

    Examples
    --------
    >>> q = refine(module, module.batch(x, None, ~x.isnan()), module.encode(x))  # doctest: +SKIP
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    if steps == 0:
        return Normal(qz.loc.detach(), qz.scale.detach(), validate_args=False)
    loc = qz.loc.detach().clone().requires_grad_(True)
    log_scale = qz.scale.detach().log().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([loc, log_scale], lr=lr)
    # A rate falling to 0 lets the noisy steps settle on the optimum instead of about it.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / steps)
    with torch.enable_grad():
        for _ in range(steps):
            q = Normal(loc, log_scale.exp(), validate_args=False)
            draws = module.importance_draws(batch, n_draws, q, generator)
            loss = (prior_kl(q) - draws.log_px.mean(0)).sum()  # samples are independent
            loc.grad, log_scale.grad = torch.autograd.grad(loss, [loc, log_scale])
            optimizer.step()
            schedule.step()
    return Normal(loc.detach(), log_scale.detach().exp(), validate_args=False)


def _refine(
    module: VAEModule, batch: Batch, qz: Normal, steps: int, gens: list[torch.Generator]
) -> Normal:
    """``qz`` fitted to each sample's observed entries (:func:`refine`), a few samples at a
    time so that the memory of a gradient step stays bounded."""
    size = max(1, MAX_REFINE_VALUES // (REFINE_DRAWS * batch.x.shape[1]))
    parts = [
        refine(
            module,
            batch.slice(i, size),
            _normal_rows(qz, i, size),
            steps=steps,
            n_draws=REFINE_DRAWS,
            generator=gens[i : i + size],
        )
        for i in range(0, len(batch), size)
    ]
    loc, scale = torch.cat([q.loc for q in parts]), torch.cat([q.scale for q in parts])
    return Normal(loc, scale, validate_args=False)


def _normal_rows(qz: Normal, start: int, size: int) -> Normal:
    end = start + size
    return Normal(qz.loc[start:end], qz.scale[start:end], validate_args=False)


def _importance_block(
    module: VAEModule, batch: Batch, qz: Normal, r: Request, gens: list[torch.Generator]
) -> torch.Tensor:
    draws = module.importance_draws(batch, r.n_draws, qz, gens)
    weights = torch.softmax(draws.log_px - draws.log_ratio, dim=0)  # (k, B)
    n = len(batch)
    if r.n_imputations is None:
        mean = draws.px.mean.view(r.n_draws, n, -1)  # (k, B, D)
        return _complete(batch.x, (weights[..., None] * mean).sum(0))[None]
    # Sampling importance resampling: z_k drawn by weight, then x from p(x | z_k).
    pick = torch.multinomial(weights.T, r.n_imputations, replacement=True).T  # (m, B)
    z = draws.z[pick, torch.arange(n, device=batch.x.device)]  # (m, B, L)
    copies = batch.repeat(len(z))
    px = module.decode(z.reshape(-1, z.shape[-1]), copies.condition, copies.library)
    return _complete(copies.x, px.sample()).view(len(z), n, -1)


def _proposal_input(module: VAEModule, batch: Batch, n_iter: int) -> torch.Tensor:
    """What the encoder reads to propose z: x itself (NaN and all) for a mask-aware model;
    for another, x with its missing entries filled in by ``n_iter`` steps of encoding and
    decoding at the posterior mean, starting from the model's mean."""
    x, c = batch.x, batch.condition
    if module.config.missing == "mask":
        return x
    current = _complete(x, _first_guess(module, batch))
    for _ in range(n_iter):
        qz = module.encode(current, c)
        current = _complete(x, module.decode(qz.loc, c, batch.library).mean)
    return current


def pseudo_gibbs(module: VAEModule, batch: Batch, r: Request) -> torch.Tensor:
    """(n_out, B, D) x completed by Rezende et al. (2014)'s pseudo-Gibbs chain: z ~ q(z | x),
    x_miss ~ p(x_miss | z), ``n_iter`` times; one chain per imputation."""
    m, n = r.n_out, len(batch)
    chains = batch.repeat(m)
    x, c, library = chains.x, chains.condition, chains.library
    current = _complete(x, _first_guess(module, chains))
    total, count = torch.zeros_like(current), 0
    for t in range(r.n_iter):
        # The completed x has no NaN: every entry reads as observed, so the chain moves.
        px = module.decode(module.reparameterize(module.encode(current, c)), c, library)
        if t >= r.n_iter // 2:  # Rao-Blackwellised: E[x | z_t] over the chain's second half
            total, count = total + px.mean, count + 1
        current = _complete(x, px.sample())
    result = current if r.n_imputations is not None else _complete(x, total / count)
    return result.view(m, n, -1)


def _first_guess(module: VAEModule, batch: Batch) -> torch.Tensor:
    """(B, D) where the chains start: a mask-aware model decodes its posterior mean given
    the observed entries; another decodes draws from the prior and averages them (the
    model's E[x]), as its encoder cannot read a missing entry."""
    if module.config.missing == "mask":
        qz = module.encode(batch.x, batch.condition)
        return module.decode(qz.loc, batch.condition, batch.library).mean
    k, n = PRIOR_DRAWS, len(batch)
    z = torch.randn(k * n, module.config.n_latent, device=batch.x.device)
    copies = batch.repeat(k)
    return module.decode(z, copies.condition, copies.library).mean.view(k, n, -1).mean(0)


def _complete(x: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """x with its NaN entries taken from ``guess`` (observed entries untouched)."""
    return torch.where(x.isnan(), guess, x)


# ---------------------------------------------------------------------------- containers
def dense_copy(X: Any, layer: str | None = None) -> np.ndarray:
    """X's values (or an AnnData layer's) as a dense float64 copy, in X's column order."""
    if is_anndata(X):
        X = X.X if layer is None else X.layers[layer]
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if sp.issparse(X):
        return X.toarray().astype(np.float64)
    return np.array(X, dtype=np.float64)  # a copy, also of a DataFrame's values


def like(X: Any, values: np.ndarray, layer: str | None = None) -> Any:
    """``values`` in X's container: the same type, index and columns, and X's float dtype
    (an integer X comes back as float64; an AnnData as a copy with its X or layer replaced)."""
    if is_anndata(X):
        out = X.copy()
        if layer is None:
            out.X = like(X.X, values)
        else:
            out.layers[layer] = like(X.layers[layer], values)
        return out
    if isinstance(X, pd.DataFrame):
        frame = pd.DataFrame(values, index=X.index, columns=X.columns)
        floats = {c: t for c, t in X.dtypes.items() if pd.api.types.is_float_dtype(t)}
        return frame.astype(floats) if X.columns.is_unique else frame
    if isinstance(X, torch.Tensor):
        dtype = X.dtype if X.is_floating_point() else torch.float32
        return torch.as_tensor(values, dtype=dtype, device=X.device)
    dtype = X.dtype if getattr(X, "dtype", None) is not None and X.dtype.kind == "f" else np.float64
    if sp.issparse(X):
        return sp.csr_matrix(values.astype(dtype)).asformat(X.format)
    return values.astype(dtype)


IMPUTERS: dict[str, Imputer] = {
    "importance": importance,
    "gibbs": pseudo_gibbs,
}
