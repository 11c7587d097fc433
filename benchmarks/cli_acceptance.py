"""Acceptance of the command line on real data: train, evaluate and encode from a shell.

Runs, with wall times:
1. MNIST from its IDX files: `vaekit train` (784-400-20, Bernoulli) then `vaekit evaluate` on
   the 10,000 test images.
2. The TCGA table with `--preset tybalt` and its phenotype table, then `vaekit evaluate`.
3. `vaekit encode` of an .h5ad written from the PBMC counts, by a negative binomial model.

Reads ../shared/data (beside the repository); writes into a temporary folder (or --work).

    python benchmarks/cli_acceptance.py [--mnist-epochs 10] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VAEKIT = [sys.executable, "-m", "vaekit.cli"]


def run(*args: object) -> tuple[float, str]:
    """Run `vaekit ARGS`; print the command and its wall time; fail loudly."""
    command = [*VAEKIT, *map(str, args)]
    print("$ vaekit " + shlex.join(command[len(VAEKIT):]), flush=True)
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()}")
    print(f"  [{seconds:.1f} s] " + done.stdout.strip().replace("\n", "\n  "), flush=True)
    return seconds, done.stdout


def evaluate(model: Path, data: Path, k: int, *extra: object) -> dict:
    _, out = run("evaluate", model, data, "-k", k, "--json", *extra)
    return json.loads(out)


def mnist(work: Path, epochs: int) -> None:
    model = work / "mnist"
    run("train", DATA / "mnist/train-images-idx3-ubyte.gz", "-o", model, "--likelihood",
        "bernoulli", "--latent", 20, "--hidden", 400, "--epochs", epochs, "--seed", 0, "--quiet")
    evaluate(model, DATA / "mnist/t10k-images-idx3-ubyte.gz", 100)


def tcga(work: Path) -> None:
    folder = DATA / "tcga_rnaseq_small_cohorts"
    model = work / "tybalt"
    table = folder / "tcga_6cohorts_rnaseqv2_rsem_norm.tsv.gz"
    pheno = folder / "phenotypes.tsv"
    run("train", table, "-o", model, "--preset", "tybalt", "--annotations", pheno, "--seed", 0,
        "--quiet")
    run("info", model)
    evaluate(model, table, 100)


def pbmc(work: Path) -> None:
    import vaekit
    from vaekit.data.writers import write_h5ad

    h5ad = work / "pbmc.h5ad"
    tic = time.perf_counter()
    write_h5ad(vaekit.read(DATA / "scrna_counts/10X_PBMC_top2000.h5"), h5ad)
    print(f"wrote {h5ad} from the PBMC counts [{time.perf_counter() - tic:.1f} s]")
    model = work / "pbmc_nb"
    run("train", h5ad, "-o", model, "--likelihood", "nb", "--latent", 10, "--hidden", 128,
        "--epochs", 30, "--condition", "label", "--seed", 0, "--quiet")
    run("encode", model, h5ad, "-o", work / "pbmc_latent.h5ad")
    import anndata as ad

    out = ad.read_h5ad(work / "pbmc_latent.h5ad")
    print(f"  obsm['X_vaekit']: {out.obsm['X_vaekit'].shape}")
    evaluate(model, h5ad, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-epochs", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} not found: the acceptance checks need ../shared/data")
    work = args.work or Path(tempfile.mkdtemp(prefix="vaekit-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)
    for name, step in (("MNIST", lambda: mnist(work, args.mnist_epochs)),
                       ("TCGA tybalt", lambda: tcga(work)), ("PBMC h5ad", lambda: pbmc(work))):
        print(f"\n== {name}")
        tic = time.perf_counter()
        step()
        print(f"== {name}: {time.perf_counter() - tic:.1f} s in all")


if __name__ == "__main__":
    main()
