"""``squeezenet summary``: the per-layer table of the paper's Table 1 for any model."""
from __future__ import annotations

from ._common import add_parser, input_size, model_or_file, number, print_json

EXAMPLES = """  squeezenet summary squeezenet1_0              # Table 1 at 227x227
  squeezenet summary squeezenet1_0 --bypass complex --json
  squeezenet summary squeezenet_small --input-size 32
  squeezenet summary runs/digits/best.safetensors
"""


def register(sub) -> None:
    p = add_parser(sub, "summary", "per-layer output shape, params, MACs and bytes of a model", EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="registered model name (see 'squeezenet list') or a model file")
    p.add_argument("--bypass", choices=["none", "simple", "complex"], default=None,
                   help="bypass variant (paper Table 3) for a named model")
    p.add_argument("--num-classes", type=number(int, 1), default=None, help="outputs of conv10 for a named model")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="input side in pixels (default: the model's documented size)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import SqueezeNetError, first_line
    from ..models import create_model, list_models, summary
    kwargs = {}
    if args.bypass:
        kwargs["bypass"] = args.bypass
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.model in list_models():
        model, name = create_model(args.model, **kwargs), args.model
    else:
        if kwargs:
            raise SqueezeNetError("--bypass/--num-classes apply to named models, not files")
        model, name = model_or_file(args.model)
    from ..data import input_size_for
    h, w = (args.input_size,) * 2 if args.input_size else input_size_for(model)[1:]   # the one input-size rule
    try:
        s = summary(model, h if h == w else (h, w), name=name)
    except RuntimeError as e:
        raise SqueezeNetError(f"{name} cannot run at {h}x{w}: {first_line(e)}") from None
    if args.json:
        print_json(s.to_dict())
    else:
        print(f"{name} at {h}x{w}")
        print(s.table())
    return 0
