"""The training loop: minibatches sliced by index, KL warm-up, early stopping on validation."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.distributions import Normal

from vaekit.config import TrainConfig
from vaekit.model import LossOutput, VAEModule


class Rows(Protocol):
    """Training data that hands out dense rows by index (a tensor, or a sparse matrix wrapper)."""

    def __len__(self) -> int: ...

    def take(self, index: torch.Tensor) -> torch.Tensor: ...


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class PosteriorCollapseWarning(UserWarning):
    """Most latent features carry no information about x: q(z_j | x) is the prior for all x."""


# Burda et al. 2016: unit u is active when Cov_x(E_q[z_u | x]) > 0.01.
ACTIVE_THRESHOLD = 0.01
DIAGNOSTIC_ROWS = 10_000  # rows that measure latent usage when there is no validation split
LR_FACTOR = 0.5  # learning-rate cut on a plateau (lr_patience)
MIN_LR_SHARE = 0.01  # ... down to this share of the initial rate


@dataclass
class TrainResult:
    """What :func:`train` learned besides the weights: one dict per epoch, the best epoch, and
    the rows it held out for validation (ascending), which callers store rather than draw
    again from the seed (``torch.randperm``'s output may change between torch releases)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    validation_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


def split_indices(n: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random (train, validation) row indices; no validation rows when ``n * fraction < 1``."""
    perm = torch.randperm(n, generator=generator)
    n_val = int(n * fraction)
    if n - n_val < 2:
        raise ValueError(
            f"validation_fraction={fraction} leaves {n - n_val} training samples of {n}; "
            "lower it or give more samples"
        )
    return perm[n_val:], perm[:n_val]


def seeded_split(
    n: int, fraction: float, seed: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """:func:`train`'s (train, validation) rows for ``seed``, and the generator, which then
    orders its minibatches: the one place that fixes which rows a seed holds out (a report
    recovers them from the seed of a model saved before models stored them)."""
    gen = torch.Generator().manual_seed(seed if seed is not None else 0)
    train_idx, val_idx = split_indices(n, fraction, gen)
    return train_idx, val_idx, gen


def minibatches(index: torch.Tensor, batch_size: int, generator: torch.Generator) -> list:
    """Shuffled index slices; a last batch of one sample is dropped (batch norm needs two)."""
    batches = list(index[torch.randperm(len(index), generator=generator)].split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


@torch.no_grad()
def validation_loss(
    module: VAEModule,
    data: Rows,
    cov: torch.Tensor | None,
    index: torch.Tensor,
    kl_weight: float,
    batch_size: int = 4096,
    seed: int = 0,
    iw_samples: int = 1,
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean loss, reconstruction and KL over ``index``, in eval mode, with fixed noise; and,
    from the same pass, how the latent features are used (see :func:`usage_record`)."""
    module.eval()
    gen = torch.Generator(device=_device(module)).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=_device(module))
    usage = torch.zeros(3, module.config.n_latent, dtype=torch.float64, device=_device(module))
    for idx in index.split(batch_size):
        out = module.loss(data.take(idx), _rows(cov, idx), kl_weight, gen, iw_samples)
        sums += _sums(out)
        usage += usage_sums(out.posterior)
    loss, rec, kl = (sums / len(index)).tolist()
    return {"loss": loss, "reconstruction": rec, "kl": kl}, usage_record(usage, len(index))


@torch.no_grad()
def latent_usage(
    module: VAEModule,
    data: Rows,
    cov: torch.Tensor | None,
    index: torch.Tensor,
    batch_size: int = 4096,
) -> dict[str, float]:
    """:func:`usage_record` of the rows ``index``, from the encoder alone."""
    module.eval()
    usage = torch.zeros(3, module.config.n_latent, dtype=torch.float64, device=_device(module))
    for idx in index.split(batch_size):
        usage += usage_sums(module.encode(data.take(idx), _rows(cov, idx)))
    return usage_record(usage, len(index))


def usage_sums(qz: Normal) -> torch.Tensor:
    """(3, n_latent) float64 batch sums of KL(q(z_j | x) || N(0, 1)), of E_q[z_j | x] and of
    its square; they stay on the device until the epoch's record is made."""
    mu, var = qz.loc.double(), qz.scale.double() ** 2
    return torch.stack([(0.5 * (mu**2 + var - 1 - var.log())).sum(0), mu.sum(0), (mu**2).sum(0)])


def usage_record(usage: torch.Tensor, n: int) -> dict[str, float]:
    """History columns from :func:`_usage_sums` over ``n`` rows: ``active_units``, the features
    whose posterior mean varies over the rows (variance > ``ACTIVE_THRESHOLD``; Burda et al.
    2016: the others collapsed to the prior), and ``kl_z0``, ``kl_z1``... (nats per sample)."""
    kl, first, second = (usage / n).cpu()
    variance = (second - first**2).clamp(min=0)
    record = {"active_units": int((variance > ACTIVE_THRESHOLD).sum())}
    record.update({f"kl_z{j}": float(v) for j, v in enumerate(kl)})
    return record


def train(
    module: VAEModule,
    data: Rows,
    cov: torch.Tensor | None,
    config: TrainConfig,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Fit ``module`` in place with Adam; restore the best weights when early stopping is on.

    Parameters
    ----------
    module : VAEModule
    data : Rows
        n samples; ``data.take(index)`` returns a dense (len(index), n_input) tensor.
    cov : Tensor or None
        (n, n_covariates) encoded conditions.
    config : TrainConfig
        ``config.seed`` fixes the split and the batch order; seed torch's generator as well
        (as :meth:`vaekit.VAE.fit` does) for identical noise and dropout.
    callback : callable, optional
        Called as ``callback(epoch, record)`` after each epoch (progress bars, logging).

    Returns
    -------
    TrainResult
        ``history`` holds, per epoch: train_/val_ loss, reconstruction and kl, kl_weight,
        seconds, ``active_units`` and the KL of each latent feature ``kl_z0``... (measured on
        the validation rows, else on up to 10,000 training rows) and ``lr``. The monitored
        quantity, ``val_loss``, is measured at the full KL weight ``beta``, so that it does
        not move with the warm-up; patience (``patience`` for stopping, ``lr_patience`` for
        halving the learning rate) only counts once the warm-up is over. Training also ends
        after ``max_minutes``, at the end of the epoch that crosses it.
    """
    train_idx, val_idx, gen = seeded_split(len(data), config.validation_fraction, config.seed)
    stopping = config.early_stopping and len(val_idx) > 0
    opt = adam(module, config)
    plateau = _plateau(opt, config) if len(val_idx) else None
    result, best, best_state, stale = TrainResult(), float("inf"), None, 0
    result.validation_rows = val_idx.sort().values
    start = time.perf_counter()
    for epoch in range(config.epochs):
        tic = time.perf_counter()
        weight = config.kl_weight(epoch)
        record = {
            "epoch": epoch,
            **_fit_epoch(module, data, cov, train_idx, weight, opt, config, gen),
        }
        if len(val_idx):
            # At the full KL weight, so that epochs compare across the warm-up.
            val, usage = validation_loss(
                module, data, cov, val_idx, config.beta, iw_samples=config.iw_samples
            )
            record.update({f"val_{k}": v for k, v in val.items()})
        else:
            usage = latent_usage(module, data, cov, train_idx[:DIAGNOSTIC_ROWS])
        record.update(usage)
        record["kl_weight"] = weight
        record["lr"] = opt.param_groups[0]["lr"]
        record["seconds"] = time.perf_counter() - tic
        result.history.append(record)
        if callback is not None:
            callback(epoch, record)
        if plateau is not None and epoch >= config.kl_warmup:
            plateau.step(record["val_loss"])
        out_of_time = _minutes(start) >= (config.max_minutes or math.inf)
        if stopping:
            score = record["val_loss"]
            if score < best:
                best, best_state, result.best_epoch, stale = score, _snapshot(module), epoch, 0
            elif epoch >= config.kl_warmup:
                stale += 1
        if out_of_time or (stopping and stale >= config.patience):
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history) - 1
    _warn_if_collapsed(result.history[result.best_epoch], module.config.n_latent, config)
    module.eval()
    result.seconds = time.perf_counter() - start
    return result


def _warn_if_collapsed(record: dict[str, float], n_latent: int, config: TrainConfig) -> None:
    """Warn when most latent features collapsed to the prior, unless an L1 penalty on the
    loadings asked for it: that Laplace prior switches off the features the data do not need
    (the ``expression`` preset keeps ~10 of its 100 on TCGA), so only none left is a failure."""
    active = record["active_units"]
    pruned_on_purpose = config.loadings_l1 > 0 and active > 0
    if n_latent > 1 and active < n_latent / 2 and not pruned_on_purpose:
        warnings.warn(
            f"only {active} of {n_latent} latent features are active (their posterior mean "
            "varies with x; Burda et al. 2016); the others collapsed to the prior. If that is "
            "too few, train longer, lower beta or lengthen kl_warmup; else fewer latent "
            "features would do",
            PosteriorCollapseWarning,
            stacklevel=3,
        )


def adam(module: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the fused kernel where torch has one: on CPU the default per-tensor update
    takes a large share of a small model's step (timings in benchmarks/README.md)."""
    kw = dict(lr=config.lr, weight_decay=config.weight_decay)
    try:
        return torch.optim.Adam(module.parameters(), fused=True, **kw)
    except (RuntimeError, TypeError):  # fused Adam on CPU needs torch >= 2.4
        return torch.optim.Adam(module.parameters(), **kw)


def _fit_epoch(
    module: VAEModule,
    data: Rows,
    cov: torch.Tensor | None,
    index: torch.Tensor,
    kl_weight: float,
    opt: torch.optim.Optimizer,
    config: TrainConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    # Sums stay on the device: a copy to the host every step would stall a GPU.
    sums, count = torch.zeros(3, dtype=torch.float64, device=_device(module)), 0
    for idx in minibatches(index, config.batch_size, gen):
        out = module.loss(data.take(idx), _rows(cov, idx), kl_weight, iw_samples=config.iw_samples)
        opt.zero_grad(set_to_none=True)
        loss = out.loss
        if config.loadings_l1 > 0:
            # A Laplace prior on the loadings: each latent feature drives few genes, which
            # singles out sparse factors that a rotation of z would otherwise mix.
            loss = loss + config.loadings_l1 * module.latent_weights().abs().sum()
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        sums += _sums(out)
        count += len(idx)
    if not torch.isfinite(sums).all():
        raise TrainingDiverged(
            "training diverged: the loss became NaN or infinite. Lower lr, set grad_clip, or "
            "scale the data (a Gaussian likelihood wants features of order 1, e.g. z-scored)"
        )
    loss, rec, kl = (sums / count).tolist()
    return {"train_loss": loss, "train_reconstruction": rec, "train_kl": kl}


@torch.no_grad()
def _sums(out: LossOutput) -> torch.Tensor:
    """(3,) float64 batch sums of loss, reconstruction and KL."""
    n = len(out.reconstruction)
    return torch.stack([out.loss * n, out.reconstruction.sum(), out.kl.sum()]).double()


def _plateau(
    opt: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Halve the learning rate when the validation loss has not improved for ``lr_patience``
    epochs: Adam's late steps then settle into a minimum instead of jittering around it."""
    if config.lr_patience is None:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=LR_FACTOR, patience=config.lr_patience, min_lr=config.lr * MIN_LR_SHARE
    )


def _minutes(start: float) -> float:
    return (time.perf_counter() - start) / 60


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _rows(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
