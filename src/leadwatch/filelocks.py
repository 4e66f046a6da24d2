"""Advisory locks on files (flock), shared by LeadWatch's processes on one machine: SQLite's
write gate (`db.engine.WriteGate`) and the retrain job (`leads.retrain`). A lock belongs to
the open file and goes with its process, so a killed process never leaves one behind.

Where there is no fcntl (Windows), ``fcntl`` is None and callers keep to one process."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["close_all", "fcntl", "open_lock_file", "try_flock"]


def open_lock_file(path: Path, *, create: bool = True) -> int:
    """A file descriptor to lock on (created if missing, unless ``create`` is false: then
    FileNotFoundError)."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    return os.open(path, flags, 0o600)


def try_flock(fd: int, operation: int) -> bool:
    """Take ``operation`` (LOCK_EX or LOCK_SH) at once, or say it is held elsewhere."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
