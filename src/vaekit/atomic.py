"""Write files and folders under a temporary name, then rename them into place.

A crash mid-write leaves the old file or folder intact. Temporaries are named
``.NAME.PID.XXXX.tmp`` (and ``.NAME.old-PID.XXXX`` for a folder being replaced), so that the
next write to the same target can tell those of a process that died (killed mid-save) from
those of one still writing, and remove them. Every file written follows the umask.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Characters of the target's name kept in a temporary's name: with the pid and the random
# part it must stay under the file system's limit on a name (255 bytes on most).
NAME_CHARS = 100


def check_parent(path: str | os.PathLike) -> Path:
    """The folder ``path`` will be written into; raise if it is missing or read-only, or if
    ``path`` has no name or one longer than the file system allows."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"cannot write {str(path)!r}: give the name of a file or folder")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write {path}: folder {parent} is not writable")
    limit = _name_max(parent)
    if len(os.fsencode(path.name)) > limit:
        raise ValueError(
            f"cannot write {path.name[:40]}...: its name has {len(os.fsencode(path.name))} "
            f"bytes, more than the {limit} this file system allows; choose a shorter name"
        )
    return parent


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    parent = check_parent(path)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _follow_umask(Path(tmp))  # mkstemp makes 0600; a written file should not be private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it takes ``path``'s place if the block succeeds.

    An existing folder at ``path`` is moved aside, the new one renamed in, then the old removed,
    so at every moment one complete folder exists (the old one under ``.NAME.old-*`` in the
    instant between the two renames; a later write puts it back if the process died there).
    """
    path = Path(path)
    parent = check_parent(path)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=parent))
    try:
        yield tmp
        for written in (tmp, *tmp.rglob("*")):  # mkdtemp makes 0700, some writers 0600
            _follow_umask(written)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path, ".old-"), dir=parent))
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


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of writes to ``path`` whose process is no longer running (a
    save killed midway); return them. A folder that was being replaced when its process died
    is put back at ``path`` if nothing took its place."""
    path = Path(path)
    stale = []
    name = re.escape(f".{path.name[:NAME_CHARS]}.")
    # Exactly the names _prefix and tempfile make (8 random characters), never a user's file.
    pattern = re.compile(rf"{name}(?:(\d+)\.[a-z0-9_]{{8}}\.tmp|old-(\d+)\.[a-z0-9_]{{8}})")
    for entry in sorted(path.parent.glob(f".{glob_escape(path.name[:NAME_CHARS])}.*")):
        match = pattern.fullmatch(entry.name)
        if match is None or _pid_alive(int(match.group(1) or match.group(2))):
            continue
        kept = entry / path.name
        if match.group(2) and kept.is_dir() and not os.path.lexists(path):
            os.replace(kept, path)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        stale.append(entry)
    return stale


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _prefix(path: Path, kind: str = "") -> str:
    return f".{path.name[:NAME_CHARS]}.{kind}{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine); tests fake a dead one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _follow_umask(path: Path) -> None:
    """Give ``path`` the mode a plain ``open`` or ``mkdir`` would (keeping execute bits)."""
    mode = path.lstat().st_mode
    if path.is_symlink():
        return
    full = 0o777 if path.is_dir() or mode & 0o111 else 0o666
    os.chmod(path, full & ~_umask())


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or not known
        return 255


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
