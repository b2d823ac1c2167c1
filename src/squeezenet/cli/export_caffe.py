"""``squeezenet export-caffe``: a SqueezeNet as Caffe ``deploy.prototxt`` + ``.caffemodel``."""
from __future__ import annotations

from ._common import add_model_arg, add_out, add_parser, input_size

EXAMPLES = """  squeezenet export-caffe runs/digits/best.safetensors -o caffe_out/
  squeezenet export-caffe zoo1_1.safetensors -o caffe_v1_1/ --name squeezenet_v1.1
"""


def register(sub) -> None:
    p = add_parser(sub, "export-caffe", "write a SqueezeNet as Caffe deploy.prototxt + .caffemodel",
                   EXAMPLES)
    add_model_arg(p, "weights", "model file (or registered model name)")
    add_out(p, dest="output", help="output folder (a non-empty one needs --overwrite)")
    p.add_argument("--name", default="squeezenet",
                   help="caffemodel file name stem, a plain name (default: squeezenet)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty output folder (replacing the files written), even over the input")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="input side written into the prototxt (default 227; 32 for squeezenet_small)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path
    from ..interop.caffe import export_caffe
    from ..interop.caffe.export import CLASSES_FILE
    from ..io import check_file_name, check_output
    from ._common import model_or_file
    check_file_name(args.name, "--name")
    out = Path(args.output)
    from ._common import output_folder
    output_folder(out, overwrite=args.overwrite, flag="-o")
    check_output(out, folder=True)       # before the model is loaded
    for f in ("deploy.prototxt", f"{args.name}.caffemodel", CLASSES_FILE):
        check_output(out / f, inputs=[args.weights], overwrite=args.overwrite)
    model, _ = model_or_file(args.weights)
    proto, weights = export_caffe(model.eval(), out, name=args.name, input_size=args.input_size)
    print(f"wrote {proto}")
    print(f"wrote {weights}")
    if getattr(model, "classes", None):
        print(f"wrote {out / CLASSES_FILE}")
    return 0
