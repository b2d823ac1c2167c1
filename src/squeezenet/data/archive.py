"""Unpack image archives (.tar.gz) safely into a cache folder outside the repository.

Every member is checked before anything is written: no absolute paths, no ``..``, no links,
no devices; then tarfile's ``data`` filter extracts (a second line of defence). Archives are
unpacked once into ``$SQUEEZENET_CACHE`` (default ``~/.cache/squeezenet``) under a key made of
the archive's name, size and modification time, via a temporary folder renamed into place, so
an interrupted unpack never leaves a half-filled cache entry.

The cache is only an optimisation: where it cannot be written (read-only home, a file in the
way, a full disk) :func:`writable_cache_dir` warns once and archives are unpacked into a
private temporary folder removed at exit.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ..errors import FormatError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def cache_dir() -> Path:
    """The cache root: ``$SQUEEZENET_CACHE`` or ``~/.cache/squeezenet``."""
    return Path(os.environ.get("SQUEEZENET_CACHE") or Path.home() / ".cache" / "squeezenet")


_WRITABLE: dict[str, bool] = {}


def writable_cache_dir() -> Path | None:
    """The cache root if a file can be created in it (it is made if missing), else None after
    ONE warning line per process naming the folder and the reason: callers then work without
    the cache (measure again, decode again, unpack into a temporary folder)."""
    import sys
    root = cache_dir()
    key = str(root)
    if key not in _WRITABLE:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe.", dir=root)
            os.close(fd)
            os.unlink(probe)
            _WRITABLE[key] = True
        except OSError as e:
            _WRITABLE[key] = False
            sys.stderr.write(f"squeezenet: warning: cache folder {root} is not writable "
                             f"({e.strerror or e}); working without a cache (set SQUEEZENET_CACHE "
                             f"to a writable folder to keep unpacked data and measurements)\n")
    return root if _WRITABLE[key] else None


def cache_write_failed(path: Path, e: OSError) -> None:
    """A cache write failed after the probe succeeded (disk full...): warn once, carry on."""
    import sys
    key = str(cache_dir())
    if _WRITABLE.get(key, True):
        _WRITABLE[key] = False
        sys.stderr.write(f"squeezenet: warning: cannot write the cache file {path} "
                         f"({getattr(e, 'strerror', None) or e}); working without a cache\n")


_PRIVATE: list[Path] = []


def _private_cache() -> Path:
    """A temporary cache folder for this process only, removed at exit."""
    if not _PRIVATE:
        import atexit
        d = Path(tempfile.mkdtemp(prefix="squeezenet-cache-"))
        atexit.register(shutil.rmtree, d, True)
        _PRIVATE.append(d)
    return _PRIVATE[0]


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


def unpack(archive: str | os.PathLike, cache: str | os.PathLike | None = None,
           progress: bool = True) -> Path:
    """Unpack ``archive`` (once) into the cache and return the unpacked folder, e.g.
    ``unpack("../shared/data/cifar10/test.tar.gz")`` -> ``~/.cache/squeezenet/test-<key>/``.

    The first time (it can take a minute) says so on stderr, with a tqdm bar of the files
    unless ``progress=False``.
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
    if cache is None and writable_cache_dir() is None:
        root = _private_cache()
        dest = root / f"{stem}-{key}"
        if (dest / ".complete").is_file():
            return dest
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FormatError(root, f"cannot create the folder to unpack {archive.name} into ({e.strerror or e})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=root))
    if progress:
        kept = "for this run only" if _PRIVATE and root == _PRIVATE[0] else "once: later runs reuse it"
        sys.stderr.write(f"squeezenet: unpacking {archive} into {dest} ({kept})...\n")
        sys.stderr.flush()
    try:
        try:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                for m in members:
                    _check_member(archive, m)
                tf.extractall(tmp, members=_counted(members, progress), filter="data")
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


def _counted(members: list, progress: bool):
    """``members`` one by one, with a tqdm bar on stderr when ``progress``."""
    if not progress:
        yield from members
        return
    from tqdm import tqdm
    with tqdm(total=len(members), desc="unpacking", unit="file", leave=False, dynamic_ncols=True) as bar:
        for m in members:
            yield m
            bar.update(1)


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
