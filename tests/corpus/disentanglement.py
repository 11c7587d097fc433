"""`vaekit evaluate --factors`: factor tables that are missing, mismatched or not numbers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from corpus import Case, Kit

IDS = [f"s{i}" for i in range(16)]  # the samples of Kit.table


def _factors(**columns: list) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = {"sample": IDS, "shape": rng.integers(0, 3, 16), "size": rng.normal(size=16)}
    return pd.DataFrame({**table, **columns})


def _evaluate(k: Kit, table: pd.DataFrame | str | None, *extra: object) -> list:
    path = k.tmp / "factors.tsv"
    if isinstance(table, pd.DataFrame):
        table.to_csv(path, sep="\t", index=False)
    elif isinstance(table, str):
        k.write("factors.tsv", table)
    return ["evaluate", k.model, k.table, "--factors", path, "-k", "0", "-q", *extra]


def _with(table: Callable[[], pd.DataFrame | str | None], *extra: object) -> Callable[[Kit], list]:
    """A case's arguments; an ``extra`` that is a callable gets the kit (paths under tmp)."""
    return lambda k: _evaluate(k, table(), *(e(k) if callable(e) else e for e in extra))


def _out(name: str) -> Callable[[Kit], object]:
    return lambda k: k.tmp / name


def _folder(k: Kit) -> list:
    (k.tmp / "factors.tsv").mkdir()
    return _evaluate(k, None)


CASES = [
    Case("factors/ok", _with(_factors, "-o", _out("out.json")), code=0),
    Case("factors/ok-json", _with(_factors, "--json"), code=0),
    Case("factors/file-missing", _with(lambda: None), match="factors.tsv"),
    Case("factors/is-a-folder", _folder, match="factors.tsv"),
    Case("factors/empty-file", _with(lambda: ""), match="factors.tsv"),
    Case(
        "factors/rows-missing", _with(lambda: _factors().iloc[:10]), match="for 6 of the 16 samples"
    ),
    Case(
        "factors/ids-match-none",
        _with(lambda: _factors(sample=[f"x{i}" for i in range(16)])),
        match="match none",
    ),
    Case("factors/duplicate-ids", _with(lambda: _factors(sample=IDS[:15] + ["s0"])), match="s0"),
    Case(
        "factors/non-numeric",
        _with(lambda: _factors(shape=["a", "b"] * 8)),
        match="'shape' is not numeric",
    ),
    Case(
        "factors/missing-value",
        _with(lambda: _factors(size=[np.nan] + [1.0, 2.0] * 7 + [3.0])),
        match="'size' has 1 missing",
    ),
    Case(
        "factors/infinite-value",
        _with(lambda: _factors(size=[np.inf] + [1.0, 2.0] * 7 + [3.0])),
        match="'size' has 1 missing or infinite",
    ),
    Case("factors/one-value", _with(lambda: _factors(shape=[2] * 16)), match="takes one value"),
    Case("factors/only-ids", _with(lambda: pd.DataFrame({"sample": IDS})), match="no columns"),
    Case("factors/out-not-json", _with(_factors, "-o", _out("out.csv")), match=".json"),
    Case(
        "factors/out-folder-missing",
        _with(_factors, "-o", _out("nowhere/out.json")),
        match="nowhere",
    ),
    Case(
        "factors/report-non-numeric",
        lambda k: [
            "report",
            k.model,
            k.table,
            "-o",
            k.tmp / "r.html",
            "-k",
            "0",
            "-q",
            "--factors",
            _write(k, _factors(size=["x"] * 16)),
        ],
        match="'size' is not numeric",
    ),
    Case(
        "factors/report-rows-missing",
        lambda k: [
            "report",
            k.model,
            k.table,
            "-o",
            k.tmp / "r.html",
            "-k",
            "0",
            "-q",
            "--factors",
            _write(k, _factors().iloc[:15]),
        ],
        match="for 1 of the 16 samples",
    ),
]


def _write(k: Kit, table: pd.DataFrame) -> object:
    table.to_csv(k.tmp / "factors.tsv", sep="\t", index=False)
    return k.tmp / "factors.tsv"
