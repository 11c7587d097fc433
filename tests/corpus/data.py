"""Hostile data inputs, part 1: text tables (CSV/TSV/TXT, gzip), Parquet, annotations, and
paths that are not regular files. Part 2 (arrays, HDF5, 10x, IDX, images) is ``data_files``.

Most cases ``encode`` with the shared model (12 features g0..g11, 16 samples s0..s15), which
reads the data and nothing else; a few ``train`` for one epoch.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from corpus import Case, Kit

Rows = list[list[str]]


def encode(kit: Kit, data: Path, *extra: object) -> list:
    """``vaekit encode`` of ``data`` with the shared model, the output beside it."""
    out = kit.tmp / ("z.h5ad" if str(data).endswith(".h5ad") else "z.csv")
    return ["encode", kit.model, data, "-o", out, *extra]


def train(kit: Kit, data: Path, *extra: object) -> list:
    """``vaekit train`` of ``data`` for one quiet epoch."""
    return ["train", data, "-o", kit.tmp / "m", "--epochs", "1", "--quiet", *extra]


def rows(kit: Kit) -> Rows:
    """The shared table as a header and 16 rows of text fields."""
    with open(kit.table, newline="") as f:
        return list(csv.reader(f))


def text(table: Rows, sep: str = ",", end: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator=end).writerows(table)
    return out.getvalue()


def frame(kit: Kit) -> pd.DataFrame:
    return pd.read_csv(kit.table, index_col=0)


def edited(change: Callable[[Rows], object]) -> Callable[[Kit], Rows]:
    """The shared table's rows after ``change(rows)`` edited them in place."""

    def make(kit: Kit) -> Rows:
        table = rows(kit)
        change(table)
        return table

    return make


def table_case(
    name: str,
    change: Callable[[Rows], object],
    *,
    code: int = 2,
    match: str = "",
    file: str = "t.csv",
    sep: str = ",",
    end: str = "\n",
) -> Case:
    """A CSV built from the shared table after ``change`` and given to ``encode``."""

    def make(kit: Kit) -> list:
        return encode(kit, kit.write(file, text(edited(change)(kit), sep, end)))

    return Case(f"data/table-{name}", make, code=code, match=match)


def raw_case(name: str, content: Callable[[Kit], str | bytes], *, file: str = "t.csv",
             code: int = 2, match: str = "", command: Callable = encode) -> Case:
    """``content(kit)`` written as ``file`` and given to ``command``."""
    return Case(f"data/{name}", lambda k: command(k, k.write(file, content(k))),
                code=code, match=match)


def set_cell(row: int, col: int, value: str) -> Callable[[Rows], None]:
    """Rows edit: the field at (file row, column); row 0 is the header."""

    def change(table: Rows) -> None:
        table[row][col] = value

    return change


def gz(data: str | bytes) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data, mtime=0)


def long_header(kit: Kit) -> str:
    table = rows(kit)
    table[0][3] = "g" * 200_000
    return text(table)


def gzip_bomb(kit: Kit) -> bytes:
    # 20 MB of one header line, 20 kB compressed: a reader must stop long before the end
    return gzip.compress(b"sample," + b"0" * 20_000_000, compresslevel=1, mtime=0)


# ---------------------------------------------------------------------- text tables
TABLES = [
    raw_case("csv-empty", lambda k: b"", match="empty"),
    raw_case("csv-header-only", lambda k: text(rows(k)[:1]), match="no data rows"),
    raw_case("csv-blank-first-line", lambda k: "\n" + text(rows(k)), match="blank"),
    raw_case("csv-only-whitespace", lambda k: "   \n  \n", match="blank"),
    table_case("ragged-long-row", lambda t: t[5].append("1.0"), match="line 6"),
    table_case("ragged-short-row", lambda t: t[3].pop(), match="line 4"),
    table_case("text-in-number", set_cell(4, 3, "abc"), match="'abc' at line 5 (sample 's3')"),
    table_case("text-in-last-row", set_cell(16, 12, "n/a?"), match="column 'g11'"),
    table_case("hex-number", set_cell(2, 1, "0x1F"), match="'g0'"),
    table_case("thousands-separator", set_cell(2, 1, "1,000"), match="'g0'"),
    table_case("inf", set_cell(3, 5, "inf"), match="sample 's2'"),
    table_case("minus-inf", set_cell(7, 2, "-inf"), match="'g1'"),
    table_case("overflow-1e308", set_cell(5, 8, "1e308"),
               match="'g7' holds 1e+308 at line 6 (sample 's4')"),
    table_case("overflow-float32", set_cell(9, 1, "-3.5e38"), match="float32"),
    table_case("overflow-1e400", set_cell(2, 2, "1e400"), match="'g1'"),
    table_case("near-float32-max-ok", set_cell(2, 2, "3.0e38"), code=0),
    table_case("underflow-ok", set_cell(2, 2, "1e-400"), code=0),
    table_case("nan", set_cell(6, 6, "NaN"), match="sample 's5'"),
    table_case("empty-field", set_cell(6, 6, ""), match="sample 's5'"),
    table_case("duplicate-sample-ids", set_cell(3, 0, "s0"), match="duplicate"),
    table_case("blank-sample-id", set_cell(4, 0, ""), match="empty"),
    table_case("duplicate-columns", set_cell(0, 2, "g0"), match="duplicate"),
    table_case("unicode-ids", lambda t: [r.__setitem__(0, f"échantillon-{i}-样本")
                                          for i, r in enumerate(t[1:])], code=0),
    table_case("unicode-feature-missing", set_cell(0, 4, "g3\u00e9"), match="lacks"),
    table_case("quoted-delimiter-in-id", lambda t: [r.__setitem__(0, f"s,{i}")
                                                     for i, r in enumerate(t[1:])], code=0),
    table_case("quoted-newline-in-id", set_cell(1, 0, "s\n0"), code=0),
    table_case("crlf", lambda t: None, end="\r\n", code=0),
    table_case("cr-only", lambda t: None, end="\r", code=0),
    table_case("tsv-ok", lambda t: None, file="t.tsv", sep="\t", code=0),
    table_case("txt-tab-ok", lambda t: None, file="t.txt", sep="\t", code=0),
    table_case("columns-reordered-ok", lambda t: [r.reverse() or r.insert(0, r.pop())
                                                   for r in t], code=0),
    table_case("extra-column-ok", lambda t: [r.append("1") for r in t], code=0),
    table_case("missing-column", lambda t: [r.pop() for r in t], match="g11"),
    table_case("trailing-separator", lambda t: [r.append("") for r in t], match="t.csv"),
    table_case("single-row-ok", lambda t: t.__delitem__(slice(2, None)), code=0),
    table_case("header-missing", lambda t: t.__delitem__(0), match="lacks"),
    table_case("header-is-data", lambda t: [t.__delitem__(0)] + [r.pop(0) for r in t],
               match="looks like data"),
    table_case("comment-line", lambda t: t.insert(0, ["# written by hand"]), match="single column"),
    table_case("csv-named-tsv", lambda t: None, file="t.tsv", match="single column"),
    table_case("tsv-named-csv", lambda t: None, sep="\t", match="single column"),
    table_case("semicolons", lambda t: None, sep=";", match="sep="),
    table_case("spaces-around-numbers", set_cell(2, 3, " 1.5 "), code=0),
    table_case("booleans-ok", lambda t: [r.__setitem__(4, "true") for r in t[1:]], code=0),
    raw_case("csv-bom", lambda k: "\ufeff" + text(rows(k)), code=0),
    raw_case("csv-bom-crlf", lambda k: "\ufeff" + text(rows(k), end="\r\n"), code=0),
    raw_case("csv-utf16", lambda k: text(rows(k)).encode("utf-16"), match="UTF-8"),
    raw_case("csv-latin1", lambda k: text(rows(k)).replace("s1,", "s\xe91,").encode("latin-1"),
             match="UTF-8"),
    raw_case("csv-binary", lambda k: bytes(range(256)) * 8, match="t.csv"),
    raw_case("csv-nul-bytes", lambda k: text(rows(k)).replace("s3", "s\0").encode(), code=0),
    raw_case("csv-long-header-field", long_header, match="200000 characters"),
    raw_case("csv-one-long-line", lambda k: "a," * 300_000, match="t.csv"),
    raw_case("csv-header-only-crlf", lambda k: text(rows(k)[:1], end="\r\n"),
             match="no data rows"),
    raw_case("csv-trailing-blank-lines", lambda k: text(rows(k)) + "\n\n\n", code=0),
    raw_case("csv-html", lambda k: "<!DOCTYPE html><html><body>Not Found</body></html>\n",
             match="single column"),
    raw_case("train-csv-text-in-number",
             lambda k: text(edited(set_cell(2, 2, "x"))(k)), command=train, match="'x'"),
    raw_case("train-csv-overflow", lambda k: text(edited(set_cell(2, 2, "3.4e39"))(k)),
             command=train, match="float32"),
    raw_case("train-csv-header-only", lambda k: text(rows(k)[:1]), command=train,
             match="no data rows"),
    raw_case("train-csv-ok", lambda k: text(rows(k)), command=train, code=0),
]

# ---------------------------------------------------------------------- gzip and endings
GZIP = [
    raw_case("gz-ok", lambda k: gz(text(rows(k))), file="t.csv.gz", code=0),
    raw_case("gz-tsv-ok", lambda k: gz(text(rows(k), "\t")), file="t.tsv.gz", code=0),
    raw_case("gz-truncated", lambda k: gz(text(rows(k)))[:-30], file="t.csv.gz", match="gzip"),
    raw_case("gz-truncated-header", lambda k: gz(text(rows(k)))[:12], file="t.csv.gz",
             match="gzip"),
    raw_case("gz-empty-file", lambda k: b"", file="t.csv.gz", match="empty"),
    raw_case("gz-empty-content", lambda k: gz(b""), file="t.csv.gz", match="empty"),
    raw_case("gz-not-compressed", lambda k: text(rows(k)), file="t.csv.gz", match="gzip"),
    raw_case("gz-corrupt-middle", lambda k: (lambda b: b[:20] + b"\xff" * 20 + b[40:])(
        gz(text(rows(k)))), file="t.csv.gz", match="gzip"),
    raw_case("gz-bomb-one-line", gzip_bomb, file="t.csv.gz", match="longer than"),
    raw_case("gz-twice", lambda k: gz(gz(text(rows(k)))), file="t.csv.gz", match="t.csv.gz"),
    raw_case("ending-unknown", lambda k: text(rows(k)), file="t.xlsx", match="cannot tell"),
    raw_case("ending-none", lambda k: text(rows(k)), file="table", match="cannot tell"),
    raw_case("ending-upper-case-ok", lambda k: text(rows(k)), file="T.CSV", code=0),
    raw_case("ending-txt-with-commas", lambda k: text(rows(k)), file="t.txt",
             match="single column"),
    raw_case("ending-gz-alone", lambda k: gz(text(rows(k))), file="t.gz", match="cannot tell"),
    raw_case("ending-csv-holds-parquet",
             lambda k: parquet_bytes(frame(k)), match="UTF-8"),
]


# ---------------------------------------------------------------------- Parquet
def parquet_bytes(df: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    df.to_parquet(out)
    return out.getvalue()


def parquet_case(name: str, change: Callable[[pd.DataFrame], pd.DataFrame], *, code: int = 2,
                 match: str = "") -> Case:
    return raw_case(f"parquet-{name}", lambda k: parquet_bytes(change(frame(k))),
                    file="t.parquet", code=code, match=match)


def _with(column: str, values: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[column] = values
        return df

    return change


PARQUET = [
    parquet_case("ok", lambda df: df, code=0),
    parquet_case("no-rows", lambda df: df.iloc[:0], match="no rows"),
    parquet_case("text-column", _with("g4", "high"), match="'g4'"),
    parquet_case("dates", _with("g4", pd.Timestamp("2020-01-01")), match="'g4'"),
    parquet_case("inf", _with("g4", np.inf), match="'g4'"),
    parquet_case("overflow", _with("g4", 1e300), match="float32"),
    parquet_case("duplicate-index", lambda df: df.set_axis(["s0"] * 16), match="duplicate"),
    raw_case("parquet-truncated", lambda k: parquet_bytes(frame(k))[:-100], file="t.parquet",
             match="not a readable Parquet"),
    raw_case("parquet-is-csv", lambda k: text(rows(k)), file="t.parquet",
             match="not a readable Parquet"),
]


# ---------------------------------------------------------------------- annotations
def annotated(content: Callable[[Kit], str | bytes], name: str = "ann.csv",
              code: int = 2, match: str = "") -> Case:
    def make(kit: Kit) -> list:
        return encode(kit, kit.table, "--annotations", kit.write(name, content(kit)))

    return Case(f"data/annotations-{Path(name).name}-{len(ANNOTATIONS)}", make, code, match)


def ann(ids: object = None, extra: str = "") -> Callable[[Kit], str]:
    def content(kit: Kit) -> str:
        names = [f"s{i}" for i in range(16)] if ids is None else ids
        return "sample,cohort\n" + "".join(f"{s},c{i % 3}\n" for i, s in enumerate(names)) + extra

    return content


ANNOTATIONS: list[Case] = []
for _content, _name, _code, _match in [
    (ann(), "ann.csv", 0, ""),
    (ann([f"s{i}" for i in range(8)]), "ann.csv", 0, ""),  # half match: a warning
    (ann([f"S{i}" for i in range(16)]), "ann.csv", 2, "match none"),
    (ann(["s0"] * 16), "ann.csv", 2, "duplicate"),
    (lambda k: "", "ann.csv", 2, "empty"),
    (lambda k: "sample,cohort\n", "ann.csv", 2, "match none"),
    (ann(extra="s99,c1,extra,fields\n"), "ann.csv", 2, "ann.csv"),
    (lambda k: "\ufeff" + ann()(k), "ann.csv", 0, ""),
    (lambda k: ann()(k).replace("\n", "\r\n"), "ann.csv", 0, ""),
    (lambda k: ann()(k).replace("\n", "\r"), "ann.csv", 0, ""),
    (lambda k: ann()(k).replace(",", "\t"), "ann.tsv", 0, ""),
    (lambda k: gz(ann()(k))[:-10], "ann.csv.gz", 2, "gzip"),
    (lambda k: bytes(range(256)) * 4, "ann.csv", 2, "ann.csv"),
    (lambda k: ann()(k).encode("utf-16"), "ann.csv", 2, "UTF-8"),
    (lambda k: '"sample,cohort\n"s0', "ann.csv", 2, "ann.csv"),
]:
    ANNOTATIONS.append(annotated(_content, _name, _code, _match))

ANNOTATIONS += [
    Case("data/annotations-missing-file",
         lambda k: encode(k, k.table, "--annotations", k.tmp / "nope.csv"),
         match="annotations file"),
    Case("data/annotations-folder",
         lambda k: encode(k, k.table, "--annotations", k.tmp), match="not a file"),
    Case("data/annotations-dev-zero",
         lambda k: encode(k, k.table, "--annotations", "/dev/zero"), match="regular file"),
]


# ---------------------------------------------------------------------- not regular files
def fifo(kit: Kit, name: str = "t.csv") -> Path:
    path = kit.tmp / name
    os.mkfifo(path)
    return path


def unix_socket(kit: Kit) -> Path:
    path = kit.tmp / "s.csv"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def link(kit: Kit, target: str, name: str = "t.csv") -> Path:
    path = kit.tmp / name
    path.symlink_to(target)
    return path


SPECIAL = [
    Case("data/fifo", lambda k: encode(k, fifo(k)), match="not a regular file"),
    Case("data/fifo-train", lambda k: train(k, fifo(k)), match="not a regular file"),
    Case("data/fifo-gz", lambda k: encode(k, fifo(k, "t.csv.gz")), match="not a regular file"),
    Case("data/fifo-npy", lambda k: encode(k, fifo(k, "t.npy")), match="not a regular file"),
    Case("data/dev-zero", lambda k: encode(k, link(k, "/dev/zero")),
         match="not a regular file"),
    Case("data/dev-zero-direct", lambda k: encode(k, "/dev/zero"), match="not a regular file"),
    Case("data/dev-null", lambda k: encode(k, link(k, "/dev/null", "t.npy")),
         match="not a regular file"),
    Case("data/socket", lambda k: encode(k, unix_socket(k)), match="not a regular file"),
    Case("data/broken-symlink", lambda k: encode(k, link(k, str(k.tmp / "gone.csv"))),
         match="no such file"),
    Case("data/missing", lambda k: encode(k, k.tmp / "nope.csv"), match="no such file"),
    Case("data/empty-folder", lambda k: encode(k, k.tmp), match="not one vaekit can read"),
    Case("data/folder-named-csv", lambda k: encode(k, (k.tmp / "d.csv").mkdir() or
                                                   k.tmp / "d.csv"),
         match="not one vaekit can read"),
]

CASES = TABLES + GZIP + PARQUET + ANNOTATIONS + SPECIAL
