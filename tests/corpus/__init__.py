"""A hostile-input corpus for the command line, made by code rather than committed files.

Each module here (``data.py``, ``models.py``, ``outputs.py``, ``flags.py``...) defines
``CASES``: a list of :class:`Case`, each of which builds its inputs in a fresh folder and
names the command to run. ``tests/test_corpus.py`` runs every case in this process (fast) and
holds the promise of the brief: a user error exits 2 with one ``error:`` line, never a
traceback; nothing is half-written; nothing that existed before is changed.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pkgutil
import shutil
import stat
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Kit:
    """What a case builds its inputs from.

    Attributes
    ----------
    tmp : Path
        The case's own empty folder; every path the case writes or names lies under it.
    model : Path
        A small trained model folder (Gaussian, 3 latent features, 12 features ``g0``...,
        16 samples ``s0``...), shared by all cases: copy it (:meth:`copy_model`) before
        changing it.
    table : Path
        The CSV it was trained on (samples as rows, a ``sample`` ID column).
    """

    tmp: Path
    model: Path
    table: Path

    def copy_model(self, name: str = "model") -> Path:
        """A copy of :attr:`model` in :attr:`tmp`, to damage."""
        return Path(shutil.copytree(self.model, self.tmp / name))

    def write(self, name: str, content: str | bytes) -> Path:
        """A file under :attr:`tmp` with ``content`` (text is written as UTF-8)."""
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes
    ----------
    name : str
        Unique id, ``"area/what"``, e.g. ``"data/csv-ragged"``.
    make : callable
        ``make(kit) -> args``: builds its inputs under ``kit.tmp`` and returns the arguments
        after ``vaekit`` (paths may be Path objects).
    code : int
        The exit code expected: 2 (a user error, the default) or 0 (it succeeds sensibly).
    match : str
        Text the ``error:`` line must hold (case-insensitive), e.g. the file or column named.
    """

    name: str
    make: Callable[[Kit], list]
    code: int = 2
    match: str = ""


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run(args: list) -> Result:
    """Run ``vaekit ARGS`` in this process, as the console script would."""
    from vaekit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a hash of each file's bytes and mode, a mark per folder."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest() + oct(mode)
        else:
            entries[key] = oct(stat.S_IFMT(mode))
    return entries


def check(case: Case, kit: Kit) -> Result:
    """Run ``case`` and assert the promise; return the result for further checks."""
    args = case.make(kit)
    before = snapshot(kit.tmp)
    result = run(args)
    after = snapshot(kit.tmp)
    shown = f"vaekit {' '.join(map(str, args))}\n--- stdout\n{result.out}--- stderr\n{result.err}"
    assert "Traceback" not in result.out + result.err, shown
    assert result.code == case.code, shown
    changed = [k for k in before if after.get(k) != before[k]]
    assert not changed, f"changed or removed by the run: {changed}\n{shown}"
    leftovers = [k for k in after if Path(k).name.endswith(".tmp") or ".old-" in k]
    assert not leftovers, f"temporary files left behind: {leftovers}\n{shown}"
    if case.code == 0:
        return result
    lines = [line for line in result.err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert case.match.lower() in lines[0].lower(), f"expected {case.match!r} in\n{shown}"
    created = sorted(set(after) - set(before))
    assert not created, f"a failing run wrote {created}\n{shown}"
    return result


def all_cases() -> list[Case]:
    """The ``CASES`` of every module in this package, names checked unique."""
    cases: list[Case] = []
    for info in pkgutil.iter_modules(__path__):
        cases += importlib.import_module(f"{__name__}.{info.name}").CASES
    names = [c.name for c in cases]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    assert not duplicated, f"corpus case names used twice: {duplicated}"
    return cases


def training_table(folder: Path) -> Path:
    """The small table the shared model is trained on: 16 samples x 12 features."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        rng.normal(size=(16, 12)).round(4),
        columns=[f"g{j}" for j in range(12)],
        index=pd.Index([f"s{i}" for i in range(16)], name="sample"),
    )
    path = folder / "table.csv"
    table.to_csv(path)
    return path


def train_model(folder: Path) -> tuple[Path, Path]:
    """(model folder, table) for :class:`Kit`."""
    table = training_table(folder)
    model = folder / "model"
    result = run(["train", table, "-o", model, "--latent", "3", "--hidden", "8",
                  "--likelihood", "gaussian", "--scale", "none",
                  "--epochs", "2", "--seed", "0", "--quiet"])
    assert result.code == 0, result.err
    return model, table


__all__ = ["Case", "Kit", "Result", "all_cases", "check", "run", "snapshot"]
