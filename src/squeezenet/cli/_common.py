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
            changed.append(f"--{dest.replace('_', '-')} {','.join(map(str, getattr(args, dest)))}")
        elif (v is None and fill) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > cap):
            setattr(args, dest, cap)
            changed.append(f"--{dest.replace('_', '-')} {cap}")
    if getattr(args, "memory", None) == "subprocess":   # bench: a process per engine is slow to start
        args.memory = "inprocess"
        changed.append("--memory inprocess")
    return changed
