"""The vaekit command line: each command parses, calls the API, prints. No logic of its own.

Commands live in modules by theme and register themselves on the one typer ``app``
(:mod:`vaekit.cli.common`); importing them here is what makes them part of the CLI.
"""

from __future__ import annotations

import os
import sys

import typer

from vaekit.cli import anomaly, core, explore, impute, report  # noqa: F401 - registers them
from vaekit.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: user errors become one line and exit code 2, never a traceback.

    Usage errors (unknown command, bad option) are typer's own: usage text and exit code 2.
    """
    try:
        app()
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as err:
        _fail(err, 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
        _fail(f"{type(err).__name__}: {err}", 1)


def _fail(message: object, code: int) -> None:
    if os.environ.get("VAEKIT_DEBUG"):
        raise
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)
