"""Planted batch effects and planted differential expression on real single-cell counts.

The simulator behind ``benchmarks/integration.py``. It starts from real UMI counts with known
cell types (``10X_PBMC_top2000.h5``: 4,271 cells x 2,000 genes, 8 types) and plants two things
whose truth is then known, using only binomial thinning (a count ``x`` becomes
``Binomial(x, p)``), so counts stay counts and every change is a known factor on the mean:

1. **Differential expression** (applied first). One cell type (``de_type``) is split at random
   into two halves, A and B, of one biological population: between them nothing differs but
   what is planted. ``n_de`` genes, drawn among those with a mean count in that type between
   ``de_min_mean`` and ``de_max_mean``, get a log2 fold change ``lfc`` (A over B) with
   ``|lfc| ~ U(lfc_range)``. A gene with ``lfc > 0`` is thinned in B's cells with
   ``p = 2**-lfc``; one with ``lfc < 0`` in A's cells with ``p = 2**lfc``. So
   ``E[x_A] / E[x_B] = 2**lfc`` exactly, and every other gene has a true fold change of 1
   (the null). The signs are not random but balanced (``balanced_signs``) so that A and B
   lose about the same number of counts: otherwise the null genes' shares of the library,
   which is what model-based DE compares, would differ between A and B (a first version with
   random signs and no cap on the mean cut B's libraries by a third).
2. **Batches**. Cells are split into ``len(batch_shares)`` batches at random, stratified by cell
   type (every batch holds every type in the same proportions). Batch ``b`` multiplies the mean
   of gene ``g`` by

       r[b, g] = library[b] * f[b, g] / max_b' f[b', g],    log f[b, g] ~ N(0, gene_sd**2)

   (a gene-wise log-normal factor, divided by its largest value over batches so that
   ``r <= 1``: dividing a whole gene by one constant is no batch effect), applied as
   ``Binomial(x, r[b, g])``; ``library[b]`` shifts the batch's library sizes. Then extra
   dropout: each entry of batch ``b`` is set to zero with probability ``dropout[b]``
   (so the mean falls by ``1 - dropout[b]`` too, and zeros rise more than a scaling would make).
3. **Held-out cells**: a share ``heldout`` of the cells (stratified by type and batch) that no
   model trains on, for the held-out marginal log-likelihood.
4. **Hidden labels**: the cell types of batch ``hidden_batch`` are replaced by ``"Unknown"``
   in ``cell_type_hidden`` (label transfer's input); ``cell_type`` keeps the truth.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Plan:
    """The simulator's settings (see the module docstring for the model)."""

    seed: int = 0
    batch_shares: tuple[float, ...] = (0.4, 0.35, 0.25)
    gene_sd: float = 0.5
    library: tuple[float, ...] = (1.0, 0.6, 0.8)
    dropout: tuple[float, ...] = (0.0, 0.1, 0.2)
    de_type: int = 1
    n_de: int = 100
    de_min_mean: float = 0.1
    de_max_mean: float = 2.0
    lfc_range: tuple[float, float] = (0.5, 2.0)
    heldout: float = 0.1
    hidden_batch: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Planted:
    """Planted counts and their truth; per-cell arrays are (n_cells,), per-gene (n_genes,)."""

    counts: np.ndarray  # (n_cells, n_genes) int32
    cell_type: np.ndarray  # str, "type1".."type8"
    batch: np.ndarray  # str, "batch0"..
    cell_type_hidden: np.ndarray  # str, cell_type with hidden_batch's cells "Unknown"
    de_group: np.ndarray  # str, "A" / "B" in de_type, "rest" elsewhere
    heldout: np.ndarray  # bool
    true_lfc: np.ndarray  # float, planted log2 fold change A over B (0 for null genes)
    batch_factor: np.ndarray  # (n_batches, n_genes) r[b, g], dropout not included
    plan: Plan = field(default_factory=Plan)

    @property
    def is_de(self) -> np.ndarray:
        return self.true_lfc != 0


def read_pbmc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(counts as int32 (cells, genes), 1-based integer cell types) of an scDCC-style .h5."""
    import h5py

    with h5py.File(path, "r") as f:
        X = np.asarray(f["X"][:])
        y = np.asarray(f["Y"][:]).astype(int)
    if not np.array_equal(X, np.round(X)) or X.min() < 0:
        raise ValueError(f"{path}: X holds non-counts; expected non-negative integers")
    return X.astype(np.int32), y


def stratified_split(strata: np.ndarray, shares: tuple[float, ...], rng) -> np.ndarray:
    """Part index (0..len(shares)-1) per cell, each stratum cut at the cumulative shares."""
    part = np.empty(len(strata), dtype=int)
    cuts = np.cumsum(shares) / np.sum(shares)
    for value in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == value))
        ends = np.round(cuts * len(idx)).astype(int)
        for p, (lo, hi) in enumerate(zip(np.r_[0, ends[:-1]], ends, strict=True)):
            part[idx[lo:hi]] = p
    return part


def plant_de(X: np.ndarray, y: np.ndarray, plan: Plan, rng) -> tuple[np.ndarray, np.ndarray]:
    """(de_group per cell, true log2 fold change per gene); thins X in place."""
    members = np.flatnonzero(y == plan.de_type)
    if len(members) < 20:
        raise ValueError(f"cell type {plan.de_type} has {len(members)} cells; pick a larger one")
    in_a = rng.permutation(len(members)) < len(members) // 2
    group = np.full(len(y), "rest", dtype=object)
    group[members[in_a]], group[members[~in_a]] = "A", "B"
    mean = X[members].mean(0)
    candidates = np.flatnonzero((mean >= plan.de_min_mean) & (mean <= plan.de_max_mean))
    genes = np.sort(rng.choice(candidates, size=min(plan.n_de, len(candidates)), replace=False))
    size = rng.uniform(*plan.lfc_range, size=len(genes))
    lfc = np.zeros(X.shape[1])
    lfc[genes] = size * balanced_signs(mean[genes] * (1 - 2.0**-size))
    for g in genes:
        # Thin the group that should be lower: B for an up gene, A for a down one.
        cells = members[~in_a] if lfc[g] > 0 else members[in_a]
        X[cells, g] = rng.binomial(X[cells, g], 2.0 ** -abs(lfc[g]))
    return group.astype(str), lfc


def balanced_signs(removed: np.ndarray) -> np.ndarray:
    """+1 / -1 per gene so that the counts thinned away from A and from B are about equal.

    Thinning takes ``removed[g]`` counts per cell from one group; were one group to lose more,
    every other gene's share of its library would rise, and the null genes would differ
    between A and B in normalised expression (what model-based DE compares). Greedy: the
    largest removals first, each to the group that has lost less so far.
    """
    signs, lost = np.zeros(len(removed)), {1: 0.0, -1: 0.0}  # +1 thins B, -1 thins A
    for g in np.argsort(-removed, kind="stable"):
        side = 1 if lost[1] <= lost[-1] else -1
        signs[g], lost[side] = side, lost[side] + removed[g]
    return signs


def plant_batches(X: np.ndarray, batch: np.ndarray, plan: Plan, rng) -> np.ndarray:
    """The factors r[b, g]; thins X in place by them, then drops entries at dropout[b]."""
    n_batches = len(plan.batch_shares)
    f = np.exp(rng.normal(0.0, plan.gene_sd, size=(n_batches, X.shape[1])))
    r = np.asarray(plan.library)[:, None] * f / f.max(0, keepdims=True)
    for b in range(n_batches):
        rows = batch == b
        X[rows] = rng.binomial(X[rows], r[b])
        X[rows] *= rng.random(X[rows].shape) >= plan.dropout[b]
    return r


def simulate(X: np.ndarray, y: np.ndarray, plan: Plan = Plan()) -> Planted:
    """Plant DE genes and batch effects in counts ``X`` of cell types ``y`` (see module doc)."""
    if not len(plan.library) == len(plan.dropout) == len(plan.batch_shares):
        raise ValueError("batch_shares, library and dropout need one entry per batch")
    rng = np.random.default_rng(plan.seed)
    X = np.array(X, dtype=np.int64)
    de_group, lfc = plant_de(X, y, plan, rng)
    batch = stratified_split(y, plan.batch_shares, rng)
    r = plant_batches(X, batch, plan, rng)
    heldout = stratified_split(y * 100 + batch, (1 - plan.heldout, plan.heldout), rng) == 1
    cell_type = np.array([f"type{t}" for t in y])
    hidden = np.where(batch == plan.hidden_batch, UNKNOWN, cell_type)
    return Planted(
        counts=X.astype(np.int32),
        cell_type=cell_type,
        batch=np.array([f"batch{b}" for b in batch]),
        cell_type_hidden=hidden,
        de_group=de_group,
        heldout=heldout,
        true_lfc=lfc,
        batch_factor=r,
        plan=plan,
    )


def to_anndata(planted: Planted, rows: np.ndarray):
    """An AnnData of the cells ``rows`` (CSR float32 counts; obs and var carry the truth)."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    n_genes = planted.counts.shape[1]
    obs = pd.DataFrame(
        {
            "batch": planted.batch[rows],
            "cell_type": planted.cell_type[rows],
            "cell_type_hidden": planted.cell_type_hidden[rows],
            "de_group": planted.de_group[rows],
        },
        index=[f"cell{i}" for i in np.flatnonzero(rows)],
    ).astype("category")
    var = pd.DataFrame(
        {"planted_log2fc": planted.true_lfc, "is_de": planted.is_de},
        index=[f"gene{g}" for g in range(n_genes)],
    )
    X = sp.csr_matrix(planted.counts[rows].astype(np.float32))
    return anndata.AnnData(X=X, obs=obs, var=var)
