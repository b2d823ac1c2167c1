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
