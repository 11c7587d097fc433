"""How much memory this process may still allocate, so that what would not fit is refused
before it is allocated (instead of the kernel killing the process)."""

from __future__ import annotations

import os
from pathlib import Path


def available_memory() -> int | None:
    """Bytes of memory this process may still allocate: the kernel's MemAvailable, or less
    under a cgroup (container) limit; None where neither can be read (the check is skipped)."""
    free = _meminfo_available()
    limit = _cgroup_room()
    if free is None:
        return limit
    return free if limit is None else min(free, limit)


def _meminfo_available(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: free physical memory
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_room(folder: str = "/sys/fs/cgroup") -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), None without a limit."""
    try:
        limit = Path(folder, "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int(Path(folder, "memory.current").read_text()), 0)
    except (OSError, ValueError):
        return None


def release_freed_memory() -> None:
    """Hand the heap pages that freed objects left behind back to the system (glibc's
    ``malloc_trim``), so that resident memory falls after a large temporary is freed; does
    nothing where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)
