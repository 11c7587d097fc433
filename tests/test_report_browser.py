"""The report in a real browser: headless Chromium opens it offline, with no console error, every
image decoded and the summary table holding the model's numbers; a screenshot and a printed PDF
are saved. Skipped where no Chromium is installed (CI installs Debian's `chromium`)."""

from __future__ import annotations

import pandas as pd
import pytest
import test_report
from chromium import Chromium, find_chromium
from PIL import Image
from test_report import validation_rows

from vaekit.report import build_report

image_model = test_report.image_model  # the fixture, shared with test_report
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found (install Debian's `chromium`, or set CHROMIUM to a binary)",
)

# What the page shows: each image's decoded width, and the summary table's rows as text.
SCRIPT = """({
  images: [...document.images].map(i => ({width: i.naturalWidth, done: i.complete})),
  summary: Object.fromEntries([...document.querySelectorAll('table.summary tr')].map(
    r => [r.dataset.key, r.querySelector('td').innerText])),
  width: document.documentElement.scrollWidth,
})"""


def test_the_report_renders_in_chromium_with_its_numbers(image_model, digits, tmp_path):
    model, X = image_model, digits[0]
    labels = pd.DataFrame({"digit": digits[2].astype(str)})
    report = build_report(model, X, annotations=labels, training_data=True, importance_samples=50)
    path = report.write(tmp_path / "report.html")
    with Chromium(CHROMIUM, tmp_path / "profile") as browser:
        page = browser.inspect(path.as_uri(), tmp_path / "report.png", SCRIPT)
        browser.print_pdf(page.session, tmp_path / "report.pdf")
    assert page.errors == []
    images = page.value["images"]
    assert len(images) == path.read_text().count("<img ") >= 7
    assert all(i["done"] and i["width"] > 0 for i in images), images
    assert page.value["width"] <= 1280  # nothing wider than the laptop-sized window
    rows = validation_rows(model, len(X))
    summary = page.value["summary"]
    assert summary["elbo"].startswith(f"{model.score_samples(X[rows]).mean():.2f} nats per sample")
    log_px = model.log_likelihood(X[rows], n_draws=50).mean()
    assert summary["log_likelihood"] == f"{log_px:.2f} nats per sample"
    assert summary["epochs"] == f"{len(model.history_)} / {model.best_epoch_}"
    assert summary["active_units"] == f"{report.numbers['active_units']} of 4"
    assert summary["n_latent"] == "4" and summary["likelihood"] == "bernoulli"
    with Image.open(page.screenshot) as shot:
        assert shot.format == "PNG" and shot.size[0] == 1280 and shot.size[1] > 2000
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"
