"""Single-cell integration, label transfer and DE: vaekit side by side with scvi-tools 1.4.

Data: the real 10x PBMC counts in ``../shared/data/scrna_counts/10X_PBMC_top2000.h5`` (4,271
cells x 2,000 genes, 8 cell types) with planted batch effects and planted DE genes - the model
is written down in ``benchmarks/_planted.py`` (3 batches, gene-wise log-normal factors, library
shifts and extra dropout, all by binomial thinning; 100 DE genes between two random halves of
one cell type; 10% of the cells held out; one batch's labels hidden).

Both tools at 10 latent features, each with its own defaults otherwise (``--max-epochs`` caps
both alike), on ``--threads`` torch threads, one after the other:

- vaekit (this venv): ``VAE(preset="single_cell").fit(train, y="batch")``; the same with
  ``labels="cell_type_hidden"`` for label transfer (its latent space scored as "vaekit+labels").
- scVI and scANVI (scANVI from the trained scVI, as scvi-tools' tutorials do) run in the other
  interpreter, ``--scvi-python``, by ``benchmarks/_scvi_side.py``, on the same .h5ad files.
- PCA: 10 components of log-normalised counts (counts / library x 1e4, log1p), unintegrated.

Measured: scib-metrics' Benchmarker (bio conservation, batch correction, total; absolute, not
min-max scaled) of each embedding, kNN accuracy and KMeans/Leiden ARI of the cell types,
held-out marginal log-likelihood per cell (nats, the same importance draws for both), label
transfer on the batch whose labels were hidden (accuracy, macro-F1; vaekit vs scANVI), DE
recovery of the planted genes (AUROC of P(|LFC| > 0.25) and of |LFC|, precision and recall of
the calls at FDR 0.05; vaekit vs scVI's change mode), and wall time of each training.

    python benchmarks/integration.py --scvi-python /work/scvi-venv/bin/python
    python benchmarks/integration.py --scvi-python ... --quick    # 1,200 cells, 20 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _planted  # noqa: E402 - the simulator beside this file

DATA = HERE.parents[1] / "shared" / "data" / "scrna_counts" / "10X_PBMC_top2000.h5"


# ---------------------------------------------------------------------------- data
def prepare(args: argparse.Namespace, work: Path) -> _planted.Planted:
    """Simulate, and write work/train.h5ad and work/heldout.h5ad."""
    X, y = _planted.read_pbmc(args.data)
    if args.quick:  # a stratified subsample for a smoke run
        keep = _planted.stratified_split(y, (0.28, 0.72), np.random.default_rng(1)) == 0
        X, y = X[keep], y[keep]
    planted = _planted.simulate(X, y, _planted.Plan(seed=args.seed))
    _planted.to_anndata(planted, ~planted.heldout).write_h5ad(work / "train.h5ad")
    _planted.to_anndata(planted, planted.heldout).write_h5ad(work / "heldout.h5ad")
    (work / "plan.json").write_text(json.dumps(planted.plan.to_dict()))
    return planted


def pca_embedding(counts: np.ndarray, n: int = 10) -> np.ndarray:
    """PCA of log-normalised counts: log1p(counts / library size x 1e4), 10 components."""
    from sklearn.decomposition import PCA

    lib = np.maximum(counts.sum(1, keepdims=True), 1)
    return PCA(n, random_state=0).fit_transform(np.log1p(counts / lib * 1e4)).astype(np.float32)


# ---------------------------------------------------------------------------- the tools
def run_scvi_side(args: argparse.Namespace, work: Path) -> dict:
    """scVI and scANVI in the other interpreter; their outputs are in work/scvi/."""
    cmd = [args.scvi_python, str(HERE / "_scvi_side.py"), "fit", str(work), "--seed",
           str(args.seed), "--threads", str(args.threads), "--n-draws", str(args.n_draws)]
    if args.max_epochs is not None:
        cmd += ["--max-epochs", str(args.max_epochs)]
    if not (args.reuse and (work / "scvi" / "info.json").exists()):
        subprocess.run(cmd, check=True)
    return json.loads((work / "scvi" / "info.json").read_text())


def run_vaekit(args: argparse.Namespace, work: Path) -> dict:
    """vaekit's models; latent spaces, log-likelihoods, labels and DE to work/vaekit/."""
    import anndata
    import torch

    import vaekit

    out = work / "vaekit"
    torch.set_num_threads(args.threads)
    train = anndata.read_h5ad(work / "train.h5ad")
    if args.reuse and (out / "info.json").exists():
        info = json.loads((out / "info.json").read_text())
        if not (out / "de_vaekit.csv").exists():  # DE of the saved model, e.g. once DE landed
            info["vaekit"]["de_s"] = run_vaekit_de(vaekit.load(out / "model"), train, out,
                                                   args.seed)
            (out / "info.json").write_text(json.dumps(info, indent=1))
        return info
    out.mkdir(exist_ok=True)
    heldout = anndata.read_h5ad(work / "heldout.h5ad")
    settings = dict(preset="single_cell", n_latent=10, seed=args.seed, verbose=False)
    if args.max_epochs is not None:
        settings["epochs"] = args.max_epochs
    info: dict = {"versions": {"vaekit": vaekit.__version__, "torch": torch.__version__},
                  "threads": torch.get_num_threads()}

    tic, load = time.perf_counter(), os.getloadavg()[0]
    model = vaekit.VAE(**settings).fit(train, y="batch")
    info["vaekit"] = {"fit_s": time.perf_counter() - tic, "epochs": _epochs(model),
                      "load_before": load, "load_after": os.getloadavg()[0]}
    print(f"vaekit: {info['vaekit']['epochs']} epochs in {info['vaekit']['fit_s']:.0f} s",
          flush=True)
    np.save(out / "latent_vaekit.npy", np.asarray(model.transform(train), dtype=np.float32))
    tic = time.perf_counter()
    ll = model.log_likelihood(heldout, n_draws=args.n_draws, seed=args.seed)
    info["vaekit"]["mll_s"] = time.perf_counter() - tic
    np.save(out / "mll_vaekit.npy", np.asarray(ll, dtype=np.float64))
    print(f"vaekit held-out marginal LL: {np.mean(ll):.2f} nats/cell", flush=True)
    model.save(out / "model")
    info["vaekit"]["de_s"] = run_vaekit_de(model, train, out, args.seed)

    tic, load = time.perf_counter(), os.getloadavg()[0]
    labelled = vaekit.VAE(**settings).fit(train, y="batch", labels="cell_type_hidden")
    info["vaekit_labels"] = {"fit_s": time.perf_counter() - tic, "epochs": _epochs(labelled),
                             "load_before": load, "load_after": os.getloadavg()[0]}
    print(f"vaekit+labels: {info['vaekit_labels']['epochs']} epochs in "
          f"{info['vaekit_labels']['fit_s']:.0f} s", flush=True)
    np.save(out / "latent_vaekit_labels.npy",
            np.asarray(labelled.transform(train), dtype=np.float32))
    predicted, _ = labelled.predict_labels(train)
    np.save(out / "pred_vaekit.npy", np.asarray(predicted, dtype=str))
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info


def run_vaekit_de(model, train, out: Path, seed: int) -> float | None:
    """vaekit's DE of the planted groups to out/de_vaekit.csv; its seconds (None: no DE yet)."""
    try:
        from vaekit.analysis import differential_expression
    except ImportError:
        print("vaekit.analysis.differential_expression is missing: no DE for vaekit", flush=True)
        return None
    tic = time.perf_counter()
    de = differential_expression(model, train, "de_group", "A", "B", delta=0.25, seed=seed)
    seconds = time.perf_counter() - tic
    de = de.rename(columns={"is_de_fdr": "is_de_fdr_0.05"}).reset_index(drop=True)
    de.index = train.var_names
    de.to_csv(out / "de_vaekit.csv")
    return seconds


def _epochs(model) -> int:
    """Epochs trained, from the model's history (one entry per epoch)."""
    history = getattr(model, "history_", None)
    if isinstance(history, dict):
        return len(next(iter(history.values())))
    return len(history) if history is not None else -1


def alternate_timing(args: argparse.Namespace, work: Path) -> dict:
    """Training seconds per epoch of scVI and vaekit, alternating ``--timing-rounds`` times
    (``--timing-epochs`` each), so that both see the machine's load alike."""
    import anndata
    import torch

    import vaekit

    torch.set_num_threads(args.threads)
    train = anndata.read_h5ad(work / "train.h5ad")
    cmd = [args.scvi_python, str(HERE / "_scvi_side.py"), "time", str(work), "--threads",
           str(args.threads), "--max-epochs", str(args.timing_epochs)]
    rounds: dict[str, list[float]] = {"scVI": [], "vaekit": []}
    for _ in range(args.timing_rounds):
        done = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        info = json.loads(done.split("TIMING ", 1)[1].splitlines()[0])
        rounds["scVI"].append(info["fit_s"] / info["epochs"])
        tic = time.perf_counter()
        model = vaekit.VAE(preset="single_cell", seed=args.seed, verbose=False,
                           epochs=args.timing_epochs).fit(train, y="batch")
        rounds["vaekit"].append((time.perf_counter() - tic) / _epochs(model))
        print(f"  s/epoch: scVI {rounds['scVI'][-1]:.2f}, vaekit {rounds['vaekit'][-1]:.2f}",
              flush=True)
    ratio = [a / b for a, b in zip(rounds["scVI"], rounds["vaekit"], strict=True)]
    return {"s_per_epoch": rounds, "ratio_scvi_over_vaekit": ratio,
            "median_ratio": float(np.median(ratio)), "epochs": args.timing_epochs}


def run_scoring(args: argparse.Namespace, work: Path, embeddings: dict[str, Path]) -> dict:
    """scib-metrics and cluster scores of every embedding, in the scvi interpreter (jax)."""
    cmd = [args.scvi_python, str(HERE / "_scvi_side.py"), "score", str(work),
           "--threads", str(args.threads)]
    for name, path in embeddings.items():
        cmd += ["--embedding", f"{name}={path}"]
    if not (args.reuse and (work / "scores.json").exists()):
        subprocess.run(cmd, check=True)
    return json.loads((work / "scores.json").read_text())


# ---------------------------------------------------------------------------- figures
def label_transfer(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro"))}


def de_recovery(table, is_de: np.ndarray, true_lfc: np.ndarray) -> dict[str, float]:
    """AUROC of P(DE) and |LFC| for the planted genes; precision/recall of the FDR calls."""
    from sklearn.metrics import roc_auc_score

    calls = table["is_de_fdr_0.05"].to_numpy().astype(bool)
    hits = int((calls & is_de).sum())
    lfc = table["lfc_mean"].to_numpy()
    return {
        "auroc_proba": float(roc_auc_score(is_de, table["proba_de"].to_numpy())),
        "auroc_abs_lfc": float(roc_auc_score(is_de, np.abs(lfc))),
        "n_called": int(calls.sum()),
        "precision": hits / calls.sum() if calls.any() else float("nan"),
        "recall": hits / is_de.sum(),
        "lfc_corr_planted": float(np.corrcoef(lfc[is_de], true_lfc[is_de])[0, 1]),
    }


def wilcoxon_de(train) -> pd.DataFrame:
    """The baseline without a model: Wilcoxon rank-sum tests of A vs B on counts per 1e4,
    Benjamini-Hochberg calls at FDR 0.05; proba_de = 1 - p (only its order matters)."""
    import pandas as pd
    from scipy.stats import false_discovery_control, mannwhitneyu

    X = np.asarray(train.X.toarray(), dtype=np.float64)
    X = X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4
    group = train.obs["de_group"].to_numpy()
    a, b = X[group == "A"], X[group == "B"]
    p = np.nan_to_num(mannwhitneyu(a, b, axis=0).pvalue, nan=1.0)
    lfc = np.log2((a.mean(0) + 1e-2) / (b.mean(0) + 1e-2))
    return pd.DataFrame({"proba_de": 1 - p, "lfc_mean": lfc,
                         "is_de_fdr_0.05": false_discovery_control(p) <= 0.05},
                        index=train.var_names)


def mll_summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "se": float(values.std(ddof=1) / np.sqrt(len(values)))}


def figures(work: Path, planted: _planted.Planted, scores: dict) -> dict:
    import anndata
    import pandas as pd

    train = anndata.read_h5ad(work / "train.h5ad")
    hidden = train.obs["cell_type_hidden"].to_numpy() == _planted.UNKNOWN
    truth = train.obs["cell_type"].to_numpy().astype(str)[hidden]
    scvi_dir, vk_dir = work / "scvi", work / "vaekit"
    out: dict = {"scores": scores}
    out["label_transfer"] = {
        name: label_transfer(truth, np.load(d / f"pred_{key}.npy")[hidden])
        for name, d, key in (("vaekit", vk_dir, "vaekit"), ("scANVI", scvi_dir, "scanvi"))
    }
    tables = {"vaekit": vk_dir / "de_vaekit.csv", "scVI": scvi_dir / "de_scvi.csv",
              "scVI batch-corrected": scvi_dir / "de_scvi_bc.csv"}
    out["de"] = {name: de_recovery(pd.read_csv(path, index_col=0), planted.is_de,
                                   planted.true_lfc)
                 for name, path in tables.items() if path.exists()}
    out["de"]["Wilcoxon (no model)"] = de_recovery(wilcoxon_de(train), planted.is_de,
                                                   planted.true_lfc)
    mll = {name: np.load(d / f"mll_{key}.npy")
           for name, d, key in (("vaekit", vk_dir, "vaekit"), ("scVI", scvi_dir, "scvi"))}
    out["heldout_mll"] = {name: mll_summary(v) for name, v in mll.items()}
    out["heldout_mll"]["vaekit - scVI"] = mll_summary(mll["vaekit"] - mll["scVI"])
    return out


def print_table(result: dict) -> None:
    scib, clusters = result["scores"]["scib"], result["scores"]["clusters"]
    times = result["times"]
    print("\nembedding      bio    batch  total  kNN acc  KMeans ARI  Leiden ARI  train s  epochs")
    for name in scib:
        s, c = scib[name], clusters[name]
        t = times.get(name, {})
        print(f"{name:<13}{s['Bio conservation']:6.3f} {s['Batch correction']:6.3f} "
              f"{s['Total']:6.3f}   {c['knn_accuracy']:6.3f}      {c['kmeans_ari']:6.3f}"
              f"      {c['leiden_ari']:6.3f}  {t.get('fit_s', 0):7.0f}  {t.get('epochs', '')}")
    m = result["heldout_mll"]
    print(f"\nheld-out marginal LL (nats/cell, {result['n_heldout']} cells, "
          f"{result['args']['n_draws']} draws): vaekit {m['vaekit']['mean']:.2f} "
          f"± {m['vaekit']['se']:.2f}, scVI {m['scVI']['mean']:.2f} ± {m['scVI']['se']:.2f}, "
          f"paired difference {m['vaekit - scVI']['mean']:+.2f} ± {m['vaekit - scVI']['se']:.2f}")
    lt = result["label_transfer"]
    print("label transfer (hidden batch): " + ", ".join(
        f"{k} accuracy {v['accuracy']:.3f} macro-F1 {v['macro_f1']:.3f}" for k, v in lt.items()))
    print("DE of planted genes:")
    for k, v in result["de"].items():
        print(f"  {k:<21} AUROC P(DE) {v['auroc_proba']:.3f}  AUROC |LFC| {v['auroc_abs_lfc']:.3f}"
              f"  called {v['n_called']:4d}  precision {v['precision']:.3f}  recall "
              f"{v['recall']:.3f}  corr(LFC, planted) {v['lfc_corr_planted']:.3f}")
    if "alternating_timing" in result:
        t = result["alternating_timing"]
        print(f"alternating {len(t['ratio_scvi_over_vaekit'])} rounds of {t['epochs']} epochs: "
              f"s/epoch scVI / vaekit {t['median_ratio']:.2f}x (median; rounds "
              + ", ".join(f"{r:.2f}" for r in t["ratio_scvi_over_vaekit"]) + ")")
    speed = times["scVI"]["fit_s"] / times["vaekit"]["fit_s"]
    scanvi = times["scVI"]["fit_s"] + times["scANVI"]["fit_s"]
    print(f"training time scVI / vaekit: {speed:.2f}x; scANVI (scVI + its own) / vaekit+labels: "
          f"{scanvi / times['vaekit+labels']['fit_s']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scvi-python", required=True,
                        help="python of a venv with scvi-tools 1.4 and scib-metrics")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep intermediate files here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="skip the steps whose outputs are already in --work-dir")
    parser.add_argument("--json", type=Path, default=Path("integration.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-draws", type=int, default=1000,
                        help="importance draws per held-out cell, both tools")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap both tools' epochs alike (default: each tool's own)")
    parser.add_argument("--timing-rounds", type=int, default=0,
                        help="then time scVI and vaekit alternately, this many rounds")
    parser.add_argument("--timing-epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="1,200 cells, 20 epochs, 50 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_epochs = args.max_epochs or 20
        args.n_draws = min(args.n_draws, 50)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    planted = prepare(args, work)
    np.save(work / "emb_pca.npy", pca_embedding(planted.counts[~planted.heldout]))
    scvi_info = run_scvi_side(args, work)
    vk_info = run_vaekit(args, work)
    embeddings = {"PCA": work / "emb_pca.npy",
                  "vaekit": work / "vaekit" / "latent_vaekit.npy",
                  "vaekit+labels": work / "vaekit" / "latent_vaekit_labels.npy",
                  "scVI": work / "scvi" / "latent_scvi.npy",
                  "scANVI": work / "scvi" / "latent_scanvi.npy"}
    result = figures(work, planted, run_scoring(args, work, embeddings))
    result["times"] = {"vaekit": vk_info["vaekit"], "vaekit+labels": vk_info["vaekit_labels"],
                       "scVI": scvi_info["scvi"], "scANVI": scvi_info["scanvi"]}
    result["versions"] = {**vk_info["versions"], **scvi_info["versions"]}
    result["n_train"] = int((~planted.heldout).sum())
    result["n_heldout"] = int(planted.heldout.sum())
    result["plan"] = planted.plan.to_dict()
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if args.timing_rounds:
        result["alternating_timing"] = alternate_timing(args, work)
    print_table(result)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nall figures: {args.json}")


if __name__ == "__main__":
    main()
