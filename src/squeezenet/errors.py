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
