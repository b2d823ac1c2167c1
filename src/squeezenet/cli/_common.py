"""Helpers shared by subcommands."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import Range, SqueezeNetError


def number(kind: type = int, lo: float | None = None, hi: float | None = None, **range_kw):
    """argparse ``type`` for a numeric flag checked by :class:`~squeezenet.errors.Range` (the
    check the config dataclasses use): ``--threads -2`` is ``argument --threads: -2: must be an
    integer >= 1`` and exit 2, before anything is loaded.

    >>> number(int, 1)("3"), number(float, 0, lo_open=True)("1e-3")
    (3, 0.001)
    """
    rng = Range(lo, hi, integer=kind is int, **range_kw)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {rng.describe()}") from None
        why = rng.problem(value)
        if why:
            raise argparse.ArgumentTypeError(f"{text}: {why}")
        return value
    parse.__name__ = kind.__name__
    return parse


def input_size(text: str) -> int:
    """argparse ``type`` of ``--input-size``: 8..MAX_INPUT_SIZE, refused before a tensor is made."""
    from ..models.registry import MAX_INPUT_SIZE
    return number(int, 8, MAX_INPUT_SIZE)(text)


def model_name(value: str) -> str:
    """argparse type for a registered model name, with close-match hints."""
    from ..models.registry import list_models, unknown_model_message
    if value not in list_models():
        raise argparse.ArgumentTypeError(unknown_model_message(value))
    return value


def add_parser(sub, name: str, help: str, examples: str = "", **kw):
    return sub.add_parser(name, help=help, description=help,
                          epilog=("examples:\n" + examples) if examples else None,
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def load_model_file(value: str):
    """The one place a command loads a model it is given: a pretrained weights name from the
    registry (``squeezenet1_1.onnx_zoo``: bundled, cached or downloaded; ``squeezenet list
    --pretrained``), else a model file through :func:`squeezenet.io.load`."""
    from ..interop.pretrained import is_weights_name, load_weights
    if is_weights_name(str(value)):
        return load_weights(str(value))
    from ..io import load
    return load(value)


def model_or_file(value: str):
    """Build a model from a registered name, or load it from a model file or a pretrained
    weights name."""
    from pathlib import Path
    from ..models.registry import create_model, list_models, unknown_model_message
    if value in list_models():
        return create_model(value), value
    if Path(value).suffix and not Path(value).exists():   # squeezenet1.1: a model name with a dot
        import difflib
        close = difflib.get_close_matches(value.replace(".", "_").replace("-", "_").lower(), list_models(),
                                          n=1, cutoff=0.8)
        if close:
            raise SqueezeNetError(f"{value}: no such file, nor a model name; did you mean {close[0]}?")
    if Path(value).suffix:
        return load_model_file(value), Path(value).name
    raise SqueezeNetError(unknown_model_message(value) + " (or give a model file)")


#: ``SQUEEZENET_SMOKE=1``: every command runs on a tiny budget (what tests/test_readme.py uses
#: to run the README's commands as written in minutes). Option dest -> (cap, fill): the cap
#: lowers a larger value (each value of a list) and, where ``fill``, sets an option left unset
#: (which means "no limit").
SMOKE_ENV = "SQUEEZENET_SMOKE"
SMOKE_CAPS: dict[str, tuple[int | float, bool]] = {
    "epochs": (1, False),               # train, explore
    "batch_size": (16, False),          # train, compress (retraining), eval, explore
    "max_steps": (2, True),             # train, demo, compress (per retraining stage), explore
    "trials": (2, False),               # explore search
    "train_subset": (256, True),        # explore
    "test_subset": (64, True),          # explore
    "limit": (40, True),                # eval, compress: images scored
    "calibration_images": (16, False),  # compress
    "distill_steps": (2, False),        # compress (mixed path)
    "choose_images": (40, False),       # compress: held-out --unlabeled images
    "calibration_count": (8, False),    # export --int8
    "rounds": (1, False),               # bench
    "iters": (2, False),                # bench
    "sgemm_size": (256, False),         # bench
    "batch": (8, False),                # bench: each batch size in the list
}


def smoke() -> bool:
    """Whether ``SQUEEZENET_SMOKE`` asks for a smoke run (the one place it is read)."""
    import os
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _flag(dest: str) -> str:
    """The flag a user sees for ``dest`` (export's ``calibration_count`` is ``--calibration-images``)."""
    return {"calibration_count": "--calibration-images"}.get(dest, "--" + dest.replace("_", "-"))


def apply_smoke(args) -> list[str]:
    """Cap ``args`` by :data:`SMOKE_CAPS` under ``SQUEEZENET_SMOKE=1``; returns what changed
    (``--max-steps 2``...), [] otherwise."""
    if not smoke():
        return []
    changed = []
    for dest, (cap, fill) in SMOKE_CAPS.items():
        if not hasattr(args, dest):
            continue
        v = getattr(args, dest)
        if isinstance(v, list) and v and all(isinstance(x, int) for x in v) and max(v) > cap:
            setattr(args, dest, sorted({min(x, cap) for x in v}))
            changed.append(f"{_flag(dest)} {','.join(map(str, getattr(args, dest)))}")
        elif (v is None and fill) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > cap):
            setattr(args, dest, cap)
            changed.append(f"{_flag(dest)} {cap}")
    if getattr(args, "memory", None) == "subprocess":   # bench: a process per engine is slow to start
        args.memory = "inprocess"
        changed.append("--memory inprocess")
    return changed


# ------------------------------------------------------------------ one vocabulary

#: The metavar of every command's model argument.
MODEL_METAVAR = "MODEL"


def hide_aliases(action: argparse.Action, *aliases: str) -> argparse.Action:
    """Keep ``aliases`` (old flag names) working for ``action`` but out of ``--help``, usage
    lines, error messages and did-you-mean hints: the parser still maps them to the action."""
    action.option_strings = [o for o in action.option_strings if o not in aliases]
    return action


def add_out(p, dest: str = "out", folder: bool = True, required: bool = True, default=None,
            help: str | None = None) -> argparse.Action:
    """``-o/--out`` (the old ``--output`` a hidden alias): every command's output, under one name."""
    action = p.add_argument("-o", "--out", "--output", dest=dest, required=required and default is None,
                            default=default, metavar="DIR" if folder else "FILE",
                            help=help or ("output folder" if folder else "output file"))
    return hide_aliases(action, "--output")


def add_model_arg(p, dest: str, help: str, **kw) -> argparse.Action:
    """The positional model argument, shown as MODEL by every command."""
    return p.add_argument(dest, metavar=MODEL_METAVAR, help=help, **kw)


# ------------------------------------------------------------------ output folders

def output_folder(out, *, overwrite: bool = False, resume: bool | None = None, clear=None,
                  flag: str = "--out"):
    """The one rule for every command that writes a folder (``train``, ``demo``, ``explore
    sweep``/``report``, ``export-caffe``): a non-empty folder is refused (one line: what it
    holds and how to go on) unless ``overwrite`` (``--overwrite``: ``clear(folder)`` then
    removes what the command writes, and nothing else, returning the names removed) or
    ``resume`` (``--resume``, where the command can continue; ``None``: it cannot). Returns the
    folder as a :class:`~pathlib.Path`; checks nothing else (``io.check_output`` does).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "last.safetensors").write_text("x")
    >>> output_folder(d, resume=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    squeezenet.errors.OutputError: ...: not empty (holds last.safetensors); add --resume to continue its run, or --overwrite to replace what this command writes there, or give another --out
    >>> output_folder(d, overwrite=True) == d
    True
    """
    from pathlib import Path

    from ..errors import OutputError
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(out, f"is a file, not a folder; give a folder as {flag}")
    if resume:
        return out
    try:
        entries = sorted(e.name for e in out.iterdir()) if out.is_dir() else []
    except OSError as e:
        raise OutputError(out, f"cannot list ({e.strerror or e})") from None
    if not entries:
        return out
    if not overwrite:
        shown = entries[:3]
        more = f" and {len(entries) - len(shown)} more" if len(entries) > len(shown) else ""
        how = "add --resume to continue its run, or " if resume is not None else "add "
        raise OutputError(out, f"not empty (holds {', '.join(shown)}{more}); {how}--overwrite to replace what "
                               f"this command writes there, or give another {flag}")
    if clear is not None:
        removed = clear(out)
        if removed:
            print(f"--overwrite: removed {', '.join(removed)} from {out}", flush=True)
    return out
