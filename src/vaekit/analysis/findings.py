"""What a fitted model's latent features mean, in one call: loadings, top genes, associations with
sample annotations and gene-set enrichment, summarised as sentences a biologist can check."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vaekit._version import __version__
from vaekit.analysis._limits import check_count, check_positive
from vaekit.analysis.associations import associate
from vaekit.analysis.carriers import annotation_carriers, carriers_table
from vaekit.analysis.genesets import enrichment, gene_symbol, read_gmt, sex_chromosome_genes
from vaekit.analysis.interpretation import heaviest, high_weight_genes, top_genes
from vaekit.analysis.interpretation import loadings as read_loadings
from vaekit.data.writers import output_dir
from vaekit.estimator import BaseVAE

SIGNIFICANT = 0.05  # q-value below which a finding is stated
# What Interpretation.write puts in its folder: a folder holding only these may be replaced.
FILES = (
    "loadings.tsv",
    "top_genes.tsv",
    "associations.tsv",
    "carriers.tsv",
    "enrichment.tsv",
    "summary.md",
)


@dataclass
class Interpretation:
    """The tables behind a model's interpretation; :meth:`summary` states the findings.

    Attributes
    ----------
    loadings : DataFrame, (n_latent, n_genes)
    top_genes : DataFrame
        See :func:`vaekit.analysis.top_genes`.
    associations : DataFrame or None
        See :func:`vaekit.analysis.associate`; None without annotations.
    enrichment : DataFrame or None
        High-weight genes of each feature and sign against the gene sets; None without any set
        that overlaps the model's genes.
    k : int
        Genes named per feature in the summary.
    carriers : DataFrame or None
        See :func:`vaekit.analysis.carriers.carriers_table`: per annotation, the feature with
        the most mutual information with it and the MIG-style gap; None without annotations.
    """

    loadings: pd.DataFrame
    top_genes: pd.DataFrame
    associations: pd.DataFrame | None
    enrichment: pd.DataFrame | None
    k: int = 20
    carriers: pd.DataFrame | None = None

    def summary(self) -> str:
        """Markdown: for each annotation the feature that tracks it best, its statistic and
        q-value, and its heaviest genes; then the enriched gene sets."""
        lines = ["# What the latent features mean", ""]
        lines += [
            f"{self.loadings.shape[0]} latent features, {self.loadings.shape[1]} genes; loadings "
            f"read from the decoder by the {self.loadings.attrs.get('method', '?')!r} method. "
            f"A gene's sign (+/-) is the direction it moves when the feature grows.",
            "",
        ]
        lines += self._association_lines()
        lines += self._carrier_lines()
        lines += self._enrichment_lines()
        lines += ["", f"_Written by vaekit {__version__}._", ""]
        return "\n".join(lines)

    def _genes(self, feature: int, n: int = 8) -> str:
        weights = heaviest(self.loadings, feature, n)
        return ", ".join(
            f"{gene_symbol(str(g))} ({'+' if w > 0 else '-'})" for g, w in weights.items()
        )

    def _association_lines(self) -> list[str]:
        if self.associations is None:
            return ["No sample annotations were given, so no feature was tested against them."]
        lines = ["## Sample annotations", ""]
        for _, rows in self.associations.groupby("annotation", sort=False):
            best = rows.iloc[0]
            lines.append(f"- {_finding(best)}" + self._gene_clause(best))
        for name, reason in self.associations.attrs.get("skipped", {}).items():
            lines.append(f"- {name}: not tested ({reason}).")
        return [*lines, ""]

    def _carrier_lines(self) -> list[str]:
        if self.carriers is None or self.carriers.empty:
            return []
        lines = [
            "## Which feature carries each annotation",
            "",
            "Mutual information of each annotation with each binned feature, over the "
            "annotation's entropy; the gap to the second feature is 1 when one feature alone "
            "carries it (MIG, Chen et al. 2018).",
            "",
        ]
        for row in self.carriers.itertuples():
            genes = f"; genes that move with it: {row.genes}" if row.genes else ""
            lines.append(
                f"- {row.annotation}: feature {row.feature} (normalised MI "
                f"{row.mutual_information:.2f}, gap {row.gap:.2f}){genes}"
            )
        return [*lines, ""]

    def _gene_clause(self, best: pd.Series) -> str:
        if not best.q < SIGNIFICANT:
            return ""
        return f"; heaviest genes: {self._genes(int(best.feature))}"

    def _enrichment_lines(self) -> list[str]:
        if self.enrichment is None:
            return []
        hits = self.enrichment[self.enrichment.q < SIGNIFICANT]
        lines = ["## Gene sets", ""]
        if hits.empty:
            return [*lines, "No gene set is enriched among any feature's high-weight genes.", ""]
        for row in hits.head(20).itertuples():
            lines.append(
                f"- {row.selection}: {row.gene_set} ({row.overlap} of {row.selected} "
                f"high-weight genes, {row.fold:.1f}-fold, q = {row.q:.1e}): {_short(row.genes)}"
            )
        return [*lines, ""]

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``loadings.tsv``, ``top_genes.tsv``, ``associations.tsv``, ``enrichment.tsv``
        (those that exist) and ``summary.md`` into ``folder``, atomically."""
        tables = {
            "loadings.tsv": self.loadings,
            "top_genes.tsv": self.top_genes,
            "associations.tsv": self.associations,
            "carriers.tsv": self.carriers,
            "enrichment.tsv": self.enrichment,
        }
        with output_dir(folder, FILES) as tmp:  # refuses a file or a folder of other files
            for name, table in tables.items():
                if table is not None:
                    table.to_csv(tmp / name, sep="\t", index=name == "loadings.tsv")
            (tmp / "summary.md").write_text(self.summary(), encoding="utf-8")
        return Path(folder)


def interpret(
    model: BaseVAE,
    X: Any,
    annotations: pd.DataFrame | None = None,
    *,
    y: Any = None,
    gene_sets: Mapping[str, Sequence[str]] | str | os.PathLike | None = None,
    k: int = 20,
    sd: float = 2.5,
) -> Interpretation:
    """Loadings, top genes, associations and gene-set enrichment of a fitted model.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData
        Samples to encode (and over which a deep decoder's loadings are averaged).
    annotations : DataFrame, optional
        One row per sample of X; by default ``X.obs`` for an AnnData with columns.
    y : optional
        Conditions of X, for a conditional model.
    gene_sets : mapping or GMT path, optional
        Tested together with the built-in sex-chromosome sets (those that overlap the genes).
    k : int
        Top genes per feature and sign.
    sd : float
        Tybalt's high-weight rule: weights beyond the feature's mean +/- ``sd`` SDs.

    Examples
    --------
    >>> result = interpret(model, adata)  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    check_count("k", k)
    check_positive("sd", sd, "2.5")
    if annotations is None and hasattr(X, "obs") and X.obs.shape[1]:
        annotations = X.obs
    loadings = read_loadings(model, X, y)
    associations = carriers = None
    if annotations is not None:
        Z = pd.DataFrame(model.transform(X, y), index=_index(X))
        associations = associate(Z, annotations)
        carriers = _carriers(Z, annotations, loadings)
    return Interpretation(
        loadings=loadings,
        top_genes=top_genes(loadings, k, sd),
        associations=associations,
        enrichment=_enrichment(loadings, gene_sets, sd),
        k=k,
        carriers=carriers,
    )


def _carriers(
    Z: pd.DataFrame, annotations: pd.DataFrame, loadings: pd.DataFrame
) -> pd.DataFrame | None:
    """The carrier of each annotation; None for a single latent feature (no gap to take)."""
    if Z.shape[1] < 2:
        return None
    found = annotation_carriers(Z, annotations, loadings=loadings)
    return carriers_table(found)


def _index(X: Any) -> pd.Index | None:
    return X.obs_names if hasattr(X, "obs_names") else getattr(X, "index", None)


def _enrichment(
    loadings: pd.DataFrame, gene_sets: Mapping | str | os.PathLike | None, sd: float
) -> pd.DataFrame | None:
    """Enrichment against the given sets and the built-in ones, or None when no set shares at
    least three genes with the model (pixels, or genes under other IDs)."""
    sets = dict(sex_chromosome_genes())
    if gene_sets is not None:
        sets.update(read_gmt(gene_sets) if isinstance(gene_sets, (str, os.PathLike)) else gene_sets)
    universe = [str(g) for g in loadings.columns]
    symbols = {gene_symbol(g) for g in universe}
    if not any(len(symbols.intersection(genes)) >= 3 for genes in sets.values()):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sets that miss the genes are expected here
        return enrichment(high_weight_genes(loadings, sd), sets, universe)


def _finding(row: pd.Series) -> str:
    """One association as a sentence: which feature, how strongly, how sure."""
    feature, name, q = int(row.feature), row.annotation, _q(row.q)
    if not row.q < SIGNIFICANT:
        return f"{name}: no latent feature tracks it (best: feature {feature}, q = {q})"
    if row.test == "spearman":
        return f"feature {feature} tracks {name} (Spearman rho = {row.statistic:+.2f}, q = {q})"
    auroc, level = float(row.auroc), row.level
    side = "higher" if auroc >= 0.5 else "lower"
    if row.test == "mann-whitney":
        strength = f"AUROC {max(auroc, 1 - auroc):.2f}, {side} in {level}"
    else:
        strength = f"Kruskal-Wallis; {side} in {level} than the rest, AUROC {auroc:.2f}"
    return f"feature {feature} separates {name} ({strength}; q = {q})"


def _q(q: float) -> str:
    return f"{q:.0e}" if q < 1e-3 else f"{q:.3f}"


def _short(genes: str, n: int = 8) -> str:
    names = genes.split(",")
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
