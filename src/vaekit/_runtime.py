"""Seeded randomness, chunk sizes for the device and progress display, kept out of the
numerical code."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's generators seeded, restoring the caller's state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# Share of a GPU's free memory that one chunk of evaluation may fill: the rest absorbs the
# caching allocator's fragmentation and what the caller holds (a model, a resident matrix).
DEVICE_SHARE = 0.25
# A chunk holds at most this many values (rows x values per row), so that no tensor in it
# reaches 2**31 elements, where some CUDA kernels' 32-bit indexing ends. A GPU is busy long
# before: for MNIST's 784-400-20 decoder the cap is 300,000 decoded rows, 0.2 TFLOP a chunk.
MAX_CHUNK_VALUES = 2**31 - 1


def chunk_rows(device: torch.device, values_per_row: int, cpu_rows: int) -> int:
    """Rows to evaluate at once on ``device``.

    On the CPU, ``cpu_rows``: the constants there keep the work in the caches (timings in
    benchmarks/README.md), and results and speed stay as they were. On CUDA, as many rows as
    fit in :data:`DEVICE_SHARE` of the free memory at ``values_per_row`` float32 values each
    (everything a row's work holds at once, activations included), at most
    :data:`MAX_CHUNK_VALUES` values, and never fewer than ``cpu_rows``: a small chunk leaves
    a GPU waiting on kernel launches.

    Examples
    --------
    >>> chunk_rows(torch.device("cpu"), values_per_row=6000, cpu_rows=1024)
    1024
    """
    if device.type != "cuda":
        return cpu_rows
    free, _ = torch.cuda.mem_get_info(device)
    per_row = max(int(values_per_row), 1)
    fits = int(DEVICE_SHARE * free) // (4 * per_row)
    return max(cpu_rows, min(fits, MAX_CHUNK_VALUES // per_row))


# Odd multipliers below 2**31, so that a 32-bit value times one stays below 2**63 in int64.
_MIX = (0x7FEB352D, 0x5BD1E995)
_LOW32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply rounds, as Wellons' lowbias32) of int64 values
    in [0, 2**32), element-wise: neighbouring inputs give unrelated outputs."""
    x = x ^ (x >> 16)
    x = (x * _MIX[0]) & _LOW32
    x = x ^ (x >> 15)
    x = (x * _MIX[1]) & _LOW32
    return x ^ (x >> 16)


def row_normal(seed: int, rows: torch.Tensor, draws: torch.Tensor, dim: int) -> torch.Tensor:
    """(len(draws), len(rows), dim) standard normal values, each a function of (seed, row,
    draw, column) alone: the draws of a row are the same whatever rows and draws are made
    with it, in any chunks, and on any device (up to float rounding of log and cos).

    A counter-based generator: the counters are hashed to 24-bit uniforms, two per pair of
    columns, turned into normals by the Box-Muller transform (Box & Muller 1958).

    Parameters
    ----------
    seed : int
    rows, draws : LongTensor
        (B,) row numbers (their place in the data) and (k,) draw numbers, on the device wanted.
    dim : int
        Values per row and draw.
    """
    device = rows.device
    key = _mix32(torch.tensor([seed & _LOW32], device=device)) ^ ((seed >> 32) & _LOW32)
    per_row = _mix32(_mix32(key ^ (rows & _LOW32)) ^ ((rows >> 32) & _LOW32))  # (B,)
    cell = _mix32(per_row[None, :] ^ _mix32(draws.to(device) & _LOW32)[:, None])  # (k, B)
    pairs = (dim + 1) // 2
    column = _mix32(torch.arange(2 * pairs, device=device) + 0x9E3779B9)  # (2P,)
    bits = _mix32(cell[..., None] ^ column) >> 8  # (k, B, 2P), 24 random bits each
    u = (bits.to(torch.float32) + 0.5) * 2.0**-24  # in (0, 1): the log below stays finite
    radius = torch.sqrt(-2.0 * torch.log(u[..., :pairs]))
    angle = (2 * math.pi) * u[..., pairs:]
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], -1)[..., :dim]


@contextmanager
def epoch_progress(total: int, enabled: bool) -> Iterator[Callable[[int, dict], None]]:
    """A callback that advances a rich progress bar per epoch; silent off a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda epoch, record: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("train", total=total, status="")

        def update(epoch: int, record: dict) -> None:
            key = "val_loss" if "val_loss" in record else "train_loss"
            bar.update(task, completed=epoch + 1, status=f"{key} {record[key]:.2f}")

        yield update
