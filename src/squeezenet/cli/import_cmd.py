"""``squeezenet import``: released weights from Caffe, Deep Compression, the ONNX zoo and
torchvision into one model file (weights + config + classes + preprocessing).

The module is ``import_cmd`` because ``import`` is a Python keyword; the command is ``import``.
"""
from __future__ import annotations

from ._common import add_parser

EXAMPLES = """  squeezenet import deploy.prototxt squeezenet_v1.0.caffemodel --from caffe \\
      --classes synsets.txt -o v1_0.safetensors
  squeezenet import compressed_SqueezeNet.net --from deep-compression --classes synsets.txt \\
      -o dc.safetensors            # finds SqueezeNet_deploy.prototxt beside the .net
  squeezenet import compressed_SqueezeNet.net --from deep-compression -o dc.sqz
  squeezenet import onnx_zoo_squeezenet1.1/weights --from onnx-zoo --classes synsets.txt \\
      -o zoo1_1.safetensors
  squeezenet import squeezenet1_1-b8a52dc0.pth --from torchvision --classes synsets.txt \\
      -o tv1_1.safetensors

--classes FILE: the ImageNet class ids in model index order, one per line (first word of
each line: synsets.txt or synset_words.txt). Without it the file has no class list.
Preprocessing stored: "caffe" (BGR, 0-255, mean subtracted, 227) for caffe and
deep-compression, "torchvision" (RGB, ImageNet mean/std, 224) for onnx-zoo and torchvision.
"""


def register(sub) -> None:
    from ..interop.importers import SOURCES
    p = add_parser(sub, "import", "convert released weights (Caffe, Deep Compression, ONNX zoo, "
                                  "torchvision) into a model file", EXAMPLES)
    p.add_argument("src", nargs="+", metavar="SRC",
                   help="input files: prototxt + caffemodel, .net [+ prototxt], zoo weights folder, .pth")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="what SRC is")
    p.add_argument("--classes", metavar="FILE", default=None,
                   help="class ids in model index order (e.g. ImageNet synsets.txt)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output model file (.safetensors; .sqz for --from deep-compression)")
    p.add_argument("--overwrite", action="store_true", help="allow OUT to be one of the input files")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import read_class_list
    from ..interop.importers import import_to_file
    from ..io import check_output
    check_output(args.output, inputs=[*args.src, args.classes], overwrite=args.overwrite)
    classes = read_class_list(args.classes) if args.classes else None
    out = import_to_file(args.source, args.src, args.output, classes)
    print(f"wrote {out}")
    return 0
