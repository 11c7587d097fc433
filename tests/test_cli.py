"""The command line: version, help, the demo, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import vaekit


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from vaekit.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_version_and_help():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"vaekit {vaekit.__version__}"
    out = run("--help")
    assert out.returncode == 0 and "demo" in out.stdout


def test_demo_writes_its_outputs_and_names_the_folder(tmp_path):
    out = run("demo", "-o", str(tmp_path / "d"), "--epochs", "5", "--quiet")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "d"
    assert str(folder) in out.stdout
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "latent_test.tsv",
        "model",
        "reconstructions.png",
        "samples.png",
        "summary.json",
    ]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["epochs_trained"] == 5
    assert summary["test_log_likelihood_nats_k1000"] >= summary["test_elbo_nats"] - 1.0
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert vaekit.load(folder / "model").n_latent == 8


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run("demo", "-o", str(blocker / "d"), "--epochs", "1", "--quiet")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run("no-such-command")
    assert out.returncode == 2 and "Traceback" not in out.stderr
