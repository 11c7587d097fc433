"""Bad inputs to the single-cell commands `vaekit de` and `vaekit normalize`, and to
`vaekit report --de`.

Most cases use the shared Gaussian model (refused before any work, or as not a count model);
those that must reach the groups use a small negative-binomial model conditioned on a batch,
trained once (one epoch) and copied into each case's folder.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from corpus import Case, Kit, run

N_CELLS, N_GENES = 24, 12


def _counts(folder: Path) -> tuple[Path, Path]:
    """A counts table (cells x genes) and its annotations: cell_type A/B, batch b0/b1."""
    rng = np.random.default_rng(0)
    cells = pd.Index([f"c{i}" for i in range(N_CELLS)], name="cell")
    counts = pd.DataFrame(
        rng.poisson(5.0, (N_CELLS, N_GENES)), index=cells, columns=[f"g{j}" for j in range(12)]
    )
    annotations = pd.DataFrame(
        {"cell_type": np.resize(["A", "B"], N_CELLS), "batch": np.repeat(["b0", "b1"], 12)},
        index=cells,
    )
    counts.to_csv(folder / "counts.csv")
    annotations.to_csv(folder / "cells.csv")
    return folder / "counts.csv", folder / "cells.csv"


@cache
def _trained() -> Path:
    """A folder with counts.csv, cells.csv and an NB model conditioned on batch (once)."""
    folder = Path(tempfile.mkdtemp(prefix="vaekit-corpus-sc-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    counts, cells = _counts(folder)
    result = run(["train", counts, "--annotations", cells, "--likelihood", "nb", "--condition",
                  "batch", "--latent", "2", "--hidden", "8", "--epochs", "1", "--seed", "0",
                  "-o", folder / "model", "--quiet"])
    assert result.code == 0, result.err
    return folder


def _nb(k: Kit) -> tuple[Path, Path, Path]:
    """(model, counts, annotations) copied into the case's folder."""
    source = _trained()
    model = Path(shutil.copytree(source / "model", k.tmp / "nb"))
    counts = Path(shutil.copy(source / "counts.csv", k.tmp / "counts.csv"))
    cells = Path(shutil.copy(source / "cells.csv", k.tmp / "cells.csv"))
    return model, counts, cells


def _de(k: Kit, *extra: object) -> list:
    """`vaekit de` of the NB model on its counts, cell_type B against A unless overridden."""
    model, counts, cells = _nb(k)
    flags = {"--groupby": "cell_type", "--group1": "B", "--group2": "A", "--draws": "20"}
    given = dict(zip(extra[0::2], extra[1::2], strict=True))
    argv = ["de", model, counts, "--annotations", cells, "-o", k.tmp / "de.tsv"]
    for flag, value in {**flags, **given}.items():
        argv += [] if value is None else [flag, value]
    return argv


def _gauss_de(k: Kit, *extra: object) -> list:
    return ["de", k.model, k.table, "--groupby", "cell_type", "--group1", "B",
            "-o", k.tmp / "de.tsv", *extra]


def _normalize(k: Kit, *extra: object) -> list:
    model, counts, cells = _nb(k)
    return ["normalize", model, counts, "--annotations", cells, *extra]


def _cells_without_batch(k: Kit) -> list:
    argv = _de(k)
    pd.read_csv(argv[4]).drop(columns="batch").to_csv(argv[4], index=False)
    return argv


def _one_type(k: Kit) -> list:
    argv = _de(k, "--group1", "A", "--group2", None)
    cells = pd.read_csv(argv[4]).assign(cell_type="A")
    cells.to_csv(argv[4], index=False)
    return argv


def _report(k: Kit, table: Path) -> list:
    return ["report", k.model, k.table, "-o", k.tmp / "r.html", "-k", "0", "--de", table]


CASES = [
    # refused before any work: flags and outputs
    Case("singlecell/de-missing-groupby",
         lambda k: ["de", k.model, k.table, "--group1", "B", "-o", k.tmp / "de.tsv"],
         match="--groupby"),
    Case("singlecell/de-draws-zero", lambda k: _gauss_de(k, "--draws", "0"), match="--draws"),
    Case("singlecell/de-draws-absurd", lambda k: _gauss_de(k, "--draws", "1000000000"),
         match="at most 100,000"),
    Case("singlecell/de-bad-table-suffix",
         lambda k: ["de", k.model, k.table, "--groupby", "t", "--group1", "B",
                    "-o", k.tmp / "de.xyz"], match="table format"),
    Case("singlecell/de-output-is-folder",
         lambda k: (k.tmp / "de.tsv").mkdir() or _gauss_de(k), match="it is a folder"),
    Case("singlecell/de-volcano-gif", lambda k: _gauss_de(k, "--volcano", k.tmp / "v.gif"),
         match="v.gif"),
    Case("singlecell/de-model-missing",
         lambda k: ["de", k.tmp / "nope", k.table, "--groupby", "t", "--group1", "B",
                    "-o", k.tmp / "de.tsv"], match="nope"),
    Case("singlecell/de-gaussian-model", lambda k: _gauss_de(k), match="raw counts"),
    # the numbers
    Case("singlecell/de-delta-negative", lambda k: _de(k, "--delta", "-1"), match="delta"),
    Case("singlecell/de-delta-nan", lambda k: _de(k, "--delta", "nan"), match="delta"),
    Case("singlecell/de-fdr-zero", lambda k: _de(k, "--fdr", "0"), match="fdr"),
    Case("singlecell/de-fdr-one", lambda k: _de(k, "--fdr", "1"), match="fdr"),
    Case("singlecell/de-fdr-nan", lambda k: _de(k, "--fdr", "nan"), match="fdr"),
    # the groups
    Case("singlecell/de-unknown-groupby", lambda k: _de(k, "--groupby", "kind"),
         match="no obs column 'kind'"),
    Case("singlecell/de-unknown-group1", lambda k: _de(k, "--group1", "C"),
         match="no cells have 'cell_type' = 'C'"),
    Case("singlecell/de-unknown-group2", lambda k: _de(k, "--group2", "T"),
         match="no cells have 'cell_type' = 'T'"),
    Case("singlecell/de-same-groups", lambda k: _de(k, "--group1", "A"), match="both 'A'"),
    Case("singlecell/de-no-rest", _one_type, match="no other cells"),
    Case("singlecell/de-without-the-batch-column", _cells_without_batch, match="batch"),
    Case("singlecell/de-ok", lambda k: _de(k, "--volcano", k.tmp / "v.png"), code=0),
    Case("singlecell/de-ok-groups-are-the-batch",
         lambda k: _de(k, "--groupby", "batch", "--group1", "b1", "--group2", "b0"), code=0),
    # normalize
    Case("singlecell/normalize-gaussian-model",
         lambda k: ["normalize", k.model, k.table, "-o", k.tmp / "n.tsv"], match="counts"),
    Case("singlecell/normalize-batch-without-conditions",
         lambda k: ["normalize", k.model, k.table, "-o", k.tmp / "n.tsv", "--batch", "b0"],
         match="no conditions"),
    Case("singlecell/normalize-unknown-batch",
         lambda k: _normalize(k, "-o", k.tmp / "n.tsv", "--batch", "b9"), match="b9"),
    Case("singlecell/normalize-library-zero",
         lambda k: _normalize(k, "-o", k.tmp / "n.tsv", "--library-size", "0"),
         match="--library-size"),
    Case("singlecell/normalize-library-inf",
         lambda k: _normalize(k, "-o", k.tmp / "n.tsv", "--library-size", "inf"),
         match="--library-size"),
    Case("singlecell/normalize-draws-zero",
         lambda k: _normalize(k, "-o", k.tmp / "n.tsv", "--draws", "0"), match="--draws"),
    Case("singlecell/normalize-bad-suffix",
         lambda k: ["normalize", k.model, k.table, "-o", k.tmp / "n.h5"], match="table format"),
    Case("singlecell/normalize-ok-h5ad",
         lambda k: _normalize(k, "-o", k.tmp / "n.h5ad", "--batch", "b0,b1", "--draws", "2"),
         code=0),
    # report --de
    Case("singlecell/report-de-missing", lambda k: _report(k, k.tmp / "de.tsv"), match="de.tsv"),
    Case("singlecell/report-de-wrong-columns",
         lambda k: _report(k, k.write("de.tsv", "gene\tscore\ng0\t1\n")), match="lfc_mean"),
    Case("singlecell/report-de-text-in-numbers",
         lambda k: _report(k, k.write("de.tsv", "gene\tlfc_mean\tproba_de\ng0\tx\t0.5\n")),
         match="must hold numbers"),
    Case("singlecell/report-de-binary",
         lambda k: _report(k, k.write("de.parquet", b"\x00\x01garbage")), match="de.parquet"),
]
