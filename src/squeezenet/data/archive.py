"""Unpack image archives (.tar.gz) safely into a cache folder outside the repository.

The archive is read once, as a stream. Every member is checked before it is written: no
absolute paths, no ``..``, no links, no devices, no sparse files, at most
:data:`MAX_MEMBER_DEPTH` folders deep; then tarfile's ``data`` filter extracts it (a second
line of defence). The unpacked bytes and the number of members are capped from the
archive's own size (:func:`unpack_limits`: a gzip bomb is refused from the size its member
headers declare, before its data is written), and the compressed stream is read to its end,
so gzip's CRC-32 and length (bz2's and xz's checks likewise) are verified: a corrupt archive
is an error, never used. Archives are unpacked once into ``$SQUEEZENET_CACHE`` (default
``~/.cache/squeezenet``) under a key made of the archive's name, size and modification time,
via a temporary folder renamed into place, so an interrupted or refused unpack never leaves
a half-filled cache entry.

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

from ..errors import FormatError, first_line, open_input

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
#: Caps on what an archive may unpack to (see :func:`unpack_limits`).
UNPACK_SLACK_BYTES = 64 << 20     # unpacked bytes allowed beyond UNPACK_RATIO x the archive's size
UNPACK_RATIO = 16                 # image archives barely compress (JPEG, PNG): a bomb compresses 1000:1
UNPACK_SLACK_FILES = 10_000       # members allowed beyond one per UNPACK_BYTES_PER_FILE of archive
UNPACK_BYTES_PER_FILE = 256
MAX_MEMBER_DEPTH = 32             # components of a member's path
MAX_NESTED_ARCHIVES = 3           # archives inside archives (``data/ -> test.tar.gz -> ...``)


def unpack_limits(archive_bytes: int) -> tuple[int, int]:
    """(most bytes, most members) an archive of ``archive_bytes`` bytes may unpack to.

    >>> unpack_limits(1 << 20)     # a 1 MiB archive: 80 MiB, 14,096 members
    (83886080, 14096)
    """
    return (UNPACK_SLACK_BYTES + UNPACK_RATIO * archive_bytes,
            UNPACK_SLACK_FILES + archive_bytes // UNPACK_BYTES_PER_FILE)


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
    if not (m.isfile() or m.isdir()) or m.issparse():
        raise FormatError(archive, f"member {name!r} is not a regular file or folder; refusing to unpack")
    if len(p.parts) > MAX_MEMBER_DEPTH:
        raise FormatError(archive, f"member {name[:60]!r}... has {len(p.parts)} path components (limit "
                                   f"{MAX_MEMBER_DEPTH}); refusing to unpack")


def _decompressor(archive: Path, raw):
    """A reader of the archive's decompressed stream, picked by its magic bytes."""
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if head[:2] == b"\x1f\x8b":
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head[:3] == b"BZh":
        import bz2
        return bz2.BZ2File(raw, "rb")
    if head[:6] == b"\xfd7zXZ\x00":
        import lzma
        return lzma.LZMAFile(raw, "rb")
    return raw


def _extract(archive: Path, dest: Path, progress: bool = False) -> None:
    """Stream ``archive``'s members into ``dest``, each checked and counted before it is written,
    then read the compressed stream to its end (its checksum is verified there). ``progress``
    shows a tqdm bar of the archive's bytes read on stderr."""
    with open_input(archive, "archive") as f:
        size = os.fstat(f.fileno()).st_size
        max_bytes, max_files = unpack_limits(size)
        stream = _decompressor(archive, f)
        total = files = 0
        with tarfile.open(fileobj=stream, mode="r|") as tf, _bar(size, progress) as bar:
            for m in tf:
                bar.update(f.tell() - bar.n)
                _check_member(archive, m)
                files += 1
                total += m.size if m.isfile() else 0
                if files > max_files or total > max_bytes:
                    what = (f"over {max_files:,} members" if files > max_files
                            else f"over {max_bytes:,} bytes (member {m.name[:80]!r} declares {m.size:,})")
                    raise FormatError(archive, f"unpacks to {what}: the cap for a {size:,}-byte archive is "
                                               f"{max_bytes:,} bytes and {max_files:,} members (a compression bomb?); "
                                               f"unpack it yourself and give the folder if you trust it")
                if m.isdir():
                    (dest / m.name).mkdir(parents=True, exist_ok=True)
                else:
                    tf.extract(m, dest, set_attrs=False, filter="data")
        while stream.read(1 << 20):   # to the end: gzip checks its CRC-32 and length only there
            pass


def unpack(archive: str | os.PathLike, cache: str | os.PathLike | None = None,
           progress: bool = True) -> Path:
    """Unpack ``archive`` (once) into the cache and return the unpacked folder, e.g.
    ``unpack("../shared/data/cifar10/test.tar.gz")`` -> ``~/.cache/squeezenet/test-<key>/``.

    The first time (it can take a minute) says so on stderr, with a tqdm bar of the files
    unless ``progress=False``.
    """
    archive = Path(archive)
    open_input(archive, "archive").close()   # exists and is a regular file
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
            _extract(archive, tmp, progress)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:   # BadGzipFile is an OSError
            raise FormatError(archive, f"not a readable tar archive ({first_line(e, 200)})") from None
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


def _bar(total: int, progress: bool):
    """A tqdm bar over ``total`` archive bytes on stderr (disabled unless ``progress``)."""
    from tqdm import tqdm
    return tqdm(total=total, desc="unpacking", unit="B", unit_scale=True, leave=False, dynamic_ncols=True,
                disable=not progress)


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
