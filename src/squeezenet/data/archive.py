"""Unpack image archives (.tar.gz) safely into a cache folder outside the repository.

Every member is checked before anything is written: no absolute paths, no ``..``, no links,
no devices; then tarfile's ``data`` filter extracts (a second line of defence). Archives are
unpacked once into ``$SQUEEZENET_CACHE`` (default ``~/.cache/squeezenet``) under a key made of
the archive's name, size and modification time, via a temporary folder renamed into place, so
an interrupted unpack never leaves a half-filled cache entry.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ..errors import FormatError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def cache_dir() -> Path:
    """The cache root: ``$SQUEEZENET_CACHE`` or ``~/.cache/squeezenet``."""
    return Path(os.environ.get("SQUEEZENET_CACHE") or Path.home() / ".cache" / "squeezenet")


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _check_member(archive: Path, m: tarfile.TarInfo) -> None:
    name = m.name
    p = PurePosixPath(name)
    if name.startswith(("/", "\\")) or p.is_absolute() or (p.parts and ":" in p.parts[0]):
        raise FormatError(archive, f"member {name!r} has an absolute path; refusing to unpack")
    if ".." in p.parts:
        raise FormatError(archive, f"member {name!r} escapes the target folder; refusing to unpack")
    if m.issym() or m.islnk():
        raise FormatError(archive, f"member {name!r} is a link ({m.linkname!r}); refusing to unpack")
    if not (m.isfile() or m.isdir()):
        raise FormatError(archive, f"member {name!r} is not a regular file or folder; refusing to unpack")


def unpack(archive: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """Unpack ``archive`` (once) into the cache and return the unpacked folder, e.g.
    ``unpack("../shared/data/cifar10/test.tar.gz")`` -> ``~/.cache/squeezenet/test-<key>/``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FormatError(archive, "no such file")
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    stem = archive.name
    for s in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(s):
            stem = stem[: -len(s)]
            break
    root = Path(cache) if cache else cache_dir()
    dest = root / f"{stem}-{key}"
    if (dest / ".complete").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                for m in members:
                    _check_member(archive, m)
                tf.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise FormatError(archive, f"not a readable tar archive ({e})") from None
        (tmp / ".complete").write_text(str(archive.resolve()) + "\n")
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another process unpacked the same archive meanwhile: keep theirs.
            if not (dest / ".complete").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def content_root(folder: Path) -> Path:
    """Descend through single wrapping folders (``test.tar.gz`` holds ``test/<class>/...``)."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            sub = [e for e in entries[0].iterdir() if not e.name.startswith(".")]
            if sub and all(e.is_dir() for e in sub):
                folder = entries[0]
                continue
        return folder
