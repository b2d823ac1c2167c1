"""Fetching a weights file once: progress bar, sha256 check, cache, mirror, atomic write.

* the cache folder is ``$SQUEEZENET_CACHE`` (default ``~/.cache/squeezenet``); a file already
  there is used when its hash matches, else fetched again
* ``$SQUEEZENET_MIRROR`` replaces the official URL: a base URL (``https://host/models``: the
  file's name is appended) or a local folder holding the file under its name
* the file is written to a temp file beside its final name and renamed only once every byte has
  arrived and its sha256 matches: a wrong hash, a 404, a cut connection or a timeout leaves
  nothing behind
* every failure is one line (:class:`DownloadError`) naming the URL and, when the network is
  unreachable, the mirror variable

Only the standard library's ``urllib`` is used; the file is never unpickled here (the
importers in :mod:`squeezenet.interop` read it).
"""
from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import SqueezeNetError, first_line

CACHE_ENV = "SQUEEZENET_CACHE"
MIRROR_ENV = "SQUEEZENET_MIRROR"
#: seconds a connection or a single read may stall before the download is given up
TIMEOUT_S = 30.0
CHUNK = 1 << 16


class DownloadError(SqueezeNetError):
    """A download that did not give the expected file (one line; nothing was kept)."""


def cache_dir() -> Path:
    """``$SQUEEZENET_CACHE``, else ``~/.cache/squeezenet``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "squeezenet"


def source_for(url: str, file_name: str) -> str:
    """Where the file comes from: ``$SQUEEZENET_MIRROR`` (a base URL or a folder) else ``url``.

    >>> source_for("https://a/b/w.pth", "w.pth")  # doctest: +SKIP
    'https://a/b/w.pth'
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    if "://" in mirror and not mirror.startswith("file://"):
        return mirror.rstrip("/") + "/" + file_name
    folder = Path(mirror[len("file://"):] if mirror.startswith("file://") else mirror).expanduser()
    return str(folder / file_name)


def hash_matches(digest: str, sha256: str | None, sha256_prefix: str | None) -> bool:
    if sha256 is not None:
        return digest == sha256.lower()
    if sha256_prefix is not None:
        return digest.startswith(sha256_prefix.lower())
    return True


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _offline(src: str, why: str, file_name: str) -> DownloadError:
    return DownloadError(f"cannot download {src} ({why}); without internet, set {MIRROR_ENV} to a folder "
                         f"holding {file_name} (or a base URL that serves it)")


def _copy_stream(read, out, total: int | None, desc: str, progress: bool) -> tuple[int, str]:
    from tqdm import tqdm
    h = hashlib.sha256()
    n = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress,
              leave=False) as bar:
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            n += len(chunk)
            bar.update(len(chunk))
    return n, h.hexdigest()


def fetch(url: str, file_name: str, sha256: str | None = None, sha256_prefix: str | None = None,
          progress: bool = True, timeout: float = TIMEOUT_S, cache: str | os.PathLike | None = None) -> Path:
    """The cached file ``file_name`` (downloaded from ``url`` or the mirror if missing or stale).

    ``sha256`` (the full hash) or ``sha256_prefix`` (the leading hex digits, as torchvision's
    file names carry) is checked before the file is kept; a mismatch is a :class:`DownloadError`
    and nothing is written.
    """
    from ..io import atomic_write
    folder = Path(cache) if cache is not None else cache_dir()
    dest = folder / file_name
    if dest.is_file() and hash_matches(file_sha256(dest), sha256, sha256_prefix):
        return dest
    src = source_for(url, file_name)
    expect = sha256 or (f"{sha256_prefix}..." if sha256_prefix else None)

    def check(n: int, digest: str) -> None:
        if not hash_matches(digest, sha256, sha256_prefix):
            raise DownloadError(f"{src}: sha256 {digest} does not match the expected {expect} "
                                f"({n:,} bytes; nothing was kept)")

    def write(tmp: str) -> None:
        if "://" not in src:   # a mirror folder
            if not Path(src).is_file():
                raise DownloadError(f"{src}: not found in the mirror folder {MIRROR_ENV}={os.environ.get(MIRROR_ENV)}")
            try:
                with open(src, "rb") as f, open(tmp, "wb") as out:
                    n, digest = _copy_stream(f.read, out, os.fstat(f.fileno()).st_size, file_name, progress)
            except OSError as e:
                raise DownloadError(f"{src}: cannot read ({first_line(e, 160)})") from None
            check(n, digest)
            return
        try:
            req = urllib.request.Request(src, headers={"User-Agent": "squeezenet"})
            with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as out:
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                n, digest = _copy_stream(r.read, out, total, file_name, progress)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{src}: HTTP {e.code} {e.reason}") from None
        except (socket.timeout, TimeoutError):
            raise DownloadError(f"{src}: no data for {timeout:g} s (timed out; nothing was kept)") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise DownloadError(f"{src}: no answer in {timeout:g} s (timed out; nothing was kept)") from None
            raise _offline(src, first_line(reason if isinstance(reason, BaseException) else e, 120),
                           file_name) from None
        except (ConnectionError, OSError) as e:   # cut mid-file (IncompleteRead is an HTTPException)
            raise DownloadError(f"{src}: connection lost ({first_line(e, 120)}; nothing was kept)") from None
        except Exception as e:   # http.client.IncompleteRead, RemoteDisconnected ...
            raise DownloadError(f"{src}: connection lost ({type(e).__name__}: {first_line(e, 120)}; "
                                f"nothing was kept)") from None
        if total is not None and n != total:
            raise DownloadError(f"{src}: connection cut after {n:,} of {total:,} bytes (nothing was kept)")
        check(n, digest)

    atomic_write(dest, write)
    return dest

