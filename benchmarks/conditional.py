"""Conditional generation that obeys its label (issue 19, item 4).

A conditional VAE is trained on 12,000 MNIST training images with their digit as y (8 epochs);
``sample(200, y=<20 of each digit>, mean=True)`` is judged by two classifiers trained on 6,000
other real training images: a logistic regression and a small CNN. Printed: the share of
samples each judge assigns to the digit asked for, per setting, and how much of the class z
carries (a logistic regression on the posterior means of held-out images: the accuracy it
reaches says how much of the label the latent space holds next to y).

Run by hand (one thread, a few minutes per setting on a CPU)::

    nice python benchmarks/conditional.py                 # every setting, new and old
    nice python benchmarks/conditional.py --only mlp16    # one setting
    nice python benchmarks/conditional.py --old           # the pre-fix behaviour only

``--old`` trains with ``condition_scale=1`` (the decoder reads the condition's one-hot vector
unscaled, as before the fix). The likelihood is Bernoulli unless ``--likelihood`` says
otherwise: with the Gaussian (whose learned scale starts at 1, so reconstruction is weak
early and the decoder learns the label before z does) the old model already obeyed.

Measured (seed 0, Bernoulli, judges' accuracy on real images: logreg 0.90, cnn 0.95)::

    setting  old logreg/cnn  new logreg/cnn   z_class old -> new
    conv16   0.450 / 0.410   0.950 / 0.935    0.73 -> 0.36
    mlp16    0.475 / 0.340   0.965 / 0.875    0.67 -> 0.30
    mlp8     0.615 / 0.455   0.970 / 0.905    0.55 -> 0.23
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

import vaekit

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
N_TRAIN, N_JUDGE, EPOCHS, PER_DIGIT = 12_000, 6_000, 8, 20
SETTINGS: dict[str, dict] = {
    "conv16": {"architecture": "conv", "image_shape": (1, 28, 28), "n_latent": 16},
    "mlp16": {"hidden": (400,), "n_latent": 16},
    "mlp8": {"hidden": (400,), "n_latent": 8},
}


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, digits, image_shape) of the MNIST training images, pixels in [0, 1]."""
    adata = vaekit.read(DATA / "train-images-idx3-ubyte.gz")
    digits = adata.obs["label"].astype(str).to_numpy()
    return np.asarray(adata.X, dtype=np.float32), digits, adata


class SmallCNN(nn.Module):
    """Two conv layers and a dense one: a second judge, independent of the first."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
            nn.Flatten(), nn.Linear(32 * 49, 64), nn.ReLU(), nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 28, 28))


def train_cnn(X: np.ndarray, digits: np.ndarray, epochs: int = 3, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    model, y = SmallCNN(), torch.from_numpy(digits.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.from_numpy(X)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def judges(X: np.ndarray, digits: np.ndarray) -> dict[str, object]:
    """name -> predict(images) -> digit strings, fitted on the judges' images."""
    logreg = LogisticRegression(max_iter=300).fit(X, digits)
    cnn = train_cnn(X, digits)

    def cnn_predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = cnn(torch.from_numpy(np.clip(images, 0, 1).astype(np.float32)))
        return logits.argmax(1).numpy().astype(str)

    return {"logreg": lambda images: logreg.predict(np.clip(images, 0, 1)), "cnn": cnn_predict}


def run_setting(name: str, kwargs: dict, data: tuple, judged: dict, old: bool, seed: int) -> dict:
    X, digits, held, held_digits = data
    given = {"epochs": EPOCHS, "seed": seed, "verbose": False, "early_stopping": False}
    if old:  # the model as before condition_scale existed: the condition read unscaled
        given["condition_scale"] = 1.0
    vae = vaekit.VAE(**{**given, **kwargs})
    start = time.perf_counter()
    vae.fit(X, y=digits)
    asked = np.repeat(np.arange(10).astype(str), PER_DIGIT)
    samples = vae.sample(len(asked), y=asked, mean=True, seed=seed)
    out = {f"{j}": float((f(samples) == asked).mean()) for j, f in judged.items()}
    # How much of the class z holds: a probe on the posterior means (chance is 0.10).
    z_train, z_held = vae.transform(X[:3000], digits[:3000]), vae.transform(held, held_digits)
    probe = LogisticRegression(max_iter=500).fit(z_train, digits[:3000])
    out["z_class"] = float(probe.score(z_held, held_digits))
    out["active"] = int((z_held.var(0) > 0.01).sum())  # latent features in use (Burda 2016)
    out["seconds"] = time.perf_counter() - start
    return out


def _extra(args: argparse.Namespace) -> dict:
    extra = {"likelihood": args.likelihood}
    for item in args.set:
        key, value = item.split("=", 1)
        extra[key] = ast.literal_eval(value)  # a number, a tuple or a quoted string
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETTINGS), action="append")
    parser.add_argument("--old", action="store_true", help="only the pre-fix behaviour")
    parser.add_argument("--new", action="store_true", help="only the fixed behaviour")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--likelihood", default="bernoulli", help="passed to VAE")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another VAE setting for every model, e.g. beta=2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, digits, _ = load()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, judge = order[:N_TRAIN], order[N_TRAIN:N_TRAIN + N_JUDGE]
    held = order[N_TRAIN + N_JUDGE:N_TRAIN + N_JUDGE + 2000]
    judged = judges(X[judge], digits[judge])
    for j, f in judged.items():  # the judges on real held-out images: their ceiling
        ceiling = np.mean(f(X[held]) == digits[held])
        print(f"judge {j}: accuracy on real held-out images {ceiling:.3f}")
    data = (X[train], digits[train], X[held], digits[held])
    modes = [m for m, on in (("old", not args.new), ("new", not args.old)) if on]
    print(f"{'setting':8} {'model':4} {'logreg':>7} {'cnn':>6} {'z_class':>8} {'active':>6} "
          f"{'seconds':>8}")
    for name in args.only or SETTINGS:
        for mode in modes:
            kwargs = {**SETTINGS[name], **_extra(args)}
            r = run_setting(name, kwargs, data, judged, mode == "old", args.seed)
            print(f"{name:8} {mode:4} {r['logreg']:7.3f} {r['cnn']:6.3f} {r['z_class']:8.3f} "
                  f"{r['active']:6d} {r['seconds']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
