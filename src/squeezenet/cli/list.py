"""``squeezenet list``: the registered models."""
from __future__ import annotations

from ._common import add_parser


def register(sub) -> None:
    p = add_parser(sub, "list", "list the registered models")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import get_model_entry, list_models
    for name in list_models():
        e = get_model_entry(name)
        print(f"{name:<22} input {e.input_size:>3}  {e.description}")
    return 0
