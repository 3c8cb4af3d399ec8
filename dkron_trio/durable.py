"""Files that must survive a crash once written: fsync the data, then the directory entry."""

import contextlib
import os


def fsync_dir(path: str) -> None:
    """Make the directory's entries (a file created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing: to a temporary file beside it, fsync'd,
    then renamed over it, so a crash leaves either no file or the whole of it."""
    staging = path + ".tmp"
    try:
        with open(staging, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
