"""`vaekit train` with --batch and --labels on single-cell counts: bad columns and labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from corpus import Case, Kit


def _counts(k: Kit, labels: list | None = None) -> list:
    """A 24 x 8 count table and its annotations (batch, cell_type), as train arguments."""
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(24)]
    counts = pd.DataFrame(rng.poisson(4, size=(24, 8)), index=pd.Index(ids, name="cell"),
                          columns=[f"g{j}" for j in range(8)])
    counts.to_csv(k.tmp / "counts.csv")
    labels = labels if labels is not None else ["B", "T", "unknown"] * 8
    pd.DataFrame({"cell": ids, "batch": ["a", "b"] * 12, "cell_type": labels}).to_csv(
        k.tmp / "obs.tsv", sep="\t", index=False)
    return ["train", k.tmp / "counts.csv", "--annotations", k.tmp / "obs.tsv", "-o",
            k.tmp / "m", "--preset", "single_cell", "--epochs", "1", "-q"]


def _with(labels: list | None = None, *extra: str) -> Callable[[Kit], list]:
    return lambda k: [*_counts(k, labels), *extra]


CASES = [
    Case("labels/ok", _with(None, "--batch", "batch", "--labels", "cell_type"), code=0),
    Case("labels/column-missing", _with(None, "--labels", "celltype"),
         match="no column 'celltype'"),
    Case("labels/batch-column-missing", _with(None, "--batch", "lab"), match="no column"),
    Case("labels/one-class", _with(["B", "unknown"] * 12, "--labels", "cell_type"),
         match="at least two classes"),
    Case("labels/all-unknown", _with(["unknown"] * 24, "--labels", "cell_type"),
         match="at least two classes"),
    Case("labels/continuous", _with([0.5, 1.5] * 12, "--labels", "cell_type"),
         match="labels must be categories"),
    Case("labels/whole-numbers-with-gaps", _with([1, 2, None] * 8, "--labels", "cell_type"),
         code=0),
    Case("labels/preset-on-non-counts",
         lambda k: ["train", k.table, "-o", k.tmp / "m", "--preset", "single_cell",
                    "--epochs", "1", "-q"], match="count"),
]
