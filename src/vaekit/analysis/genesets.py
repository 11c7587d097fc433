"""Gene-set over-representation, to name what a latent feature's top genes have in common.

A latent feature's largest loadings select a handful of genes; :func:`enrichment` asks which
known gene sets those genes fall into more often than chance, with a hypergeometric test over
every gene the model could have picked. :func:`read_gmt` reads gene sets from GMT files (the
MSigDB format) and :func:`sex_chromosome_genes` returns two built-in sets, because sex is the
first thing an unsupervised model of human expression data tends to find.

SOURCE
------
The built-in sets (``data/sex_chromosome_genes.gmt``) were compiled by hand in 2025 from public
lists, and the GMT description field of each set repeats its source. ``chrY`` is the
male-specific region of the Y chromosome only, since the pseudoautosomal genes (PAR1/PAR2) are
expressed from X and Y in both sexes: the protein-coding genes of Skaletsky et al. 2003
(Nature 423:825) as listed in a public Y-gene module and in an Ensembl chrY gene list (both
found in public GitHub code), the TTTY lncRNAs, TXLNGY and the expressed pseudogenes PRKY,
GYG2P1, KALP, BCORP1 and RBMY1A3P/RBMY2EP/RBMY2FP from that Ensembl list; every TTTY, TSPY and
TXLNGY row was checked against HGNC's ``hgnc_complete_set.txt`` (copy in
github.com/CogDisResLab/MultiomicMenu), whose ``prev_symbol`` column supplied the older names
that 2010-era tables such as TCGA use (CYorf15A/CYorf15B/TXLNG2P for TXLNGY, NCRNA00185 for
TTTY14, ...). ``chrX_sex_biased`` holds the X-inactivation-centre lncRNAs XIST, TSIX, JPX and
FTX, every gene outside PAR1 whose combined XCI status is "escape" in Supplementary Table 1 of
Tukiainen et al. 2017 (Nature 550:244; calls of Cotton et al. 2013 and Carrel & Willard 2005,
Gencode v19 names, copy in github.com/Karine-Moussa/xci-app-1), and NLGN4X (variable escape,
the X copy of NLGN4Y); clone-based names were dropped and the older symbols that table and HGNC
give (CXorf15 for TXLNG, NCRNA00183 for JPX, ...) kept. Symbols renamed after Gencode v19
(e.g. KAL1, now ANOS1) appear under the Gencode v19 name only.
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path

import pandas as pd
from scipy import stats

__all__ = ["enrichment", "gene_symbol", "read_gmt", "sex_chromosome_genes"]

COLUMNS = [
    "selection", "gene_set", "overlap", "selected", "set_size", "universe", "fold", "p", "q",
    "genes",
]  # fmt: skip
_BUILTIN = "data/sex_chromosome_genes.gmt"


def read_gmt(path: str | PathLike) -> dict[str, list[str]]:
    """Gene sets from a GMT file: one set per line, ``name<TAB>description<TAB>gene...``.

    Files ending in ``.gz`` are decompressed. Blank lines are skipped; gene names are stripped,
    empty gene fields ignored and repeats within a set dropped (first occurrence kept).

    Parameters
    ----------
    path : str or PathLike
        A ``.gmt`` or ``.gmt.gz`` file.

    Returns
    -------
    dict of str to list of str
        Set name to genes, in file order.

    Raises
    ------
    ValueError
        A line with fewer than three tab-separated fields, an empty set name, or a set name
        defined twice; the message names the file and the 1-based line number.

    Examples
    --------
    >>> sets = read_gmt("h.all.v2023.2.Hs.symbols.gmt")  # doctest: +SKIP
    >>> sets["HALLMARK_HYPOXIA"][:3]  # doctest: +SKIP
    ['ACKR3', 'ADM', 'ADORA2B']
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return _parse_gmt(handle, str(path))


def _parse_gmt(lines: Iterable[str], source: str) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        where = f"{source}, line {number}"
        if len(fields) < 3:
            raise ValueError(
                f"{where}: found {len(fields)} tab-separated field(s), a GMT line needs at least "
                "3 (name, description, genes...); check that the fields are separated by tabs"
            )
        name = fields[0].strip()
        if not name:
            raise ValueError(f"{where}: the gene-set name (first field) is empty")
        if name in sets:
            raise ValueError(f"{where}: gene set {name!r} is already defined; rename one of them")
        sets[name] = _unique(gene.strip() for gene in fields[2:])
    return sets


def _unique(names: Iterable[str]) -> list[str]:
    """Non-empty names without repeats, first occurrence first."""
    return list(dict.fromkeys(name for name in names if name))


def gene_symbol(name: str) -> str:
    """The HGNC symbol in a TCGA-style ``SYMBOL|EntrezID`` column name; other names unchanged.

    TCGA writes genes without a symbol as ``?|EntrezID``; those are returned whole, since ``?``
    would make every such gene the same.

    Examples
    --------
    >>> gene_symbol("XIST|7503")
    'XIST'
    >>> gene_symbol("?|100130426")
    '?|100130426'
    >>> gene_symbol("RPS4Y1")
    'RPS4Y1'
    """
    symbol, bar, entrez = name.partition("|")
    if bar and entrez.isdigit() and symbol not in ("", "?"):
        return symbol
    return name


@lru_cache(maxsize=1)
def _builtin_sets() -> dict[str, tuple[str, ...]]:
    text = resources.files("vaekit.analysis").joinpath(_BUILTIN).read_text(encoding="utf-8")
    parsed = _parse_gmt(text.splitlines(), f"vaekit/analysis/{_BUILTIN}")
    return {name: tuple(genes) for name, genes in parsed.items()}


def sex_chromosome_genes() -> dict[str, list[str]]:
    """The built-in sets ``chrY`` and ``chrX_sex_biased`` (HGNC symbols; see the module's SOURCE).

    The file is read on first use and cached; every call returns fresh lists to change freely.

    Examples
    --------
    >>> sets = sex_chromosome_genes()
    >>> sorted(sets)
    ['chrX_sex_biased', 'chrY']
    >>> "XIST" in sets["chrX_sex_biased"], "RPS4Y1" in sets["chrY"]
    (True, True)
    """
    return {name: list(genes) for name, genes in _builtin_sets().items()}


def __getattr__(name: str) -> dict[str, list[str]]:
    # A module attribute that reads its file only when first asked for (PEP 562).
    if name == "SEX_CHROMOSOME_GENES":
        return sex_chromosome_genes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def enrichment(
    selected: Mapping[str, Iterable[str]],
    gene_sets: Mapping[str, Iterable[str]] | str | PathLike,
    universe: Iterable[str],
    min_size: int = 3,
) -> pd.DataFrame:
    """Over-representation of gene sets among selected genes (hypergeometric test, BH q-values).

    Genes are compared by :func:`gene_symbol`, case-sensitively (HGNC symbols), on every side.
    Each gene set is cut down to the universe and dropped when fewer than ``min_size`` of its
    genes remain. Each (selection, gene set) pair sharing at least one gene is tested; pairs
    sharing none would have p = 1 and are left out, so ``q`` is the Benjamini-Hochberg
    adjustment over the rows returned.

    Parameters
    ----------
    selected : mapping of str to iterable of str
        A label (e.g. ``"feature 3 +"``) to the genes selected under it, most important first.
    gene_sets : mapping of str to iterable of str, or path
        Gene sets, or a GMT file (see :func:`read_gmt`).
    universe : iterable of str
        Every gene that could have been selected: all of the model's features, not only the
        expressed or variable ones, or the p-values come out too small.
    min_size : int, default 3
        Smallest gene set kept, counted within the universe.

    Returns
    -------
    pandas.DataFrame
        One row per tested pair, sorted by ``q`` then ``p``: ``selection``, ``gene_set``,
        ``overlap`` (k), ``selected`` (N), ``set_size`` (n, within the universe), ``universe``
        (M), ``fold`` ((k/N)/(n/M)), ``p`` (P(X >= k), X hypergeometric), ``q`` and ``genes``
        (the shared genes, comma-separated, in selection order). Empty, with these columns,
        when nothing overlaps.

    Raises
    ------
    ValueError
        An empty universe, a selected gene missing from the universe, or ``min_size`` < 1.
    TypeError
        The universe, a selection or a gene set given as one string instead of a list.

    Examples
    --------
    >>> universe = [f"G{i}" for i in range(20)]
    >>> sets = {"A": ["G0", "G1", "G2", "G3"], "B": ["G10", "G11", "G12"]}
    >>> table = enrichment({"feature 0 +": ["G0", "G1", "G2"]}, sets, universe)
    >>> table[["gene_set", "overlap", "set_size", "genes"]].to_dict("records")
    [{'gene_set': 'A', 'overlap': 3, 'set_size': 4, 'genes': 'G0,G1,G2'}]
    >>> round(float(table.loc[0, "p"]), 6)  # C(4, 3) / C(20, 3) = 4 / 1140
    0.003509
    """
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer, got {min_size!r}")
    genes = _symbols(universe, "universe")
    if not genes:
        raise ValueError(
            "the universe is empty: pass every gene the model could have selected, "
            "e.g. model.feature_names_in_"
        )
    selections = {label: _selection(label, chosen, genes) for label, chosen in selected.items()}
    sets = _restrict(_load_sets(gene_sets), genes, min_size)
    rows = [
        row
        for label, chosen in selections.items()
        for name, members in sets.items()
        if (row := _test(label, chosen, name, members, len(genes))) is not None
    ]
    return _table(rows)


def _symbols(names: Iterable[str], what: str) -> list[str]:
    """Distinct symbols of ``names`` in order; a bare string is refused (it would be letters)."""
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of gene names, not the single string {names!r}")
    return list(dict.fromkeys(gene_symbol(str(name)) for name in names))


def _selection(label: str, chosen: Iterable[str], universe: list[str]) -> list[str]:
    symbols = _symbols(chosen, f"selection {label!r}")
    known = set(universe)
    missing = [symbol for symbol in symbols if symbol not in known]
    if missing:
        raise ValueError(
            f"selection {label!r}: {len(missing)} of {len(symbols)} gene(s) are not in the "
            f"universe, e.g. {', '.join(missing[:5])}; the universe must hold every gene that "
            "could have been selected (all of the model's features)"
        )
    return symbols


def _load_sets(gene_sets: Mapping[str, Iterable[str]] | str | PathLike) -> dict[str, list[str]]:
    raw = read_gmt(gene_sets) if isinstance(gene_sets, (str, PathLike)) else gene_sets
    return {name: _symbols(members, f"gene set {name!r}") for name, members in raw.items()}


def _restrict(
    sets: dict[str, list[str]], universe: list[str], min_size: int
) -> dict[str, frozenset[str]]:
    known = set(universe)
    inside = {name: frozenset(genes) & known for name, genes in sets.items()}
    if sets and not any(inside.values()):
        # Usually a naming mismatch (Ensembl IDs against symbols), not a real absence.
        warnings.warn(
            "no gene of any gene set is in the universe; check that both use HGNC symbols",
            stacklevel=3,
        )
    return {name: genes for name, genes in inside.items() if len(genes) >= min_size}


def _test(
    label: str, chosen: list[str], name: str, members: frozenset[str], universe: int
) -> list | None:
    shared = [gene for gene in chosen if gene in members]
    k, n_selected, n_set = len(shared), len(chosen), len(members)
    if k == 0:
        return None
    # P(X >= k) for X ~ Hypergeometric(M=universe, n=set size, N=selection size).
    p = min(float(stats.hypergeom.sf(k - 1, universe, n_set, n_selected)), 1.0)
    fold = (k / n_selected) / (n_set / universe)
    return [label, name, k, n_selected, n_set, universe, fold, p, float("nan"), ",".join(shared)]


def _table(rows: list[list]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    # Benjamini & Hochberg 1995, JRSS B 57:289, over every (selection, gene set) row.
    table["q"] = stats.false_discovery_control(table["p"].to_numpy())
    order = ["q", "p", "selection", "gene_set"]
    return table.sort_values(order, kind="stable", ignore_index=True)
