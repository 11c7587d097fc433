"""Training checkpoints: all that the training loop needs to continue exactly where it stopped.

A checkpoint is a folder ``checkpoint-EEEEEE-SSSSSSS`` (epoch, then minibatches of that epoch
done) in the checkpoint folder, holding ``state.json`` (the loop's counters, history, the
optimizer's and scheduler's settings, NumPy's and Python's random states, the settings and a
fingerprint of the data) and ``tensors.safetensors`` (weights, best weights so far, Adam's
moments, torch's random states). Nothing is pickled. Each is written under a temporary name
and renamed into place, so a kill leaves the previous checkpoint whole; the newest ``keep``
are kept.

The same :class:`Snapshot` rolls training back in memory when the loss diverges.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vaekit.atomic import atomic_dir
from vaekit.options import NEUTRAL

FORMAT = 1
STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"
NAME = re.compile(r"^checkpoint-(\d{6})-(\d{7})$")
FINGERPRINT_ROWS = 256  # rows hashed to recognise the training data


@dataclass
class LoopState:
    """Where the training loop is, besides the module, optimizer and random generators.

    Attributes
    ----------
    epoch : int
        The epoch under way (0-based).
    step : int
        Minibatches of ``epoch`` done; 0 at an epoch's start.
    sums : Tensor
        (3,) float64 sums of loss, reconstruction and KL over the epoch's minibatches so far.
    count : int
        Samples those sums cover.
    best, best_epoch, stale : float, int, int
        Early stopping: the best validation loss, its epoch, epochs since it improved.
    rollbacks : int
        Times the loss diverged and training rolled back with half the learning rate.
    seconds : float
        Training time spent before this process (a resumed run adds its own).
    history : list of dict
        One record per epoch done.
    best_state : dict or None
        The module's weights at ``best_epoch``.
    epoch_generator : Tensor or None
        The batch-order generator's state at the start of ``epoch``: it draws the epoch's
        shuffle, so a run resumed mid-epoch draws the same minibatches again.
    """

    epoch: int = 0
    step: int = 0
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))
    count: int = 0
    best: float = math.inf
    best_epoch: int = -1
    stale: int = 0
    rollbacks: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    epoch_generator: torch.Tensor | None = None

    COUNTERS = ("epoch", "step", "count", "best", "best_epoch", "stale", "rollbacks", "seconds")


@dataclass
class Snapshot:
    """A copy of the training state: tensors (for safetensors) and JSON-able values."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return f"checkpoint-{self.meta['epoch']:06d}-{self.meta['step']:07d}"


# ---------------------------------------------------------------------------- capture / restore
def capture(
    module: torch.nn.Module,
    opt: torch.optim.Optimizer,
    plateau: Any,
    batches: torch.Generator,
    loop: LoopState,
) -> Snapshot:
    """A copy of everything that decides how training goes on from here."""
    tensors = {f"module.{k}": v for k, v in module.state_dict().items()}
    if loop.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in loop.best_state.items()})
    optim = opt.state_dict()
    scalars = {}
    for index, state in optim["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batches"] = batches.get_state()
    if loop.epoch_generator is not None:
        tensors["rng.epoch_batches"] = loop.epoch_generator
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    tensors["loop.sums"] = loop.sums
    np_state = np.random.get_state(legacy=True)
    py_state = random.getstate()
    meta = {
        "format": FORMAT,
        **{k: getattr(loop, k) for k in LoopState.COUNTERS},
        "history": loop.history,
        "optimizer": {"param_groups": optim["param_groups"], "scalars": scalars},
        "plateau": None if plateau is None else _jsonable(plateau.state_dict()),
        "rng": {
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": [py_state[0], list(py_state[1]), py_state[2]],
        },
    }
    # Clones: the live tensors go on changing in place; the copies are what is saved.
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    return Snapshot(tensors, json.loads(json.dumps(meta)))


def restore(
    snap: Snapshot,
    module: torch.nn.Module,
    opt: torch.optim.Optimizer,
    plateau: Any,
    batches: torch.Generator,
) -> LoopState:
    """Put ``snap`` back into the module, optimizer, scheduler and every random generator;
    return the loop's state."""
    t, meta = snap.tensors, snap.meta
    device = next(module.parameters()).device
    module.load_state_dict(_prefixed(t, "module."))
    opt.load_state_dict(_optimizer_state(t, meta["optimizer"], device))
    if plateau is not None and meta["plateau"] is not None:
        plateau.load_state_dict(meta["plateau"])
    torch.set_rng_state(t["rng.torch"])
    batches.set_state(t["rng.batches"])
    cuda = sorted((k for k in t if k.startswith("rng.cuda.")), key=lambda k: int(k.split(".")[2]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t[k] for k in cuda])
    name, keys, *rest = meta["rng"]["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, state, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(state), gauss))
    best = _prefixed(t, "best.")
    return LoopState(
        **{k: meta[k] for k in LoopState.COUNTERS},
        sums=t["loop.sums"].to(device),
        history=[dict(r) for r in meta["history"]],
        best_state={k: v.to(device) for k, v in best.items()} if best else None,
        epoch_generator=t.get("rng.epoch_batches"),
    )


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizer_state(
    tensors: dict[str, torch.Tensor], saved: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in _prefixed(tensors, "optim.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.to(device)
    for key, value in saved["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


def _jsonable(value: Any) -> Any:
    """A scheduler's state as JSON values (tensors and tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if torch.is_tensor(value):
        return value.tolist()
    return value


# ---------------------------------------------------------------------------- the folder
class Checkpoints:
    """The checkpoint folder of one training run.

    Parameters
    ----------
    folder : str or PathLike
        Created if missing; it holds only checkpoints.
    every_minutes : float or None
        Also write a checkpoint within an epoch once this many minutes have passed since the
        last one (None: only at the end of each epoch).
    keep : int
        Checkpoints kept; older ones are removed after each new one is complete.
    identity : dict
        What the run is: ``{"seed": ..., "settings": {...}, "data": {...}}``. A resumed run
        must match it, but for ``mutable`` settings.
    mutable : tuple of str
        Settings that may change on resume (their changes are recorded).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        every_minutes: float | None,
        keep: int,
        identity: dict[str, Any],
        mutable: tuple[str, ...] = (),
    ) -> None:
        self.folder = Path(folder)
        self.every_minutes = every_minutes
        self.keep = keep
        self.identity = json.loads(json.dumps(identity))
        self.mutable = mutable
        self._last = time.monotonic()
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(
                f"checkpoint_dir {self.folder} is a file; give a folder (it is created if missing)"
            )
        stray = [p.name for p in self._entries() if not NAME.match(p.name)]
        if stray:
            raise ValueError(
                f"checkpoint_dir {self.folder} holds other files ({', '.join(sorted(stray)[:3])}); "
                "give a folder of its own"
            )
        self._clear_debris()

    def _clear_debris(self) -> None:
        """Remove what a run killed while writing or pruning left: hidden ``.checkpoint-*``
        temporaries (the folder is this run's own, so none is in use)."""
        if self.folder.is_dir():
            for p in self.folder.glob(".checkpoint-*"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def due(self) -> bool:
        """Whether a checkpoint within the epoch is due (a clock read, no device sync)."""
        if self.every_minutes is None:
            return False
        return time.monotonic() - self._last >= 60 * self.every_minutes

    def write(self, snap: Snapshot) -> Path:
        """Write ``snap`` atomically, then remove all but the newest ``keep``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / snap.name
        meta = {**snap.meta, "identity": self.identity}
        with atomic_dir(path) as tmp:
            (tmp / STATE_FILE).write_text(json.dumps(meta))
            save_file(snap.tensors, tmp / TENSORS_FILE)
        self._last = time.monotonic()
        for old in self.complete()[: -self.keep]:
            _remove(old)
        return path

    def complete(self) -> list[Path]:
        """Checkpoint folders, oldest first."""
        found = [p for p in self._entries() if NAME.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: tuple(map(int, NAME.match(p.name).groups())))

    def latest(self) -> Snapshot | None:
        """The newest readable checkpoint, checked against this run's identity; None when
        there is none yet (a run killed before its first checkpoint starts afresh). One
        damaged on disk is skipped for an older one; when all are, raise rather than start
        afresh over them."""
        found = self.complete()
        for path in reversed(found):
            try:
                snap = read(path)
            except ValueError as err:
                warnings.warn(f"skipping {path}: {err}", stacklevel=2)
                continue
            self.check(snap, path)
            return snap
        if found:
            raise ValueError(
                f"no readable checkpoint in {self.folder} (all {len(found)} are damaged); "
                "remove the folder, or give another checkpoint_dir, to train afresh"
            )
        return None

    def check(self, snap: Snapshot, path: Path) -> None:
        """Raise ValueError naming what differs between ``snap``'s run and this one."""
        saved, now = snap.meta.get("identity", {}), self.identity
        # settings added since the checkpoint was written: it trained at their defaults
        saved = {**saved, "settings": {**NEUTRAL, **saved.get("settings", {})}}
        problems = []
        if saved.get("data") != now["data"]:
            diff = _differences(saved.get("data", {}), now["data"])
            problems.append(f"the training data differ ({diff})")
        if saved.get("seed") != now["seed"]:
            problems.append(f"seed {saved.get('seed')} (checkpoint) vs {now['seed']} (now)")
        fixed = {
            k: (saved.get("settings", {}).get(k), v)
            for k, v in now["settings"].items()
            if k not in self.mutable and saved.get("settings", {}).get(k) != v
        }
        if fixed:
            problems.append(
                "settings that change the model differ: "
                + ", ".join(f"{k} {a!r} (checkpoint) vs {b!r} (now)" for k, (a, b) in fixed.items())
            )
        if problems:
            raise ValueError(
                f"cannot resume from {path}: {'; '.join(problems)}. Resume with the data and "
                f"settings it was trained with (only {', '.join(self.mutable)} may change), "
                "or train afresh in another checkpoint_dir"
            )

    def changes(self, snap: Snapshot) -> dict[str, list[Any]]:
        """The mutable settings that differ from ``snap``'s: name -> [then, now]."""
        saved = snap.meta.get("identity", {}).get("settings", {})
        return {
            k: [saved.get(k), v]
            for k, v in self.identity["settings"].items()
            if k in self.mutable and saved.get(k) != v
        }

    def _entries(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        # atomic_dir's temporaries and removals in progress start with a dot
        return [p for p in self.folder.iterdir() if not p.name.startswith(".")]


def saved_seed(folder: str | os.PathLike) -> int | None:
    """The seed of the newest checkpoint in ``folder``, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if NAME.match(p.name))
    for name in reversed(names):  # zero-padded: the names sort as (epoch, step)
        try:
            seed = json.loads((folder / name / STATE_FILE).read_text())["identity"]["seed"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(seed, int):
            return seed
    return None


def read(path: str | os.PathLike) -> Snapshot:
    """One checkpoint folder (safetensors and JSON; nothing is unpickled)."""
    path = Path(path)
    try:
        meta = json.loads((path / STATE_FILE).read_text())
        tensors = load_file(path / TENSORS_FILE)
    except (OSError, ValueError, SafetensorError) as err:
        raise ValueError(f"not a readable checkpoint ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path / STATE_FILE} is not a vaekit checkpoint of format {FORMAT}")
    return Snapshot(tensors, meta)


def _remove(path: Path) -> None:
    """Rename first, then delete: a kill mid-way leaves a hidden folder, never a checkpoint
    with files missing."""
    trash = path.with_name(f".{path.name}.removing-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)} (checkpoint) vs {b.get(k)} (now)" for k in keys)


# ---------------------------------------------------------------------------- fingerprint
def fingerprint(
    X: Any, feature_names: list[str] | None, sample_names: Any, y: Any = None
) -> dict[str, Any]:
    """What recognises training data: its shape and hashes of the feature names, the sample
    names, up to 256 rows spread over it, and the conditions ``y`` of those rows."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, FINGERPRINT_ROWS)).astype(np.int64))
    sample = X[rows]
    sample = np.asarray(sample.toarray() if hasattr(sample, "toarray") else sample, np.float64)
    out = {
        "shape": [int(s) for s in X.shape],
        "features": _hash(None if feature_names is None else "\0".join(map(str, feature_names))),
        "samples": _hash(None if sample_names is None else "\0".join(map(str, sample_names))),
        "rows": _hash(np.ascontiguousarray(sample).tobytes()),
    }
    if y is not None:
        out["conditions"] = _hash(repr(_rows_of(y, rows)))
    return out


def _rows_of(y: Any, rows: np.ndarray) -> Any:
    if hasattr(y, "iloc"):
        return y.iloc[rows].to_numpy().tolist()
    return np.asarray(y, dtype=object)[rows].tolist()


def _hash(value: str | bytes | None) -> str | None:
    if value is None:
        return None
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:16]
