"""Helpers shared by subcommands."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SqueezeNetError


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
