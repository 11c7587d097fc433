"""`interpret` and `vaekit interpret` on expression data with a planted sex factor: the summary
must name the feature, its statistic and the sex-chromosome genes, as a finding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_cli import assert_user_error, cli

import vaekit
from vaekit.analysis.findings import interpret

SEX_GENES = ["XIST|7503", "TSIX|9383", "RPS4Y1|6192", "DDX3Y|8653", "KDM5D|8284", "UTY|7404"]


@pytest.fixture(scope="module")
def expression(tmp_path_factory):
    """400 samples x 60 genes: a cohort factor on six genes, a sex factor on six sex-chromosome
    genes (XIST, TSIX up in women; Y genes up in men), and noise; with an annotation table."""
    rng = np.random.default_rng(0)
    n = 400
    sex = rng.choice(["female", "male"], n)
    cohort = rng.choice(["ACC", "UVM", "STAD"], n)
    male = (sex == "male").astype(float)
    X = rng.normal(size=(n, 60))
    X[:, :2] += 3 * (1 - male)[:, None]
    X[:, 2:6] += 3 * male[:, None]
    X[:, 10:16] += 3 * (cohort == "UVM")[:, None]
    genes = SEX_GENES + [f"GENE{i}|{1000 + i}" for i in range(54)]
    samples = [f"TCGA-{i:04d}" for i in range(n)]
    folder = tmp_path_factory.mktemp("expression")
    pd.DataFrame(X, index=pd.Index(samples, name="sample"), columns=genes).to_csv(
        folder / "expr.tsv", sep="\t"
    )
    phenotypes = pd.DataFrame(
        {
            "sample": samples,
            "patient": samples,
            "gender": sex,
            "cohort": cohort,
            "age": rng.uniform(30, 80, n),
        }  # fmt: skip
    )
    phenotypes.to_csv(folder / "phenotypes.tsv", sep="\t", index=False)
    return folder


@pytest.fixture(scope="module")
def model(expression):
    adata = vaekit.read(expression / "expr.tsv")
    model = vaekit.VAE(n_latent=4, hidden=(32,), epochs=80, lr=3e-3, seed=0, verbose=False)
    return model.fit(adata)


def test_interpret_states_the_sex_feature_and_its_genes(expression, model) -> None:
    adata = vaekit.read(expression / "expr.tsv", annotations=expression / "phenotypes.tsv")
    result = interpret(model, adata, k=5)
    gender = result.associations.query("annotation == 'gender'").iloc[0]
    assert max(gender.auroc, 1 - gender.auroc) > 0.95 and gender.q < 1e-20
    summary = result.summary()
    assert f"feature {int(gender.feature)} separates gender (AUROC" in summary
    line = next(s for s in summary.splitlines() if "separates gender" in s)
    heaviest = line.split("heaviest genes: ")[1]
    assert all(g in heaviest for g in ("XIST (", "RPS4Y1 (", "DDX3Y (")), line
    assert "|" not in heaviest  # symbols, not SYMBOL|Entrez
    assert "patient: not tested" in summary  # an ID column
    assert "age: no latent feature tracks it" in summary
    assert result.enrichment is not None and "chrY" in set(result.enrichment.gene_set)


def test_cli_interpret_writes_its_tables_and_summary(expression, model, tmp_path, capsys):
    model.save(tmp_path / "model")
    out = tmp_path / "interpretation"
    code, stdout, err = cli(
        capsys, "interpret", tmp_path / "model", expression / "expr.tsv",
        "--annotations", expression / "phenotypes.tsv", "-o", out, "--top", "5", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "separates gender" in stdout
    names = {"loadings.tsv", "top_genes.tsv", "associations.tsv", "enrichment.tsv", "summary.md"}
    assert {p.name for p in out.iterdir()} == names | {"carriers.tsv"}
    carriers = pd.read_csv(out / "carriers.tsv", sep="\t").set_index("annotation")
    assert any(g in carriers.loc["gender", "genes"] for g in ("XIST (", "RPS4Y1 (", "DDX3Y ("))
    loadings = pd.read_csv(out / "loadings.tsv", sep="\t", index_col=0)
    assert loadings.shape == (4, 60)
    top = pd.read_csv(out / "top_genes.tsv", sep="\t")
    assert len(top) == 4 * 2 * 5
    assert (out / "summary.md").read_text().startswith("# What the latent features mean")


def test_cli_interpret_without_annotations_and_with_a_gene_set_file(expression, model, tmp_path,
                                                                    capsys):  # fmt: skip
    model.save(tmp_path / "model")
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("COHORT_GENES\ttest\t" + "\t".join(f"GENE{i}" for i in range(4, 14)) + "\n")
    out = tmp_path / "plain"
    code, stdout, err = cli(
        capsys, "interpret", tmp_path / "model", expression / "expr.tsv", "-o", out,
        "--gene-sets", gmt, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "No sample annotations were given" in stdout
    assert not (out / "associations.tsv").exists()
    enrichment = pd.read_csv(out / "enrichment.tsv", sep="\t")
    assert "COHORT_GENES" in set(enrichment.gene_set)


def test_cli_interpret_bad_input(expression, model, tmp_path, capsys):
    model.save(tmp_path / "model")
    bad = tmp_path / "bad.gmt"
    bad.write_text("ONLY_A_NAME\n")
    assert_user_error(
        cli(
            capsys,
            "interpret",
            tmp_path / "model",
            expression / "expr.tsv",
            "-o",
            tmp_path / "x",
            "--gene-sets",
            bad,
        ),  # fmt: skip
        "line 1",
    )
    assert not (tmp_path / "x").exists()
    other = pd.DataFrame(np.ones((3, 5)), columns=[f"G{i}" for i in range(5)])
    other.to_csv(tmp_path / "other.csv")
    assert_user_error(
        cli(capsys, "interpret", tmp_path / "model", tmp_path / "other.csv", "-o", tmp_path / "y"),
        "feature",
    )
