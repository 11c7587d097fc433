"""Join a table of sample annotations (cohort, sex, batch, ...) onto ``adata.obs`` by sample ID."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import pandas as pd
from anndata import AnnData

from vaekit.data.readers.common import check_regular, check_unique, opened
from vaekit.data.readers.tables import first_line, separator

# column names that hold the sample ID, tried in order (case-insensitive) before the first column
KEY_NAMES = ("sample", "sample_id", "barcode")


def join_annotations(
    adata: AnnData, annotations: str | os.PathLike | pd.DataFrame, key: str | None = None
) -> None:
    """Add the columns of ``annotations`` to ``adata.obs``, matched on sample ID, in place.

    The ID column is ``key``, else a column named sample / sample_id / barcode, else a
    DataFrame's index (when it is not 0, 1, 2, ...), else the first column. Columns whose names
    ``obs`` already uses get the suffix ``_annotation``. The number of matched samples goes to
    ``adata.uns["vaekit"]["annotations_matched"]``; a UserWarning names unmatched samples, and
    a ValueError is raised when none match.

    Examples
    --------
    >>> join_annotations(adata, "phenotypes.tsv")  # doctest: +SKIP
    >>> adata.obs["cohort"].value_counts()  # doctest: +SKIP
    """
    where = annotations if isinstance(annotations, pd.DataFrame) else Path(annotations)
    table = _by_id(_load(where, key), key, _name(where))
    matched = adata.obs_names.isin(table.index)
    n_matched, n = int(matched.sum()), adata.n_obs
    if n_matched == 0:
        raise ValueError(
            f"annotations {_name(where)} match none of the {n} samples: sample IDs look like "
            f"{list(adata.obs_names[:3])}, the annotations' IDs (column {table.index.name!r}) "
            f"like {list(table.index[:3])}. They must be the same strings (check barcode lengths "
            "and suffixes), or pass annotation_key= to join on another column"
        )
    joined = table.reindex(adata.obs_names)
    for column in joined.columns:
        name = f"{column}_annotation" if column in adata.obs.columns else str(column)
        adata.obs[name] = joined[column].to_numpy()
    adata.uns.setdefault("vaekit", {})["annotations_matched"] = n_matched
    if n_matched < n:
        warnings.warn(
            f"annotations {_name(where)} matched {n_matched} of {n} samples; {n - n_matched} "
            f"have none, e.g. {list(adata.obs_names[~matched][:5])}",
            UserWarning,
            stacklevel=3,
        )


def _name(where: Path | pd.DataFrame) -> str:
    return "(DataFrame)" if isinstance(where, pd.DataFrame) else str(where)


def _load(where: Path | pd.DataFrame, key: str | None) -> pd.DataFrame:
    if isinstance(where, pd.DataFrame):
        return where
    check_regular(where, "annotations")
    sep = separator(where, line := first_line(where))
    try:
        columns = pd.read_csv(io.StringIO(line), sep=sep, nrows=0).columns
    except pd.errors.ParserError as err:
        raise ValueError(f"annotations {where}: line 1 is not a header line ({err})") from None
    id_column = key if key in columns else _key_column(columns)
    with opened(where) as f:
        try:
            # IDs stay text: "007" must not become 7
            return pd.read_csv(f, sep=sep, dtype={id_column: str})
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(
                f"annotations {where} could not be read as a table with sep={sep!r} "
                f"({str(err).strip()}); every row needs one value per column, in UTF-8 text"
            ) from None


def _key_column(columns: pd.Index) -> str:
    lower = {str(c).lower(): c for c in columns}
    return next((lower[k] for k in KEY_NAMES if k in lower), columns[0])


def _by_id(table: pd.DataFrame, key: str | None, name: str) -> pd.DataFrame:
    """``table`` indexed by sample ID (strings), the ID column removed."""
    if key is not None:
        if key not in table.columns and key != table.index.name:
            raise ValueError(
                f"annotations {name} have no column {key!r} (annotation_key=); their columns "
                f"are {list(table.columns[:10])}"
            )
        table = table.set_index(key) if key in table.columns else table
    elif any(str(c).lower() in KEY_NAMES for c in table.columns):
        table = table.set_index(_key_column(table.columns))
    elif isinstance(table.index, pd.RangeIndex):
        table = table.set_index(table.columns[0])
    table = table.copy()
    table.index = table.index.astype(str)
    check_unique(table.index, Path(name), f"sample IDs in column {table.index.name!r}")
    return table
