"""The training loop: minibatches sliced by index, KL warm-up, early stopping on validation."""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.distributions import Normal

from vaekit.checkpoint import Checkpoints, LoopState, Snapshot, capture, restore
from vaekit.config import TrainConfig
from vaekit.data import DenseRows
from vaekit.distributed import World, data_parallel, world
from vaekit.model import LossOutput, VAEModule
from vaekit.objectives import OBJECTIVES, Regulariser, regulariser


class Rows(Protocol):
    """Training data that hands out dense rows by index (a tensor, or a sparse matrix wrapper).

    A source may also define ``order(index, batch_size, generator) -> list[Tensor]``, the
    epoch's minibatches (a reader of a file chooses an order it can read fast); the loop then
    calls ``take`` with those batches, in that order. Without it, :func:`minibatches`.
    """

    def __len__(self) -> int: ...

    def take(self, index: torch.Tensor) -> torch.Tensor: ...


class TrainingDiverged(RuntimeError):
    """The loss stayed NaN or infinite after every roll-back.

    Attributes
    ----------
    best_state : dict or None
        The weights of the best epoch before it diverged (also in the newest checkpoint).
    history : list of dict
        The epochs done.
    """

    def __init__(
        self,
        message: str,
        best_state: dict[str, torch.Tensor] | None = None,
        history: list[dict[str, float]] | None = None,
    ) -> None:
        super().__init__(message)
        self.best_state, self.history = best_state, history or []


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after a step (and a checkpoint, when it had a
    folder for them). ``exit_code`` is the shell's: 128 + the signal's number."""

    def __init__(self, signum: int, message: str, checkpoint: Any = None) -> None:
        super().__init__(message)
        self.signum, self.exit_code, self.checkpoint = signum, 128 + signum, checkpoint


class DivergenceWarning(UserWarning):
    """The loss became NaN or infinite; training rolled back with half the learning rate."""


class PosteriorCollapseWarning(UserWarning):
    """Most latent features carry no information about x: q(z_j | x) is the prior for all x."""


# Burda et al. 2016: unit u is active when Cov_x(E_q[z_u | x]) > 0.01.
ACTIVE_THRESHOLD = 0.01
DIAGNOSTIC_ROWS = 10_000  # rows that measure latent usage when there is no validation split
LR_FACTOR = 0.5  # learning-rate cut on a plateau (lr_patience) and on a divergence
MAX_ROLLBACKS = 3  # divergences rolled back before training gives up
MIN_LR_SHARE = 0.01  # ... down to this share of the initial rate
# The training step's autocast type per ``precision`` (None: no autocast).
AUTOCAST: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
GRAPH_WARMUP = 3  # eager steps on a side stream before each capture (torch.cuda.graphs' advice)


@dataclass
class TrainResult:
    """What :func:`train` learned besides the weights: one dict per epoch, the best epoch, and
    the rows it held out for validation (ascending), which callers store rather than draw
    again from the seed (``torch.randperm``'s output may change between torch releases), and
    where it resumed from checkpoints (epoch, step, and the settings changed then, as
    ``name: [before, after]``)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    validation_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    resumes: list[dict[str, Any]] = field(default_factory=list)


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


def epoch_batches(
    data: Rows,
    index: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> list[torch.Tensor]:
    """The epoch's minibatches (the source's ``order``, else :func:`minibatches`), moved to
    ``device`` in one copy: a copy per step would wait on the host every step."""
    order = getattr(data, "order", None)
    batches = (order or minibatches)(index, batch_size, generator)
    if device.type == "cpu" or not batches:
        return batches
    sizes = [len(b) for b in batches]
    return list(torch.cat(batches).to(device, non_blocking=True).split(sizes))


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
    world: World | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean loss, reconstruction and KL over ``index``, in eval mode, with fixed noise; and,
    from the same pass, how the latent features are used (see :func:`usage_record`). Under
    torchrun each rank passes its part of the rows, and the sums are added over the ranks."""
    world = world or World()
    module.eval()
    gen = torch.Generator(device=_device(module)).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=_device(module))
    usage = torch.zeros(3, module.config.n_latent, dtype=torch.float64, device=_device(module))
    for idx in index.split(batch_size):
        out = module.loss(data.take(idx), _rows(cov, idx), kl_weight, gen, iw_samples)
        sums += _sums(out)
        usage += usage_sums(out.posterior)
    n = _total(world, len(index), sums.device)
    world.sum(sums), world.sum(usage)
    loss, rec, kl = (sums / n).tolist()
    return {"loss": loss, "reconstruction": rec, "kl": kl}, usage_record(usage, n)


@torch.no_grad()
def latent_usage(
    module: VAEModule,
    data: Rows,
    cov: torch.Tensor | None,
    index: torch.Tensor,
    batch_size: int = 4096,
    world: World | None = None,
) -> dict[str, float]:
    """:func:`usage_record` of the rows ``index``, from the encoder alone (summed over the
    ranks under torchrun, each passing its part of the rows)."""
    world = world or World()
    module.eval()
    usage = torch.zeros(3, module.config.n_latent, dtype=torch.float64, device=_device(module))
    for idx in index.split(batch_size):
        usage += usage_sums(module.encode(data.take(idx), _rows(cov, idx)))
    n = _total(world, len(index), usage.device)
    return usage_record(world.sum(usage), n)


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
    *,
    labels: torch.Tensor | None = None,
    checkpoints: Checkpoints | None = None,
    resume: bool = False,
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
    labels : Tensor, optional
        (n,) int64 class of each sample for the module's label classifier, -1 where unknown;
        its cross-entropy, weighted by ``config.classification_weight``, joins the training
        loss (the validation loss stays the negative ELBO).
    checkpoints : Checkpoints, optional
        Where to write a checkpoint after every epoch (and within long epochs), and on
        SIGINT or SIGTERM.
    resume : bool
        Continue from the newest of ``checkpoints`` (from the start when there is none): the
        weights and history end bit for bit as those of an uninterrupted run.

    Returns
    -------
    TrainResult
        ``history`` holds, per epoch: train_/val_ loss, reconstruction and kl, kl_weight,
        seconds, ``active_units`` and the KL of each latent feature ``kl_z0``... (measured on
        the validation rows, else on up to 10,000 training rows), ``lr`` and ``rollbacks``
        (divergences so far); ``train_<term>`` for each term of ``config.objective``
        (:data:`vaekit.objectives.OBJECTIVES`) and its schedule (``capacity``). The training
        loss is the objective's; the monitored quantity, ``val_loss``, the negative ELBO
        (not the objective's loss), measured at the full
        KL weight ``beta``, so that it does not move with the warm-up; patience
        (``patience`` for stopping, ``lr_patience`` for halving the learning rate) only
        counts once the warm-up is over. Training also ends after ``max_minutes`` of this
        process, at the end of the epoch that crosses it.

    Raises
    ------
    TrainingDiverged
        When the loss is still NaN or infinite after ``MAX_ROLLBACKS`` roll-backs.
    TrainingInterrupted
        On SIGINT or SIGTERM, after the step under way and a checkpoint.
    """
    train_idx, val_idx, gen = seeded_split(len(data), config.validation_fraction, config.seed)
    stopping = config.early_stopping and len(val_idx) > 0
    if config.init == "pca" and not resume:  # a resumed run has its weights already
        module.init_ppca(data.take(train_idx.sort().values).to(torch.float64))
    w = world()
    graphs = _graphable(module, data, config, w)
    opt = adam(module, config, capturable=graphs)
    objective = data_parallel(module, w) if w.size > 1 else module.loss
    own = w.shard(train_idx), w.part(val_idx)  # this rank's rows (all of them in one process)
    writer = checkpoints if w.main else None  # rank 0 alone writes
    plateau = _plateau(opt, config) if len(val_idx) else None
    terms = OBJECTIVES[config.objective].terms
    loop, result = LoopState(sums=_zeros(module, terms)), TrainResult()
    result.validation_rows = val_idx.sort().values
    if resume:
        loop = _resume(checkpoints, module, opt, plateau, gen, result) or loop
        if w.size > 1:  # the checkpoint holds rank 0's noise generator: each rank its own
            torch.manual_seed(w.seed((config.seed or 0) + loop.epoch * len(train_idx) + loop.step))
    good = capture(module, opt, plateau, gen, loop)  # what a divergence rolls back to
    start, before = time.perf_counter(), loop.seconds
    with stop_signals() as stop:
        while not _finished(loop, config, stopping):
            tic = time.perf_counter()
            if loop.step == 0:
                loop.epoch_generator = gen.get_state()
            else:  # resumed mid-epoch: the same shuffle again
                gen.set_state(loop.epoch_generator)
            weight = config.kl_weight(loop.epoch)
            # The objective's loss for this epoch; the rows of the whole training set are
            # the N of beta-TC-VAE's estimate of q(z).
            reg = regulariser(config, weight, loop.epoch, len(train_idx))
            step = _Step(module, data, cov, opt, config, weight, labels, objective, w, reg, terms)
            fitted = _fit_epoch(step, own[0], gen, loop, stop, writer, plateau, graphs)
            record = fitted and _validate(step, own[1], own[0], fitted)
            if record is None:  # NaN or inf: back to the last good state, half the rate
                loop = _roll_back(good, module, opt, plateau, gen, loop)
                continue
            record.update(
                epoch=loop.epoch,
                kl_weight=weight,
                lr=opt.param_groups[0]["lr"],
                rollbacks=loop.rollbacks,
                seconds=time.perf_counter() - tic,
                **({} if reg is None else reg.record),
            )
            _end_epoch(loop, record, module, plateau, config, stopping)
            if callback is not None and w.main:
                callback(record["epoch"], record)
            loop.seconds = before + time.perf_counter() - start
            good = capture(module, opt, plateau, gen, loop)
            if writer is not None:
                writer.write(good)
            if _minutes(start) >= (config.max_minutes or math.inf):
                break
    if loop.best_state is not None:
        module.load_state_dict(loop.best_state)
        result.best_epoch = loop.best_epoch
    else:
        result.best_epoch = len(loop.history) - 1
    result.history = loop.history
    if w.main:
        _warn_if_collapsed(result.history[result.best_epoch], module.config.n_latent, config)
    module.eval()
    result.seconds = before + time.perf_counter() - start
    return result


def _finished(loop: LoopState, config: TrainConfig, stopping: bool) -> bool:
    """Whether the run is over: all epochs done, or early stopping's patience run out. Read
    again on resume, with the epochs and patience given then."""
    return loop.epoch >= config.epochs or (stopping and loop.stale >= config.patience)


def _resume(
    checkpoints: Checkpoints | None,
    module: VAEModule,
    opt: torch.optim.Optimizer,
    plateau: Any,
    gen: torch.Generator,
    result: TrainResult,
) -> LoopState | None:
    """The loop state of the newest checkpoint, restored into the module, optimizer and
    generators; None when there is none yet."""
    if checkpoints is None:
        raise ValueError("resume needs checkpoint_dir: the folder the checkpoints were written to")
    snap = checkpoints.latest()
    if snap is None:
        warnings.warn(
            f"no checkpoint in {checkpoints.folder} yet; training from the start", stacklevel=3
        )
        return None
    loop = restore(snap, module, opt, plateau, gen)
    result.resumes.append({"epoch": loop.epoch, "step": loop.step, **checkpoints.changes(snap)})
    return loop


def _roll_back(
    good: Snapshot,
    module: VAEModule,
    opt: torch.optim.Optimizer,
    plateau: Any,
    gen: torch.Generator,
    loop: LoopState,
) -> LoopState:
    """Restore the last good state with half its learning rate, or raise after
    ``MAX_ROLLBACKS`` tries."""
    if loop.rollbacks >= MAX_ROLLBACKS:
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite in epoch {loop.epoch} "
            f"{MAX_ROLLBACKS + 1} times, even after halving the learning rate "
            f"{MAX_ROLLBACKS} times (to {opt.param_groups[0]['lr']:.3g}). Lower lr, set "
            "grad_clip, or scale the data (a Gaussian likelihood wants features of order 1, "
            "e.g. z-scored)",
            best_state=loop.best_state,
            history=loop.history,
        )
    rollbacks = loop.rollbacks + 1
    loop = restore(good, module, opt, plateau, gen)
    loop.rollbacks = rollbacks
    for group in opt.param_groups:
        group["lr"] *= LR_FACTOR
    warnings.warn(
        f"the loss became NaN or infinite in epoch {loop.epoch}; rolled back to the last good "
        f"state with the learning rate halved to {opt.param_groups[0]['lr']:.3g} "
        f"({rollbacks} of {MAX_ROLLBACKS} roll-backs)",
        DivergenceWarning,
        stacklevel=4,
    )
    return loop


def _validate(
    step: _Step, val_idx: torch.Tensor, train_idx: torch.Tensor, record: dict[str, float]
) -> dict[str, float] | None:
    """The epoch's record with the validation loss and latent usage; None if not finite."""
    module, data, cov, config = step.module, step.data, step.cov, step.config
    if _total(step.world, len(val_idx), _device(module)):
        # At the full KL weight, so that epochs compare across the warm-up.
        val, usage = validation_loss(
            module, data, cov, val_idx, config.beta, iw_samples=config.iw_samples,
            world=step.world,
        )
        if not all(math.isfinite(v) for v in val.values()):
            return None
        record.update({f"val_{k}": v for k, v in val.items()})
    else:
        rows = train_idx[: max(1, DIAGNOSTIC_ROWS // step.world.size)]
        usage = latent_usage(module, data, cov, rows, world=step.world)
    record.update(usage)
    return record


def _end_epoch(
    loop: LoopState,
    record: dict[str, float],
    module: VAEModule,
    plateau: Any,
    config: TrainConfig,
    stopping: bool,
) -> None:
    """Record the epoch, step the scheduler and early stopping, and move to the next epoch."""
    epoch = loop.epoch
    loop.history.append({"epoch": epoch, **{k: v for k, v in record.items() if k != "epoch"}})
    if plateau is not None and epoch >= config.kl_warmup:
        plateau.step(record["val_loss"])
    if stopping:
        if record["val_loss"] < loop.best:
            loop.best, loop.best_epoch, loop.stale = record["val_loss"], epoch, 0
            loop.best_state = _snapshot(module)
        elif epoch >= config.kl_warmup:
            loop.stale += 1
    loop.epoch, loop.step, loop.count = epoch + 1, 0, 0
    loop.sums = torch.zeros_like(loop.sums)


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


def adam(
    module: torch.nn.Module, config: TrainConfig, capturable: bool = False
) -> torch.optim.Optimizer:
    """Adam with the fused kernel where torch has one: on CPU the default per-tensor update
    takes a large share of a small model's step (timings in benchmarks/README.md).
    ``capturable`` keeps its step counts on the GPU, so that a CUDA graph can replay it."""
    kw = dict(lr=config.lr, weight_decay=config.weight_decay)
    if capturable:
        kw["capturable"] = True
    try:
        return torch.optim.Adam(module.parameters(), fused=True, **kw)
    except (RuntimeError, TypeError):  # fused Adam on CPU needs torch >= 2.4
        return torch.optim.Adam(module.parameters(), **kw)


def _graphable(module: VAEModule, data: Rows, config: TrainConfig, w: World) -> bool:
    """Whether the step can be captured in a CUDA graph: asked for, on a GPU, with the rows
    held there as one dense tensor (sparse rows have a shape that changes per batch), in one
    process (DistributedDataParallel's hooks are not captured here)."""
    if not config.cuda_graph:
        return False
    device = _device(module)
    dense = isinstance(data, DenseRows) and data.X.device == device
    if device.type == "cuda" and dense and w.size == 1:
        return True
    warnings.warn(
        f"cuda_graph needs device='cuda', dense rows held on the GPU and one process (got "
        f"device {device.type!r}, {type(data).__name__}, {w.size} processes); training "
        "without graphs",
        stacklevel=3,
    )
    return False


@dataclass(frozen=True)
class _Step:
    """What one optimisation step needs."""

    module: VAEModule
    data: Rows
    cov: torch.Tensor | None
    opt: torch.optim.Optimizer
    config: TrainConfig
    kl_weight: float
    labels: torch.Tensor | None = None
    objective: Callable[..., LossOutput] | None = None  # module.loss, or DDP's wrapper of it
    world: World = field(default_factory=World)
    regulariser: Regulariser | None = None  # the objective's loss; None: the ELBO
    terms: tuple[str, ...] = ()  # the objective's terms, summed after the loss's three

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """Take one step on the rows ``idx``; return the (3,) float64 loss sums."""
        module, config = self.module, self.config
        # Labels only when there are some: the loss of a model without a classifier takes
        # none (and a module from elsewhere need not know the keywords).
        supervised = {} if self.labels is None else {
            "labels": _rows(self.labels, idx), "label_weight": config.classification_weight
        }
        if self.regulariser is not None:
            supervised["regulariser"] = self.regulariser
        with _autocast(config.precision, idx.device):
            out = (self.objective or module.loss)(
                self.data.take(idx), _rows(self.cov, idx), self.kl_weight,
                iw_samples=config.iw_samples, **supervised,
            )
        self.opt.zero_grad(set_to_none=True)
        loss = out.loss
        if config.loadings_l1 > 0:
            # A Laplace prior on the loadings: each latent feature drives few genes, which
            # singles out sparse factors that a rotation of z would otherwise mix.
            loss = loss + config.loadings_l1 * module.latent_weights().abs().sum()
        loss.backward()
        if config.grad_clip is not None:
            params = [p for p in module.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        self.opt.step()
        return _sums(out, self.terms)


def _autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The networks' arithmetic for ``precision``: bfloat16 autocast, or none."""
    dtype = AUTOCAST[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class _CudaCapture:
    """Records a function into a CUDA graph; ``replay`` then re-runs its kernels."""

    def warmup(self, fn: Callable[[], Any]) -> Any:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = fn()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def capture(self, fn: Callable[[], Any]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay


class _GraphedStep:
    """:class:`_Step` captured whole (row gather, forward, backward, Adam) and replayed for
    every full-size batch of an epoch: a small model's eager step is mostly Python and kernel
    launches. The batch's rows enter through a fixed index buffer; the loss sums come out in a
    fixed tensor. Captured anew each epoch, as the KL weight and the learning rate are baked
    into the graph; the first steps run eagerly (warm-up) and so does a shorter last batch.
    A capture that fails (an operation a graph cannot hold) warns and runs eagerly."""

    def __init__(self, step: _Step, recorder: Any = None) -> None:
        self.step, self.recorder = step, recorder or _CudaCapture()
        self.index: torch.Tensor | None = None
        self.sums: torch.Tensor | None = None
        self.replay: Callable[[], None] | None = None
        self.warm, self.failed = 0, False

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.failed or (self.index is not None and len(idx) != len(self.index)):
            return self.step(idx)
        if self.warm < GRAPH_WARMUP:
            self.warm += 1
            return self.recorder.warmup(lambda: self.step(idx))
        if self.replay is None:
            self.index = idx.clone()
            if not self._capture():
                return self.step(idx)
        self.index.copy_(idx)
        self.replay()
        return self.sums

    def _body(self) -> None:
        self.sums = self.step(self.index)

    def _capture(self) -> bool:
        try:
            self.replay = self.recorder.capture(self._body)
        except RuntimeError as err:
            self.failed = True
            warnings.warn(
                f"the training step could not be captured in a CUDA graph ({err}); training "
                "without graphs",
                stacklevel=2,
            )
        return not self.failed


def _fit_epoch(
    step: _Step,
    index: torch.Tensor,
    gen: torch.Generator,
    loop: LoopState,
    stop: StopSignal,
    checkpoints: Checkpoints | None,
    plateau: Any,
    graphs: bool = False,
) -> dict[str, float] | None:
    """Run the epoch's minibatches from ``loop.step`` on; return its training record, or None
    when the loss became NaN or infinite (one device sync, at the end)."""
    step.module.train()
    batches = epoch_batches(step.data, index, step.config.batch_size, gen, _device(step.module))
    run = _GraphedStep(step, _RECORDER) if graphs else step
    # Sums stay on the device: a copy to the host every step would stall a GPU.
    for idx in batches[loop.step :]:
        loop.sums += run(idx)
        loop.count += len(idx)
        loop.step += 1
        if stop.signum is not None:
            raise _interrupted(stop.signum, step, gen, loop, checkpoints, plateau, len(batches))
        if checkpoints is not None and checkpoints.due() and torch.isfinite(loop.sums).all():
            checkpoints.write(capture(step.module, step.opt, plateau, gen, loop))
    # Over all ranks, so that each decides the same (to roll back, to stop).
    count = torch.tensor([float(loop.count)], dtype=torch.float64, device=loop.sums.device)
    total = step.world.sum(torch.cat([loop.sums, count]))
    if not torch.isfinite(total).all():
        return None
    names = ("loss", "reconstruction", "kl", *step.terms)
    means = (total[:-1] / total[-1]).tolist()
    return {f"train_{name}": v for name, v in zip(names, means, strict=True)}


def _interrupted(
    signum: int,
    step: _Step,
    gen: torch.Generator,
    loop: LoopState,
    checkpoints: Checkpoints | None,
    plateau: Any,
    n_batches: int,
) -> TrainingInterrupted:
    """The exception for a signal, after a checkpoint of the step just finished."""
    where = f"epoch {loop.epoch}, step {loop.step} of {n_batches}"
    name = signal.Signals(signum).name
    if checkpoints is None:
        return TrainingInterrupted(
            signum, f"training interrupted by {name} at {where}; no checkpoint_dir was set, so "
            "it cannot resume: set checkpoint_dir to be able to"
        )
    if not torch.isfinite(loop.sums).all():  # never checkpoint a diverged state
        return TrainingInterrupted(
            signum, f"training interrupted by {name} at {where}; the loss had diverged, so "
            f"the last checkpoint in {checkpoints.folder} stays the newest; resume from it"
        )
    path = checkpoints.write(capture(step.module, step.opt, plateau, gen, loop))
    return TrainingInterrupted(
        signum, f"training interrupted by {name} at {where}; wrote checkpoint {path}; "
        "resume with fit(..., resume=True)", checkpoint=path
    )


@torch.no_grad()
def _sums(out: LossOutput, terms: tuple[str, ...] = ()) -> torch.Tensor:
    """(3 + len(terms),) float64 batch sums of loss, reconstruction, KL and the objective's
    ``terms``."""
    n = len(out.reconstruction)
    parts = [out.loss * n, out.reconstruction.sum(), out.kl.sum()]
    return torch.stack([*parts, *(out.terms[t].sum() for t in terms)]).double()


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


@dataclass
class StopSignal:
    """The signal received during training, if any (read after each step)."""

    signum: int | None = None


@contextmanager
def stop_signals() -> Iterator[StopSignal]:
    """Turn SIGINT and SIGTERM into a request to stop after the step under way; a second one
    goes to the handler that was there before (stop now). Off the main thread, signals cannot
    be caught and nothing changes."""
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if stop.signum is None:
            stop.signum = signum
            return
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


_RECORDER: Any = None  # None: CUDA graphs; tests put an eager stand-in here


def _zeros(module: torch.nn.Module, terms: tuple[str, ...] = ()) -> torch.Tensor:
    return torch.zeros(3 + len(terms), dtype=torch.float64, device=_device(module))


def _total(w: World, n: int, device: torch.device) -> int:
    """``n`` summed over the ranks."""
    if w.size == 1:
        return n
    return int(w.sum(torch.tensor([n], dtype=torch.float64, device=device)))


def _minutes(start: float) -> float:
    return (time.perf_counter() - start) / 60


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _rows(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
