"""The vaekit command line: each command parses, calls the API, prints. No logic of its own.

Commands live in modules by theme and register themselves on the one typer ``app``
(:mod:`vaekit.cli.common`); importing them here is what makes them part of the CLI.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer

# Importing the command modules registers their commands.
from vaekit.cli import anomaly, core, explore, impute, report, singlecell, tune  # noqa: F401
from vaekit.cli.common import app
from vaekit.train import TrainingDiverged, TrainingInterrupted

__all__ = ["Interrupted", "app", "main"]

# Errors that a user's input or environment causes; they print as one line with exit code 2.
USER_ERRORS = (
    ValueError,
    TrainingDiverged,
    TypeError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def _classes(name: str) -> tuple[type, ...]:
    """click's exception class ``name`` as typer raises it: typer >= 0.22 vendors click as
    ``typer._click`` (with Exit and Abort in ``typer.exceptions``), older typer uses click."""
    found = []
    for module in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if cls is not None and cls not in found:
            found.append(cls)
    return tuple(found)


HELP_ONLY, USAGE, CLICK, EXIT, ABORT = (
    _classes(n) for n in ("NoArgsIsHelpError", "UsageError", "ClickException", "Exit", "Abort")
)


class Interrupted(Exception):
    """SIGINT or SIGTERM outside training (which finishes its step and checkpoints first)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


def main(args: Sequence[str] | None = None) -> None:
    """Console entry point: user errors become one ``error:`` line and exit code 2, never a
    traceback; warnings one ``warning:`` line each; SIGINT and SIGTERM exit 130 and 143 with
    one line. Always ends in ``SystemExit``.

    Parameters
    ----------
    args : sequence of str or PathLike, optional
        The arguments after ``vaekit`` (default: ``sys.argv[1:]``); tests run the CLI in
        this process this way.
    """
    with _signals_as_exceptions(), _one_line_warnings():
        try:
            code = app(
                args=None if args is None else [str(a) for a in args],
                prog_name="vaekit",  # not `__main__.py` under python -m, nor a test's name
                standalone_mode=False,
            )
        except HELP_ONLY as err:  # `vaekit` or `vaekit plot` alone: the help, as asked
            typer.echo(err.ctx.get_help() if err.ctx is not None else str(err))
            code = 0
        except USAGE as err:
            _fail(_usage_message(err), 2)
        except CLICK as err:  # e.g. a file option typer could not open
            _fail(err.format_message(), 2)
        except EXIT as exit_:
            code = exit_.exit_code
        except ABORT:  # EOF on a prompt, or typer's own KeyboardInterrupt
            _fail("interrupted", 130)
        except (Interrupted, TrainingInterrupted) as err:
            _fail(err, err.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except USER_ERRORS as err:
            _fail(err, 2)
        except OSError as err:
            _fail(*_os_error(err))
        except RecursionError:
            _fail("input nested too deeply to read", 2)
        except MemoryError:
            _fail("out of memory; give less data (select features, fewer samples)", 2)
        except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
            _fail(f"{type(err).__name__}: {err}", 1)
    # typer returns an exit code only from typer.Exit (e.g. --version); commands return None
    sys.exit(code if isinstance(code, int) else 0)


# What the system refused, with what to do: the user's environment, not a bug of vaekit.
OS_ERRORS: dict[int, str] = {
    errno.ENAMETOOLONG: "give a shorter name",
    errno.ENOSPC: "free some space, or write somewhere else",
    errno.EDQUOT: "your disk quota is used up; free some space, or write somewhere else",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EBUSY: "it is in use (the current folder, or a mount point); give another name",
    errno.ELOOP: "it is a loop of symbolic links; give the real path",
    errno.EIO: "the device failed to read or write; check the disk",
    errno.EMFILE: "too many files are open at once; raise `ulimit -n`",
    errno.EXDEV: "it lies on another file system than its folder; write elsewhere",
}


def _os_error(err: OSError) -> tuple[str, int]:
    """The message and exit code of an OSError that no vaekit check anticipated: 2 with what
    to do for the environment's refusals above, else 1 (and the error's name) as a bug."""
    if err.errno not in OS_ERRORS:
        return f"{type(err).__name__}: {err}", 1
    where = f"{err.filename}: " if err.filename is not None else ""
    return f"{where}{(err.strerror or str(err)).lower()}; {OS_ERRORS[err.errno]}", 2


def _usage_message(err: Exception) -> str:
    """click's usage error as one line, with the command's --help to read."""
    command = err.ctx.command_path if err.ctx is not None else "vaekit"
    text = " ".join(err.format_message().split())
    return f"{text} (see `{command} --help`)"


def _fail(message: object, code: int) -> None:
    if os.environ.get("VAEKIT_DEBUG"):
        raise
    text = " ".join(str(message).split()) or "failed"
    typer.echo(f"error: {text}", err=True)
    sys.exit(code)


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (typer would swallow a
    KeyboardInterrupt into a silent exit 130); training replaces these handlers with its own,
    which checkpoint first. The previous handlers come back on the way out, as tests run the
    CLI in their own process."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Each warning as one ``warning: ...`` line on stderr, without Python's source path and
    code line (the library keeps its warning classes for those who filter them)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = " ".join(str(message).split())
        print(f"warning: {text}", file=file or sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous
