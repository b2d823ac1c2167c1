"""``squeezenet demo``: the main job on the built-in default (scikit-learn's digits)."""
from __future__ import annotations

from ._common import add_parser


def register(sub) -> None:
    p = add_parser(sub, "demo", "run the main job on the built-in digits dataset")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import create_model, summary
    s = summary(create_model("squeezenet1_0"), 227, name="squeezenet1_0")
    print("SqueezeNet v1.0 at 227x227 (paper Table 1)")
    print(s.table())
    return 0
