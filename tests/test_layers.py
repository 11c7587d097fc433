"""The layers of the package point down only (DESIGN: core <- train <- estimator <- analysis
<- vae <- plot <- report <- cli): import-linter's contract in pyproject.toml, and the imports
that a lower layer must not trigger at run time."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(*args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter, with this checkout's sources first on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None,
    reason="import-linter is not installed (pip install -e '.[test]')",
)
def test_the_layers_contract_holds():
    """``lint-imports`` with the contract in pyproject.toml; it counts imports inside
    functions and under TYPE_CHECKING too, so no lazy import may point up."""
    lint = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    result = run_python("-c", lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vaekit layers KEPT" in result.stdout


def test_lower_layers_load_no_analysis():
    """The estimator and its model files work without the analyses above them."""
    probe = (
        "import sys, vaekit.saving, vaekit.estimator, vaekit.train; "
        "print(sorted(m for m in sys.modules if m.startswith(('vaekit.analysis', 'vaekit.vae', "
        "'vaekit.plot', 'vaekit.report', 'vaekit.cli'))))"
    )
    result = run_python("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_names_are_imported_on_first_use():
    probe = (
        "import sys, vaekit, vaekit.analysis as a; "
        "print('vaekit.vae' in sys.modules, 'vaekit.analysis.anomaly' in sys.modules); "
        "from vaekit.vae import VAE, load; from vaekit.calibration import Calibration; "
        "assert vaekit.VAE is VAE and vaekit.load is load and a.Calibration is Calibration; "
        "assert set(vaekit.__all__) <= set(dir(vaekit)) and set(a.__all__) <= set(dir(a)); "
        "print(a.anomaly_score.__module__)"
    )
    result = run_python("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False False", "vaekit.analysis.anomaly"]


def test_an_unknown_name_is_an_attribute_error():
    import vaekit
    import vaekit.analysis

    with pytest.raises(AttributeError, match="no attribute 'VEA'"):
        vaekit.VEA  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'anomaly_scores'"):
        vaekit.analysis.anomaly_scores  # noqa: B018
