"""The demo: a VAE trained on scikit-learn's 8x8 handwritten digits, and what it produced."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from vaekit.atomic import atomic_dir, check_parent
from vaekit.estimator import VAE


@dataclass
class DemoResult:
    folder: Path
    summary: dict


def run_demo(
    out: str | Path = "vaekit-demo", epochs: int = 200, verbose: bool = True
) -> DemoResult:
    """Fit a conditional VAE to the digits (pixels / 16 in [0, 1]) and write, into ``out``:
    the model, the latent means of held-out digits, held-out ELBO and log-likelihood,
    reconstructions and samples of each digit as PNG."""
    check_parent(out)  # fail before training, not after
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
        seed=0,
        verbose=verbose,
    ).fit(X_train, y_train)
    elbo = model.score_samples(X_test, y_test)
    log_lik = model.log_likelihood(X_test, y_test, n_samples=1000)
    summary = {
        "data": "scikit-learn digits: 1797 images of 8x8 pixels, scaled to [0, 1]",
        "train_samples": len(X_train),
        "test_samples": len(X_test),
        "likelihood": model.likelihood,
        "n_latent": model.n_latent,
        "epochs_trained": len(model.history_),
        "best_epoch": model.best_epoch_,
        "training_seconds": round(model.training_seconds_, 2),
        "test_elbo_nats": round(float(elbo.mean()), 3),
        "test_log_likelihood_nats_k1000": round(float(log_lik.mean()), 3),
    }
    out = Path(out)
    with atomic_dir(out) as tmp:
        model.save(tmp / "model")
        latent = pd.DataFrame(
            model.transform(X_test, y_test), columns=model.get_feature_names_out()
        )
        latent.insert(0, "digit", y_test)
        latent.to_csv(tmp / "latent_test.tsv", sep="\t", index_label="sample")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        _digit_grid(
            X_test[:10],
            model.reconstruct(X_test[:10], y_test[:10]),
            labels=["original", "reconstruction"],
            path=tmp / "reconstructions.png",
        )
        samples = [model.sample(10, y=d, seed=d, mean=True) for d in range(10)]
        _digit_grid(*samples, labels=[f"digit {d}" for d in range(10)], path=tmp / "samples.png")
    return DemoResult(out, summary)


def _digit_grid(*rows: np.ndarray, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(n_cols * 0.8, len(rows) * 0.9))
    for r, (images, label) in enumerate(zip(rows, labels, strict=True)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
