"""State images on disk: staging an image of ``state.db`` (a Raft snapshot, a backup) in a
file beside the database, checked before it replaces anything."""

import contextlib
import os
import sqlite3

from dkron_trio.store.replica import ImageError
from dkron_trio.store.sqlite_tx import OLDEST_IMAGE_VERSION, SCHEMA_VERSION, connect


def _remove(path: str) -> None:
    """The file and its WAL companions, if there."""
    for leftover in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)


def stage_image(path: str, image: bytes) -> int:
    """Write a state image to ``path``, durably, and check that it is a state database of
    this schema; returns its applied index. ImageError (and no file left) if it is not."""
    if not image.startswith(b"SQLite format 3\x00"):
        raise ImageError("not a state image: no SQLite header")
    _remove(path)
    try:
        with open(path, "wb") as f:
            f.write(image)
            f.flush()
            os.fsync(f.fileno())
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if not OLDEST_IMAGE_VERSION <= version <= SCHEMA_VERSION:
                raise ImageError(
                    f"image has schema version {version}; this build reads versions "
                    f"{OLDEST_IMAGE_VERSION} to {SCHEMA_VERSION}"
                )
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise ImageError("image fails SQLite's integrity check")
            applied: int = conn.execute("SELECT applied FROM replica").fetchone()[0]
        finally:
            conn.close()
        if version != SCHEMA_VERSION:
            connect(path).close()  # an image of an older build: migrated like a database
    except (ImageError, sqlite3.DatabaseError) as exc:
        _remove(path)
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"not a state image: {exc}") from exc
    return applied


def stage_empty(path: str) -> int:
    """An empty state database at ``path`` (the image of a state nothing was applied to)."""
    _remove(path)
    connect(path).close()
    return 0
