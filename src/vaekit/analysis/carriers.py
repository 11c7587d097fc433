"""Which latent feature carries each sample annotation, and how exclusively: MIG's machinery
(:mod:`vaekit.analysis.disentanglement_metrics`) on annotation columns (cell type, sex,
age...), with the genes that move with that feature read from the decoder."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vaekit.analysis._factors import BINS, histogram_bins, is_discrete
from vaekit.analysis.associations import _aligned, _column, _skip_reason
from vaekit.analysis.disentanglement_metrics import mig_score, mutual_information
from vaekit.analysis.genesets import gene_symbol
from vaekit.analysis.interpretation import heaviest

COLUMNS = ["annotation", "kind", "bins", "n", "feature", "mutual_information", "gap", "genes"]


def annotation_carriers(
    Z: Any, annotations: pd.DataFrame, *, loadings: pd.DataFrame | None = None, k: int = 8
) -> dict[str, Any]:
    """For each annotation, the latent feature with the most mutual information with it, and
    the MIG-style gap to the second (over the annotation's entropy: 1 when one feature alone
    carries it, 0 when two carry it equally).

    Each column is used on its rows with a value; text and two-valued columns are discrete,
    numbers as in :func:`vaekit.analysis.disentanglement` (binned into 20 when continuous);
    identifiers and one-valued columns are skipped, as :func:`vaekit.analysis.associate`
    skips them. Features are binned into 20 equal-width bins over all samples.

    Parameters
    ----------
    Z : array or DataFrame, (n_samples, n_latent)
        Latent codes; at least 2 features.
    annotations : DataFrame, (n_samples, n_annotations)
        Same rows as ``Z`` (matched by index when ``Z`` is a DataFrame, as
        :func:`vaekit.analysis.associate` matches them).
    loadings : DataFrame, (n_latent, n_genes), optional
        From :meth:`vaekit.VAE.loadings`: names the ``k`` heaviest genes of each carrier.
    k : int
        Genes per carrier.

    Returns
    -------
    dict
        ``detail``, shaped as :func:`vaekit.analysis.disentanglement`'s (so that
        :func:`vaekit.plot.factor_heatmap` draws it): ``factors`` (per annotation: name, kind,
        bins, n, feature, mutual_information, gap, genes as ``[(gene, weight), ...]``),
        ``mutual_information`` (n_annotations x n_latent) and ``skipped`` ({name: reason}).

    Examples
    --------
    >>> found = annotation_carriers(model.transform(X), obs, loadings=model.loadings(X))
    ... # doctest: +SKIP
    >>> carriers_table(found)  # doctest: +SKIP
    """
    z, annotations = _aligned(Z, annotations)
    if z.shape[1] < 2:
        raise ValueError(
            f"Z has {z.shape[1]} latent feature: the gap compares the best feature with the "
            "second, so it needs at least 2"
        )
    codes = np.column_stack([histogram_bins(z[:, i]) for i in range(z.shape[1])])
    rows, matrix, skipped = [], [], {}
    for name in annotations.columns:
        column = _column(str(name), annotations[name])
        reason = _skip_reason(column)
        if reason:
            skipped[str(name)] = reason
            continue
        labels, kind, bins = _labels(column.values)
        mi = mutual_information(codes[column.keep], labels[:, None])[0]
        entropy = mutual_information(labels[:, None], labels[:, None])[0, 0]
        gaps, _ = mig_score(mi[None, :], np.array([entropy]))
        feature = int(np.argmax(mi))
        genes = [] if loadings is None else list(heaviest(loadings, feature, k).items())
        matrix.append(mi / entropy)
        rows.append({"name": str(name), "kind": kind, "bins": bins, "n": int(column.keep.sum()),
                     "feature": feature, "mutual_information": float(mi[feature] / entropy),
                     "gap": float(gaps[0]), "genes": genes})  # fmt: skip
    shape = (len(rows), z.shape[1])
    mi_matrix = np.array(matrix).reshape(shape)
    return {"detail": {"factors": rows, "mutual_information": mi_matrix, "skipped": skipped}}


def _labels(values: pd.Series) -> tuple[np.ndarray, str, int]:
    """0-based labels of an annotation's values, its kind and its number of levels or bins."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    x = values.to_numpy(dtype=np.float64) if numeric else None
    if x is not None and not is_discrete(x):
        return histogram_bins(x), "continuous", BINS
    labels, levels = pd.factorize(values.astype(str) if x is None else values, sort=True)
    return labels, "discrete", len(levels)


def carriers_table(result: dict[str, Any]) -> pd.DataFrame:
    """:func:`annotation_carriers`'s rows as a table, genes as ``SYMBOL (+), ...``."""
    rows = [
        {**{c: f[c if c != "annotation" else "name"] for c in COLUMNS[:-1]},
         "genes": ", ".join(f"{gene_symbol(str(g))} ({'+' if w > 0 else '-'})"
                            for g, w in f["genes"])}
        for f in result["detail"]["factors"]
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
