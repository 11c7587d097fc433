"""Delimited text (CSV, TSV, TXT, optionally gzipped) and Parquet tables, both parsed by pyarrow.

pyarrow parses in parallel and keeps each column typed, so a 317 x 20531 expression table reads
in about a second and a stray word in a numeric column is found without a second pass.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from anndata import AnnData

from vaekit.data.readers.common import as_str, build, check_unique, opened
from vaekit.data.readers.registry import reader
from vaekit.validation import FLOAT32_FIX, beyond_float32, check_fits

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_TEXT_ENDINGS = (*_SEPARATORS, *(ending + ".gz" for ending in _SEPARATORS))
# the longest header line read: 16 MiB holds 800,000 column names of 20 characters
MAX_LINE = 16 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")
_NULLS = set(pacsv.ConvertOptions().null_values)  # "", "NA", "NaN", "null", ... read as missing


@reader(*_TEXT_ENDINGS, what="CSV/TSV table", options=("sample_column", "sep", "labels"))
def read_delimited(
    path: Path,
    *,
    sample_column: str | None = None,
    sep: str | None = None,
    labels: str | None = None,
) -> AnnData:
    """A delimited text table, one sample per row, the first column (or ``sample_column``) the IDs.

    Examples
    --------
    >>> adata = read_delimited(Path("expression.tsv.gz"))  # doctest: +SKIP
    """
    line = first_line(path)
    sep = sep or separator(path, line)
    header = split_header(line, sep, path)
    ids = header[0] if sample_column is None else sample_column
    _check_header(header, path, sep, ids, labels)
    table = _parse(
        path, sep, text_columns=[c for c in (ids, labels) if c is not None], width=len(line)
    )
    if table.num_rows == 0:
        raise ValueError(f"{path} has a header but no data rows; add one row per sample")
    return table_to_adata(table, path, ids=ids, labels=labels, row0_line=2)


@reader(".parquet", ".pq", what="Parquet table", options=("sample_column", "labels"))
def read_parquet(
    path: Path, *, sample_column: str | None = None, labels: str | None = None
) -> AnnData:
    """A Parquet table; sample IDs from a saved pandas index, a text first column or
    ``sample_column``, else generated (``sample_0..``).

    Examples
    --------
    >>> adata = read_parquet(Path("expression.parquet"))  # doctest: +SKIP
    """
    try:
        meta = pq.read_metadata(path)
        # compressed columns may be far larger in memory than in the file: arrow's copy, then
        # the float32 matrix (and its reordered copy)
        n, m = meta.num_rows, meta.num_columns
        check_fits(n * m * (8 + 2 * 4), f"{path} ({n} rows x {m} columns)")
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path} is not a readable Parquet file ({err})") from None
    ids = _parquet_ids(table) if sample_column is None else sample_column
    _check_columns(table.column_names, path, ids, labels)
    if table.num_rows == 0:
        raise ValueError(f"{path} has columns but no rows; it needs one row per sample")
    return table_to_adata(table, path, ids=ids, labels=labels, row0_line=None)


def first_line(path: Path) -> str:
    """The header line of a text table, decoded; raise if the file is empty or not text."""
    with opened(path) as f:
        raw = f.readline(MAX_LINE + 1)
    if not raw:
        raise ValueError(f"{path} is empty; expected a header line, then one row per sample")
    # old Mac files end lines with CR alone, which readline does not split on
    raw = _LINE_END.split(raw, maxsplit=1)[0]
    if len(raw) > MAX_LINE:
        raise ValueError(
            f"{path}: line 1 is longer than {MAX_LINE >> 20} MiB without a line end; it is not "
            "a table's header line. Check the file (a binary file named .csv?)"
        )
    try:
        line = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is not UTF-8 text; if it is a spreadsheet, save it as CSV or TSV"
        ) from None
    if not line.strip():
        raise ValueError(f"{path}: line 1 is blank; the first line must be the column names")
    return line


def split_header(line: str, sep: str, path: Path) -> list[str]:
    """The fields of the header ``line``; csv's field size limit becomes a clear error."""
    try:
        return next(csv.reader([line], delimiter=sep))
    except csv.Error as err:
        longest = max(len(field) for field in line.split(sep))
        raise ValueError(
            f"{path}: line 1 holds a column name of {longest} characters, longer than "
            f"{csv.field_size_limit()} ({err}); shorten the column names, or check that the "
            f"separator is {sep!r} (pass sep= otherwise)"
        ) from None


def separator(path: Path, line: str) -> str:
    """The separator its ending implies (.csv comma, .tsv/.txt tab), else tab if line has one."""
    suffix = Path(path.name.lower().removesuffix(".gz")).suffix
    return _SEPARATORS.get(suffix) or ("\t" if "\t" in line else ",")


def table_to_adata(
    table: pa.Table, path: Path, *, ids: str | None, labels: str | None, row0_line: int | None
) -> AnnData:
    """An arrow table as AnnData: ``ids`` column to obs_names, ``labels`` to obs["label"],
    every other column a numeric feature. ``row0_line``: the file line of row 0, for messages."""
    obs_names = None if ids is None else _sample_ids(table.column(ids), path, row0_line)
    label_values = None if labels is None else table.column(labels).to_pylist()
    data = table.drop_columns([c for c in (ids, labels) if c is not None])
    _check_numeric(data, path, obs_names, row0_line)
    return build(
        _to_float32(data, path, obs_names, row0_line),
        path,
        obs_names=obs_names,
        var_names=data.column_names,
        labels=label_values,
    )


def _check_header(header: list[str], path: Path, sep: str, ids: str, labels: str | None) -> None:
    if len(header) < 2:
        raise ValueError(
            f"{path}: the header is a single column when split on sep={sep!r}; a table needs "
            "sample IDs and at least one feature. Pass sep= with the file's separator"
        )
    check_unique(pd.Index(header), path, "column names")
    _check_columns(header, path, ids, labels)
    if all(_is_number(h) for h in header):
        raise ValueError(
            f"{path}: the first line ({', '.join(header[:4])}, ...) looks like data, not column "
            "names; add a header line (the first column holding sample IDs), or save the "
            "matrix as .npy"
        )


def _check_columns(columns: Sequence[str], path: Path, ids: str | None, labels: str | None):
    for option, name in (("sample_column", ids), ("labels", labels)):
        if name is not None and name not in columns:
            raise ValueError(
                f"{path} has no column {name!r} ({option}={name!r}); its columns begin "
                f"{list(columns[:8])}"
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse(path: Path, sep: str, text_columns: list[str], width: int) -> pa.Table:
    # a block must hold whole rows, and a wide table's rows are about as long as its header
    read = pacsv.ReadOptions(block_size=max(16 << 20, 32 * width))
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns})
    try:
        return pacsv.read_csv(_buffer(path), read, pacsv.ParseOptions(delimiter=sep), convert)
    except pa.ArrowInvalid as err:
        raise _parse_error(path, sep, err, convert) from None


def _buffer(path: Path) -> pa.BufferReader:
    """The file's bytes (decompressed, bounded by :func:`opened`) in an Arrow buffer. Arrow's
    read-ahead threads must not read a Python file object: one still reading while the
    interpreter exits aborts the process ("terminate called without an active exception",
    apache/arrow#34314)."""
    with opened(path) as f:
        return pa.BufferReader(f.read())


def _parse_error(path: Path, sep: str, err: Exception, convert: pacsv.ConvertOptions) -> ValueError:
    """A ragged row named by line number; read again on one thread, where rows are numbered."""
    found: list[pacsv.InvalidRow] = []

    def stop(row: pacsv.InvalidRow) -> str:
        found.append(row)
        return "error"

    try:
        parse = pacsv.ParseOptions(delimiter=sep, invalid_row_handler=stop)
        pacsv.read_csv(_buffer(path), pacsv.ReadOptions(use_threads=False), parse, convert)
    except pa.ArrowInvalid:
        pass
    if "invalid UTF8" in str(err):
        return ValueError(
            f"{path} is not UTF-8 text ({err}); save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
        )
    if not found:
        return ValueError(f"{path} could not be parsed as a table with sep={sep!r}: {err}")
    row = found[0]
    return ValueError(
        f"{path}, line {row.number}: found {row.actual_columns} fields but the header has "
        f"{row.expected_columns} ({row.text[:60]!r}); every row needs one value per column. "
        f"Fix the row, or pass the right separator (read with sep={sep!r})"
    )


def _parquet_ids(table: pa.Table) -> str | None:
    # pandas saves a non-default index as a column and names it in the metadata
    saved = (table.schema.pandas_metadata or {}).get("index_columns", [])
    index = [c for c in saved if isinstance(c, str)]
    if index:
        return index[0]
    if table.num_columns and not _is_numeric(table.schema.field(0).type):
        return table.column_names[0]
    return None


def _sample_ids(column: pa.ChunkedArray, path: Path, row0_line: int | None) -> list[str]:
    ids = [None if v is None else as_str(v) for v in column.to_pylist()]
    missing = [i for i, v in enumerate(ids) if not v]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} sample ID(s) are empty, the first at "
            f"{_where(missing[0], None, row0_line)}; give every row an ID"
        )
    return ids


def _is_numeric(kind: pa.DataType) -> bool:
    return any(
        test(kind)
        for test in (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_boolean,
            pa.types.is_null,
            pa.types.is_decimal,
        )
    )


def _check_numeric(
    table: pa.Table, path: Path, obs_names: list[str] | None, row0_line: int | None
) -> None:
    types = table.schema.types
    bad = [
        name for name, kind in zip(table.column_names, types, strict=True) if not _is_numeric(kind)
    ]
    if not bad:
        return
    row, value = _first_non_number(table.column(bad[0]))
    more = f"; {len(bad)} columns are not numeric: {bad[:5]}" if len(bad) > 1 else ""
    raise ValueError(
        f"{path}: column {bad[0]!r} holds text, {value!r} at {_where(row, obs_names, row0_line)}"
        f"{more}. Every column but the sample IDs must hold numbers: fix the value, or pass "
        f"labels={bad[0]!r} to use the column as sample labels (sample_column= if it holds the "
        "IDs), or move sample annotations to their own file (annotations=)"
    )


def _first_non_number(column: pa.ChunkedArray) -> tuple[int, object]:
    values = column.to_pandas()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna() & ~values.isin(_NULLS)
    else:  # dates, times and other typed columns: every value is the problem
        bad = values.notna()
    row = int(np.argmax(bad.to_numpy()))
    return row, values.iloc[row]


def _where(row: int, obs_names: list[str] | None, row0_line: int | None) -> str:
    place = f"line {row + row0_line}" if row0_line else f"row {row + 1}"
    return place + (f" (sample {obs_names[row]!r})" if obs_names is not None else "")


def _to_float32(
    table: pa.Table, path: Path, obs_names: list[str] | None, row0_line: int | None
) -> np.ndarray:
    """The numeric table as float32; a value beyond float32's range is an error, not inf."""
    n, m = table.num_rows, table.num_columns
    # the Fortran-order matrix and its C-order copy exist together for a moment
    check_fits(2 * 4 * n * m, f"{path} as a float32 matrix ({n} x {m}), twice while reordered")
    # column by column into a Fortran-order array: no pandas frame of 20k columns in between
    X = np.empty((table.num_rows, table.num_columns), np.float32, order="F")  # (n, features)
    for j, column in enumerate(table.columns):
        start = 0
        for chunk in column.chunks:
            if not pa.types.is_floating(chunk.type):
                chunk = chunk.cast(pa.float64(), safe=False)
            values = chunk.to_numpy(zero_copy_only=False)
            at = beyond_float32(values)
            if at is not None:
                raise ValueError(
                    f"{path}: column {table.column_names[j]!r} holds {values[at]:g} at "
                    f"{_where(start + at, obs_names, row0_line)}, beyond float32's range "
                    f"(+-3.4e38); {FLOAT32_FIX}"
                )
            X[start : start + len(chunk), j] = values
            start += len(chunk)
    return np.ascontiguousarray(X)
