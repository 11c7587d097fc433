"""vaekit.analysis.disentanglement against known answers: identity codes, a maximally mixing
rotation, pure noise, and small cases computed by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from vaekit.analysis import disentanglement
from vaekit.analysis._factors import BINS, histogram_bins
from vaekit.analysis.disentanglement_metrics import (
    dci_scores,
    gap_score,
    mig_score,
    mutual_information,
)

SCORES = [
    "mig",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "sap",
    "factorvae_score",
    "betavae_score",
]


def grid(levels: tuple[int, ...], repeat: int = 1) -> pd.DataFrame:
    """A full factorial design, each combination ``repeat`` times: on it the factors are
    exactly independent in the empirical distribution (their plug-in MI is 0 exactly)."""
    rows = np.array(list(itertools.product(*(range(k) for k in levels))), dtype=np.float64)
    return pd.DataFrame(
        np.repeat(rows, repeat, axis=0), columns=[f"f{i}" for i in range(len(levels))]
    )


def standard(a: np.ndarray) -> np.ndarray:
    return (a - a.mean(0)) / a.std(0)


@pytest.fixture(scope="module")
def factors() -> pd.DataFrame:
    return grid((3, 4, 5, 6), repeat=4)  # 1440 rows, all used by every metric (under the caps)


@pytest.fixture(scope="module")
def identity(factors: pd.DataFrame) -> dict:
    return disentanglement(standard(factors.to_numpy()), factors)


def test_identity_scores_one(identity: dict, factors: pd.DataFrame) -> None:
    # MIG: each code bins like its factor (distinct levels fall in distinct bins of 20), and on
    # the full grid every other code is exactly independent of it: the gap is H / H = 1
    assert identity["mig"] == pytest.approx(1.0, abs=1e-12)
    # DCI: a factor equal to one code is split on that code alone, so every tree's impurity
    # decrease, and hence the importance, sits on it
    assert identity["dci_disentanglement"] == pytest.approx(1.0, abs=1e-9)
    assert identity["dci_completeness"] == pytest.approx(1.0, abs=1e-9)
    assert identity["dci_informativeness"] == pytest.approx(1.0, abs=1e-12)
    # FactorVAE: fixing factor j zeroes the variance of code j alone (other codes vary in
    # 64 draws except with probability < 2 * (1/2)**63); beta-VAE: code j's difference is 0
    # exactly and the others' mean differences are far from 0, a separable problem
    assert identity["factorvae_score"] == pytest.approx(1.0, abs=1e-12)
    assert identity["betavae_score"] >= 0.99
    detail = identity["detail"]["factors"]
    assert [d["feature"] for d in detail] == [0, 1, 2, 3]
    assert [d["bins"] for d in detail] == [3, 4, 5, 6]
    assert all(d["kind"] == "discrete" for d in detail)


def test_identity_sap_binary_factors() -> None:
    # SAP with classification (disentanglement_lib: a linear SVM on one code, balanced): on
    # two-level factors the own code classifies perfectly and an independent code at best
    # as a majority guess, 1/2 plus the noise of a held-out accuracy on n/3 rows (5 standard
    # errors). With more levels a one-vs-rest linear rule on one code cannot isolate the
    # middle levels, so identity codes score below 1 there (as in disentanglement_lib).
    f = grid((2, 2, 2), repeat=100)
    result = disentanglement(standard(f.to_numpy()), f)
    scores = result["detail"]["sap_scores"]  # (factors, codes)
    assert np.diag(scores) == pytest.approx(1.0, abs=1e-12)
    off = scores[~np.eye(3, dtype=bool)].reshape(3, 2).max(1)
    assert np.all(off <= 0.5 + 5 * math.sqrt(0.25 / (len(f) // 3)))
    assert result["sap"] == pytest.approx(np.mean(1 - off), abs=1e-12)


def test_identity_sap_puts_each_factor_on_its_code(identity: dict) -> None:
    scores = identity["detail"]["sap_scores"]
    assert list(np.argmax(scores, axis=1)) == [0, 1, 2, 3]


def test_continuous_identity_sap_and_mig_near_one() -> None:
    # two continuous factors of 40 levels (over 20: binned) on a full grid; SAP scores by
    # squared correlation on the 2/3 training rows, where an independent code's r^2 is
    # chi2(1) / n: below 25 / n except with probability 6e-7
    values = grid((40, 40)).to_numpy() / 39.0
    result = disentanglement(values, values)
    n_train = len(values) - len(values) // 3
    assert [d["kind"] for d in result["detail"]["factors"]] == ["continuous"] * 2
    assert result["sap"] >= 1 - 25 / n_train
    assert result["mig"] == pytest.approx(1.0, abs=1e-12)
    assert result["dci_informativeness"] > 0.99  # held-out R^2 of a forest on x itself


def test_mixing_rotation_scores_low(factors: pd.DataFrame) -> None:
    # every code is (+-f0 +- f1 +- f2 +- f3) / 2 (a Hadamard rotation): each factor is shared
    # equally by all codes, so the gaps and the DCI entropies' complements are 0 in
    # expectation; what remains is estimation noise
    h = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    result = disentanglement(standard(factors.to_numpy()) @ h, factors)
    assert result["mig"] < 0.1
    assert result["sap"] < 0.1
    assert result["dci_disentanglement"] < 0.3
    assert result["dci_completeness"] < 0.3


def test_noise_scores_near_zero(factors: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    n = len(factors)
    result = disentanglement(rng.normal(size=(n, 4)), factors)
    # plug-in MI of independent variables has mean (B - 1)(K - 1) / 2n; 5 times that over the
    # smallest entropy (ln 3) bounds the gap
    assert result["mig"] < 5 * (BINS - 1) * 5 / (2 * n) / math.log(3)
    # accuracies near 1/K on 480 held-out rows: gaps within 5 standard errors
    assert result["sap"] < 5 * math.sqrt(0.25 / 480)
    assert result["dci_disentanglement"] < 0.1
    assert result["dci_completeness"] < 0.1
    # the FactorVAE and beta-VAE classifiers guess among 4 factors: 1/4 on 5000 held-out
    # votes, within 5 standard errors
    se = math.sqrt(0.25 * 0.75 / 5000)
    assert abs(result["factorvae_score"] - 0.25) < 5 * se + 0.02  # + the 4 dims' vote bias
    assert abs(result["betavae_score"] - 0.25) < 5 * se + 0.02


def test_mig_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    good, partial = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    mi = mutual_information(np.column_stack([good, partial]), y[:, None])
    h = math.log(2)
    # I(y; partial) = H(partial) - H(partial | y) = H(1/4, 3/4) - (1/2) ln 2
    i_partial = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) - 0.5 * math.log(2)
    assert mi[0] == pytest.approx([h, i_partial], abs=1e-12)
    gaps, mig = mig_score(mi, np.array([h]))
    assert mig == pytest.approx((h - i_partial) / h, abs=1e-12)
    # the same through the public function, on 25 copies of the table (all rows used)
    result = disentanglement(np.tile(np.column_stack([good, partial]), (25, 1)), np.tile(y, 25))
    assert result["mig"] == pytest.approx((h - i_partial) / h, abs=1e-12)


def test_sap_by_hand() -> None:
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.7]])  # factors x codes
    assert gap_score(scores) == pytest.approx((0.4 + 0.1) / 2, abs=1e-15)


def test_dci_by_hand() -> None:
    assert dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0), abs=1e-12)
    # every code split 3:1 between two factors: 1 - H2(3/4, 1/4) each, weights equal
    r = np.array([[0.75, 0.25], [0.25, 0.75]])
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert dci_scores(r) == pytest.approx((1 - h, 1 - h), abs=1e-12)
    # one factor carried by two codes equally: disentangled codes, incomplete factor
    d, c = dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert (d, c) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_histogram_bins_partition_the_range() -> None:
    x = np.linspace(0, 1, 101)
    bins = histogram_bins(x)
    assert bins.min() == 0 and bins.max() == BINS - 1
    assert np.all(np.diff(bins) >= 0)
    assert np.bincount(bins).sum() == 101


def test_deterministic_given_the_seed(factors: pd.DataFrame) -> None:
    z = np.random.default_rng(2).normal(size=(len(factors), 3))
    a, b = (disentanglement(z, factors, seed=5, n_samples=300) for _ in range(2))
    assert [a[k] for k in SCORES] == [b[k] for k in SCORES]
    assert a["detail"]["seed"] == 5
    assert a["detail"]["samples"]["factorvae"] == (300, 150)


@pytest.mark.parametrize(
    ("z", "f", "kwargs", "match"),
    [
        (np.zeros((10, 2)), np.zeros((9, 1)), {}, "factors have 9 rows and Z has 10"),
        (np.full((4, 2), np.nan), np.arange(4), {}, "Z has 8 missing"),
        (np.ones((4, 1)), np.arange(4), {}, "at least 2 rows and 2"),
        (np.ones((4, 2)), np.array([0, 1, np.nan, 1]), {}, "factor 'factor_0' has 1 missing"),
        (np.ones((4, 2)), np.ones(4), {}, "takes one value"),
        (np.ones((3, 2)), pd.DataFrame({"cell": ["a", "b", "c"]}), {}, "'cell' is not numeric"),
        (np.ones((3, 2)), np.arange(3), {"discrete": [True, False]}, "one True/False per"),
        (np.ones((3, 2)), np.arange(3), {"n_samples": 1}, "n_samples must be"),
        ([["a", "b"], ["c", "d"]], np.arange(2), {}, "Z must hold numbers"),
        (np.ones((2, 2)), pd.DataFrame([[0, 1], [1, 0]], columns=["a", "a"]), {}, "twice: 'a'"),
    ],
)
def test_bad_inputs(z, f, kwargs, match) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        disentanglement(z, f, **kwargs)


def test_cli_factors_are_matched_by_sample_id(tmp_path) -> None:  # noqa: ANN001
    from vaekit.cli.factors import read_factors

    ids = pd.Index([f"s{i}" for i in range(6)])
    table = pd.DataFrame({"sample": ids[::-1], "shape": np.arange(6)[::-1], "size": 0.5 * ids.size})
    table.to_csv(tmp_path / "factors.tsv", sep="\t", index=False)
    factors = read_factors(tmp_path / "factors.tsv", ids)
    assert list(factors.index) == list(ids)
    assert list(factors["shape"]) == list(range(6))  # reversed file, rows back in data order


# ----------------------------------------------------------------------------- figure, report
def test_factor_heatmap_rows_are_factors_and_carriers_come_first(identity: dict) -> None:
    from vaekit.plot import factor_heatmap

    for matrix in ("mutual_information", "importance"):
        ax = factor_heatmap(identity, matrix).axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["z0", "z1", "z2", "z3"]
        assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == [
            "f0",
            "f1",
            "f2",
            "f3",
        ]
    with pytest.raises(ValueError, match="matrix must be one of"):
        factor_heatmap(identity, "sap")


def test_report_shows_the_factors_section_only_when_given() -> None:
    import vaekit
    from vaekit.report import build_report

    f = grid((3, 4), repeat=20)  # 240 samples
    rng = np.random.default_rng(0)
    X = np.column_stack([f.to_numpy() @ rng.normal(size=(2, 6)), rng.normal(size=(len(f), 2))])
    model = vaekit.VAE(n_latent=2, hidden=(8,), epochs=2, seed=0, verbose=False).fit(X)
    with_factors = build_report(model, X, importance_samples=0, factors=f)
    keys = [s.key for s in with_factors.sections]
    assert "factors" in keys
    section = with_factors.sections[keys.index("factors")]
    assert len(section.panels) == 2 and not section.notes
    assert set(with_factors.numbers["disentanglement"]) == set(SCORES)
    assert "factors" not in [s.key for s in build_report(model, X, importance_samples=0).sections]
    with pytest.raises(ValueError, match="factors have 3 rows"):
        build_report(model, X, factors=f.iloc[:3])
    # annotations get the same heatmap, in the section on what the features mean
    annotated = build_report(model, X, importance_samples=0, annotations=f.astype(str))
    meaning = next(s for s in annotated.sections if s.key == "meaning")
    assert "Which feature carries each annotation" in [p.title for p in meaning.panels]


def test_the_function_is_not_hidden_by_its_module() -> None:
    import importlib

    import vaekit.analysis

    importlib.import_module("vaekit.analysis.disentanglement_metrics")  # sets its attribute
    assert callable(vaekit.analysis.disentanglement)


# ----------------------------------------------------------------------------- annotations
def test_annotation_carriers_by_hand() -> None:
    from vaekit.analysis.carriers import annotation_carriers, carriers_table

    rng = np.random.default_rng(3)
    n = 600
    cell = rng.choice(["B", "T", "NK"], n)
    codes = pd.Series(cell).map({"B": 0.0, "NK": 1.0, "T": 2.0}).to_numpy()
    Z = np.column_stack([rng.normal(size=n), codes])
    age = rng.uniform(20, 80, n)
    age[:10] = np.nan  # left out for this column only
    annotations = pd.DataFrame({"cell": cell, "age": age, "id": [f"p{i}" for i in range(n)]})
    genes = pd.DataFrame([[0.1, -0.2, 0.0], [0.5, -2.0, 1.0]], columns=["A|1", "B|2", "C|3"])
    found = annotation_carriers(Z, annotations, loadings=genes, k=2)
    detail = found["detail"]
    assert detail["skipped"].keys() == {"id"}  # an identifier, as associate() skips it
    cell_row, age_row = detail["factors"]
    # z1 takes one value per cell type: I(cell; z1) = H(cell), normalised 1; z0 is noise,
    # whose plug-in MI is about (20 - 1)(3 - 1) / 2n nats (5 times that bounds it)
    assert cell_row["feature"] == 1 and cell_row["kind"] == "discrete" and cell_row["bins"] == 3
    assert cell_row["mutual_information"] == pytest.approx(1.0, abs=1e-12)
    h = -sum(p * math.log(p) for p in pd.Series(cell).value_counts(normalize=True))
    assert cell_row["gap"] >= 1 - 5 * 19 * 2 / (2 * n) / h
    assert cell_row["genes"] == [("B|2", -2.0), ("C|3", 1.0)]  # heaviest of feature 1
    assert age_row["n"] == n - 10 and age_row["kind"] == "continuous"
    table = carriers_table(found)
    assert list(table["annotation"]) == ["cell", "age"]
    assert table["genes"].iloc[0] == "B (-), C (+)"


def test_interpret_writes_the_carriers(tmp_path) -> None:  # noqa: ANN001
    import vaekit
    from vaekit.analysis.findings import interpret

    rng = np.random.default_rng(0)
    n = 200
    group = rng.choice(["x", "y"], n)
    X = rng.normal(size=(n, 6)) + 3.0 * (group == "y")[:, None] * np.array([1, 1, 0, 0, 0, 0])
    X = pd.DataFrame(X, columns=[f"g{j}" for j in range(6)], index=[f"s{i}" for i in range(n)])
    model = vaekit.VAE(n_latent=2, hidden=(8,), epochs=3, seed=0, verbose=False).fit(X)
    annotations = pd.DataFrame({"group": group}, index=X.index)[::-1]  # matched by sample ID
    result = interpret(model, X, annotations, k=3)
    assert list(result.carriers["annotation"]) == ["group"]
    assert "## Which feature carries each annotation" in result.summary()
    result.write(tmp_path / "out")
    assert (tmp_path / "out" / "carriers.tsv").is_file()
