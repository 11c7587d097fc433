"""Seeded randomness and progress display, kept out of the numerical code."""

from __future__ import annotations

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
