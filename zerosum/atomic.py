"""Files written so that a kill never leaves half of one: write ``<name>.tmp<pid>``, fsync, rename.

A kill between the write and the rename leaves only the temporary file; :func:`remove_stale_tmp`
clears such leftovers before the next write into the same folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_file(path: PathLike) -> Iterator[str]:
    """Yields a temporary path to write ``path``'s new content into (e.g. with ``torch.save``); on success
    the file is flushed to disk and renamed over ``path`` (POSIX rename is atomic), on failure removed."""
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: PathLike, data: Union[str, bytes]) -> None:
    """``path`` holds ``data`` entirely or keeps its previous content."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


_TMP = re.compile(r"\.tmp\d+$")


def remove_stale_tmp(folder: PathLike) -> list[str]:
    """Deletes the ``*.tmp<pid>`` leftovers of killed writers in ``folder``; returns their names.
    Call it only while nothing else writes into ``folder``."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        if path.is_file() and _TMP.search(path.name):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return sorted(removed)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
