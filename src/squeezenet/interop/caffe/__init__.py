"""Caffe nets in and out: ``.prototxt`` + ``.caffemodel`` to PyTorch and back.

* :mod:`.pb` - the part of ``caffe.proto`` SqueezeNet files use, built in code.
* :mod:`.parse` - :func:`read_prototxt` / :func:`read_caffemodel` parse with ``protobuf``
  against that schema (text format, binary wire format); every problem is a one-line
  :class:`~squeezenet.errors.FormatError` naming the file (and the line for text). Layer
  records, TRAIN/TEST rules and blob <-> array conversion live here too.
* :mod:`.net` - :class:`CaffeNet` runs any net made of the supported layers as a DAG over
  Caffe's blob names (in-place layers, Caffe's rounding-up pooling, global pooling,
  TRAIN/TEST rules); :func:`load_caffe` builds one from the files.
* :mod:`.mapping` - :func:`to_squeezenet` maps a CaffeNet that *is* a SqueezeNet (v1.0, v1.1,
  bypass variants, any Fire sizes) onto :class:`~squeezenet.models.SqueezeNet` with
  torchvision keys; :func:`import_caffe` does prototxt + caffemodel -> SqueezeNet in one call.
* :mod:`.export` - :func:`export_caffe` writes a SqueezeNet as ``deploy.prototxt`` +
  ``.caffemodel`` with the DeepScale layer names, which :func:`import_caffe` reads back to
  identical outputs.

>>> from squeezenet.interop.caffe import parse_prototxt, CaffeNet
>>> net = parse_prototxt('''input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
... layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
...         convolution_param { num_output: 4 kernel_size: 3 } }
... layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
...         pooling_param { pool: MAX kernel_size: 3 stride: 2 } }''')
>>> CaffeNet(net).shapes["pool"]   # (8 - 3 + 1) = 6 -> ceil((6 - 3) / 2) + 1 = 3
(1, 4, 3, 3)
"""
from . import pb
from .export import export_caffe, squeezenet_to_netparameter
from .mapping import PREPROCESS, NotSqueezeNet, arch_name, import_caffe, squeezenet_layout, to_squeezenet
from .net import MAX_DIM, MAX_LAYER_PARAMS, MAX_NET_PARAMS, CaffeNet, Op, load_caffe
from .parse import (DATA_TYPES, LOSS_TYPES, SUPPORTED, Layer, array_to_blob, blob_shape, blob_to_array,
                    layer_included, net_layers, parse_prototxt, read_caffemodel, read_prototxt)

__all__ = ["pb", "parse_prototxt", "read_prototxt", "read_caffemodel", "Layer", "net_layers",
           "layer_included", "blob_shape", "blob_to_array", "array_to_blob", "SUPPORTED", "DATA_TYPES",
           "LOSS_TYPES", "CaffeNet", "Op", "load_caffe", "MAX_DIM", "MAX_LAYER_PARAMS", "MAX_NET_PARAMS",
           "NotSqueezeNet", "squeezenet_layout", "to_squeezenet", "arch_name", "import_caffe", "PREPROCESS",
           "export_caffe", "squeezenet_to_netparameter"]
