"""The baselines beside vaekit's figures (issue 19): the flags that ask for them, and data too
small or too plain for a baseline, which is said in one line rather than failing the command."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from corpus import Case, Kit


def _annotations(k: Kit, **columns: list) -> list:
    """An annotation table for the kit's 16 samples, as the --annotations argument."""
    frame = pd.DataFrame({"sample": [f"s{i}" for i in range(16)], **columns})
    frame.to_csv(k.tmp / "ann.csv", index=False)
    return ["--annotations", k.tmp / "ann.csv"]


def _score(values: list, column: str = "odd") -> Callable[[Kit], list]:
    return lambda k: ["score", k.model, k.table, "-o", k.tmp / "s.tsv",
                      *_annotations(k, odd=values), "--anomalies", column]


def _few_rows(k: Kit) -> list:
    table = pd.read_csv(k.table, index_col=0).iloc[:3]
    table.to_csv(k.tmp / "few.csv")
    return ["evaluate", k.model, k.tmp / "few.csv", "-k", "0"]


def _interpret_one_class(k: Kit) -> list:
    return ["interpret", k.model, k.table, "-o", k.tmp / "i", *_annotations(k, same=["x"] * 16)]


CASES = [
    Case("baselines/score-anomalies-ok", _score([1] * 4 + [0] * 12), code=0),
    Case("baselines/score-anomalies-no-column", _score([1] * 4 + [0] * 12, "nope"),
         match="--anomalies 'nope': no such annotation column"),
    Case("baselines/score-anomalies-not-a-mark", _score(["yes"] * 4 + ["maybe"] * 12),
         match="mark anomalies 1/true/yes/anomaly"),
    Case("baselines/score-anomalies-missing-value", _score([1] * 4 + [None] * 12),
         match="mark anomalies"),
    Case("baselines/score-anomalies-none", _score([0] * 16), code=0),  # a stated skip
    Case("baselines/evaluate-too-few-rows", _few_rows, code=0),  # a stated skip
    Case("baselines/interpret-one-class", _interpret_one_class, code=0),  # a stated skip
    Case("baselines/impute-share-one",
         lambda k: ["impute", k.model, k.table, "-o", k.tmp / "i.tsv", "--baseline-share", "1"],
         match="--baseline-share must be in [0, 1)"),
    Case("baselines/impute-share-negative",
         lambda k: ["impute", k.model, k.table, "-o", k.tmp / "i.tsv", "--baseline-share",
                    "-0.5"], match="--baseline-share"),
]
