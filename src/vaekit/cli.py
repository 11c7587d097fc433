"""The vaekit command line: each command parses, calls the API, prints. No logic of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from vaekit._version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders for expression tables, single-cell counts, images and more.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train a VAE and use it: see `vaekit COMMAND --help`."""


@app.command()
def demo(
    out: Path = typer.Option(Path("vaekit-demo"), "-o", "--out", help="Folder to write into."),
    epochs: int = typer.Option(200, help="Most epochs to train (early stopping may end sooner)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a conditional VAE on scikit-learn's 8x8 digits and write what it produced."""
    from vaekit.demo import run_demo

    result = run_demo(out, epochs=epochs, verbose=not quiet)
    for key, value in result.summary.items():
        typer.echo(f"{key:>32}: {value}")
    typer.echo(f"\nwrote the model, latent coordinates, summary and figures to {result.folder}/")


def main() -> None:
    """Console entry point: user errors become one line and exit code 2, never a traceback.

    Usage errors (unknown command, bad option) are typer's own: usage text and exit code 2.
    """
    try:
        app()
    except (ValueError, TypeError, FileNotFoundError) as err:
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
