"""User-facing errors.

Anything a user can cause (a bad file, a bad flag, a bad value) raises a subclass of
:class:`SqueezeNetError`. The CLI prints it as one line and exits with status 2; library
callers can catch it. Messages name the file or field and the problem.
"""


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
