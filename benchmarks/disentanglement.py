"""Disentanglement on dSprites: beta-VAE at several betas, beta-TC-VAE and capacity annealing,
each over seeds, scored by every metric of :func:`vaekit.analysis.disentanglement` beside the
published figures (issue 21, item 5).

Data: ``../shared/data/dsprites`` (see its README): ``dsprites_downsampled.npz`` is a complete
factorial grid of 46,080 64x64 binary images over the five factors shape (3), scale (6),
orientation (10), posX (16) and posY (16); ``dsprites_subset.npz`` 20,000 random images of the
full grid. The factors are the ``latents_classes`` columns, named by the ``.metadata.json``
beside each file (the npz's own ``metadata`` is a pickle, never loaded).

Every model: the conv architecture (three stride-2 convolutions of 32, 64, 128 channels, a
dense layer of 256, 10 latent features), a Bernoulli likelihood, Adam at ``--lr``, batches of
64, no early stopping. For each model the script prints and writes (``OUT/results.json``)
the seven scores, the reconstruction error (-E_q log p(x|z) in nats per image, one draw, on
the held-out rows) and writes a traversal grid (``OUT/traversal_<setting>_seed<k>.png``).
Then, per setting, the mean and spread over seeds; then how much of the spread is the seed:
the mean over settings of each setting's range over seeds, next to the range of the settings'
means (Locatello et al. 2019: the seed matters as much as the objective).

Run by hand, one thread::

    OMP_NUM_THREADS=1 nice python benchmarks/disentanglement.py OUT            # full: hours
    OMP_NUM_THREADS=1 nice python benchmarks/disentanglement.py OUT --rows 2000 --epochs 2 \\
        --seeds 0 --n-samples 1000                                             # minutes

The full run is 6 settings x 3 seeds = 18 models on 46,080 images (``--epochs`` 30 by
default); benchmarks/README.md says what it takes.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import vaekit
from vaekit.train import PosteriorCollapseWarning

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsprites"
FILES = {"downsampled": "dsprites_downsampled", "subset": "dsprites_subset"}
METRICS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap",
           "factorvae_score", "betavae_score")
COMMON: dict[str, Any] = {
    "n_latent": 10,
    "hidden": (256,),
    "likelihood": "bernoulli",
    "architecture": "conv",
    "image_shape": (64, 64),
    "batch_size": 64,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "verbose": False,
}
# The objectives compared: beta-VAE (Higgins et al. 2017) at the betas Kim & Mnih (2018) and
# Chen et al. (2018) swept, beta-TC-VAE with Chen et al.'s beta = 6 on the total correlation,
# and capacity annealing with Burgess et al.'s (2018) dSprites schedule (C to 25 nats,
# gamma = 1000; here over the run's epochs instead of 100,000 steps).
SETTINGS: dict[str, dict[str, Any]] = {
    "beta1": {"beta": 1.0},
    "beta4": {"beta": 4.0},
    "beta8": {"beta": 8.0},
    "beta16": {"beta": 16.0},
    "tcvae6": {"objective": "tcvae", "tc_weight": 6.0},
    "capacity25": {"objective": "capacity", "capacity_max": 25.0, "capacity_weight": 1000.0},
}

CFASL = "the CFASL authors' baselines, README 'Results', dSprites"
CFASL_NOTE = "third-party: 300,000 steps, 10 seeds, beta 1-6; mean (sd over runs)"
CFASL_URL = "https://github.com/GIST-IRR/CFASL"
CFASL_TABLE = {  # metric: {model: (mean, sd)}, in percent as the README gives them
    "factorvae_score": {"beta-VAE": (73.54, 6.47), "beta-TC-VAE": (79.19, 5.87)},
    "mig": {"beta-VAE": (13.19, 4.48), "beta-TC-VAE": (23.95, 10.13)},
    "sap": {"beta-VAE": (5.69, 1.98), "beta-TC-VAE": (7.20, 0.66)},
    "dci_disentanglement": {"beta-VAE": (21.49, 6.30), "beta-TC-VAE": (35.33, 9.07)},
    "betavae_score": {"beta-VAE": (83.20, 7.07), "beta-TC-VAE": (89.20, 4.73)},
}

# Published dSprites figures. Only values read in a source stored for this project are given;
# the primary papers' numbers are in figures whose text the stored copies do not hold, so
# those rows say where to read them and stay None until someone does (no number is guessed).
PUBLISHED: list[dict[str, Any]] = [
    {"source": "Kim & Mnih 2018 (Disentangling by Factorising, ICML), Fig. 4",
     "metric": "factorvae_score", "model": "beta-VAE (beta 1..16) and FactorVAE",
     "value": None, "note": "FactorVAE above beta-VAE at equal reconstruction error; "
     "values not in the stored copy: read them from the figures",
     "url": "https://arxiv.org/abs/1802.05983"},
    {"source": "Chen et al. 2018 (Isolating Sources of Disentanglement, NeurIPS), figures",
     "metric": "mig", "model": "beta-VAE and beta-TC-VAE over beta",
     "value": None, "note": "beta-TC-VAE above beta-VAE at each beta; values not in the "
     "stored copy: read them from the figures", "url": "https://arxiv.org/abs/1802.04942"},
    {"source": "Locatello et al. 2019 (Challenging Common Assumptions, ICML), Fig. 7",
     "metric": "mig", "model": "6 methods x 6 hyperparameters x 50 seeds",
     "value": None, "note": "a distribution per method (violin plot) that overlaps between "
     "methods; the seed and hyperparameters matter more than the objective",
     "url": "https://arxiv.org/abs/1811.12359"},
    {"source": "reproduction with Chen et al.'s code (YannDubs/disentangling-vae#64)",
     "metric": "mig", "model": "beta-TC-VAE (MLP; shape not scored)", "value": 0.50,
     "note": "third-party report, '~0.50'", "url":
     "https://github.com/YannDubs/disentangling-vae/issues/64"},
    {"source": "user report (1Konny/Beta-VAE#23)", "metric": "mig",
     "model": "beta-VAE, beta = 4", "value": 0.06,
     "note": "third-party report; beta = 8 did as well as others' beta = 4",
     "url": "https://github.com/1Konny/Beta-VAE/issues/23"},
    # The CFASL authors' baselines (their README's dSprites table, mean(sd) in percent, here as
    # fractions): full dSprites, 300,000 steps of 64, Adam 1e-4, beta in {1, 2, 4, 6}, 10 seeds;
    # their "z-diff" is Higgins et al.'s beta-VAE score, their "DCI" the disentanglement.
    *({"source": CFASL, "metric": metric, "model": model, "value": value / 100,
       "sd": sd / 100, "note": CFASL_NOTE, "url": CFASL_URL}
      for metric, by_model in CFASL_TABLE.items() for model, (value, sd) in by_model.items()),
]


def load(kind: str, rows: int | None, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """(X, factors): the images flattened to (n, 4096) float32 in {0, 1}, and the factor
    classes as a table named by the metadata; ``rows`` drawn at random (all when None)."""
    stem = DATA / FILES[kind]
    meta = json.loads(stem.with_suffix(".metadata.json").read_text())
    with np.load(stem.with_suffix(".npz")) as npz:  # the pickled metadata is never read
        images, classes = npz["imgs"], npz["latents_classes"]
    names = list(meta["latents_names"])
    if classes.shape[1] == len(names) + 1:  # the original layout: colour first, constant
        classes = classes[:, 1:]
    pick = np.arange(len(images))
    if rows is not None and rows < len(images):
        pick = np.sort(np.random.default_rng(seed).choice(len(images), rows, replace=False))
    X = images[pick].reshape(len(pick), -1).astype(np.float32)
    return X, pd.DataFrame(classes[pick], columns=names)


def fit(
    setting: str, seed: int, X: np.ndarray, epochs: int, lr: float, net: dict[str, Any]
) -> vaekit.VAE:
    settings = {**COMMON, **net, **SETTINGS[setting], "epochs": epochs, "lr": lr, "seed": seed}
    with warnings.catch_warnings():  # collapsed features are part of what is measured
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        return vaekit.VAE(**settings).fit(X)


def network(architecture: str, hidden: list[int] | None) -> dict[str, Any]:
    """The settings that differ between the conv and the dense networks."""
    if architecture == "conv":
        return {"hidden": tuple(hidden or (256,))}
    # Chen et al. (2018) used two dense layers of 1,200 on dSprites (the image shape stays, for
    # the traversal grids)
    return {"architecture": "mlp", "hidden": tuple(hidden or (1200, 1200))}


def measure(
    model: vaekit.VAE, X: np.ndarray, factors: pd.DataFrame, seed: int, n_samples: int | None
) -> dict[str, Any]:
    """The seven scores of the posterior means of every row, and the reconstruction error of
    the rows training held out."""
    from vaekit.analysis import disentanglement  # issue 21's metrics

    scores = disentanglement(model.transform(X), factors, seed=seed, n_samples=n_samples)
    held_out = model.validation_rows_
    rec = model.elbo_terms(X[held_out], n_draws=1)["reconstruction"].mean()
    out = {m: float(scores[m]) for m in METRICS}
    out["reconstruction"] = float(rec)
    out["factor_features"] = {f["name"]: f["feature"] for f in scores["detail"]["factors"]}
    return out


def traversal(model: vaekit.VAE, X: np.ndarray, path: Path) -> None:
    """Each latent feature, most used first, varied around the first image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaekit import plot

    figure = plot.traversal_grid(model, X[:2000], row=0, features=COMMON["n_latent"])
    figure.savefig(path, dpi=80)
    plt.close(figure)


def summary(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Per setting: the mean and standard deviation over seeds of each measure."""
    table = pd.DataFrame(results).drop(columns=["factor_features"])
    measures = [*METRICS, "reconstruction", "seconds"]
    grouped = table.groupby("setting", sort=False)[measures]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    return pd.concat({"mean": mean, "sd": sd}, axis=1)


def seed_share(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Per metric: the mean over settings of the range over seeds, and the range of the
    settings' means (NaN with one seed)."""
    table = pd.DataFrame(results)
    grouped = table.groupby("setting")[list(METRICS)]
    over_seeds = (grouped.max() - grouped.min()).mean()
    means = grouped.mean()
    return pd.DataFrame({"seed range": over_seeds, "setting range": means.max() - means.min()})


def save(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """``OUT/results.json`` after every model, written whole then renamed."""
    path = args.out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "results": results, "published": PUBLISHED}, indent=2))
    tmp.replace(path)


def published_table() -> str:
    lines = [f"{'metric':20} {'value':>11}  model / source"]
    for p in PUBLISHED:
        value = "  --  " if p["value"] is None else f"{p['value']:6.2f}"
        if p.get("sd") is not None:
            value += f" ± {p['sd']:.2f}"
        lines.append(f"{p['metric']:20} {value:>11}  {p['model']}; {p['source']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for results.json and the traversals")
    parser.add_argument("--data", choices=sorted(FILES), default="downsampled")
    parser.add_argument("--rows", type=int, default=None, help="random rows (default: all)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--n-samples", type=int, default=None,
                        help="samples per metric (default: the metrics' own)")
    parser.add_argument("--architecture", choices=("conv", "mlp"), default="conv",
                        help="mlp: Chen et al.'s dense networks, ~30x faster on a CPU")
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="hidden sizes (default: 256 for conv, 1200 1200 for mlp)")
    args = parser.parse_args(argv)
    net = network(args.architecture, args.hidden)
    args.out.mkdir(parents=True, exist_ok=True)
    X, factors = load(args.data, args.rows)
    print(f"dSprites {args.data}: {X.shape[0]} images, factors {list(factors.columns)}")
    results = []
    # seed-major: a run cut short still has every setting at the first seeds
    for seed in args.seeds:
        for setting in args.only:
            tic = time.perf_counter()
            model = fit(setting, seed, X, args.epochs, args.lr, net)
            seconds = time.perf_counter() - tic
            row = {"setting": setting, "seed": seed, **measure(model, X, factors, seed,
                                                               args.n_samples)}
            row["seconds"] = seconds
            traversal(model, X, args.out / f"traversal_{setting}_seed{seed}.png")
            results.append(row)
            shown = " ".join(f"{m}={row[m]:.3f}" for m in METRICS)
            print(f"{setting:10} seed {seed}: {shown} rec={row['reconstruction']:.1f} "
                  f"({seconds:.0f} s)", flush=True)
            save(args, results)
    with pd.option_context("display.width", 200, "display.max_columns", 40,
                           "display.float_format", "{:.3f}".format):
        table = summary(results)
        if len(args.seeds) == 1:  # no spread to show
            table = table["mean"]
        print(f"\nper setting (mean{', sd' if len(args.seeds) > 1 else ''} over seeds):")
        print(table.T.to_string())
        if len(args.seeds) > 1:
            print("\nhow much is the seed (Locatello et al. 2019):")
            print(seed_share(results).to_string())
    print("\npublished (dSprites):\n" + published_table())
    best = max(results, key=lambda r: r["mig"])
    print(f"\nbest vaekit MIG: {best['mig']:.3f} ({best['setting']}, seed {best['seed']}); "
          f"best FactorVAE score: {max(r['factorvae_score'] for r in results):.3f}")
    per_model = sum(r["seconds"] for r in results) / len(results)
    full = per_model * (46_080 / len(X)) * (30 / args.epochs) * len(SETTINGS) * 3
    print(f"training took {per_model:.0f} s per model; the full run (46,080 images, 30 "
          f"epochs, {len(SETTINGS)} settings x 3 seeds) would take about "
          f"{full / 3600:.1f} h at this speed, plus the metrics")


if __name__ == "__main__":
    main()
