"""The oldest lane's helper: the floors pyproject.toml declares, and a check that each is installed.

python .ci/floors.py build   print the build-system requirements (for uv to lower)
python .ci/floors.py check   print each dependency's floor beside its installed version;
                             exit 1 when one differs, so that no floor goes untested
"""

from __future__ import annotations

import sys
from importlib.metadata import requires, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def floor(req: Requirement) -> Version | None:
    """The lowest version ``req`` admits (its ``>=`` bound), or None without one."""
    bounds = [Version(s.version) for s in req.specifier if s.operator == ">="]
    return max(bounds) if bounds else None


def check() -> int:
    """Compare vaekit's dependencies (with the test extra) against what is installed."""
    wrong = []
    for line in requires("vaekit") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": "test"}):
            continue
        low, have = floor(req), Version(version(req.name))
        ok = low is None or Version(have.public) == low
        print(f"  {req.name:<16} floor {str(low):<10} installed {have}" + ("" if ok else "  <--"))
        if not ok:
            wrong.append(req.name)
    if wrong:
        print(f"not at their floors: {', '.join(wrong)}", file=sys.stderr)
    return 1 if wrong else 0


def build() -> int:
    print("\n".join(tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]))
    return 0


if __name__ == "__main__":
    commands = {"check": check, "build": build}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]]())
