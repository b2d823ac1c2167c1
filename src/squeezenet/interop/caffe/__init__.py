"""Caffe nets in and out (``.prototxt`` + ``.caffemodel``); see :mod:`.net`."""
from .net import (DATA_TYPES, LOSS_TYPES, MAX_DIM, MAX_LAYER_PARAMS, MAX_NET_PARAMS, PREPROCESS,
                  SUPPORTED, CaffeNet, Layer, NotSqueezeNet, Op, arch_name, array_to_blob, blob_shape,
                  blob_to_array, export_caffe, import_caffe, layer_included, load_caffe, net_layers,
                  parse_prototxt, read_caffemodel, read_prototxt, squeezenet_layout,
                  squeezenet_to_netparameter, to_squeezenet)
