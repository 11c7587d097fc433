"""Several `vaekit tune` workers on one study in a real PostgreSQL database: every trial is
accounted for once, and a worker killed with SIGKILL loses no finished trial (its running
trial is failed by the heartbeat and retried).

A throwaway server is started on a free localhost port (initdb into a temporary folder, as
the user ``nobody`` when the tests run as root); without the server binaries or psycopg2 the
tests skip, saying why. CI installs Debian's postgresql package (.ci/run).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install -e '.[test]')")

from vaekit.tuning.study import storage  # noqa: E402 - reads postgresql:// with psycopg2

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT = 1  # seconds: a killed worker's trial is stale two seconds later
FIXED = "epochs: {epochs}\nhidden: ''\npatience: 100\n"


def server_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl) on PATH or in Debian's /usr/lib/postgresql/N/bin, else None."""
    folders = [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in folders:
        found = [shutil.which(name, path=folder) for name in ("initdb", "pg_ctl")]
        if all(found):
            return found[0], found[1]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """The URL of a throwaway PostgreSQL server, stopped after the module's tests."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    initdb, pg_ctl = binaries
    user = None
    # Not under pytest's own folder: that one is private to the user running the tests.
    folder = Path(tempfile.mkdtemp(prefix="vaekit-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        user = "nobody"
        try:
            shutil.chown(folder, user)
        except (LookupError, PermissionError) as err:
            pytest.skip(f"running as root and cannot hand a folder to {user}: {err}")
    data, port = folder / "data", free_port()
    run = {"user": user, "capture_output": True, "text": True, "timeout": 120}
    made = subprocess.run([initdb, "-D", data, "-U", "postgres", "--auth=trust"], **run)
    if made.returncode != 0:
        pytest.skip(f"initdb failed: {made.stderr.strip()[-300:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    started = subprocess.run(
        [pg_ctl, "-D", data, "-l", folder / "log", "-o", options, "-w", "start"], **run
    )
    if started.returncode != 0:
        pytest.skip(f"the PostgreSQL server did not start: {started.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "stop"], **run)
        shutil.rmtree(folder, ignore_errors=True)


def worker(tmp: Path, url: str, study: str, out: str, trials: int, epochs: int) -> subprocess.Popen:
    """A `vaekit tune` process on the study ``study`` at ``url``."""
    table = tmp / "table.csv"
    if not table.exists():
        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 5))
        X[:, :3] += 2 * rng.normal(size=(60, 1))
        pd.DataFrame(X, columns=[f"g{j}" for j in range(5)]).to_csv(table, index=False)
    fixed = tmp / f"fixed{epochs}.yaml"
    fixed.write_text(FIXED.format(epochs=epochs))
    args = [sys.executable, "-m", "vaekit.cli", "tune", table, "-o", tmp / out, "--storage", url,
            "--study", study, "--trials", str(trials), "--config", fixed, "--heartbeat",
            str(HEARTBEAT), "--draws", "2", "--no-prune", "-q"]
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(a) for a in args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err


def states(store: object, study: str) -> list[str]:
    if study not in optuna.get_all_study_names(storage=store):
        return []
    return [t.state.name for t in optuna.load_study(study_name=study, storage=store).trials]


def test_two_workers_account_for_every_trial_once(postgres, tmp_path):
    workers = [worker(tmp_path, postgres, "two", f"w{i}", trials=6, epochs=2) for i in range(2)]
    for w in workers:
        finish(w)
    trials = optuna.load_study(study_name="two", storage=storage(postgres, None)).trials
    assert [t.number for t in trials] == list(range(len(trials)))  # no number twice or lost
    assert len({t._trial_id for t in trials}) == len(trials)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    # each worker stops once 6 are done: at most one more trial each was already running
    assert 6 <= len(done) <= 7 and len(done) == len(trials)
    for i in range(2):  # each worker's table lists the trials of the study it saw at the end
        table = pd.read_csv(tmp_path / f"w{i}" / "trials.csv")
        assert set(table["number"]) <= {t.number for t in trials}
        assert (table["state"] == "COMPLETE").sum() >= 6


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_sigkill_loses_no_finished_trial(postgres, tmp_path):
    victim = worker(tmp_path, postgres, "kill", "a", trials=30, epochs=40)
    deadline, store = time.monotonic() + 240, storage(postgres, None)
    while time.monotonic() < deadline:  # until one trial is done and the next is running
        now = states(store, "kill")
        if now.count("COMPLETE") >= 1 and now[-1] == "RUNNING":
            break
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.2)
    else:
        pytest.fail("the worker finished no trial in 240 s")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    study = optuna.load_study(study_name="kill", storage=storage(postgres, None))
    finished = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert running
    need = len(finished) + 2  # two more than were done: the rescuer runs the retry and one more
    finish(worker(tmp_path, postgres, "kill", "b", trials=need, epochs=2))
    trials = optuna.load_study(study_name="kill", storage=storage(postgres, None)).trials
    after = {t.number: t for t in trials}
    assert {n: after[n].value for n in finished} == finished  # nothing finished was lost
    assert all(after[n].state.name == "FAIL" for n in running)  # failed by the heartbeat
    retry = _retry_class()
    retried = {retry.retried_trial_number(t) for t in trials} - {None}
    assert set(running) <= retried  # and each was run again
    counted = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(counted) == need  # the failed trials never count


def _retry_class() -> type:
    names = ("RetryHeartbeatStaleTrialCallback", "RetryFailedTrialCallback")  # 4.9 renamed it
    return next(getattr(optuna.storages, n) for n in names if hasattr(optuna.storages, n))
