"""One registry from a file ending (".csv.gz") or folder kind ("10x") to the function that reads it.

A new format is one function plus one ``@reader(...)`` line; :func:`find_reader` picks the
entry, so nothing else in the package branches on format names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from anndata import AnnData


@dataclass(frozen=True)
class Reader:
    """How to read one format.

    ``read(path, **options)`` returns the AnnData; ``options`` are the keyword arguments of
    :func:`vaekit.read` it understands; folder readers say with ``detect`` whether a folder
    is theirs.
    """

    read: Callable[..., AnnData]
    what: str
    options: frozenset[str]
    folder: bool = False
    detect: Callable[[Path], bool] | None = None


# file ending (lower case, with its dot or dash) or folder kind -> Reader
READERS: dict[str, Reader] = {}


def reader(
    *keys: str,
    what: str,
    options: Iterable[str] = (),
    detect: Callable[[Path], bool] | None = None,
) -> Callable[[Callable[..., AnnData]], Callable[..., AnnData]]:
    """Register a reader under file endings (``".csv.gz"``) or, with ``detect``, folder kinds.

    Examples
    --------
    >>> @reader(".foo", what="Foo file")  # doctest: +SKIP
    ... def read_foo(path): ...
    """

    def register(func: Callable[..., AnnData]) -> Callable[..., AnnData]:
        entry = Reader(func, what, frozenset(options), folder=detect is not None, detect=detect)
        for key in keys:
            READERS[key.lower()] = entry
        return func

    return register


def find_reader(path: Path, format: str | None = None) -> Reader:
    """The registered reader for ``path`` (by ``format``, folder contents or file ending)."""
    if format is not None:
        entry = _by_format(format)
    elif path.is_dir():
        entry = _by_folder(path)
    else:
        entry = _by_ending(path)
    _check_kind(entry, path)
    return entry


def supported() -> list[str]:
    """Registered file endings and folder kinds, for messages."""
    return sorted(READERS)


def _by_format(format: str) -> Reader:
    key = format.lower()
    entry = READERS.get(key) or READERS.get("." + key)
    if entry is None:
        raise ValueError(f"unknown format={format!r}; use one of {supported()}")
    return entry


def _by_folder(path: Path) -> Reader:
    folders = {key: entry for key, entry in READERS.items() if entry.folder}
    for entry in folders.values():
        if entry.detect(path):
            return entry
    expected = "; or a ".join(entry.what for entry in folders.values())
    raise ValueError(
        f"{path} is a folder but not one vaekit can read: expected a {expected}. "
        "Pass a file inside it, or a folder holding one of those"
    )


def _by_ending(path: Path) -> Reader:
    name = path.name.lower()
    # the longest ending wins, so "x.csv.gz" is a gzipped CSV, not an unknown ".gz"
    matches = [key for key, entry in READERS.items() if not entry.folder and name.endswith(key)]
    if not matches:
        raise ValueError(
            f"cannot tell the format of {path} from its name; supported file endings: "
            f"{[k for k in supported() if not READERS[k].folder]}, or a folder "
            f"({[k for k in supported() if READERS[k].folder]}); rename the file or pass format="
        )
    return READERS[max(matches, key=len)]


def _check_kind(entry: Reader, path: Path) -> None:
    if entry.folder and not path.is_dir():
        raise ValueError(f"{path} is a file, but a {entry.what} is a folder; pass the folder")
    if not entry.folder and path.is_dir():
        raise ValueError(f"{path} is a folder, but a {entry.what} is a file; pass the file")
