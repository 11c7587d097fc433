"""Training over several processes with torchrun (gloo on the CPU, on localhost): the same
held-out loss as one process at the same global batch size, the same model folder, two
"nodes" meeting at a rendezvous endpoint, and a rank that dies stopping the others."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vaekit
from vaekit.distributed import World

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# Two processes on a 2-core machine: one thread each. The timeout ends a collective whose
# peer died (torchrun also stops the others); the test's own limit catches a hang.
ENV = {"OMP_NUM_THREADS": "1", "VAEKIT_DDP_TIMEOUT": "60", "PYTHONWARNINGS": "ignore"}
LIMIT = 240  # seconds a torchrun call may take before the test calls it hung
SETTINGS = ["--latent", "3", "--hidden", "32", "--epochs", "40", "--lr", "3e-3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def low_rank_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows of a 3-factor Gaussian model: the held-out loss a VAE converges to is the data's."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(99).normal(size=(3, 20))
    X = rng.normal(size=(n, 3)) @ w + 0.3 * rng.normal(size=(n, 20))
    return pd.DataFrame(X, columns=[f"g{i}" for i in range(20)], index=[f"s{i}" for i in range(n)])


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("ddp")
    path = folder / "train.csv"
    low_rank_table(800).to_csv(path)
    return path, low_rank_table(400, seed=1)


def torchrun(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV}
    return subprocess.run(
        [*TORCHRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=LIMIT,
        **kw,
    )


def held_out(model: vaekit.VAE, test: pd.DataFrame) -> float:
    """Mean negative ELBO on the held-out rows (nats), with the model's fixed noise."""
    return -float(np.mean(model.score_samples(test.to_numpy())))


def test_a_world_of_one_changes_nothing():
    w = World()
    index = np.arange(10)
    assert w.main and w.size == 1 and w.seed(7) == 7
    assert (w.shard(index) == index).all() and (w.part(index) == index).all()


def test_shards_are_equal_and_parts_cover_every_row():
    import torch

    index = torch.randperm(103)
    shards = [World(r, 4).shard(index) for r in range(4)]
    parts = [World(r, 4).part(index) for r in range(4)]
    assert {len(s) for s in shards} == {25}  # equal: every rank takes as many steps
    assert len(torch.cat(shards).unique()) == 100  # disjoint, 3 rows left out
    assert torch.equal(torch.cat(parts).sort().values, index.sort().values)  # each row once


def test_two_processes_reach_the_held_out_loss_of_one(tables, tmp_path):
    """2 processes with minibatches of 32 each against 1 process with 64: the same global
    batch. Their runs differ in noise and in which rows meet in a minibatch, like two seeds of
    one process, so the tolerance is the seed-to-seed spread of one process (4 seeds), times
    4, with a floor of 0.5% of the loss for a spread that happens to come out tiny."""
    train, test = tables
    out = tmp_path / "ddp_model"
    done = torchrun(
        ["--standalone", "--nproc-per-node", "2", "-m", "vaekit", "train", str(train), "-o",
         str(out), *SETTINGS, "--batch-size", "32", "--seed", "0", "--quiet"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved the model") == 1  # rank 0 alone writes and reports
    ddp = vaekit.load(out)
    X = pd.read_csv(train, index_col=0)
    single = [
        vaekit.VAE(n_latent=3, hidden=(32,), epochs=40, lr=3e-3, batch_size=64, seed=s,
                   verbose=False).fit(X)
        for s in range(4)
    ]
    losses = np.array([held_out(m, test) for m in single])
    tolerance = max(4 * losses.std(ddof=1), 0.005 * abs(losses.mean()))
    assert abs(held_out(ddp, test) - losses.mean()) < tolerance, (held_out(ddp, test), losses)
    # The same folder as a model trained in one process: files, settings and weights' names.
    single[0].save(tmp_path / "single_model")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "single_model").iterdir()
    )
    a, b = (json.loads((f / "config.json").read_text()) for f in (out, tmp_path / "single_model"))
    assert a["model"] == b["model"] and set(a) == set(b)
    assert ddp.transform(test.to_numpy()).shape == (400, 3)
    # the validation loss is summed over both ranks' rows: all 80 held-out rows count
    assert len(ddp.validation_rows_) == 80


def test_two_nodes_meet_at_a_rendezvous_endpoint(tables, tmp_path):
    """Two torchrun launchers of one process each, as on two machines: --nnodes 2, a
    --node-rank each and one c10d rendezvous endpoint on 127.0.0.1."""
    train, test = tables
    port = free_port()
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "vaekit-test"]
    outs = [tmp_path / f"node{r}" for r in range(2)]
    env = {**os.environ, **ENV}
    nodes = [
        subprocess.Popen(
            [*TORCHRUN, *common, "--node-rank", str(r), "-m", "vaekit", "train", str(train),
             "-o", str(outs[r]), *SETTINGS, "--epochs", "3", "--seed", "0", "--quiet"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for r in range(2)
    ]
    results = [node.communicate(timeout=LIMIT) for node in nodes]
    assert [n.returncode for n in nodes] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    written = [o for o in outs if o.exists()]
    assert len(written) == 1  # the node that got rank 0 wrote the model; the other nothing
    assert vaekit.load(written[0]).transform(test.to_numpy()).shape == (400, 3)


def test_two_processes_read_their_own_rows_of_a_backed_file(tmp_path):
    """``--backed`` under torchrun: each rank streams its own shard of the file's rows."""
    import anndata
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(rng.gamma(2, 2, (600, 1)) + 1, (600, 30)).astype(
        np.float32))
    path = tmp_path / "counts.h5ad"
    anndata.AnnData(counts).write_h5ad(path)
    out = tmp_path / "model"
    done = torchrun(
        ["--standalone", "--nproc-per-node", "2", "-m", "vaekit", "train", str(path), "--backed",
         "-o", str(out), "--latent", "3", "--epochs", "3", "--seed", "0", "--quiet"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model = vaekit.load(out)
    assert model.settings_["likelihood"] == "nb"  # counts, chosen from the file's first rows
    assert np.isfinite(model.score_samples(counts[:50].toarray())).all()


DYING = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    import vaekit
    from vaekit import distributed, train

    original = train._end_epoch

    def end_epoch(loop, *args):
        if loop.epoch == 1 and distributed.world().rank == 1:
            os._exit(3)  # a rank that dies mid-training, as a killed process does
        return original(loop, *args)

    train._end_epoch = end_epoch
    X = pd.read_csv(sys.argv[1], index_col=0)
    vaekit.VAE(n_latent=3, epochs=50, seed=0, verbose=False).fit(X)
    print("finished")
    """
)


def test_a_rank_that_dies_stops_the_others(tables, tmp_path):
    """The Python API under torchrun: rank 1 dies after its first epoch; rank 0, waiting in
    the next collective, does not hang: the launcher fails, naming the rank and exit code."""
    train, _ = tables
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    done = torchrun(["--standalone", "--nproc-per-node", "2", str(script), str(train)],
                    cwd=tmp_path)
    assert done.returncode != 0
    assert "finished" not in done.stdout
    assert "exitcode  : 3" in done.stderr or "exit code 3" in done.stderr, done.stderr[-3000:]
