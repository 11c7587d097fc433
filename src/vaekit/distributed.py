"""Training over several processes with PyTorch's own engine: ``torchrun`` starts them,
:mod:`torch.distributed` connects them (gloo on CPUs, NCCL on GPUs) and
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients.

A process started without ``torchrun`` (no ``WORLD_SIZE`` in its environment, or 1) is a
world of one: nothing here changes what it does.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

# How long a collective waits for a rank before it fails: a rank that died makes the others
# exit with an error instead of hanging (torchrun also stops them when one fails).
TIMEOUT_SECONDS = float(os.environ.get("VAEKIT_DDP_TIMEOUT", 300))
# Derives a rank's seed from the run's: far apart, so that ranks draw unrelated noise.
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the model, the logs and the progress bar (rank 0)."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed for noise and dropout, derived from the run's ``seed``."""
        return (seed + RANK_SEED_STRIDE * self.rank) % 2**63

    def device(self, device: torch.device) -> torch.device:
        """The GPU of this rank on its node (``cuda:LOCAL_RANK``) for a ``cuda`` device."""
        if self.size > 1 and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``index``: a contiguous run of its sorted rows (a file reader
        then reads blocks), every rank the same number, so that all take the same number
        of steps (at most ``size - 1`` rows left out)."""
        if self.size == 1:
            return index
        index = index.sort().values
        per_rank = len(index) // self.size
        return index[self.rank * per_rank : (self.rank + 1) * per_rank]

    def part(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's part of ``index`` when every row must count once (validation): the
        sorted rows in ``size`` near-equal runs."""
        if self.size == 1:
            return index
        return index.sort().values.tensor_split(self.size)[self.rank]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks (in place), for sums of losses and counts."""
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_seed(self, seed: int) -> int:
        """Rank 0's ``seed`` on every rank (a seed drawn at random differs per process)."""
        if self.size == 1:
            return seed
        value = [seed]
        dist.broadcast_object_list(value, src=0)
        return int(value[0])


def world() -> World:
    """This process's :class:`World`: from the process group when one is initialised, else a
    world of one."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return World(dist.get_rank(), dist.get_world_size(), local)
    return World()


def launched() -> bool:
    """Whether ``torchrun`` (or a launcher like it) started this process among several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> World:
    """Join the process group that ``torchrun`` set up in the environment (once per process;
    NCCL for GPUs, gloo for CPUs) and return this process's world. A process not started by
    torchrun gets a world of one."""
    if not launched():
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(
            backend, timeout=datetime.timedelta(seconds=TIMEOUT_SECONDS)
        )
    return world()


class Objective(nn.Module):
    """The module's training loss as a ``forward``, so that DistributedDataParallel, which
    hooks ``forward``, can wrap it: ``DDP(Objective(module))(x, c, ...)`` is
    ``module.loss(x, c, ...)`` with the gradients averaged over the ranks in ``backward``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module.loss(*args, **kwargs)


def data_parallel(module: nn.Module, w: World) -> nn.Module:
    """``module``'s loss wrapped in DistributedDataParallel for the world ``w``."""
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(Objective(module), device_ids=ids)


def leave() -> None:
    """Leave the process group (at the end of a command; a no-op in a world of one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
