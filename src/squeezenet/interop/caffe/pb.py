"""The part of Caffe's ``caffe.proto`` that SqueezeNet files use, built in code.

There is no ``protoc`` on CI, so the schema is a ``FileDescriptorProto`` assembled here
and turned into message classes by ``protobuf`` itself (``message_factory``): the wire
and text formats are protobuf's, never hand parsed. Field numbers, types and defaults are
those of BVLC Caffe's ``src/caffe/proto/caffe.proto`` (checked field by field), so real
``.prototxt`` and ``.caffemodel`` files parse. Messages and fields that SqueezeNet files
do not use are left out; binary files keep such fields as unknown fields, text files name
them in the error.

The classes live in a private descriptor pool, so another ``caffe.proto`` loaded in the
same process (pycaffe, onnx tools) cannot clash with them.

>>> net = NetParameter()
>>> net.layer.add(name="conv1", type="Convolution").convolution_param.num_output = 96
>>> NetParameter.FromString(net.SerializeToString()).layer[0].convolution_param.num_output
96
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
OPT, REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCALARS = {
    "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "bool": _F.TYPE_BOOL,
    "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE, "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32, "uint64": _F.TYPE_UINT64,
}

#: Top-level enums: name -> [(value name, number)].
ENUMS = {"Phase": [("TRAIN", 0), ("TEST", 1)]}

_ENGINE = [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]

#: message -> (fields, nested enums). A field is (name, number, label, type[, default[, packed]]);
#: the type is a scalar name, a message name, or "enum:Name" (nested enum or top-level).
MESSAGES: dict[str, tuple[list[tuple], dict[str, list[tuple[str, int]]]]] = {
    "BlobShape": ([("dim", 1, REP, "int64", None, True)], {}),
    "BlobProto": ([
        ("shape", 7, OPT, "BlobShape"),
        ("data", 5, REP, "float", None, True),
        ("diff", 6, REP, "float", None, True),
        ("double_data", 8, REP, "double", None, True),
        ("double_diff", 9, REP, "double", None, True),
        ("num", 1, OPT, "int32", "0"),           # legacy 4-D shape
        ("channels", 2, OPT, "int32", "0"),
        ("height", 3, OPT, "int32", "0"),
        ("width", 4, OPT, "int32", "0"),
    ], {}),
    "BlobProtoVector": ([("blobs", 1, REP, "BlobProto")], {}),
    "FillerParameter": ([
        ("type", 1, OPT, "string", "constant"),
        ("value", 2, OPT, "float", "0"),
        ("min", 3, OPT, "float", "0"),
        ("max", 4, OPT, "float", "1"),
        ("mean", 5, OPT, "float", "0"),
        ("std", 6, OPT, "float", "1"),
        ("sparse", 7, OPT, "int32", "-1"),
        ("variance_norm", 8, OPT, "enum:VarianceNorm", "FAN_IN"),
    ], {"VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)]}),
    "NetParameter": ([
        ("name", 1, OPT, "string"),
        ("input", 3, REP, "string"),
        ("input_shape", 8, REP, "BlobShape"),
        ("input_dim", 4, REP, "int32"),
        ("force_backward", 5, OPT, "bool", "false"),
        ("state", 6, OPT, "NetState"),
        ("debug_info", 7, OPT, "bool", "false"),
        ("layer", 100, REP, "LayerParameter"),
        ("layers", 2, REP, "V1LayerParameter"),
    ], {}),
    "NetState": ([
        ("phase", 1, OPT, "enum:Phase", "TEST"),
        ("level", 2, OPT, "int32", "0"),
        ("stage", 3, REP, "string"),
    ], {}),
    "NetStateRule": ([
        ("phase", 1, OPT, "enum:Phase"),
        ("min_level", 2, OPT, "int32"),
        ("max_level", 3, OPT, "int32"),
        ("stage", 4, REP, "string"),
        ("not_stage", 5, REP, "string"),
    ], {}),
    "ParamSpec": ([
        ("name", 1, OPT, "string"),
        ("share_mode", 2, OPT, "enum:DimCheckMode"),
        ("lr_mult", 3, OPT, "float", "1"),
        ("decay_mult", 4, OPT, "float", "1"),
    ], {"DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]}),
    "LayerParameter": ([
        ("name", 1, OPT, "string"),
        ("type", 2, OPT, "string"),
        ("bottom", 3, REP, "string"),
        ("top", 4, REP, "string"),
        ("phase", 10, OPT, "enum:Phase"),
        ("loss_weight", 5, REP, "float"),
        ("param", 6, REP, "ParamSpec"),
        ("blobs", 7, REP, "BlobProto"),
        ("propagate_down", 11, REP, "bool"),
        ("include", 8, REP, "NetStateRule"),
        ("exclude", 9, REP, "NetStateRule"),
        ("transform_param", 100, OPT, "TransformationParameter"),
        ("loss_param", 101, OPT, "LossParameter"),
        ("accuracy_param", 102, OPT, "AccuracyParameter"),
        ("concat_param", 104, OPT, "ConcatParameter"),
        ("convolution_param", 106, OPT, "ConvolutionParameter"),
        ("data_param", 107, OPT, "DataParameter"),
        ("dropout_param", 108, OPT, "DropoutParameter"),
        ("eltwise_param", 110, OPT, "EltwiseParameter"),
        ("flatten_param", 135, OPT, "FlattenParameter"),
        ("inner_product_param", 117, OPT, "InnerProductParameter"),
        ("input_param", 143, OPT, "InputParameter"),
        ("pooling_param", 121, OPT, "PoolingParameter"),
        ("relu_param", 123, OPT, "ReLUParameter"),
        ("softmax_param", 125, OPT, "SoftmaxParameter"),
    ], {}),
    "TransformationParameter": ([
        ("scale", 1, OPT, "float", "1"),
        ("mirror", 2, OPT, "bool", "false"),
        ("crop_size", 3, OPT, "uint32", "0"),
        ("mean_file", 4, OPT, "string"),
        ("mean_value", 5, REP, "float"),
        ("force_color", 6, OPT, "bool", "false"),
        ("force_gray", 7, OPT, "bool", "false"),
    ], {}),
    "LossParameter": ([
        ("ignore_label", 1, OPT, "int32"),
        ("normalization", 3, OPT, "enum:NormalizationMode", "VALID"),
        ("normalize", 2, OPT, "bool"),
    ], {"NormalizationMode": [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)]}),
    "AccuracyParameter": ([
        ("top_k", 1, OPT, "uint32", "1"),
        ("axis", 2, OPT, "int32", "1"),
        ("ignore_label", 3, OPT, "int32"),
    ], {}),
    "ConcatParameter": ([
        ("axis", 2, OPT, "int32", "1"),
        ("concat_dim", 1, OPT, "uint32", "1"),
    ], {}),
    "ConvolutionParameter": ([
        ("num_output", 1, OPT, "uint32"),
        ("bias_term", 2, OPT, "bool", "true"),
        ("pad", 3, REP, "uint32"),
        ("kernel_size", 4, REP, "uint32"),
        ("stride", 6, REP, "uint32"),
        ("dilation", 18, REP, "uint32"),
        ("pad_h", 9, OPT, "uint32", "0"),
        ("pad_w", 10, OPT, "uint32", "0"),
        ("kernel_h", 11, OPT, "uint32"),
        ("kernel_w", 12, OPT, "uint32"),
        ("stride_h", 13, OPT, "uint32"),
        ("stride_w", 14, OPT, "uint32"),
        ("group", 5, OPT, "uint32", "1"),
        ("weight_filler", 7, OPT, "FillerParameter"),
        ("bias_filler", 8, OPT, "FillerParameter"),
        ("engine", 15, OPT, "enum:Engine", "DEFAULT"),
        ("axis", 16, OPT, "int32", "1"),
        ("force_nd_im2col", 17, OPT, "bool", "false"),
    ], {"Engine": _ENGINE}),
    "DataParameter": ([
        ("source", 1, OPT, "string"),
        ("batch_size", 4, OPT, "uint32"),
        ("rand_skip", 7, OPT, "uint32", "0"),
        ("backend", 8, OPT, "enum:DB", "LEVELDB"),
        ("scale", 2, OPT, "float", "1"),
        ("mean_file", 3, OPT, "string"),
        ("crop_size", 5, OPT, "uint32", "0"),
        ("mirror", 6, OPT, "bool", "false"),
        ("force_encoded_color", 9, OPT, "bool", "false"),
        ("prefetch", 10, OPT, "uint32", "4"),
    ], {"DB": [("LEVELDB", 0), ("LMDB", 1)]}),
    "DropoutParameter": ([("dropout_ratio", 1, OPT, "float", "0.5")], {}),
    "EltwiseParameter": ([
        ("operation", 1, OPT, "enum:EltwiseOp", "SUM"),
        ("coeff", 2, REP, "float"),
        ("stable_prod_grad", 3, OPT, "bool", "true"),
    ], {"EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)]}),
    "FlattenParameter": ([
        ("axis", 1, OPT, "int32", "1"),
        ("end_axis", 2, OPT, "int32", "-1"),
    ], {}),
    "InnerProductParameter": ([
        ("num_output", 1, OPT, "uint32"),
        ("bias_term", 2, OPT, "bool", "true"),
        ("weight_filler", 3, OPT, "FillerParameter"),
        ("bias_filler", 4, OPT, "FillerParameter"),
        ("axis", 5, OPT, "int32", "1"),
        ("transpose", 6, OPT, "bool", "false"),
    ], {}),
    "InputParameter": ([("shape", 1, REP, "BlobShape")], {}),
    "PoolingParameter": ([
        ("pool", 1, OPT, "enum:PoolMethod", "MAX"),
        ("pad", 4, OPT, "uint32", "0"),
        ("pad_h", 9, OPT, "uint32", "0"),
        ("pad_w", 10, OPT, "uint32", "0"),
        ("kernel_size", 2, OPT, "uint32"),
        ("kernel_h", 5, OPT, "uint32"),
        ("kernel_w", 6, OPT, "uint32"),
        ("stride", 3, OPT, "uint32", "1"),
        ("stride_h", 7, OPT, "uint32"),
        ("stride_w", 8, OPT, "uint32"),
        ("engine", 11, OPT, "enum:Engine", "DEFAULT"),
        ("global_pooling", 12, OPT, "bool", "false"),
        ("round_mode", 13, OPT, "enum:RoundMode", "CEIL"),
    ], {"PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)], "Engine": _ENGINE,
        "RoundMode": [("CEIL", 0), ("FLOOR", 1)]}),
    "ReLUParameter": ([
        ("negative_slope", 1, OPT, "float", "0"),
        ("engine", 2, OPT, "enum:Engine", "DEFAULT"),
    ], {"Engine": _ENGINE}),
    "SoftmaxParameter": ([
        ("engine", 1, OPT, "enum:Engine", "DEFAULT"),
        ("axis", 2, OPT, "int32", "1"),
    ], {"Engine": _ENGINE}),
    # DEPRECATED in Caffe (``layers { type: CONVOLUTION }``), still found in old model files.
    "V1LayerParameter": ([
        ("bottom", 2, REP, "string"),
        ("top", 3, REP, "string"),
        ("name", 4, OPT, "string"),
        ("include", 32, REP, "NetStateRule"),
        ("exclude", 33, REP, "NetStateRule"),
        ("type", 5, OPT, "enum:LayerType"),
        ("blobs", 6, REP, "BlobProto"),
        ("param", 1001, REP, "string"),
        ("blob_share_mode", 1002, REP, "enum:DimCheckMode"),
        ("blobs_lr", 7, REP, "float"),
        ("weight_decay", 8, REP, "float"),
        ("loss_weight", 35, REP, "float"),
        ("accuracy_param", 27, OPT, "AccuracyParameter"),
        ("concat_param", 9, OPT, "ConcatParameter"),
        ("convolution_param", 10, OPT, "ConvolutionParameter"),
        ("data_param", 11, OPT, "DataParameter"),
        ("dropout_param", 12, OPT, "DropoutParameter"),
        ("eltwise_param", 24, OPT, "EltwiseParameter"),
        ("inner_product_param", 17, OPT, "InnerProductParameter"),
        ("pooling_param", 19, OPT, "PoolingParameter"),
        ("relu_param", 30, OPT, "ReLUParameter"),
        ("softmax_param", 39, OPT, "SoftmaxParameter"),
        ("transform_param", 36, OPT, "TransformationParameter"),
        ("loss_param", 42, OPT, "LossParameter"),
    ], {"LayerType": [
        ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2),
        ("CONCAT", 3), ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5),
        ("DECONVOLUTION", 39), ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7),
        ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10),
        ("HINGE_LOSS", 28), ("IM2COL", 11), ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13),
        ("INNER_PRODUCT", 14), ("LRN", 15), ("MEMORY_DATA", 29),
        ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17), ("POWER", 26),
        ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27), ("SILENCE", 36),
        ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33), ("TANH", 23),
        ("WINDOW_DATA", 24), ("THRESHOLD", 31)],
        "DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]}),
}

#: V1 enum type -> the string type a LayerParameter uses (Caffe's UpgradeV1LayerType).
V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name="squeezenet/caffe_subset.proto",
                                             package="caffe", syntax="proto2")
    for name, values in ENUMS.items():
        e = fdp.enum_type.add(name=name)
        for vname, num in values:
            e.value.add(name=vname, number=num)
    for mname, (fields, enums) in MESSAGES.items():
        m = fdp.message_type.add(name=mname)
        for ename, values in enums.items():
            e = m.enum_type.add(name=ename)
            for vname, num in values:
                e.value.add(name=vname, number=num)
        for spec in fields:
            fname, number, label, ftype = spec[:4]
            default = spec[4] if len(spec) > 4 else None
            packed = spec[5] if len(spec) > 5 else False
            f = m.field.add(name=fname, number=number, label=label)
            if ftype in _SCALARS:
                f.type = _SCALARS[ftype]
            elif ftype.startswith("enum:"):
                ename = ftype[5:]
                f.type = _F.TYPE_ENUM
                f.type_name = f".caffe.{mname}.{ename}" if ename in enums else f".caffe.{ename}"
            else:
                f.type = _F.TYPE_MESSAGE
                f.type_name = f".caffe.{ftype}"
            if default is not None:
                f.default_value = default
            if packed:
                f.options.packed = True
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_proto())


def message_class(name: str):
    """The message class ``caffe.<name>`` of this schema."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"caffe.{name}"))


NetParameter = message_class("NetParameter")
LayerParameter = message_class("LayerParameter")
V1LayerParameter = message_class("V1LayerParameter")
BlobProto = message_class("BlobProto")
BlobShape = message_class("BlobShape")
BlobProtoVector = message_class("BlobProtoVector")
