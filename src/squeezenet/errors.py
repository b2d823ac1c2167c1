"""User-facing errors, and the one range check behind every numeric option.

Anything a user can cause (a bad file, a bad flag, a bad value, an output that cannot be
written) raises a subclass of :class:`SqueezeNetError`. The CLI prints it as one line and
exits with status 2; library callers can catch it. Messages name the file or field and the
problem. :class:`Range` is the check every config dataclass (and the CLI's numeric flags)
uses, so ``nan``, ``inf``, a negative count or a float where an integer belongs fail the
same way everywhere.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping


class SqueezeNetError(Exception):
    """A problem with the user's input; printed as one line by the CLI (exit 2)."""


class FormatError(SqueezeNetError):
    """A file that is corrupt, truncated, or not of the expected format."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(SqueezeNetError, ValueError):
    """An invalid configuration value (names the field and the value)."""


class OutputError(SqueezeNetError, OSError):
    """An output that cannot be written (read-only folder, a folder where a file belongs, the
    input itself, a full disk, a failed fsync...). Also an ``OSError``, so code that treats a
    failed optional write as harmless (``except OSError``) keeps doing so."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __str__(self) -> str:   # OSError's own __str__ would show the args tuple
        return f"{self.path}: {self.problem}"


def _fmt(v) -> str:
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10_000 else f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Range:
    """The accepted values of one numeric option: an integer or a finite real number (never a
    bool, NaN or infinity) between optional bounds; ``optional`` also accepts None.

    >>> Range(1, integer=True).problem(0)
    'must be an integer >= 1'
    >>> Range(0, 1, hi_open=True).problem(float("nan"))
    'must be a finite number in [0, 1)'
    >>> Range(1, 16, integer=True).problem(2.0), Range(0, optional=True).problem(None)
    ('must be an integer in 1..16', None)
    """

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False          # lo itself is excluded
    hi_open: bool = False          # hi itself is excluded
    optional: bool = False         # None is accepted
    note: str = ""                 # appended to the message, e.g. "(0: off)"

    def describe(self) -> str:
        what = "an integer" if self.integer else "a finite number"
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            if self.integer and not (self.lo_open or self.hi_open):
                rng = f" in {_fmt(lo)}..{_fmt(hi)}"
            else:
                rng = f" in {'(' if self.lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if self.hi_open else ']'}"
        elif lo is not None:
            rng = f" {'>' if self.lo_open else '>='} {_fmt(lo)}"
        elif hi is not None:
            rng = f" {'<' if self.hi_open else '<='} {_fmt(hi)}"
        else:
            rng = ""
        return what + rng + (f" {self.note}" if self.note else "")

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is accepted, else ``"must be ..."``."""
        if value is None and self.optional:
            return None
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok and self.integer:
            ok = isinstance(value, numbers.Integral)
        if ok and not self.integer:
            ok = math.isfinite(value)
        if ok and self.lo is not None:
            ok = value > self.lo if self.lo_open else value >= self.lo
        if ok and self.hi is not None:
            ok = value < self.hi if self.hi_open else value <= self.hi
        return None if ok else "must be " + self.describe()

    def check(self, what: str, value: Any) -> Any:
        """``value`` if accepted, else :class:`ConfigError` ``"{what}={value!r}: must be ..."``."""
        why = self.problem(value)
        if why:
            raise ConfigError(f"{what}={value!r}: {why}")
        return value


#: Bounds of the options that size resources (one place: the CLI flags and the config
#: dataclasses import them), so that a huge value is a one-line refusal, never an allocator
#: traceback, a fork error or a run that never ends.
MAX_THREADS = 256            # --threads (torch intra-op threads)
MAX_WORKERS = 64             # --workers (data-loading processes)
MAX_BATCH_SIZE = 4096        # --batch-size of train/eval (images in memory at once)
MAX_ITERATIONS = 100_000     # bench --rounds / --iters
MAX_SGEMM_SIZE = 8192        # bench --sgemm-size (three n x n float32 matrices: 768 MiB)
MAX_LR = 1e4                 # --lr (and lr x --head-lr-mult): beyond it a step overflows float32
MAX_SEED = 2**32 - 1         # --seed (numpy's seeds are 32-bit)


def check_fields(obj: Any, what: str, ranges: Mapping[str, Range]) -> None:
    """Check every field of ``obj`` named in ``ranges`` (a config dataclass's
    ``__post_init__``); the error names the config and the field: ``"train config lr=nan: ..."``."""
    for name, rng in ranges.items():
        rng.check(f"{what} {name}", getattr(obj, name))


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first non-blank line of an exception's message (at most ``limit`` characters), or
    the exception's class name when the message is empty: the one-line form of any error.

    >>> first_line(ValueError("bad value\\n  details"))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    >>> first_line(OSError("x" * 50), limit=5)
    'xxxxx'
    """
    for line in str(e).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(e).__name__


def open_input(path, what: str = "file"):
    """Open a user's input file for binary reading: regular files only.

    A FIFO, device, socket or folder is refused with a one-line :class:`FormatError` instead
    of blocking forever or reading without end: the file is opened non-blocking and checked
    with ``fstat`` on the descriptor itself (no race between the check and the open). Every
    reader of a file named by a user (images, model files, class lists, configs) opens it
    here.
    """
    import os
    import stat
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(path, f"{_kind(st.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FormatError(path, f"no such {what}") from None
    except OSError as e:
        raise FormatError(path, f"cannot read {what} ({e.strerror or first_line(e)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(path, f"{_kind(st.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file (see :func:`open_input`), refused with one line when it is
    over ``limit`` bytes (checked before reading)."""
    import os
    with open_input(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise FormatError(path, f"{what} of {size:,} bytes is over the {limit:,}-byte limit")
        try:   # read(n) allocates n bytes first: n is the size the file has, never the limit
            return f.read(size)
        except OSError as e:
            raise FormatError(path, f"cannot read {what} ({e.strerror or first_line(e)})") from None


def _kind(mode: int) -> str:
    import stat
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


#: Optional dependencies: import name -> (pip extra, what needs it). ``pip install
#: "squeezenet[EXTRA]"`` installs them (pyproject.toml's optional-dependencies).
EXTRAS = {"optuna": ("explore", "design-space search (squeezenet explore search/report)"),
          "matplotlib": ("plot", "the .png plots (explore sweep/report, benchmarks)"),
          "psycopg2": ("postgres", "a postgresql:// study storage")}


def require(module: str):
    """``import module``, or a one-line :class:`SqueezeNetError` naming the extra that installs it.

    >>> require("json").__name__
    'json'
    >>> require("nosuchmodule_x")
    Traceback (most recent call last):
    squeezenet.errors.SqueezeNetError: this command needs nosuchmodule_x, which is not installed: pip install nosuchmodule_x
    """
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, what = EXTRAS.get(module.split(".")[0], (None, "this command"))
        how = f'pip install "squeezenet[{extra}]"' if extra else f"pip install {module.split('.')[0]}"
        raise SqueezeNetError(f"{what} needs {module.split('.')[0]}, which is not installed: {how}") from None


def lazy_attributes(package: str, table: Mapping[str, str]):
    """A module ``__getattr__`` for ``package`` that imports ``name`` from its submodule
    ``table[name]`` on first use and keeps it (PEP 562): heavy imports (torch, Optuna) wait
    until an attribute is asked for. Unknown names raise AttributeError as usual.

    >>> get = lazy_attributes("json", {"JSONEncoder": "encoder"})
    >>> get("JSONEncoder").__name__
    'JSONEncoder'
    """
    import importlib
    import sys

    def __getattr__(name):
        if name in table:
            value = getattr(importlib.import_module(f".{table[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
