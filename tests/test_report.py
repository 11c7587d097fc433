"""vaekit.report and `vaekit report`: the page holds the model's numbers (recomputed here from the
validation rows that training held out and the model stored), the figures that apply to its
data, nothing external, and is written atomically."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_cli import assert_user_error, cli, main_args
from test_plot import Calibration

import vaekit
from vaekit.analysis import evaluate
from vaekit.report import Report, build_report, write_report

PNG = "data:image/png;base64,"


class Page(HTMLParser):
    """The tags, the attributes that point anywhere, the images and the summary rows of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.figures: list[str] = []
        self.summary: dict[str, str] = {}
        self._row: str | None = None
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [a[k] for k in ("src", "href") if k in a and tag != "img"]
        if tag == "img":
            self.images.append(a["src"])
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "tr" and "data-key" in a:
            self._row = a["data-key"]
            self.summary[self._row] = ""
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._in in ("td", "code"):
            self.summary[self._row] += data
        if self._in == "strong":
            self.figures.append(data.rstrip("."))


def read_page(path: Path) -> Page:
    """Parse a report and check it is self-contained: no scripts, style sheets, frames or
    addresses, only in-page links, and every image an embedded PNG that decodes."""
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert not page.tags & {"script", "link", "iframe", "object", "embed", "base"}
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)  # base64 holds '//'
    assert re.search(r"(https?:)?//[a-z]", words, re.IGNORECASE) is None
    assert "url(" not in words and "@import" not in words
    assert all(link.startswith("#") for link in page.links), page.links
    assert page.images, "no figures"
    for src in page.images:
        assert src.startswith(PNG)
        with Image.open(io.BytesIO(base64.b64decode(src[len(PNG) :]))) as image:
            assert image.format == "PNG" and min(image.size) > 50
    return page


def validation_rows(model: vaekit.VAE, n: int) -> np.ndarray:
    """The rows training held out, as the model stores them (tests/test_held_out.py checks
    that they are the rows training never saw)."""
    assert len(model.validation_rows_) == int(n * model.settings_["validation_fraction"])
    return model.validation_rows_


# ----------------------------------------------------------------------------- data and models
@pytest.fixture(scope="module")
def image_model(digits):
    return vaekit.VAE(
        n_latent=4,
        hidden=(64,),
        likelihood="bernoulli",
        epochs=12,
        lr=3e-3,
        image_shape=(8, 8),
        architecture="mlp",
        seed=3,
        verbose=False,
    ).fit(digits[0])


@pytest.fixture(scope="module")
def expression(tmp_path_factory):
    """300 samples x 40 genes with a planted sex factor on sex-chromosome genes, written as a
    table and an annotation table (with an ID column and an age)."""
    rng = np.random.default_rng(0)
    n = 300
    sex = rng.choice(["female", "male"], n)
    male = (sex == "male").astype(float)
    X = rng.lognormal(1.0, 0.4, size=(n, 40))
    X[:, :2] *= np.exp(2 * (1 - male))[:, None]  # XIST, TSIX up in women
    X[:, 2:5] *= np.exp(2 * male)[:, None]  # Y genes up in men
    genes = ["XIST|7503", "TSIX|9383", "RPS4Y1|6192", "DDX3Y|8653", "UTY|7404"]
    genes += [f"GENE{i}|{1000 + i}" for i in range(35)]
    samples = pd.Index([f"TCGA-{i:04d}" for i in range(n)], name="sample")
    folder = tmp_path_factory.mktemp("expression")
    pd.DataFrame(X, index=samples, columns=genes).to_csv(folder / "expr.tsv", sep="\t")
    phenotypes = pd.DataFrame(
        {"sample": samples, "patient": samples, "gender": sex, "age": rng.uniform(30, 80, n)}
    )
    phenotypes.to_csv(folder / "pheno.tsv", sep="\t", index=False)
    return folder


@pytest.fixture(scope="module")
def cli_model(expression, tmp_path_factory):
    """A model trained by `vaekit train`, which records its command and the data's shape."""
    out = tmp_path_factory.mktemp("models") / "expr_model"
    args = ["train", expression / "expr.tsv", "-o", out, "--latent", "3", "--hidden", "16"]
    args += ["--log1p", "--scale", "zscore", "--epochs", "40", "--lr", "0.003", "--seed", "5"]
    assert main_args([*args, "--quiet"]) == 0
    return out


# ----------------------------------------------------------------------------- image model
def test_image_report_holds_the_numbers_of_the_validation_rows(image_model, digits, tmp_path):
    X_train = digits[0]
    report = build_report(image_model, X_train, training_data=True, importance_samples=50)
    path = report.write(tmp_path / "digits.html")
    page = read_page(path)
    rows = validation_rows(image_model, len(X_train))
    elbo = image_model.score_samples(X_train[rows]).mean()
    log_px = image_model.log_likelihood(X_train[rows], n_draws=50).mean()
    assert report.numbers["elbo"] == pytest.approx(elbo, abs=1e-9)
    assert report.numbers["log_likelihood"] == pytest.approx(log_px, abs=1e-9)
    assert page.summary["elbo"].startswith(f"{elbo:.2f} nats per sample")
    assert page.summary["log_likelihood"] == f"{log_px:.2f} nats per sample"
    assert f"the {len(rows)} validation samples" in page.summary["evaluated_on"]
    history = image_model.history_
    assert page.summary["epochs"] == f"{len(history)} / {image_model.best_epoch_}"
    assert (
        page.summary["data"] == f"{len(X_train):,} samples \u00d7 64 features (images 8 \u00d7 8)"
    )
    assert page.summary["trained_by"] == "Python (no command recorded)"
    assert page.sections == [
        "summary",
        "training",
        "reconstructions",
        "samples",
        "paths",
        "latent-map",
    ]
    assert page.figures == [
        "Training curves",
        "Latent features in use",
        "Images and their reconstructions",
        "Samples from the prior",
        "Interpolations between held-out samples",
        "Traversals of the most used latent features",
        "Latent map",
    ]
    assert len(page.images) == 7


def test_active_units_in_the_summary_follow_the_variance_rule(image_model, digits):
    X_test = digits[1]
    report = build_report(image_model, X_test, importance_samples=0)
    variance = image_model.encode(X_test)[0].astype(np.float64).var(0)
    shown = dict((k, v) for k, _, v in report.summary)["active_units"]
    active = int(re.fullmatch(r"(\d) of 4", shown).group(1))
    # a variance within float32 rounding of the 0.01 threshold may fall either way
    near = np.isclose(variance, 0.01, rtol=1e-4)
    above = variance > 0.01
    assert int(above[~near].sum()) <= active <= int(above.sum() + near.sum())
    assert "log_likelihood" not in report.numbers
    assert report.numbers["evaluated_on"] == f"DATA as given ({len(X_test)} samples)"


# ----------------------------------------------------------------------------- gene model
def test_gene_report_with_annotations_from_the_command_line(
    cli_model, expression, tmp_path, capsys
):
    out = tmp_path / "expr.html"
    code, stdout, err = cli(
        capsys,
        "report", cli_model, expression / "expr.tsv", "--annotations", expression / "pheno.tsv",
        "-o", out, "-k", "30",
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote the report to {out}" in stdout
    page = read_page(out)
    model = vaekit.load(cli_model)
    adata = vaekit.read(expression / "expr.tsv")
    rows = validation_rows(model, adata.n_obs)
    numbers = evaluate(model, adata[rows], importance_samples=30)
    assert page.summary["elbo"].startswith(f"{numbers['elbo']:.2f} nats per sample")
    assert page.summary["log_likelihood"] == f"{numbers['log_likelihood']:.2f} nats per sample"
    assert f"ELBO {numbers['elbo']:.2f}" in stdout
    assert page.summary["command"] == model.metadata_["command"]
    assert page.summary["command"].startswith("vaekit train ")
    assert page.summary["annotations"] == "patient, gender, age"
    assert page.summary["preprocess"] == "log1p, zscore"
    assert "meaning" in page.sections and "paths" not in page.sections
    assert "Latent features against annotations" in page.figures
    assert "Top genes of the features that track annotations" in page.figures
    assert "Latent map coloured by gender" in page.figures
    assert "Latent map coloured by age" in page.figures
    assert "patient: not tested" in out.read_text()  # an ID, said so rather than mapped


def test_report_without_annotations_on_new_data(cli_model, expression, tmp_path):
    model = vaekit.load(cli_model)
    table = pd.read_csv(expression / "expr.tsv", sep="\t", index_col=0).iloc[:120]
    path = write_report(model, table, tmp_path / "new.html", importance_samples=0)
    page = read_page(path)
    numbers = evaluate(model, table, importance_samples=0)
    assert page.summary["elbo"].startswith(f"{numbers['elbo']:.2f} nats per sample")
    assert page.summary["annotations"] == "none"
    assert page.summary["evaluated_on"] == "DATA as given (120 samples)"
    assert "Latent features against annotations" not in page.figures
    assert "Top genes of the most used features" in page.figures
    assert "Latent map" in page.figures  # one map, not coloured
    assert "Reconstructed against observed values" in page.figures


def test_conditional_report_colours_the_map_by_the_condition(conditional, digits):
    _, X_test, _, y_test = digits
    report = build_report(conditional, X_test, y_test, importance_samples=0, max_rows=150)
    maps = next(s for s in report.sections if s.key == "latent-map")
    assert [p.title for p in maps.panels] == ["Latent map coloured by condition"]
    assert any("conditional" in note for note in maps.notes)
    assert "figures of a random 150" in report.subtitle


# ----------------------------------------------------------------------------- anomalies
def test_anomaly_histogram_only_for_a_calibrated_model(image_model, digits, monkeypatch):
    X_test = digits[1][:100]
    plain = build_report(image_model, X_test, importance_samples=0)
    assert "anomalies" not in [s.key for s in plain.sections]
    controls = np.sort(-image_model.score_samples(digits[0][:200]))
    calibration = Calibration("elbo", 0.05, float(np.quantile(controls, 0.95)), controls)
    monkeypatch.setattr(image_model, "calibration_", calibration, raising=False)
    calls = []

    def scores(X, y=None, method="elbo", **kwargs):
        calls.append(method)
        return -image_model.score_samples(X)

    monkeypatch.setattr(image_model, "anomaly_score", scores, raising=False)
    report = build_report(image_model, X_test, importance_samples=0)
    section = report.sections[-1]
    assert section.key == "anomalies" and calls == ["elbo"]
    assert [p.title for p in section.panels] == ["Anomaly scores and the calibrated threshold"]


# ----------------------------------------------------------------------------- files
def test_the_report_is_written_atomically(image_model, digits, tmp_path, monkeypatch):
    report = build_report(image_model, digits[1][:60], importance_samples=0)
    path = report.write(tmp_path / "r.html")
    before = path.read_bytes()

    def half_written(self, text, encoding=None):
        with open(self, "w", encoding=encoding) as f:
            f.write(text[:100])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_written)
    with pytest.raises(OSError, match="disk full"):
        report.write(path)
    with pytest.raises(OSError, match="disk full"):
        report.write(tmp_path / "other.html")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_bad_output_fails_before_any_work(cli_model, expression, tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the report was built")

    monkeypatch.setattr(Report, "write", never)
    with pytest.raises(ValueError, match=r"must end with one of \['.html'"):
        write_report(None, None, tmp_path / "report.png")
    assert_user_error(
        cli(capsys, "report", cli_model, expression / "expr.tsv", "-o", tmp_path / "no" / "r.html"),
        "does not exist",
    )
    assert_user_error(
        cli(capsys, "report", cli_model, expression / "expr.tsv", "-o", tmp_path / "r.pdf"),
        ".html",
    )


def test_plot_training_and_reconstructions_commands(cli_model, expression, tmp_path, capsys):
    model = vaekit.load(cli_model)
    code, stdout, err = cli(capsys, "plot", "training", cli_model, "-o", tmp_path / "t.png")
    assert code == 0, err
    assert f"curves of {len(model.history_)} epochs" in stdout
    out = tmp_path / "r.svg"
    code, stdout, err = cli(
        capsys, "plot", "reconstructions", cli_model, expression / "expr.tsv", "-o", out
    )
    assert code == 0, err
    assert "reconstructions of 300 samples" in stdout and out.read_text().startswith("<?xml")
    with Image.open(tmp_path / "t.png") as image:
        assert image.format == "PNG" and image.size[0] > 500
    assert_user_error(
        cli(capsys, "plot", "training", cli_model, "-o", tmp_path / "t.gif"), "figure format"
    )
