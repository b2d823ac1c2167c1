"""``squeezenet export-caffe``: a SqueezeNet as Caffe ``deploy.prototxt`` + ``.caffemodel``."""
from __future__ import annotations

from ._common import add_parser

EXAMPLES = """  squeezenet export-caffe runs/digits/best.safetensors -o caffe_out/
  squeezenet export-caffe zoo1_1.safetensors -o caffe_v1_1/ --name squeezenet_v1.1
"""


def register(sub) -> None:
    p = add_parser(sub, "export-caffe", "write a SqueezeNet as Caffe deploy.prototxt + .caffemodel",
                   EXAMPLES)
    p.add_argument("weights", metavar="WEIGHTS", help="model file (or registered model name)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--name", default="squeezenet", help="caffemodel file name stem (default: squeezenet)")
    p.add_argument("--input-size", type=int, default=None,
                   help="input side written into the prototxt (default 227; 32 for squeezenet_small)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path
    from ..errors import SqueezeNetError
    from ..interop.caffe import export_caffe
    from ..io import atomic_write_text
    from ._common import model_or_file
    if args.input_size is not None and args.input_size < 8:
        raise SqueezeNetError(f"--input-size {args.input_size}: too small (need >= 8)")
    model, _ = model_or_file(args.weights)
    proto, weights = export_caffe(model.eval(), args.output, name=args.name, input_size=args.input_size)
    print(f"wrote {proto}")
    print(f"wrote {weights}")
    if getattr(model, "classes", None):
        classes = Path(args.output) / "classes.txt"
        atomic_write_text(classes, "\n".join(model.classes) + "\n")
        print(f"wrote {classes}")
    return 0
