"""What every command shares: the typer app, common arguments and small helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vaekit._version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders for expression tables, single-cell counts, images and more.",
)

DATA = typer.Argument(..., help="Data file or folder (CSV/TSV, Parquet, .h5ad, 10x, images...).")
MODEL = typer.Argument(..., help="A model folder written by `vaekit train`.")
OUT = typer.Option(..., "-o", "--out", help="Where to write.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display.")
TRANSPOSE = typer.Option(None, "--transpose", help="The file has genes as rows.")
ANNOTATIONS = typer.Option(None, "--annotations", help="Sample annotation table (CSV/TSV).")
LAYER = typer.Option(None, "--layer", help="AnnData layer to use instead of X.")
BACKED = typer.Option(
    None,
    "--backed/--in-memory",
    help="Leave an .h5ad file's matrix in the file and stream it in blocks of rows (data "
    "larger than memory) [default: backed when it would take over half the memory available].",
)
# An .h5ad file whose matrix would take more than this share of the available memory is read
# backed unless --in-memory says otherwise: training holds a few more copies of a minibatch,
# the model and the obs annotations besides it.
AUTO_BACKED_SHARE = 0.5


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


plot_app = typer.Typer(no_args_is_help=True, help="Figures of a model and data.")
app.add_typer(plot_app, name="plot", rich_help_panel="Look inside a model")


def read(
    path: Path,
    transpose: bool | None = None,
    annotations: Path | None = None,
    layer: str | None = None,
    backed: bool | None = False,
) -> Any:
    """Read DATA with only the reading options the user gave; ``backed=None`` decides by
    size (:func:`auto_backed`)."""
    from vaekit.data.readers import read as read_data

    if backed is None:
        backed = not (transpose or annotations) and auto_backed(path, layer)
    options = {"transpose": bool(transpose), "annotations": annotations, "layer": layer}
    return read_data(path, **{k: v for k, v in options.items() if v}, backed=backed)


def auto_backed(path: Path, layer: str | None) -> bool:
    """Whether the AnnData file ``path`` is too large to load (its matrix would take more
    than :data:`AUTO_BACKED_SHARE` of the memory available); says so on stderr."""
    from vaekit._memory import available_memory
    from vaekit.data.backed_files import in_memory_bytes
    from vaekit.validation import format_bytes

    needed = in_memory_bytes(path, layer) if Path(path).is_file() else None
    free = available_memory()
    if needed is None or free is None or needed <= AUTO_BACKED_SHARE * free:
        return False
    typer.echo(
        f"note: the matrix of {path} would take {format_bytes(needed)} in memory, over "
        f"{AUTO_BACKED_SHARE:.0%} of the {format_bytes(free)} available: reading it backed, "
        "in blocks of rows (--in-memory loads it)",
        err=True,
    )
    return True


def check_figure_path(path: Path) -> Path:
    """Raise before any work when ``path`` is not a writable .png, .svg or .pdf file name."""
    from vaekit.analysis.latent_map import FIGURE_FORMATS, figure_format
    from vaekit.data.writers import check_output

    figure_format(path)  # its message names the formats
    return check_output(path, tuple(FIGURE_FORMATS))


def status(quiet: bool, text: str):
    """A spinner on stderr, only on a terminal and when not quiet."""
    from contextlib import nullcontext

    from rich.console import Console

    console = Console(stderr=True)
    return nullcontext() if quiet or not console.is_terminal else console.status(text)


def conditions(model: Any) -> list[str] | None:
    """A conditional model reads its conditions from the obs columns it was trained on."""
    return None if model.covariates_ is None else [c.name for c in model.covariates_.columns]


def jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
