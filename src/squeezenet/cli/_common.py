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


def model_or_file(value: str):
    """Build a model from a registered name, or load it from a model file."""
    from pathlib import Path
    from ..io import load
    from ..models.registry import create_model, list_models, unknown_model_message
    if value in list_models():
        return create_model(value), value
    if Path(value).suffix:
        return load(value), Path(value).name
    raise SqueezeNetError(unknown_model_message(value) + " (or give a model file)")
