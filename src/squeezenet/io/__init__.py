"""Model files: save and load SqueezeNets with their config, classes and preprocessing.

The native format is a safetensors file whose header metadata holds
``{"format": "squeezenet", "format_version": "1", "config": <json>, "classes": <json>,
"preprocess": <name>, "extra": <json>}``. Nothing is ever unpickled.

:func:`load` is the one loader behind every command: it dispatches on the file suffix
(``.safetensors``, ``.sqz``, ...) through :data:`LOADERS`, so that checkpoints, imported
and compressed files work everywhere.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError, FormatError, OutputError, SqueezeNetError, first_line, open_input, read_input
from ..models.weights import check_shapes, load_state_dict_checked

FORMAT = "squeezenet"
FORMAT_VERSION = "1"

#: suffix -> "module:function" taking a path and returning a model (imported lazily).
LOADERS: dict[str, str] = {
    ".safetensors": "squeezenet.io:load_safetensors",
    ".sqz": "squeezenet.io.sqz:load_sqz",
}


#: Limits of the small readers (headers, sidecars, configs, class lists), checked before parsing.
MAX_JSON_DEPTH = 64            # nesting of any JSON value read from a file
MAX_TEXT_BYTES = 16 << 20      # a text file (class list, labels, JSON sidecar, JSON config)
MAX_YAML_BYTES = 1 << 20       # a YAML file (design space, train config)
MAX_YAML_NODES = 100_000       # scalars, lists and mappings in one YAML file
MAX_YAML_DEPTH = 32            # nesting of a YAML file


def parse_json(data: str | bytes, source, what: str = "JSON") -> Any:
    """A JSON value from ``data`` (read from ``source``), nested at most :data:`MAX_JSON_DEPTH`
    deep; anything else (bad syntax, bad UTF-8, nesting deep enough to exhaust the parser's
    stack) is a one-line :class:`FormatError` naming ``source``.

    >>> parse_json('{"a": [1, 2]}', "x.json")
    {'a': [1, 2]}
    >>> parse_json("[" * 100 + "]" * 100, "x.json")
    Traceback (most recent call last):
    ...
    squeezenet.errors.FormatError: x.json: bad JSON (nested over 64 levels deep)
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        value = json.loads(text)
    except RecursionError:
        raise FormatError(source, f"bad {what} (nested over {MAX_JSON_DEPTH} levels deep)") from None
    except (ValueError, TypeError) as e:   # JSONDecodeError, UnicodeDecodeError
        raise FormatError(source, f"bad {what} ({first_line(e, 200)})") from None
    stack = [(value, 1)]
    while stack:   # iterative: the check itself cannot exhaust the stack
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise FormatError(source, f"bad {what} (nested over {MAX_JSON_DEPTH} levels deep)")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return value


def read_text(path: str | os.PathLike, what: str = "text file", limit: int = MAX_TEXT_BYTES) -> str:
    """A regular UTF-8 text file of at most ``limit`` bytes (a binary, oversized or special
    file is a one-line :class:`FormatError`)."""
    data = read_input(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"{what} is not UTF-8 text (byte {e.start})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """:func:`parse_json` of a file read by :func:`read_text`."""
    return parse_json(read_text(path, what), path, what)


def read_yaml(path: str | os.PathLike | None = None, text: str | bytes | None = None, source=None) -> Any:
    """A YAML document (a file, or ``text`` read from ``source``) parsed with PyYAML's safe
    loader, bounded: at most :data:`MAX_YAML_BYTES` of UTF-8, :data:`MAX_YAML_NODES` nodes
    nested :data:`MAX_YAML_DEPTH` deep, and no aliases (``*ref``, the "billion laughs" bomb);
    any problem is a one-line :class:`FormatError` naming the file.

    >>> read_yaml(text="a: [1, 2.5, x]", source="s.yaml")
    {'a': [1, 2.5, 'x']}
    >>> read_yaml(text="a: &x [1]\\nb: *x", source="s.yaml")
    Traceback (most recent call last):
    ...
    squeezenet.errors.FormatError: s.yaml: not valid YAML: line 2: aliases (*x) are not allowed
    """
    import yaml
    source = source if source is not None else path
    if text is None:
        text = read_input(path, "YAML file", MAX_YAML_BYTES)
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    if len(text) > MAX_YAML_BYTES:
        raise FormatError(source, f"YAML file of {len(text):,} bytes is over the {MAX_YAML_BYTES:,}-byte limit")
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(source, f"not UTF-8 text (byte {e.start})") from None
    loader = None
    try:
        loader = _bounded_loader()(text)   # checks the characters already
        return loader.get_single_data()
    except _YamlRefused as e:
        raise FormatError(source, f"not valid YAML: {e}") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as e:
        raise FormatError(source, f"not valid YAML: {first_line(e, 200)}") from None
    finally:
        if loader is not None:
            loader.dispose()


class _YamlRefused(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _bounded_loader():
    """The loader class, built on first use (PyYAML is imported lazily)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """PyYAML's pure-Python safe loader that refuses aliases and counts nodes and depth
        while composing (before anything is built)."""

        def __init__(self, stream):
            super().__init__(stream)
            self._nodes = 0
            self._depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _YamlRefused(f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are not allowed")
            self._nodes += 1
            if self._nodes > MAX_YAML_NODES:
                raise _YamlRefused(f"over {MAX_YAML_NODES:,} values")
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise _YamlRefused(f"line {self.peek_event().start_mark.line + 1}: nested over "
                                       f"{MAX_YAML_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
    return BoundedLoader


# ------------------------------------------------------------------------------ writing

def _umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)   # elsewhere: read by setting (then restore at once)
    os.umask(mask)
    return mask


def _process_start() -> float:
    """When this process started (epoch seconds): temp files older than that cannot be ours."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])   # field 22, starttime
        with open("/proc/stat") as f:
            btime = next(int(l.split()[1]) for l in f if l.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK") - 1.0   # btime is whole seconds
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()
PROCESS_START = _process_start()
#: What ``tempfile.mkstemp``/``mkdtemp`` put between our prefix and suffix (8 characters).
_TEMP_TAIL = r"\.[a-z0-9_]{8}\.tmp"


_ANY_TEMP = re.compile(r"\..+" + _TEMP_TAIL)


def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f".{name}") + _TEMP_TAIL)


def clean_stale_temps(path: str | os.PathLike) -> int:
    """Remove the temp files (and temp folders) that an :func:`atomic_write` or
    :func:`atomic_write_files` of ``path`` killed by SIGKILL left beside it
    (``.NAME.XXXXXXXX.tmp``). Only that exact pattern, and only entries older than this
    process, so a concurrent writer's temp is never touched. Returns how many were removed."""
    path = Path(path)
    pattern, n = _temp_pattern(path.name), 0
    places = [path.parent] + ([path] if path.is_dir() and not path.is_symlink() else [])
    for place in places:
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for e in entries:
            if not pattern.fullmatch(e.name):
                continue
            try:
                st = e.stat(follow_symlinks=False)
                if st.st_mtime >= PROCESS_START:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path)
                else:
                    os.unlink(e.path)
                n += 1
            except OSError:
                pass   # not ours to fight over: it stays
    return n


def _is_stale_temp(entry: os.DirEntry) -> bool:
    """A temp file of any of our writes, left by a run killed before this process started."""
    try:
        return bool(_ANY_TEMP.fullmatch(entry.name)) and entry.stat(follow_symlinks=False).st_mtime < PROCESS_START
    except OSError:
        return False


def _why(e: OSError) -> str:
    return e.strerror or first_line(e)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _existing_kind(path: Path) -> str | None:
    """None if ``path`` is absent or a regular file (or a link to one), else what it is."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(path, f"cannot use as output ({_why(e)})") from None
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    return "not a regular file (a device, FIFO or socket)"


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(path.parent, f"cannot create the output folder ({_why(e)})") from None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file.

    The temp file ``.NAME.XXXXXXXX.tmp`` sits beside ``path``; it is fsynced, given the mode a
    new file gets under the umask (``0o666 & ~umask``), then renamed. Stale temps of ``path``
    left by a killed earlier run are removed first (:func:`clean_stale_temps`). An OS error
    (read-only folder, a folder or device at ``path``, a full disk, a failed fsync) is an
    :class:`~squeezenet.errors.OutputError` naming the path.
    """
    path = Path(path)
    kind = _existing_kind(path)
    if kind:
        raise OutputError(path, f"is {kind}; give a file path to write")
    _make_parent(path)
    clean_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(path, f"cannot write ({_why(e)})") from None
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(path, f"cannot write ({_why(e)})") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` (a newline added) to ``path`` whole or not at all: the line is written
    in one call and fsynced; on any failure (a full disk, an I/O error) the file is cut back to
    the size it had, so it never ends in half a line, and the error is one
    :class:`~squeezenet.errors.OutputError` naming it."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise OutputError(path, f"cannot write ({_why(e)})") from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise OutputError(path, f"cannot write ({_why(e)}); the file is left as it was") from None
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive lock on an output folder for the life of one command: a second command
    that writes the same folder is refused with one line instead of interleaving its files.

    It is ``fcntl.flock`` on the folder itself (no lock file to leave behind or to count as
    content); the kernel drops it when the process ends, however it ends. A folder that
    does not exist yet is created (and removed again on release if still empty); a path that
    cannot be a folder is left for the command's own checks to refuse. Without ``fcntl``
    (Windows) nothing is locked.
    """

    def __init__(self, folder: str | os.PathLike, option: str = "--out") -> None:
        self.folder, self.option = Path(folder), option
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:
            return self
        folder = self.folder
        try:
            if not folder.exists() and not folder.is_symlink():
                folder.mkdir(parents=True)
                self.created = True
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return self     # not a folder, or not creatable: the command's own checks say why
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(folder, f"another squeezenet command is writing this folder (it holds its lock); "
                                      f"wait for it to end or give another {self.option}") from None
        except OSError:    # a file system without flock: no lock, as without fcntl
            os.close(fd)
            return self
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)   # releases the lock
            self.fd = None
        if self.created:
            try:
                self.folder.rmdir()   # only if still empty: a refused run leaves nothing behind
            except OSError:
                pass


def check_file_name(name: str, what: str = "name") -> str:
    """``name`` if it is a plain file name (no folder part, not ``.``/``..``, not absolute,
    not hidden), else a one-line :class:`~squeezenet.errors.ConfigError`: nothing named from
    the command line may land outside the folder it is meant for."""
    from ..errors import ConfigError
    bad = (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
           or "\0" in name or os.path.isabs(name) or (os.altsep and os.altsep in name))
    if bad:
        raise ConfigError(f"{what} {name!r}: must be a plain file name (no folder, '..' or absolute path)")
    return name


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``). False where
    the platform or file system cannot; raises OSError for other failures."""
    import ctypes
    import errno
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swappable(folder: Path) -> bool:
    """Whether ``folder`` may be replaced by a new folder as a whole: it holds only regular
    files and links (no sub-folders, which are never moved), and is not the working folder
    (or one above it), which a shell may be sitting in."""
    cwd = Path.cwd().resolve()
    if cwd == folder or folder in cwd.parents:
        return False
    try:
        return all(e.is_file(follow_symlinks=False) or e.is_symlink() for e in os.scandir(folder))
    except OSError:
        return False


def _link_others(real: Path, tmp: Path, ours: set[str]) -> set[str] | None:
    """Hard-link (links: copy) every entry of ``real`` not in ``ours`` into ``tmp``, so that a
    swap keeps them; None (and ``tmp`` as it was) where a file cannot be linked."""
    kept: set[str] = set()
    try:
        for e in os.scandir(real):
            if e.name in ours or _is_stale_temp(e):
                continue
            if e.is_symlink():
                os.symlink(os.readlink(e.path), tmp / e.name)
            else:
                os.link(e.path, tmp / e.name)
            kept.add(e.name)
        os.chmod(tmp, stat.S_IMODE(real.stat().st_mode))
    except OSError:   # a file system without hard links, a protected file...: one by one instead
        for name in kept:
            os.unlink(tmp / name)
        return None
    _fsync_dir(tmp)
    return kept


def atomic_write_files(folder: str | os.PathLike, files: dict[str, bytes | str | Callable[[str], None]],
                       remove: tuple[str, ...] = ()) -> list[Path]:
    """Write several files into ``folder`` as ONE set: a kill at any moment leaves either the
    complete old set or the complete new one, never a mix.

    ``files`` maps plain file names to their content (bytes, text, or ``write(tmp_path)``);
    ``remove`` names files of an older set that the new set does not have (they go with it).
    Every file is written into a temp folder ``.FOLDER.XXXXXXXX.tmp`` beside ``folder`` and
    fsynced; files already in ``folder`` that are not part of the set are hard-linked into it
    (the same files, untouched); then one ``renameat2(RENAME_EXCHANGE)`` swaps the two folders
    and the old one is removed. A new ``folder`` is one plain rename. Where the swap cannot be
    made (a folder holding sub-folders, the working folder, a platform without the call) the
    files are renamed into place one by one, each still atomic. OS errors are one-line
    :class:`~squeezenet.errors.OutputError` s; stale temp folders of ``folder`` left by a kill
    are removed first. Returns the paths written.

    >>> import tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "out")
    >>> [p.name for p in atomic_write_files(d, {"a.txt": "new", "b.bin": b"\\x00"})]
    ['a.txt', 'b.bin']
    >>> sorted(os.listdir(d)), open(os.path.join(d, "a.txt")).read()
    (['a.txt', 'b.bin'], 'new')
    """
    folder = Path(folder)
    for name in list(files) + list(remove):
        check_file_name(name, "output file name")
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputError(folder, "is a file, not a folder; give a folder to write into")
        real = folder.resolve()     # a link to a folder: the folder it points at is replaced
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(folder, f"cannot use as output folder ({_why(e)})") from None
    _make_parent(real)
    clean_stale_temps(real)
    beside = True
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent))
    except OSError as e:
        if not real.is_dir():
            raise OutputError(folder, f"cannot write ({_why(e)})") from None
        beside = False   # a writable folder in a read-only one: temp folder inside, files one by one
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=real))
        except OSError as e2:
            raise OutputError(folder, f"cannot write ({_why(e2)})") from None
    mask = _umask()
    done = False
    try:
        for name, content in files.items():
            target = str(tmp / name)
            if callable(content):
                content(target)
            elif isinstance(content, str):
                Path(target).write_text(content, encoding="utf-8")
            else:
                Path(target).write_bytes(content)
            _fsync_file(target)
            os.chmod(target, 0o666 & ~mask)
        exists = real.is_dir()
        if beside and not exists:
            os.chmod(tmp, 0o777 & ~mask)
            _fsync_dir(tmp)
            os.rename(tmp, real)
            done = True
        elif beside and _swappable(real):
            kept = _link_others(real, tmp, set(files) | set(remove))
            if kept is not None and _exchange(tmp, real):
                done = True
                for e in os.scandir(tmp):   # anything added to the folder meanwhile stays with it
                    if e.name not in kept and e.name not in files and e.name not in remove \
                            and not os.path.lexists(real / e.name):
                        os.rename(e.path, real / e.name)
        if not done:
            for name in files:
                os.replace(tmp / name, real / name)
            for name in remove:
                if (real / name).is_file():
                    os.unlink(real / name)
            done = True
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(folder, f"cannot write ({_why(e)})") from None
    finally:
        if tmp.exists():   # after a swap: the old set; after a failure: the partial new one
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(real)
    _fsync_dir(real.parent)
    return [folder / name for name in files]


def check_output(path: str | os.PathLike, inputs=(), overwrite: bool = False,
                 folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written: refuse an output that is one of
    ``inputs`` (the same file, also through links or hard links) unless ``overwrite``, a folder
    where a file belongs (or a file where a folder belongs), a device or FIFO, and a place
    where no file can be created (read-only, no space for a name). Creates the missing parent
    folders (``folder=True``: the folder itself). One-line
    :class:`~squeezenet.errors.OutputError` naming the path."""
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise OutputError(path, "is a file, not a folder; give a folder to write into")
    else:
        kind = _existing_kind(path)
        if kind:
            raise OutputError(path, f"is {kind}; give a file path to write")
        if not overwrite and path.exists():
            for inp in inputs:
                try:
                    same = inp is not None and os.path.samefile(path, inp)
                except OSError:
                    same = False
                if same:
                    raise OutputError(path, f"is the input {inp}: writing it would destroy the input; "
                                            f"give another output path (or --overwrite to replace it)")
    place = path if folder else path.parent
    try:
        place.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(place, f"cannot create the output folder ({_why(e)})") from None
    probe = path / "squeezenet-probe" if folder else path
    clean_stale_temps(probe)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{probe.name}.", suffix=".tmp", dir=place)
    except OSError as e:
        raise OutputError(path, f"cannot write here ({_why(e)})") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def model_metadata(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The header metadata that lets :func:`load` rebuild ``model``."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise SqueezeNetError(f"cannot save {type(model).__name__}: it has no SqueezeNet config")
    from ..models.data_config import data_config, file_metadata
    cfg = data_config(model)
    meta = file_metadata(cfg, getattr(model, "metadata", {}))
    meta.update(extra or {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
        "classes": json.dumps(list(cfg.classes) if cfg.classes is not None else None),
        "preprocess": json.dumps(cfg.preset),
        "extra": json.dumps(meta),
    }


def file_data_config(meta: dict[str, Any] | None, classes, preset, path: str | os.PathLike):
    """(the :class:`~squeezenet.models.DataConfig`, the rest of the metadata) of a model file
    (safetensors, ``.sqz``) from its ``classes`` and ``preprocess`` fields and its free-form
    metadata; a bad field is a one-line :class:`FormatError` naming ``path``. Files written
    before the config existed read as they did (names that are not a list are dropped)."""
    from ..models.data_config import config_from_metadata, split_metadata
    fields, rest = split_metadata(meta if isinstance(meta, dict) else {})
    names = fields.get("class_names")
    if names is not None:
        fields["class_names"] = [str(n) for n in names] if isinstance(names, list) else None
    if isinstance(fields.get("input_size"), list):
        fields["input_size"] = tuple(fields["input_size"])
    try:
        return config_from_metadata(fields, classes, preset if isinstance(preset, str) else None), rest
    except ConfigError as e:
        raise FormatError(path, f"bad data config in its metadata ({first_line(e)})") from None


def set_from_header(model: nn.Module, h: dict[str, Any]) -> nn.Module:
    """Give a model built from :func:`header_fields` its data config and metadata."""
    model.data_config, model.metadata = h["data_config"], h["extra"]
    return model


def save(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (weights + config + classes + preprocessing) atomically as safetensors.

    >>> import squeezenet, tempfile, os
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> p = squeezenet.save(m, os.path.join(tempfile.mkdtemp(), "m.safetensors"))
    >>> squeezenet.load(p).config == m.config
    True
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = model_metadata(model, extra)
    atomic_write_safetensors(path, tensors, meta)
    return Path(path)


def atomic_write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                             metadata: dict[str, str]) -> None:
    """:func:`atomic_write` of a safetensors file. safetensors reports a failed write (a full
    disk, a file-size limit) as its own error type, not an OSError: it becomes one, so the
    caller gets the same one-line :class:`~squeezenet.errors.OutputError`."""
    from safetensors.torch import save_file

    def write(tmp):
        try:
            save_file(tensors, tmp, metadata=metadata)
        except Exception as e:
            if "I/O error" in str(e) or "os error" in str(e):
                raise OSError(first_line(e)) from None
            raise
    atomic_write(path, write)


def header_fields(meta: dict[str, Any], path: str | os.PathLike, encoded: bool = True) -> dict[str, Any]:
    """The checked fields of a model header written by :func:`model_metadata` (``encoded``:
    each value a JSON string, as in a safetensors header) or of a ``.json`` sidecar (plain
    JSON values): ``config`` (a :class:`~squeezenet.models.SqueezeNetConfig`, checked, size
    bound included), ``classes`` (checked by the one class-list check), ``preprocess`` and
    ``extra``. Every problem is a one-line :class:`FormatError` naming ``path``; nothing is
    built."""
    from ..models import SqueezeNetConfig
    from ..models.classes import check_classes
    if meta.get("format") != FORMAT:
        raise FormatError(path, "not a squeezenet model file (no 'format: squeezenet' in its header)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FormatError(path, f"format version {str(meta.get('format_version'))[:20]!r} is not supported "
                                f"(this version reads {FORMAT_VERSION})")

    def field(key: str, default: Any) -> Any:
        if key not in meta:
            return default
        v = meta[key]
        if not encoded:
            return v
        if not isinstance(v, str):
            raise FormatError(path, f"bad model header: {key!r} is not a JSON string")
        return parse_json(v, path, f"{key!r} in the header")

    if "config" not in meta:
        raise FormatError(path, "no model config in its header (and no .json sidecar beside it)")
    try:
        config = SqueezeNetConfig.from_dict(field("config", None))
    except ConfigError as e:
        raise FormatError(path, f"bad model config ({first_line(e)})") from None
    classes = field("classes", None)
    if classes is not None:
        try:
            classes = check_classes(classes, config.num_classes)
        except ConfigError as e:
            raise FormatError(path, f"bad class list ({first_line(e)})") from None
    preprocess = field("preprocess", None)
    if preprocess is not None and (not isinstance(preprocess, str) or not preprocess or len(preprocess) > 100):
        raise FormatError(path, f"bad model header: preprocess must be a preset name, not {str(preprocess)[:40]!r}")
    extra = field("extra", None)
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise FormatError(path, "bad model header: extra must be a JSON object")
    cfg, extra = file_data_config(extra, classes, preprocess, path)
    return {"config": config, "classes": classes, "preprocess": preprocess, "extra": extra, "data_config": cfg}


def model_from_metadata(meta: dict[str, str], path: str | os.PathLike) -> nn.Module:
    """Build an (untrained) model from header metadata written by :func:`model_metadata`."""
    from ..models import SqueezeNet
    h = header_fields(meta, path)
    model = SqueezeNet(h["config"])
    set_from_header(model, h)
    return model


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with one-line errors for bad files."""
    from safetensors import safe_open
    path = Path(path)
    open_input(path, "safetensors file").close()   # a regular file (safetensors would block on a FIFO)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise FormatError(path, f"not a readable safetensors file ({first_line(e)})") from None
    return tensors, meta


def _sidecar(path: Path) -> dict[str, Any] | None:
    """The ``.json`` sidecar beside a safetensors file without a header config, or None."""
    side = path.with_suffix(".json")
    if not side.exists():
        return None
    meta = read_json(side, "JSON sidecar")
    if not isinstance(meta, dict):
        raise FormatError(side, f"a model sidecar must be a JSON object, not {type(meta).__name__}")
    meta.setdefault("format", FORMAT)
    meta.setdefault("format_version", FORMAT_VERSION)
    return meta


def load_safetensors(path: str | os.PathLike) -> nn.Module:
    """A model from a safetensors file: the header (or ``.json`` sidecar) is checked, then
    every tensor's name and shape against the config, all before a model is allocated; so
    memory follows what the file holds, never what its header claims."""
    from safetensors import safe_open
    from ..models import SqueezeNet
    from ..models.squeezenet import state_shapes
    path = Path(path)
    open_input(path, "safetensors file").close()   # a regular file (safetensors would block on a FIFO)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise FormatError(path, f"not a readable safetensors file ({first_line(e)})") from None
    source, encoded = path, True
    if "config" not in meta:
        side = _sidecar(path)
        if side is not None:
            meta, source, encoded = {**side, **meta}, path.with_suffix(".json"), False
    h = header_fields(meta, source, encoded)
    check_shapes(shapes, state_shapes(h["config"]), path)
    tensors, _ = read_safetensors(path)
    model = SqueezeNet(h["config"])
    set_from_header(model, h)
    load_state_dict_checked(model, tensors, path)
    return model.eval()


def load(path: str | os.PathLike) -> nn.Module:
    """Load any model file this toolkit knows into a runnable model in eval mode.

    The model carries ``classes`` and ``preprocess`` from the file.
    """
    path = Path(path)
    open_input(path, "file").close()   # exists, and is a regular file (not a FIFO or device)
    target = LOADERS.get(path.suffix.lower())
    if path.suffix.lower() == ".onnx":
        raise FormatError(path, "an ONNX file: 'squeezenet eval', 'predict' and 'bench' run it with ONNX Runtime; "
                                "this needs a model file (.safetensors or .sqz, e.g. the one it was exported from)")
    if target is None:
        raise FormatError(path, f"unknown model file type {path.suffix!r} "
                                f"(known: {', '.join(sorted(LOADERS))}; use 'squeezenet import' for Caffe, "
                                f"Deep-Compression, ONNX-zoo and torchvision files)")
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)(path)
