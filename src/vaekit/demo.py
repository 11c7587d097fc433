"""The demo: a VAE trained on scikit-learn's 8x8 handwritten digits, and what it produced."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from vaekit.data.writers import check_output_dir, output_dir
from vaekit.plot import prior_samples, reconstruction_pairs, save_figure
from vaekit.report import build_report
from vaekit.vae import VAE

# What run_demo writes into its folder: a folder holding only these may be replaced.
DEMO_FILES = (
    "model", "latent_test.tsv", "summary.json", "reconstructions.png", "samples.png", "report.html"
)


@dataclass
class DemoResult:
    folder: Path
    summary: dict
    report: Path


def run_demo(
    out: str | Path = "vaekit-demo", epochs: int = 200, verbose: bool = True
) -> DemoResult:
    """Fit a conditional VAE to the digits (pixels / 16 in [0, 1]) and write, into ``out``:
    the model, the latent means of held-out digits, held-out ELBO and log-likelihood,
    reconstructions and samples of each digit as PNG, and ``report.html``, the model's report
    on the held-out digits."""
    check_output_dir(out, DEMO_FILES)  # fail before training, not after
    digits = load_digits()
    X = digits.data.astype(np.float32) / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    model = VAE(
        n_latent=8,
        hidden=(256, 128),
        likelihood="continuous_bernoulli",
        kl_warmup=20,
        epochs=epochs,
        batch_size=64,
        lr=2e-3,
        patience=20,
        architecture="mlp",  # dense layers are enough for 8x8 pixels, and fast
        image_shape=(8, 8),  # so that the model, its files and its report know these are images
        seed=0,
        verbose=verbose,
    ).fit(X_train, y_train)
    # The report evaluates the test digits (ELBO, and log p(x) with 1000 draws); the summary
    # takes its numbers from there rather than computing them twice.
    report = build_report(
        model,
        X_test,
        y_test,
        annotations=pd.DataFrame({"digit": y_test}),
        training_data=False,
        title="vaekit demo: a conditional VAE of handwritten digits",
        data_name=f"the {len(X_test)} held-out test digits",
        importance_samples=1000,
    )
    summary = {
        "data": "scikit-learn digits: 1797 images of 8x8 pixels, scaled to [0, 1]",
        "train_samples": len(X_train),
        "test_samples": len(X_test),
        "likelihood": model.likelihood,
        "n_latent": model.n_latent,
        "epochs_trained": len(model.history_),
        "best_epoch": model.best_epoch_,
        "training_seconds": round(model.training_seconds_, 2),
        "test_elbo_nats": round(report.numbers["elbo"], 3),
        "test_log_likelihood_nats_k1000": round(report.numbers["log_likelihood"], 3),
        "report": str(Path(out) / "report.html"),
    }
    out = Path(out)
    with output_dir(out, DEMO_FILES) as tmp:
        model.save(tmp / "model")
        latent = pd.DataFrame(
            model.transform(X_test, y_test), columns=model.get_feature_names_out()
        )
        latent.insert(0, "digit", y_test)
        latent.to_csv(tmp / "latent_test.tsv", sep="\t", index_label="sample")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        save_figure(reconstruction_pairs(model, X_test, y_test, n=10), tmp / "reconstructions.png")
        save_figure(prior_samples(model, 10), tmp / "samples.png")  # a row per digit
        report.write(tmp / "report.html")
    return DemoResult(out, summary, Path(summary["report"]))
