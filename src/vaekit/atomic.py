"""Write files and folders under a temporary name, then rename them into place.

A crash mid-write leaves the old file or folder intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_parent(path: str | os.PathLike) -> Path:
    """The folder ``path`` will be written into; raise if it is missing or read-only."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write {path}: folder {parent} is not writable")
    return parent


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=check_parent(path))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file should not be private
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it takes ``path``'s place if the block succeeds.

    An existing folder at ``path`` is moved aside, the new one renamed in, then the old removed,
    so at every moment one complete folder exists (the old one under ``.NAME.old-*`` in the
    instant between the two renames).
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=check_parent(path)))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            try:
                os.replace(path, old / path.name)
                try:
                    os.replace(tmp, path)
                except OSError:
                    os.replace(old / path.name, path)  # put the old one back
                    raise
            finally:
                shutil.rmtree(old, ignore_errors=True)  # the replaced model, or nothing
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
