"""``squeezenet list``: the registered models (``--pretrained``: the pretrained weights' cards)."""
from __future__ import annotations

from ._common import add_parser

EXAMPLES = """  squeezenet list
  squeezenet list --pretrained          # names usable wherever a command takes a model file
"""


def register(sub) -> None:
    p = add_parser(sub, "list", "list the registered models", EXAMPLES)
    p.add_argument("--pretrained", action="store_true",
                   help="list the pretrained weights (name, source URL and sha256, preset, license, "
                        "figures on the shared dev photos, bundled file)")
    p.set_defaults(func=run)


def run(args) -> int:
    if getattr(args, "pretrained", False):
        from ..interop.pretrained import REGISTRY
        print("\n\n".join(w.card() for w in REGISTRY.values()))
        return 0
    from ..models import get_model_entry, list_models
    for name in list_models():
        e = get_model_entry(name)
        print(f"{name:<22} input {e.input_size:>3}  {e.description}")
    return 0
