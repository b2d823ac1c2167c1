"""The ``squeezenet`` command line: one module per subcommand.

Every module in this package that defines ``register(subparsers)`` is a subcommand; its
``register`` adds a parser whose ``func`` default runs the command and returns an exit code.
User errors (:class:`squeezenet.SqueezeNetError`, bad flags) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import pkgutil
import sys

from ..errors import SqueezeNetError, first_line


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (usage line + problem) and close-match hints."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # a typo must not silently match a flag
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        if "invalid choice" in message and "choose from" in message:
            import re
            m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
            if m:
                opts = [o.strip(" '") for o in m.group(2).split(",")]
                close = difflib.get_close_matches(m.group(1), opts, n=3, cutoff=0.4)
                if close:
                    message += f"; did you mean {', '.join(close)}?"
        if "unrecognized arguments" in message:
            opts = _all_option_strings(self)
            bad = message.split(":", 1)[1].split()
            close = [c for b in bad for c in difflib.get_close_matches(b.split("=")[0], opts, n=2, cutoff=0.5)]
            if close:
                message += f"; did you mean {', '.join(dict.fromkeys(close))}?"
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _all_option_strings(parser: argparse.ArgumentParser) -> list[str]:
    opts = []
    for a in parser._actions:
        opts += a.option_strings
        if isinstance(a, argparse._SubParsersAction):
            for p in a.choices.values():
                opts += _all_option_strings(p)
    return opts


def subcommand_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


def build_parser() -> ArgumentParser:
    from .. import __version__
    parser = ArgumentParser(
        prog="squeezenet",
        description="SqueezeNet toolkit: models, training, real pretrained weights, Deep "
                    "Compression, design-space exploration and fast inference.",
        epilog="Run 'squeezenet COMMAND --help' for a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"squeezenet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in sorted(subcommand_modules()):
        mod = importlib.import_module(f"{__name__}.{name}")
        if hasattr(mod, "register"):
            mod.register(sub)
    return parser


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the subcommand ``args`` came from (``squeezenet explore sweep`` ->
    the ``sweep`` parser), so that a bad flag is matched against that command's own flags."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if not name or name not in subs[0].choices:
            return parser
        parser = subs[0].choices[name]


def _tolerant_output() -> None:
    """Text that the terminal's encoding cannot show (a non-ASCII path under
    ``PYTHONIOENCODING=ascii`` or a C locale) is escaped, never a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    trailing = getattr(args, "trailing", None)   # a list positional that may also follow options
    if extra and trailing and not any(e.startswith("-") for e in extra):
        setattr(args, trailing, [*(getattr(args, trailing) or []), *extra])
        extra = []
    if extra:   # reported by the subcommand's parser: its usage line, close matches among its flags
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ._common import SMOKE_ENV, apply_smoke
    capped = apply_smoke(args)
    if capped:
        sys.stderr.write(f"squeezenet: {SMOKE_ENV} is set: a smoke run ({', '.join(capped)}); "
                         f"its figures mean nothing\n")
    try:
        with _folder_lock(args):
            code = int(args.func(args) or 0)
        sys.stdout.flush()   # a closed pipe shows here, not at interpreter exit
        return code
    except SqueezeNetError as e:
        sys.stderr.write(f"squeezenet {args.command}: error: {first_line(e)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"\nsqueezenet {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _folder_lock(args):
    """The lock of the folder a command writes (its parser's ``run_folder`` default names the
    option: ``p.set_defaults(run_folder="out")``), so that a second command writing it at the
    same time is refused; under torchrun the first process alone takes it."""
    import contextlib
    import os
    dest = getattr(args, "run_folder", None)
    folder = getattr(args, dest, None) if dest else None
    if not folder or int(os.environ.get("RANK", "0") or 0) != 0:
        return contextlib.nullcontext()
    from ..io import FolderLock
    return FolderLock(folder, "--" + dest.replace("_", "-"))


def _closed_pipe() -> int:
    """The reader of our output went away (``squeezenet inspect --json | head``): stop quietly
    with 141 (128 + SIGPIPE), what a shell reports for tools killed by SIGPIPE."""
    import os
    try:   # later flushes (at exit) must not raise again: point stdout at /dev/null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return 141


def run() -> None:
    try:    # Ctrl-C while the parser and the command's modules load: one line too
        code = main()
    except KeyboardInterrupt:
        sys.stderr.write("\nsqueezenet: interrupted\n")
        code = 130
    sys.exit(code)
