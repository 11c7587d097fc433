"""Gene-set reading and over-representation, checked against Fisher's exact test and by hand."""

from __future__ import annotations

import gzip
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vaekit.analysis import genesets
from vaekit.analysis.genesets import enrichment, gene_symbol, read_gmt, sex_chromosome_genes

GMT = (
    "HALLMARK_A\tfirst set\tTP53\t MYC \tTP53\t\tEGFR\n"
    "\n"
    "SET_B\thttp://example.org/b\tXIST|7503\tRPS4Y1\n"
)
PARSED = {"HALLMARK_A": ["TP53", "MYC", "EGFR"], "SET_B": ["XIST|7503", "RPS4Y1"]}
UNIVERSE = [f"G{i}" for i in range(20)]


def test_read_gmt_round_trip(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_text(GMT)
    assert read_gmt(path) == PARSED
    assert read_gmt(str(path)) == PARSED


def test_read_gmt_gz(tmp_path):
    path = tmp_path / "sets.gmt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(GMT)
    assert read_gmt(path) == PARSED


def test_read_gmt_short_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.gmt"
    path.write_text("A\tdesc\tTP53\n\nB only-two-fields\tdesc\n")
    with pytest.raises(ValueError, match=r"bad\.gmt, line 3: found 2 tab-separated"):
        read_gmt(path)


def test_read_gmt_duplicate_name(tmp_path):
    path = tmp_path / "dup.gmt"
    path.write_text("A\tdesc\tTP53\nB\tdesc\tMYC\nA\tdesc\tEGFR\n")
    with pytest.raises(ValueError, match=r"dup\.gmt, line 3: gene set 'A' is already defined"):
        read_gmt(path)


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("XIST|7503", "XIST"),
        ("LOC729991-MEF2B|4207", "LOC729991-MEF2B"),
        ("?|100130426", "?|100130426"),
        ("RPS4Y1", "RPS4Y1"),
        ("ENSG00000229807", "ENSG00000229807"),
        ("A|B", "A|B"),
    ],
)
def test_gene_symbol(name, symbol):
    assert gene_symbol(name) == symbol


def test_p_values_match_fisher_exact():
    rng = np.random.default_rng(0)
    universe = [f"g{i}|{i}" for i in range(300)]  # TCGA-style names on the universe side only
    symbols = [f"g{i}" for i in range(300)]
    sizes = rng.integers(5, 60, size=6)
    sets = {
        f"set{j}": list(rng.choice(symbols, size=s, replace=False)) for j, s in enumerate(sizes)
    }
    selected = {f"sel{j}": list(rng.choice(symbols, size=25, replace=False)) for j in range(3)}
    table = enrichment(selected, sets, universe)
    assert len(table) > 0
    for row in table.itertuples():
        k, N, n, M = row.overlap, row.selected, row.set_size, row.universe
        counts = [[k, N - k], [n - k, M - n - N + k]]  # selected / not, in set / not
        _, p_fisher = stats.fisher_exact(counts, alternative="greater")
        assert row.p == pytest.approx(p_fisher, rel=1e-9)
        assert row.fold == pytest.approx((k / N) / (n / M))
        assert k == len(set(selected[row.selection]) & set(sets[row.gene_set]))
    assert (table["universe"] == 300).all()


def test_small_case_by_hand():
    sets = {"A": ["G0", "G1", "G2", "G3"]}
    table = enrichment({"all": ["G0", "G1", "G2"], "two": ["G3", "G0", "G15"]}, sets, UNIVERSE)
    rows = table.set_index("selection")
    # P(X >= 3), M=20, n=4, N=3: only the draw of 3 from A's 4 genes.
    assert rows.loc["all", "p"] == pytest.approx(comb(4, 3) / comb(20, 3))
    # P(X >= 2) = [C(4,2) C(16,1) + C(4,3)] / C(20,3)
    assert rows.loc["two", "p"] == pytest.approx((6 * 16 + 4) / comb(20, 3))
    assert rows.loc["two", "fold"] == pytest.approx((2 / 3) / (4 / 20))
    assert rows.loc["two", "genes"] == "G3,G0"  # selection order


def test_benjamini_hochberg_by_hand():
    sets = {"A": UNIVERSE[0:4], "B": UNIVERSE[4:9], "C": UNIVERSE[9:15], "D": UNIVERSE[15:18]}
    table = enrichment({"s": ["G0", "G1", "G4", "G5", "G9"]}, sets, UNIVERSE)
    total = comb(20, 5)
    p = {
        "A": 1 - (comb(16, 5) + 4 * comb(16, 4)) / total,  # k=2 of n=4
        "B": 1 - (comb(15, 5) + 5 * comb(15, 4)) / total,  # k=2 of n=5
        "C": 1 - comb(14, 5) / total,  # k=1 of n=6
    }
    # D shares no gene, so it is not tested: m = 3. Step-up: q_(i) = min_{j>=i} p_(j) m / j.
    q_c = p["C"] * 3 / 3
    q_b = min(p["B"] * 3 / 2, q_c)
    q_a = min(p["A"] * 3 / 1, q_b)
    assert list(table["gene_set"]) == ["A", "B", "C"]
    assert table["p"].tolist() == pytest.approx([p["A"], p["B"], p["C"]])
    assert table["q"].tolist() == pytest.approx([q_a, q_b, q_c])
    assert q_a == q_b < p["A"] * 3  # the step-up minimum is what makes these equal


def test_sets_restricted_to_universe_and_min_size():
    sets = {"partly_outside": ["G0|1", "G1", "OUT1", "OUT2", "OUT3"], "inside": UNIVERSE[:3]}
    kept = enrichment({"s": ["G0"]}, sets, UNIVERSE, min_size=2).set_index("gene_set")
    assert kept.loc["partly_outside", "set_size"] == 2
    assert kept.loc["partly_outside", "p"] == pytest.approx(2 / 20)
    dropped = enrichment({"s": ["G0"]}, sets, UNIVERSE, min_size=3)
    assert dropped["gene_set"].tolist() == ["inside"]


def test_gmt_path_gives_same_result(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_text("A\tdesc\tG0\tG1\tG2\tG3\nB\tdesc\tG4\tG5\tG6\n")
    selected = {"s": ["G0", "G1", "G4"]}
    from_file = enrichment(selected, path, UNIVERSE)
    from_mapping = enrichment(selected, {"A": UNIVERSE[:4], "B": UNIVERSE[4:7]}, UNIVERSE)
    pd.testing.assert_frame_equal(from_file, from_mapping)


def test_no_overlap_gives_empty_frame_with_columns():
    table = enrichment({"s": ["G19"]}, {"A": UNIVERSE[:4]}, UNIVERSE)
    assert table.empty
    assert list(table.columns) == genesets.COLUMNS


def test_empty_universe_is_an_error():
    with pytest.raises(ValueError, match="universe is empty"):
        enrichment({"s": []}, {"A": ["G0"]}, [])


def test_selected_genes_outside_universe_are_named():
    with pytest.raises(ValueError, match=r"selection 'top': 2 of 3 gene\(s\).*NOPE1, NOPE2"):
        enrichment({"top": ["G0", "NOPE1", "NOPE2|7"]}, {"A": UNIVERSE[:4]}, UNIVERSE)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_size"):
        enrichment({"s": ["G0"]}, {"A": UNIVERSE[:4]}, UNIVERSE, min_size=0)
    with pytest.raises(TypeError, match="single string"):
        enrichment({"s": ["G0"]}, {"A": UNIVERSE[:4]}, "G0")
    with pytest.warns(UserWarning, match="no gene of any gene set"):
        enrichment({"s": ["G0"]}, {"A": ["ENSG1", "ENSG2", "ENSG3"]}, UNIVERSE)


def test_builtin_sex_chromosome_sets():
    sets = sex_chromosome_genes()
    assert set(sets) == {"chrY", "chrX_sex_biased"}
    assert "XIST" in sets["chrX_sex_biased"]
    assert {"RPS4Y1", "DDX3Y", "KDM5D", "UTY", "EIF1AY", "ZFY"} <= set(sets["chrY"])
    assert {"CYorf15A", "CYorf15B", "TXLNGY", "NCRNA00185", "TTTY14", "TTTY15"} <= set(sets["chrY"])
    assert not set(sets["chrY"]) & set(sets["chrX_sex_biased"])
    assert not {"CD99", "SHOX", "CSF2RA", "IL3RA"} & set(sets["chrY"] + sets["chrX_sex_biased"])
    sets["chrY"].clear()  # callers get copies
    assert "ZFY" in sex_chromosome_genes()["chrY"]
    assert genesets.SEX_CHROMOSOME_GENES == sex_chromosome_genes()


def test_builtin_sets_find_a_sex_selection():
    universe = sorted({*sex_chromosome_genes()["chrY"], *UNIVERSE})
    top = {"feature 0 +": ["RPS4Y1|6192", "DDX3Y|8653", "KDM5D|8284", "G3"]}
    table = enrichment(top, sex_chromosome_genes(), universe)
    assert table.loc[0, "gene_set"] == "chrY"
    assert table.loc[0, "genes"] == "RPS4Y1,DDX3Y,KDM5D"
