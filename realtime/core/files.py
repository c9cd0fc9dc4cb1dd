"""Files written whole or not at all, and a file's content hash: one rule for every writer in the project.

The durability rule (:func:`atomic_path` and everything built on it):

1. write to a hidden temporary file in the *same folder* as the target (a rename is only atomic within
   one file system), named ``.<stem>.<pid>-<random>.tmp<suffix>`` so that writers which pick a format from
   the suffix (matplotlib's ``savefig``) still see it, and so that two processes never share one;
2. flush it and ``fsync`` it, so that its bytes are on disk before its name is;
3. ``os.replace`` it over the target: a reader sees the old file or the new one, never half of one;
4. ``fsync`` the folder where the platform allows it (POSIX), so that the rename itself survives a crash.

If writing fails, the temporary file is removed and the target is left as it was. The folder must exist
(callers decide whether to create it). Torch-free and dependency-free: ``realtime/``, ``training/`` and
``export/`` all import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "IMAGE_SUFFIXES",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "fsync_folder",
    "temporary_sibling",
]

# The still-image files every reader of frames accepts (stream.py's frame folders, the batch command's inputs,
# the data set readers): exactly the formats OpenCV's ``imread`` decodes with its built-in codecs. One list, so
# that a folder one command reads is a folder every command reads. It is the union of the three lists there
# were: the data set readers lacked ``.webp``/``.pgm``/``.ppm``, which none of CASME II, CK+ or SAMM ships
# (their folders list the same frames as before), while a user's own frames may well be WebP or PPM.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffix (``out/.report.1234-9f2c01ab.tmp.png``)."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def fsync_folder(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # writable: Windows cannot sync a read-only descriptor
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """For writers that want a path (``torch.save``, ``onnx.save``, ``figure.savefig``): yields a temporary
    path beside ``path``; when the block ends without an exception, that file is synced and renamed over
    ``path`` (then the folder is synced). On an exception it is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None):
    """For writers that want a file object (``csv.writer``, ``json.dump``): ``mode`` ``"w"`` (text, with
    ``encoding`` and ``newline`` as in :func:`open`) or ``"wb"``. The file becomes ``path`` when the block ends
    without an exception, by the rule of this module."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        if mode == "wb":
            handle: IO = tmp.open("wb")
        else:
            handle = tmp.open("w", encoding=encoding, newline=newline)
        with handle:
            yield handle  # closing flushes it; atomic_path then syncs it to disk and renames it


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` by the rule of this module. Returns ``path``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8", newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` by the rule of this module. Returns ``path``."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: Path | str, data: object, indent: int = 2, ensure_ascii: bool = True) -> Path:
    """``data`` as indented JSON (and a final newline) at ``path``, by the rule of this module. Returns ``path``."""
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=ensure_ascii) + "\n")


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks (identifies a model or weights whatever its path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
