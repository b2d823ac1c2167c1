"""``squeezenet import``: released weights from Caffe, Deep Compression, the ONNX zoo and
torchvision into one model file (weights + config + classes + preprocessing).

The module is ``import_cmd`` because ``import`` is a Python keyword; the command is ``import``.
"""
from __future__ import annotations

from ._common import add_out, add_parser

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
each line: synsets.txt or synset_words.txt; the rest of a line is the class's name, kept
so that predict prints "Egyptian cat"). Without it the file has no class list.
Preprocessing stored: "caffe" (BGR, 0-255, mean subtracted, 227) for caffe and
deep-compression, "torchvision" (RGB, ImageNet mean/std, 224) for onnx-zoo and torchvision.
A prototxt written by export-caffe notes its model's preset and class list, and import
honours them; for other Caffe files it says that it assumed "caffe" (--preprocess to choose).
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
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help="preprocessing preset the weights expect: caffe | torchvision | small "
                        "(default: the source's, or what an exported prototxt notes)")
    add_out(p, dest="output", folder=False,
            help="output model file (.safetensors; .sqz for --from deep-compression)")
    p.add_argument("--overwrite", action="store_true", help="allow -o to be one of the input files")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..data import read_class_names
    from ..interop.importers import import_to_file
    from ..io import check_output
    check_output(args.output, inputs=[*args.src, args.classes], overwrite=args.overwrite)
    classes, names = read_class_names(args.classes) if args.classes else (None, None)
    out = import_to_file(args.source, args.src, args.output, classes, class_names=names,
                         preprocess=args.preprocess,
                         log=lambda msg: print(f"squeezenet import: note: {msg}", file=sys.stderr))
    print(f"wrote {out}")
    return 0
