"""Caffe files: ``.prototxt`` text and ``.caffemodel`` binary into ``NetParameter`` messages
(the schema is :mod:`.pb`), layer records over ``layer {}`` and legacy ``layers {}``, Caffe's
TRAIN/TEST include rules, and blobs to/from arrays. Every problem with a file is a one-line
:class:`~squeezenet.errors.FormatError` naming it (and the line, for text).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import FormatError, SqueezeNetError, first_line, read_input
from . import pb

#: the largest files read (SqueezeNet's prototxt is 10 kB, its caffemodel 5 MB)
MAX_PROTOTXT_BYTES = 16 << 20
MAX_CAFFEMODEL_BYTES = 1 << 30

#: Layer types CaffeNet runs.
SUPPORTED = ("Convolution", "Pooling", "ReLU", "Dropout", "Concat", "Eltwise", "InnerProduct",
             "Softmax", "Input", "Data", "Flatten", "Split", "Sigmoid", "TanH")
#: Input layers: their first top is a network input, the others (labels) are unavailable.
DATA_TYPES = ("Data", "Input", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData")
#: Training/evaluation-only layers that need labels: left out of the inference graph.
LOSS_TYPES = ("SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HingeLoss", "InfogainLoss",
              "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss", "Silence")


# --------------------------------------------------------------------------- reading files

def parse_prototxt(text: str, path: str | os.PathLike = "<prototxt>") -> Any:
    """Parse prototxt ``text`` into a ``NetParameter``; syntax errors name the line.

    Unknown fields are an error, except inside layers whose type CaffeNet would reject
    anyway: then the unknown *type* is reported (it says more than the unknown field).
    """
    from google.protobuf import text_format
    net = pb.NetParameter()
    try:
        text_format.Parse(text, net, max_recursion_depth=100)
        return net
    except text_format.ParseError as e:
        strict_error = e
    except (ValueError, TypeError, RecursionError, UnicodeError) as e:  # e.g. out-of-range values
        raise FormatError(path, f"not a valid prototxt ({first_line(e, limit=300)})") from None
    lenient = pb.NetParameter()
    try:
        text_format.Parse(text, lenient, max_recursion_depth=100, allow_unknown_field=True)
    except Exception:
        lenient = None
    if lenient is not None:
        for layer in raw_layers(lenient):
            t = _layer_type(layer)
            if t not in SUPPORTED and t not in LOSS_TYPES:
                raise FormatError(path, f"layer {layer.name!r} has unknown layer type {t!r} "
                                        f"(supported: {', '.join(SUPPORTED)})")
    line = strict_error.GetLine() if hasattr(strict_error, "GetLine") else None
    msg = first_line(strict_error, limit=300)
    # protobuf prefixes "line:col : " itself; keep its wording but make the line explicit
    if line:
        msg = msg.split(" : ", 1)[-1] if " : " in msg else msg
        raise FormatError(path, f"prototxt syntax error at line {line}: {msg}")
    raise FormatError(path, f"prototxt syntax error: {msg}")


def read_prototxt(path: str | os.PathLike) -> Any:
    """Read a ``.prototxt`` file into a ``NetParameter``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "deploy.prototxt")
    >>> _ = open(path, "w").write('''layer { name: "data" type: "Input" top: "data"
    ...         input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
    ... layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
    ...         convolution_param { num_output: 4 kernel_size: 3 } }
    ... layer { name: "relu_conv1" type: "ReLU" bottom: "conv1" top: "conv1" }''')
    >>> [layer.type for layer in read_prototxt(path).layer]
    ['Input', 'Convolution', 'ReLU']
    """
    path = Path(path)
    try:
        text = read_input(path, "file", MAX_PROTOTXT_BYTES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not a text prototxt (byte {e.start} is not UTF-8)") from None
    return parse_prototxt(text, path)


def prototxt_notes(path: str | os.PathLike) -> dict[str, str]:
    """The ``# key: value`` comment lines at the top of a prototxt (before the first
    definition), keys lower-cased: ``squeezenet export-caffe`` writes ``preprocessing`` (the
    preset the weights expect) and ``classes`` (a class-list file beside the prototxt) there.
    Protobuf's parser skips comments, so Caffe reads the file as before.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "deploy.prototxt")
    >>> _ = open(path, "w").write('# preprocessing: torchvision\\n# classes: classes.txt\\nname: "x"\\n')
    >>> prototxt_notes(path)
    {'preprocessing': 'torchvision', 'classes': 'classes.txt'}
    """
    notes: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for _, line in zip(range(100), f):
                line = line.strip()
                if not line:
                    continue
                if not line.startswith("#"):
                    break
                key, colon, value = line.lstrip("#").partition(":")
                if colon and key.strip() and " " not in key.strip():
                    notes[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return notes


def read_caffemodel(path: str | os.PathLike) -> Any:
    """Read a binary ``.caffemodel`` (a serialized ``NetParameter``).

    A truncated or corrupt file raises :class:`FormatError`. Parsing allocates at most
    about the file's size: blob shapes are checked against their data before any use.
    """
    from google.protobuf.message import DecodeError
    path = Path(path)
    data = read_input(path, "file", MAX_CAFFEMODEL_BYTES)
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as e:
        raise FormatError(path, f"corrupt or truncated caffemodel ({first_line(e, limit=300)})") from None
    if not len(net.layer) and not len(net.layers):
        raise FormatError(path, "no layers: not a caffemodel (an empty or foreign protobuf file)")
    return net


# ------------------------------------------------------------------------ layer records

def raw_layers(net) -> list:
    """The raw ``layer`` and legacy ``layers`` messages of ``net`` (see :func:`net_layers`)."""
    return list(net.layer) + list(net.layers)


def _layer_type(layer) -> str:
    if isinstance(layer, pb.V1LayerParameter):
        enum = layer.DESCRIPTOR.fields_by_name["type"].enum_type
        vname = enum.values_by_number[layer.type].name if layer.type in enum.values_by_number else str(layer.type)
        return pb.V1_TYPE_NAMES.get(vname, vname)
    return layer.type


@dataclass
class Layer:
    """One layer of a net, the same for ``layer {}`` and legacy ``layers {}``."""
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    msg: Any                      # the LayerParameter / V1LayerParameter (for its *_param)
    index: int                    # position in the file

    def param(self, name: str):
        return getattr(self.msg, name)

    def has(self, name: str) -> bool:
        return self.msg.HasField(name)


def net_layers(net) -> list[Layer]:
    """All layers of ``net`` (``layer`` or legacy ``layers``), in file order."""
    if len(net.layer) and len(net.layers):
        raise SqueezeNetError("net mixes 'layer' and legacy 'layers' entries")
    out = []
    for i, layer in enumerate(raw_layers(net)):
        # (V0 layers, nested in V1 as field 1, are not in the schema: their type reads NONE
        # and CaffeNet reports it as an unknown layer type)
        out.append(Layer(layer.name, _layer_type(layer), list(layer.bottom), list(layer.top), layer, i))
    return out


def _rule_met(rule, phase: int, level: int = 0, stages: tuple = ()) -> bool:
    # Caffe's Net::StateMeetsRule
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def layer_included(layer: Layer, phase: str = "TEST") -> bool:
    """Caffe's include/exclude rules (and LayerParameter.phase) for ``phase``."""
    p = {"TRAIN": 0, "TEST": 1}[phase]
    msg = layer.msg
    if isinstance(msg, pb.LayerParameter) and msg.HasField("phase") and msg.phase != p:
        return False
    if len(msg.include) and len(msg.exclude):
        raise SqueezeNetError(f"layer {layer.name!r} has both include and exclude rules")
    if len(msg.include):
        return any(_rule_met(r, p) for r in msg.include)
    if len(msg.exclude):
        return not any(_rule_met(r, p) for r in msg.exclude)
    return True


# ------------------------------------------------------------------------------ blobs

def blob_shape(blob) -> tuple[tuple[int, ...], bool]:
    """(shape, legacy): ``shape.dim`` if present, else legacy num/channels/height/width."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim), False
    return (int(blob.num), int(blob.channels), int(blob.height), int(blob.width)), True


def blob_to_array(blob, where: str) -> np.ndarray:
    """A BlobProto's values as a float32 array of its declared shape.

    The shape is checked against the stored value count before anything is allocated.
    """
    shape, _ = blob_shape(blob)
    if any(d < 0 or d > (1 << 40) for d in shape):
        raise SqueezeNetError(f"{where}: invalid blob shape {shape}")
    count = math.prod(shape) if shape else 1
    n_float, n_double = len(blob.data), len(blob.double_data)
    n = n_float or n_double
    if n != count:
        raise SqueezeNetError(f"{where}: blob of shape {shape} needs {count} values, the file has {n}")
    arr = np.array(blob.data if n_float else blob.double_data, dtype=np.float32)
    return arr.reshape(shape)


def array_to_blob(arr: np.ndarray | torch.Tensor, blob) -> None:
    """Fill ``blob`` (BlobProto) with ``arr``: new-style ``shape`` plus float data."""
    a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
    a = np.ascontiguousarray(a, dtype=np.float32)
    blob.shape.dim.extend(a.shape)
    blob.data.extend(a.reshape(-1).tolist())
