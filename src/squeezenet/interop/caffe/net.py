"""Caffe nets in and out: ``.prototxt`` + ``.caffemodel`` to PyTorch and back.

* :func:`read_prototxt` / :func:`read_caffemodel` parse with ``protobuf`` against the schema
  in :mod:`.pb` (text format, binary wire format); every problem is a one-line
  :class:`~squeezenet.errors.FormatError` naming the file (and the line for text).
* :class:`CaffeNet` runs any net made of the supported layers as a DAG over Caffe's blob
  names (in-place layers, Caffe's rounding-up pooling, global pooling, TRAIN/TEST rules).
* :func:`to_squeezenet` maps a CaffeNet that *is* a SqueezeNet (v1.0, v1.1, bypass
  variants, any Fire sizes) onto :class:`~squeezenet.models.SqueezeNet` with torchvision
  keys; :func:`import_caffe` does prototxt + caffemodel -> SqueezeNet in one call.
* :func:`export_caffe` writes a SqueezeNet as ``deploy.prototxt`` + ``.caffemodel`` with the
  DeepScale layer names, which :func:`import_caffe` reads back to identical outputs.

>>> from squeezenet.interop.caffe import parse_prototxt, CaffeNet
>>> net = parse_prototxt('''input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
... layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
...         convolution_param { num_output: 4 kernel_size: 3 } }
... layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
...         pooling_param { pool: MAX kernel_size: 3 stride: 2 } }''')
>>> CaffeNet(net).shapes["pool"]   # (8 - 3 + 1) = 6 -> ceil((6 - 3) / 2) + 1 = 3
(1, 4, 3, 3)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import FormatError, SqueezeNetError
from . import pb

#: Layer types CaffeNet runs.
SUPPORTED = ("Convolution", "Pooling", "ReLU", "Dropout", "Concat", "Eltwise", "InnerProduct",
             "Softmax", "Input", "Data", "Flatten", "Split", "Sigmoid", "TanH")
#: Input layers: their first top is a network input, the others (labels) are unavailable.
DATA_TYPES = ("Data", "Input", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData")
#: Training/evaluation-only layers that need labels: left out of the inference graph.
LOSS_TYPES = ("SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HingeLoss", "InfogainLoss",
              "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss", "Silence")

#: Limits that keep a corrupt or hostile file from allocating huge tensors.
MAX_LAYER_PARAMS = 1 << 26      # 64 M parameters (256 MB) in one layer
MAX_NET_PARAMS = 1 << 27        # 128 M parameters in one net
MAX_DIM = 1 << 20               # any single blob / kernel / channel dimension

PREPROCESS = "caffe"


# --------------------------------------------------------------------------- reading files

def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else type(e).__name__


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
        raise FormatError(path, f"not a valid prototxt ({_first_line(e)})") from None
    lenient = pb.NetParameter()
    try:
        text_format.Parse(text, lenient, max_recursion_depth=100, allow_unknown_field=True)
    except Exception:
        lenient = None
    if lenient is not None:
        for layer in _raw_layers(lenient):
            t = _layer_type(layer)
            if t not in SUPPORTED and t not in LOSS_TYPES:
                raise FormatError(path, f"layer {layer.name!r} has unknown layer type {t!r} "
                                        f"(supported: {', '.join(SUPPORTED)})")
    line = strict_error.GetLine() if hasattr(strict_error, "GetLine") else None
    msg = _first_line(strict_error)
    # protobuf prefixes "line:col : " itself; keep its wording but make the line explicit
    if line:
        msg = msg.split(" : ", 1)[-1] if " : " in msg else msg
        raise FormatError(path, f"prototxt syntax error at line {line}: {msg}")
    raise FormatError(path, f"prototxt syntax error: {msg}")


def read_prototxt(path: str | os.PathLike) -> Any:
    """Read a ``.prototxt`` file into a ``NetParameter``.

    >>> net = read_prototxt("../shared/fixtures/caffe/squeezenet_v1.1/deploy.prototxt")  # doctest: +SKIP
    >>> [layer.type for layer in net.layer][:3]  # doctest: +SKIP
    ['Input', 'Convolution', 'ReLU']
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not a text prototxt (byte {e.start} is not UTF-8)") from None
    return parse_prototxt(text, path)


def read_caffemodel(path: str | os.PathLike) -> Any:
    """Read a binary ``.caffemodel`` (a serialized ``NetParameter``).

    A truncated or corrupt file raises :class:`FormatError`. Parsing allocates at most
    about the file's size: blob shapes are checked against their data before any use.
    """
    from google.protobuf.message import DecodeError
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    data = path.read_bytes()
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as e:
        raise FormatError(path, f"corrupt or truncated caffemodel ({_first_line(e)})") from None
    if not len(net.layer) and not len(net.layers):
        raise FormatError(path, "no layers: not a caffemodel (an empty or foreign protobuf file)")
    return net


# ------------------------------------------------------------------------ layer records

def _raw_layers(net) -> list:
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
    for i, layer in enumerate(_raw_layers(net)):
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


def _shapes_match(file_shape: tuple, legacy: bool, expected: tuple) -> bool:
    if not legacy:
        return tuple(file_shape) == tuple(expected)
    if len(expected) > 4:
        return False
    return tuple(file_shape) == (1,) * (4 - len(expected)) + tuple(expected)


def array_to_blob(arr: np.ndarray | torch.Tensor, blob) -> None:
    """Fill ``blob`` (BlobProto) with ``arr``: new-style ``shape`` plus float data."""
    a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
    a = np.ascontiguousarray(a, dtype=np.float32)
    blob.shape.dim.extend(a.shape)
    blob.data.extend(a.reshape(-1).tolist())


# ------------------------------------------------------------------------ the DAG module

def _pair(values, h, w, default, what: str, lname: str) -> tuple[int, int]:
    values = list(values)
    if h is not None or w is not None:
        if h is None or w is None:
            raise SqueezeNetError(f"layer {lname!r}: {what}_h and {what}_w must be given together")
        return int(h), int(w)
    if not values:
        if default is None:
            raise SqueezeNetError(f"layer {lname!r}: no {what}")
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise SqueezeNetError(f"layer {lname!r}: {len(values)} values of {what} for a 2-D layer")


def _opt(msg, name):
    return getattr(msg, name) if msg.HasField(name) else None


class _Pool(nn.Module):
    """Caffe pooling: MAX/AVE, rounding up (CEIL) or down, or global over the whole map."""

    def __init__(self, method: str, kernel, stride, pad, ceil: bool, global_pool: bool):
        super().__init__()
        self.method, self.kernel, self.stride, self.pad = method, kernel, stride, pad
        self.ceil, self.global_pool = ceil, global_pool

    def forward(self, x):
        if self.global_pool:
            return x.amax(dim=(2, 3), keepdim=True) if self.method == "MAX" else x.mean(dim=(2, 3), keepdim=True)
        if self.method == "MAX":
            return F.max_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil)
        return F.avg_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil, count_include_pad=True)

    def extra_repr(self):
        return (f"{self.method}, global" if self.global_pool else
                f"{self.method}, kernel={self.kernel}, stride={self.stride}, pad={self.pad}, ceil={self.ceil}")


def _pool_out(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    # Caffe's PoolingLayer::Reshape (the same rule as PyTorch's ceil_mode)
    if ceil:
        out = -(-(size + 2 * p - k) // s) + 1
        if p > 0 and (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - k) // s + 1


@dataclass
class Op:
    """One inference step of a :class:`CaffeNet`."""
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    fn: Callable
    in_ids: list[int] = field(default_factory=list)     # SSA value ids (in-place safe)
    out_ids: list[int] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


class CaffeNet(nn.Module):
    """Any Caffe net of the :data:`SUPPORTED` layers as a runnable module.

    Blobs are looked up by name, so in-place layers (``top == bottom``) and branches work
    as in Caffe. Layers excluded by ``phase`` (TRAIN/TEST rules) are dropped; loss and
    accuracy layers (they need labels) are left out; ``Data``/``Input`` layers and the
    legacy ``input:`` fields become the inputs of :meth:`forward`. The outputs are the
    blobs no kept layer consumes (``prob`` for a deploy net, ``pool10`` for a train_val).

    Parameters are named after the Caffe layers (``params["fire2/squeeze1x1"]``) and
    :meth:`load_caffemodel` fills them by layer name.
    """

    def __init__(self, net, phase: str = "TEST", input_shape: tuple[int, ...] | None = None,
                 path: str | os.PathLike = "<net>") -> None:
        super().__init__()
        self.path = str(path)
        self.name = net.name
        self.phase = phase
        try:
            self._build(net, phase, input_shape)
        except SqueezeNetError as e:
            if isinstance(e, FormatError):
                raise
            raise FormatError(self.path, str(e)) from None

    # -- construction -------------------------------------------------------------------
    def _build(self, net, phase, input_shape):
        self.params = nn.ModuleDict()
        self.ops: list[Op] = []
        self.inputs: list[str] = []
        self.input_ids: dict[str, int] = {}
        self.skipped: list[str] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.transform: dict[str, Any] = {}
        version: dict[str, int] = {}
        next_id = [0]

        def new_value(blob):
            next_id[0] += 1
            version[blob] = next_id[0]
            return next_id[0]

        def add_input(blob, shape):
            if blob in self.shapes:
                raise SqueezeNetError(f"input blob {blob!r} is declared twice")
            shape = tuple(int(d) for d in shape)
            if input_shape is not None:
                shape = tuple(input_shape)
            if len(shape) != 4 or any(d < 1 or d > MAX_DIM for d in shape):
                raise SqueezeNetError(f"input {blob!r} has shape {shape}: need 4 positive dims (N, C, H, W)")
            self.inputs.append(blob)
            self.shapes[blob] = (1,) + shape[1:]
            self.input_ids[blob] = new_value(blob)

        # legacy net-level inputs
        dims = list(net.input_dim)
        for i, blob in enumerate(net.input):
            if i < len(net.input_shape):
                add_input(blob, net.input_shape[i].dim)
            elif len(dims) >= 4 * (i + 1):
                add_input(blob, dims[4 * i:4 * i + 4])
            elif input_shape is not None:
                add_input(blob, input_shape)
            else:
                raise SqueezeNetError(f"input {blob!r} has no input_shape / input_dim")

        unavailable: set[str] = set()
        seen_names: set[str] = set()
        total = 0
        for layer in net_layers(net):
            if not layer_included(layer, phase):
                continue
            t = layer.type
            if t in LOSS_TYPES:
                self.skipped.append(layer.name)
                continue
            if t not in SUPPORTED and t not in DATA_TYPES:
                raise SqueezeNetError(f"layer {layer.name!r} has unknown layer type {t!r} "
                                      f"(supported: {', '.join(SUPPORTED)})")
            if t in DATA_TYPES:
                if t not in ("Data", "Input"):
                    raise SqueezeNetError(f"layer {layer.name!r}: data layer type {t!r} is not supported")
                self._add_data_layer(layer, add_input, unavailable)
                continue
            for b in layer.bottoms:
                if b in unavailable:
                    raise SqueezeNetError(f"layer {layer.name!r} needs blob {b!r}, which only a data "
                                          f"layer's label output provides")
                if b not in version:
                    raise SqueezeNetError(f"layer {layer.name!r}: bottom blob {b!r} is not produced "
                                          f"by any earlier layer")
            if not layer.tops:
                raise SqueezeNetError(f"layer {layer.name!r} has no top blob")
            in_shapes = [self.shapes[b] for b in layer.bottoms]
            fn, out_shapes, attrs = self._make(layer, in_shapes)
            if isinstance(fn, nn.Module) and any(True for _ in fn.parameters()):
                if layer.name in seen_names:
                    raise SqueezeNetError(f"two layers with parameters are named {layer.name!r}")
                seen_names.add(layer.name)
                n = sum(p.numel() for p in fn.parameters())
                total += n
                if total > MAX_NET_PARAMS:
                    raise SqueezeNetError(f"the net declares more than {MAX_NET_PARAMS} parameters")
                self.params[self._key(layer.name)] = fn
            op = Op(layer.name, t, layer.bottoms, layer.tops, fn, attrs=attrs)
            op.in_ids = [version[b] for b in layer.bottoms]
            for top, shape in zip(layer.tops, out_shapes):
                self.shapes[top] = shape
                op.out_ids.append(new_value(top))
            self.ops.append(op)
        if not self.inputs:
            raise SqueezeNetError("the net has no input (no Input/Data layer and no 'input:' field)")
        if not self.ops:
            raise SqueezeNetError("the net has no layers to run")
        consumed = {i for op in self.ops for i in op.in_ids}
        self.outputs = []
        for op in self.ops:
            for top, vid in zip(op.tops, op.out_ids):
                if vid not in consumed and version.get(top) == vid and top not in self.outputs:
                    self.outputs.append(top)

    @staticmethod
    def _key(name: str) -> str:
        # ModuleDict keys cannot contain '.'; Caffe names rarely do
        return name.replace(".", "_") or "_"

    def _add_data_layer(self, layer: Layer, add_input, unavailable):
        if not layer.tops:
            raise SqueezeNetError(f"layer {layer.name!r} has no top blob")
        if layer.type == "Input":
            shapes = list(layer.msg.input_param.shape) if layer.has("input_param") else []
            if not shapes:
                raise SqueezeNetError(f"Input layer {layer.name!r} has no shape")
            for i, top in enumerate(layer.tops):
                add_input(top, shapes[min(i, len(shapes) - 1)].dim)
            return
        tp = layer.msg.transform_param
        crop = tp.crop_size or (layer.msg.data_param.crop_size if layer.has("data_param") else 0)
        if not crop:
            crop = 227      # ImageNet-era Caffe nets without a crop: the usual 227
        add_input(layer.tops[0], (1, 3, crop, crop))
        self.transform = {"crop_size": int(crop), "mean_value": [float(v) for v in tp.mean_value],
                          "scale": float(tp.scale), "mirror": bool(tp.mirror)}
        unavailable.update(layer.tops[1:])

    def _make(self, layer: Layer, ins: list[tuple[int, ...]]):
        t, name = layer.type, layer.name

        def need(n):
            if len(ins) != n:
                raise SqueezeNetError(f"layer {name!r} ({t}) needs {n} bottom blob(s), has {len(ins)}")

        def need4(s):
            if len(s) != 4:
                raise SqueezeNetError(f"layer {name!r} ({t}) needs a 4-D input, got shape {s}")

        if t == "Convolution":
            need(1)
            need4(ins[0])
            p = layer.param("convolution_param")
            n, c, h, w = ins[0]
            o = int(p.num_output)
            kh, kw = _pair(p.kernel_size, _opt(p, "kernel_h"), _opt(p, "kernel_w"), None, "kernel_size", name)
            sh, sw = _pair(p.stride, _opt(p, "stride_h"), _opt(p, "stride_w"), 1, "stride", name)
            ph, pw = _pair(p.pad, _opt(p, "pad_h"), _opt(p, "pad_w"), 0, "pad", name)
            dh, dw = _pair(p.dilation, None, None, 1, "dilation", name)
            g = int(p.group)
            if p.axis != 1:
                raise SqueezeNetError(f"layer {name!r}: convolution axis {p.axis} is not supported")
            for v, what in ((o, "num_output"), (kh, "kernel"), (kw, "kernel"), (sh, "stride"),
                            (sw, "stride"), (dh, "dilation"), (dw, "dilation"), (g, "group")):
                if v < 1 or v > MAX_DIM:
                    raise SqueezeNetError(f"layer {name!r}: {what} {v} is out of range")
            if ph > MAX_DIM or pw > MAX_DIM:
                raise SqueezeNetError(f"layer {name!r}: pad out of range")
            if c % g or o % g:
                raise SqueezeNetError(f"layer {name!r}: group {g} does not divide {c} inputs / {o} outputs")
            params = o * (c // g) * kh * kw + (o if p.bias_term else 0)
            if params > MAX_LAYER_PARAMS:
                raise SqueezeNetError(f"layer {name!r} declares {params} parameters (limit {MAX_LAYER_PARAMS})")
            oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
            ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
            if oh < 1 or ow < 1:
                raise SqueezeNetError(f"layer {name!r}: kernel {kh}x{kw} does not fit its {h}x{w} input")
            conv = nn.Conv2d(c, o, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups=g, bias=bool(p.bias_term))
            return conv, [(n, o, oh, ow)] * len(layer.tops[:1]), {
                "kernel": (kh, kw), "stride": (sh, sw), "pad": (ph, pw), "dilation": (dh, dw),
                "group": g, "num_output": o, "bias": bool(p.bias_term), "in_channels": c}
        if t == "InnerProduct":
            need(1)
            p = layer.param("inner_product_param")
            if p.axis != 1:
                raise SqueezeNetError(f"layer {name!r}: inner product axis {p.axis} is not supported")
            fan_in = math.prod(ins[0][1:])
            o = int(p.num_output)
            if o < 1 or o > MAX_DIM:
                raise SqueezeNetError(f"layer {name!r}: num_output {o} is out of range")
            if o * fan_in > MAX_LAYER_PARAMS:
                raise SqueezeNetError(f"layer {name!r} declares {o * fan_in} parameters (limit {MAX_LAYER_PARAMS})")
            lin = nn.Linear(fan_in, o, bias=bool(p.bias_term))
            mod = nn.Sequential(nn.Flatten(1), lin)
            return mod, [(ins[0][0], o)], {"transpose": bool(p.transpose), "num_output": o}
        if t == "Pooling":
            need(1)
            need4(ins[0])
            p = layer.param("pooling_param")
            method = {0: "MAX", 1: "AVE"}.get(p.pool)
            if method is None:
                raise SqueezeNetError(f"layer {name!r}: STOCHASTIC pooling is not supported")
            n, c, h, w = ins[0]
            ceil = p.round_mode == 0
            if p.global_pooling:
                if p.HasField("kernel_size") or p.HasField("kernel_h"):
                    raise SqueezeNetError(f"layer {name!r}: global pooling takes no kernel size")
                return _Pool(method, None, None, None, ceil, True), [(n, c, 1, 1)], {
                    "method": method, "global": True}
            kh, kw = _pair([p.kernel_size] if p.HasField("kernel_size") else [], _opt(p, "kernel_h"),
                           _opt(p, "kernel_w"), None, "kernel_size", name)
            sh, sw = _pair([p.stride] if p.HasField("stride") else [], _opt(p, "stride_h"),
                           _opt(p, "stride_w"), 1, "stride", name)
            ph, pw = _pair([p.pad] if p.HasField("pad") else [], _opt(p, "pad_h"), _opt(p, "pad_w"),
                           0, "pad", name)
            if min(kh, kw, sh, sw) < 1 or max(kh, kw, sh, sw) > MAX_DIM:
                raise SqueezeNetError(f"layer {name!r}: pooling kernel/stride out of range")
            if ph * 2 > kh or pw * 2 > kw:
                raise SqueezeNetError(f"layer {name!r}: pad {ph}x{pw} over half the kernel {kh}x{kw} is not supported")
            oh, ow = _pool_out(h, kh, sh, ph, ceil), _pool_out(w, kw, sw, pw, ceil)
            if oh < 1 or ow < 1 or kh > h + 2 * ph or kw > w + 2 * pw:
                raise SqueezeNetError(f"layer {name!r}: kernel {kh}x{kw} does not fit its {h}x{w} input")
            return _Pool(method, (kh, kw), (sh, sw), (ph, pw), ceil, False), [(n, c, oh, ow)], {
                "method": method, "global": False, "kernel": (kh, kw), "stride": (sh, sw),
                "pad": (ph, pw), "ceil": ceil}
        if t == "ReLU":
            need(1)
            slope = float(layer.param("relu_param").negative_slope)
            fn = (lambda x: F.relu(x)) if slope == 0 else (lambda x, s=slope: F.leaky_relu(x, s))
            return fn, [ins[0]], {"negative_slope": slope}
        if t in ("Sigmoid", "TanH"):
            need(1)
            return (torch.sigmoid if t == "Sigmoid" else torch.tanh), [ins[0]], {}
        if t == "Dropout":
            need(1)
            ratio = float(layer.param("dropout_param").dropout_ratio)
            if not (0.0 <= ratio < 1.0):
                raise SqueezeNetError(f"layer {name!r}: dropout_ratio {ratio} is not in [0, 1)")
            # a closure, not nn.Dropout: it must follow this module's train()/eval()
            return (lambda x, r=ratio: F.dropout(x, r, self.training)), [ins[0]], {"ratio": ratio}
        if t == "Split":
            need(1)
            return (lambda x: x), [ins[0]] * len(layer.tops), {}
        if t == "Flatten":
            need(1)
            p = layer.param("flatten_param")
            nd = len(ins[0])
            a, e = p.axis % nd if -nd <= p.axis < nd else None, p.end_axis % nd if -nd <= p.end_axis < nd else None
            if a is None or e is None or e < a:
                raise SqueezeNetError(f"layer {name!r}: bad flatten axes {p.axis}..{p.end_axis}")
            s = ins[0]
            return (lambda x, a=a, e=e: torch.flatten(x, a, e)), [s[:a] + (math.prod(s[a:e + 1]),) + s[e + 1:]], {}
        if t == "Softmax":
            need(1)
            nd = len(ins[0])
            axis = int(layer.param("softmax_param").axis)
            if not -nd <= axis < nd:
                raise SqueezeNetError(f"layer {name!r}: softmax axis {axis} out of range for shape {ins[0]}")
            return (lambda x, a=axis: F.softmax(x, dim=a)), [ins[0]], {"axis": axis}
        if t == "Concat":
            if not ins:
                raise SqueezeNetError(f"layer {name!r} (Concat) has no bottom blobs")
            p = layer.param("concat_param")
            axis = int(p.axis) if p.HasField("axis") or not p.HasField("concat_dim") else int(p.concat_dim)
            nd = len(ins[0])
            if not -nd <= axis < nd:
                raise SqueezeNetError(f"layer {name!r}: concat axis {axis} out of range")
            a = axis % nd
            for s in ins[1:]:
                if len(s) != nd or s[:a] + s[a + 1:] != ins[0][:a] + ins[0][a + 1:]:
                    raise SqueezeNetError(f"layer {name!r}: cannot concatenate shapes {ins[0]} and {s} on axis {a}")
            out = list(ins[0])
            out[a] = sum(s[a] for s in ins)
            return (lambda *xs, a=a: torch.cat(xs, a)), [tuple(out)], {"axis": a}
        if t == "Eltwise":
            if len(ins) < 2:
                raise SqueezeNetError(f"layer {name!r} (Eltwise) needs at least two bottom blobs")
            if any(s != ins[0] for s in ins):
                raise SqueezeNetError(f"layer {name!r}: Eltwise inputs differ in shape: {ins}")
            p = layer.param("eltwise_param")
            op = {0: "PROD", 1: "SUM", 2: "MAX"}[p.operation]
            coeff = [float(c) for c in p.coeff]
            if coeff and (op != "SUM" or len(coeff) != len(ins)):
                raise SqueezeNetError(f"layer {name!r}: Eltwise coeff needs op SUM and one value per bottom")

            def elt(*xs, op=op, coeff=coeff):
                y = xs[0] * coeff[0] if coeff else xs[0]
                for i, x in enumerate(xs[1:], 1):
                    if op == "SUM":
                        y = y + (x * coeff[i] if coeff else x)
                    elif op == "PROD":
                        y = y * x
                    else:
                        y = torch.maximum(y, x)
                return y
            return elt, [ins[0]], {"operation": op, "coeff": coeff}
        raise SqueezeNetError(f"layer {name!r} has unknown layer type {t!r}")  # pragma: no cover

    # -- running -------------------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor, return_blobs: bool = False):
        """Run the net on its inputs (in the order of :attr:`inputs`).

        Returns the single output, a tuple of outputs, or (``return_blobs=True``) the dict
        of every blob by name.
        """
        if len(inputs) != len(self.inputs):
            raise SqueezeNetError(f"the net takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}), "
                                  f"got {len(inputs)}")
        blobs = dict(zip(self.inputs, inputs))
        for op in self.ops:
            out = op.fn(*[blobs[b] for b in op.bottoms])
            if len(op.tops) == 1:
                blobs[op.tops[0]] = out
            else:
                for top in op.tops:   # Split: the same tensor under every name
                    blobs[top] = out
        if return_blobs:
            return blobs
        outs = tuple(blobs[n] for n in self.outputs)
        return outs[0] if len(outs) == 1 else outs

    def param_layers(self) -> dict[str, nn.Module]:
        """Caffe layer name -> the module holding its weights (Conv2d or Linear)."""
        out = {}
        for op in self.ops:
            if isinstance(op.fn, nn.Module) and any(True for _ in op.fn.parameters()):
                out[op.name] = op.fn[1] if isinstance(op.fn, nn.Sequential) else op.fn
        return out

    def load_caffemodel(self, weights, path: str | os.PathLike = "<caffemodel>") -> None:
        """Copy the blobs of ``weights`` (a NetParameter, e.g. from :func:`read_caffemodel`)
        into the layers of the same name. Every layer with parameters must be found and
        every blob must have the shape the prototxt implies; extra layers are ignored."""
        by_name: dict[str, list] = {}
        for layer in _raw_layers(weights):
            if len(layer.blobs) and layer.name not in by_name:
                by_name[layer.name] = list(layer.blobs)
        ops = {op.name: op for op in self.ops}
        layers = self.param_layers()
        missing = [n for n in layers if n not in by_name]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise FormatError(path, f"missing weights for layer(s) {', '.join(repr(m) for m in missing[:3])}{more}")
        new = {}
        for lname, mod in layers.items():
            blobs = by_name[lname]
            expected = [mod.weight] + ([mod.bias] if mod.bias is not None else [])
            if len(blobs) != len(expected):
                raise FormatError(path, f"layer {lname!r} has {len(blobs)} blob(s), the prototxt needs "
                                        f"{len(expected)} (weights{' and bias' if mod.bias is not None else ''})")
            for j, (blob, param) in enumerate(zip(blobs, expected)):
                shape, legacy = blob_shape(blob)
                need = tuple(param.shape)
                if j == 0 and ops[lname].attrs.get("transpose"):
                    need = need[::-1]
                if not _shapes_match(shape, legacy, need):
                    raise FormatError(path, f"layer {lname!r} {'weights' if j == 0 else 'bias'}: shape "
                                            f"{tuple(shape)} in the caffemodel, the prototxt needs {need}")
                try:
                    arr = blob_to_array(blob, f"layer {lname!r} blob {j}").reshape(need)
                except SqueezeNetError as e:
                    raise FormatError(path, str(e)) from None
                if j == 0 and ops[lname].attrs.get("transpose"):
                    arr = arr.T
                if not np.isfinite(arr).all():
                    raise FormatError(path, f"layer {lname!r}: non-finite values in the weights")
                new[(lname, j)] = torch.from_numpy(np.ascontiguousarray(arr))
        with torch.no_grad():
            for (lname, j), t in new.items():
                mod = layers[lname]
                (mod.weight if j == 0 else mod.bias).copy_(t)

    # -- graph queries used by the SqueezeNet mapping ------------------------------------
    def graph(self):
        producer = {}
        consumers: dict[int, list[Op]] = {}
        for op in self.ops:
            for v in op.out_ids:
                producer[v] = op
            for v in op.in_ids:
                consumers.setdefault(v, []).append(op)
        return producer, consumers


def load_caffe(prototxt: str | os.PathLike | None, caffemodel: str | os.PathLike | None = None,
               phase: str = "TEST") -> CaffeNet:
    """A :class:`CaffeNet` from a prototxt (and its weights from a caffemodel).

    Without a prototxt the net definition stored in the caffemodel is used.
    """
    weights = read_caffemodel(caffemodel) if caffemodel else None
    if prototxt is not None:
        net, src = read_prototxt(prototxt), prototxt
    elif weights is not None:
        net, src = weights, caffemodel
    else:
        raise SqueezeNetError("give a prototxt, a caffemodel or both")
    model = CaffeNet(net, phase=phase, path=src)
    if weights is not None:
        model.load_caffemodel(weights, caffemodel)
    return model.eval()


# ----------------------------------------------------------------- mapping onto SqueezeNet

class NotSqueezeNet(SqueezeNetError):
    """The Caffe net is not a SqueezeNet this toolkit's model class can express."""


def squeezenet_layout(net: CaffeNet):
    """(SqueezeNetConfig, {caffe layer name: torch module path}) for a SqueezeNet-shaped net.

    The match is structural (on the data flow, not on layer names): conv1 + ReLU +
    max-pool 3/2, Fire modules (1x1 squeeze + ReLU -> 1x1 and 3x3 expands + ReLU ->
    concat in that order), optional Eltwise bypass (identity or 1x1-conv shortcut),
    max-pools 3/2 between Fires, optional dropout, 1x1 conv10 + ReLU, global average
    pooling and an optional softmax. Raises :class:`NotSqueezeNet` otherwise.
    """
    from ...models.squeezenet import STEMS, SqueezeNetConfig
    producer, consumers = net.graph()
    if len(net.inputs) != 1:
        raise NotSqueezeNet("a SqueezeNet has one input")

    def bad(why):
        raise NotSqueezeNet(f"not a SqueezeNet: {why}")

    def only(vid, what, types):
        cs = consumers.get(vid, [])
        if len(cs) != 1 or cs[0].type not in types:
            bad(f"expected {what} after {producer[vid].name if vid in producer else 'the input'}")
        return cs[0]

    def is_plain_conv(op, k, pad):
        a = op.attrs
        return (op.type == "Convolution" and a["kernel"] == (k, k) and a["stride"] == (1, 1)
                and a["pad"] == (pad, pad) and a["dilation"] == (1, 1) and a["group"] == 1 and a["bias"])

    def is_pool32(op):
        a = op.attrs
        return (op.type == "Pooling" and a["method"] == "MAX" and not a["global"] and a["kernel"] == (3, 3)
                and a["stride"] == (2, 2) and a["pad"] == (0, 0) and a["ceil"])

    def relu_after(op):
        r = only(op.out_ids[0], f"a ReLU after {op.name}", ("ReLU",))
        if r.attrs["negative_slope"] != 0:
            bad(f"{r.name} is a leaky ReLU")
        return r

    mapping: dict[str, str] = {}
    conv1 = only(net.input_ids[net.inputs[0]], "conv1", ("Convolution",))
    a = conv1.attrs
    stem = None
    for sname, (c1, k, s, p) in STEMS.items():
        if (a["num_output"], a["kernel"], a["stride"], a["pad"]) == (c1, (k, k), (s, s), (p, p)) \
                and a["dilation"] == (1, 1) and a["group"] == 1 and a["bias"]:
            stem = sname
    if stem is None:
        bad(f"conv1 ({a['num_output']} filters {a['kernel']}/{a['stride']} pad {a['pad']}) is no known stem")
    in_channels = a["in_channels"]
    mapping[conv1.name] = "features.0"
    pool1 = only(relu_after(conv1).out_ids[0], "pool1", ("Pooling",))
    if not is_pool32(pool1):
        bad(f"{pool1.name} is not a 3x3/2 max-pool")
    v = pool1.out_ids[0]
    fires, bypass, pool_after, fire_layers = [], [], [], []
    dropout, head = 0.0, None
    while True:
        cs = consumers.get(v, [])
        convs = [c for c in cs if c.type == "Convolution"]
        if len(cs) == 1 and cs[0].type == "Dropout":
            dropout = cs[0].attrs["ratio"]
            head = only(cs[0].out_ids[0], "conv10", ("Convolution",))
            break
        squeeze = [c for c in convs if is_plain_conv(c, 1, 0) and
                   [x.type for x in consumers.get(c.out_ids[0], [])] == ["ReLU"]]
        if len(cs) == 1 and convs and not squeeze:
            head = convs[0]
            break
        if len(squeeze) != 1:
            bad(f"no Fire module or classifier after {producer[v].name}")
        sq = squeeze[0]
        r = relu_after(sq)
        ex = consumers.get(r.out_ids[0], [])
        if len(ex) != 2 or not all(e.type == "Convolution" for e in ex):
            bad(f"{sq.name} is not followed by two expand convolutions")
        e1 = next((e for e in ex if is_plain_conv(e, 1, 0)), None)
        e3 = next((e for e in ex if is_plain_conv(e, 3, 1)), None)
        if e1 is None or e3 is None:
            bad(f"the expands after {sq.name} are not a 1x1 and a 3x3 (pad 1) convolution")
        r1, r3 = relu_after(e1), relu_after(e3)
        cat = only(r1.out_ids[0], f"a concat after {e1.name}", ("Concat",))
        if cat.in_ids != [r1.out_ids[0], r3.out_ids[0]] or cat.attrs["axis"] != 1:
            bad(f"{cat.name} does not concatenate [expand1x1, expand3x3] on channels")
        out = cat.out_ids[0]
        kind, shortcut = "none", None
        rest = [c for c in cs if c is not sq]
        if rest:
            elt = only(out, f"an Eltwise bypass after {cat.name}", ("Eltwise",))
            if elt.attrs["operation"] != "SUM" or elt.attrs["coeff"] or len(elt.in_ids) != 2:
                bad(f"{elt.name} is not a plain sum")
            if len(rest) != 1:
                bad(f"the input of {sq.name} has unexpected extra consumers")
            if rest[0] is elt and sorted(elt.in_ids) == sorted([v, out]):
                kind = "identity"
            elif (rest[0].type == "Convolution" and is_plain_conv(rest[0], 1, 0)
                  and sorted(elt.in_ids) == sorted([rest[0].out_ids[0], out])
                  and consumers.get(rest[0].out_ids[0]) == [elt]):
                kind, shortcut = "conv", rest[0]
            else:
                bad(f"{elt.name} is not a bypass around the Fire module at {sq.name}")
            out = elt.out_ids[0]
        fires.append((sq.attrs["num_output"], e1.attrs["num_output"], e3.attrs["num_output"]))
        bypass.append(kind)
        fire_layers.append((sq, e1, e3, shortcut))
        v = out
        nxt = consumers.get(v, [])
        if len(nxt) == 1 and nxt[0].type == "Pooling" and not nxt[0].attrs["global"]:
            if not is_pool32(nxt[0]):
                bad(f"{nxt[0].name} is not a 3x3/2 max-pool")
            pool_after.append(len(fires) - 1)
            v = nxt[0].out_ids[0]
    if not fires:
        bad("no Fire modules")
    if not (is_plain_conv(head, 1, 0) or is_plain_conv(head, 1, 1)):
        bad(f"{head.name} is not a 1x1 convolution")
    gp = only(relu_after(head).out_ids[0], "global average pooling", ("Pooling",))
    if not (gp.attrs["global"] and gp.attrs["method"] == "AVE"):
        bad(f"{gp.name} is not a global average pooling")
    tail = consumers.get(gp.out_ids[0], [])
    if tail and not (len(tail) == 1 and tail[0].type == "Softmax" and not consumers.get(tail[0].out_ids[0])):
        bad(f"unexpected layers after {gp.name}")
    # which bypass variant of the paper is this?
    cin, kinds_simple, kinds_complex = STEMS[stem][0], [], []
    for s, e1, e3 in fires:
        same = cin == e1 + e3
        kinds_simple.append("identity" if same else "none")
        kinds_complex.append("identity" if same else "conv")
        cin = e1 + e3
    if all(k == "none" for k in bypass):
        mode = "none"
    elif bypass == kinds_simple:
        mode = "simple"
    elif bypass == kinds_complex:
        mode = "complex"
    else:
        bad(f"bypass pattern {bypass} is neither the paper's simple nor complex bypass")
    config = SqueezeNetConfig(stem=stem, fires=tuple(fires), pool_after=tuple(pool_after), bypass=mode,
                              num_classes=head.attrs["num_output"], dropout=dropout,
                              conv10_padding=head.attrs["pad"][0], in_channels=in_channels)
    idx = 3
    for i, (sq, e1, e3, shortcut) in enumerate(fire_layers):
        mapping[sq.name] = f"features.{idx}.squeeze"
        mapping[e1.name] = f"features.{idx}.expand1x1"
        mapping[e3.name] = f"features.{idx}.expand3x3"
        if shortcut is not None:
            mapping[shortcut.name] = f"features.{idx}.shortcut"
        idx += 2 if i in pool_after else 1
    mapping[head.name] = "classifier.1"
    return config, mapping


def to_squeezenet(net: CaffeNet):
    """The :class:`~squeezenet.models.SqueezeNet` equivalent of ``net``, weights copied.

    Its output is the logits (Caffe's ``pool10``, flattened; a deploy net's softmax is
    left to the caller).
    """
    from ...models import SqueezeNet
    config, mapping = squeezenet_layout(net)
    model = SqueezeNet(config)
    mods = dict(model.named_modules())
    src = net.param_layers()
    with torch.no_grad():
        for cname, tpath in mapping.items():
            dst = mods[tpath]
            if tuple(dst.weight.shape) != tuple(src[cname].weight.shape):  # pragma: no cover (structural match)
                raise NotSqueezeNet(f"{cname}: shape {tuple(src[cname].weight.shape)} does not fit {tpath}")
            dst.weight.copy_(src[cname].weight)
            dst.bias.copy_(src[cname].bias)
    model.preprocess = PREPROCESS
    model.metadata = {"caffe_layers": mapping}
    return model.eval()


def arch_name(config) -> str | None:
    """The registered model whose config equals ``config`` up to bypass/num_classes/dropout."""
    from ...models.builders import VARIANTS
    for name, base in VARIANTS.items():
        if base.replace(bypass=config.bypass, num_classes=config.num_classes, dropout=config.dropout,
                        in_channels=config.in_channels) == config:
            return name
    return None


def import_caffe(prototxt: str | os.PathLike | None, caffemodel: str | os.PathLike,
                 classes: list[str] | None = None):
    """prototxt + caffemodel -> :class:`~squeezenet.models.SqueezeNet` with the ``caffe``
    preprocessing preset (BGR, 0-255, mean subtracted).

    >>> # m = import_caffe("deploy.prototxt", "squeezenet_v1.0.caffemodel")
    """
    net = load_caffe(prototxt, caffemodel)
    try:
        model = to_squeezenet(net)
    except NotSqueezeNet as e:
        raise SqueezeNetError(f"{prototxt or caffemodel}: {e}") from None
    model.classes = list(classes) if classes is not None else None
    model.metadata = {"source": "caffe", "prototxt": Path(prototxt).name if prototxt else None,
                      "caffemodel": Path(caffemodel).name, "arch": arch_name(model.config),
                      "caffe_transform": net.transform or None}
    return model


# ----------------------------------------------------------------------------- export

def squeezenet_to_netparameter(model, with_weights: bool, input_size: int | None = None):
    """A Caffe ``NetParameter`` for our SqueezeNet (DeepScale layer names, deploy form)."""
    from ...models import Fire
    cfg = model.config
    size = input_size or {"small": 32}.get(cfg.stem, 227)
    net = pb.NetParameter(name=f"SqueezeNet_{cfg.stem}")

    def layer(name, type_, bottoms, tops):
        lp = net.layer.add(name=name, type=type_)
        lp.bottom.extend(bottoms)
        lp.top.extend(tops)
        return lp

    def conv(name, bottom, mod: nn.Conv2d):
        lp = layer(name, "Convolution", [bottom], [name])
        p = lp.convolution_param
        p.num_output = mod.out_channels
        kh, kw = mod.kernel_size
        if kh == kw:
            p.kernel_size.append(kh)
        else:
            p.kernel_h, p.kernel_w = kh, kw
        if mod.padding[0] == mod.padding[1]:
            if mod.padding[0]:
                p.pad.append(mod.padding[0])
        else:
            p.pad_h, p.pad_w = mod.padding
        if mod.stride[0] == mod.stride[1]:
            if mod.stride[0] != 1:
                p.stride.append(mod.stride[0])
        else:
            p.stride_h, p.stride_w = mod.stride
        if with_weights:
            array_to_blob(mod.weight, lp.blobs.add())
            array_to_blob(mod.bias, lp.blobs.add())
        return name

    def relu(name, blob):
        layer(name, "ReLU", [blob], [blob])
        return blob

    def maxpool(name, bottom):
        lp = layer(name, "Pooling", [bottom], [name])
        lp.pooling_param.pool = 0
        lp.pooling_param.kernel_size = 3
        lp.pooling_param.stride = 2
        return name

    inp = layer("data", "Input", [], ["data"])
    inp.input_param.shape.add().dim.extend([1, cfg.in_channels, size, size])
    feats = list(model.features)
    x = conv("conv1", "data", feats[0])
    relu("relu_conv1", x)
    x = maxpool("pool1", x)
    fire_i = 1
    for mod in feats[3:]:
        if isinstance(mod, Fire):
            fire_i += 1
            f = f"fire{fire_i}"
            s = relu(f"{f}/relu_squeeze1x1", conv(f"{f}/squeeze1x1", x, mod.squeeze))
            e1 = relu(f"{f}/relu_expand1x1", conv(f"{f}/expand1x1", s, mod.expand1x1))
            e3 = relu(f"{f}/relu_expand3x3", conv(f"{f}/expand3x3", s, mod.expand3x3))
            layer(f"{f}/concat", "Concat", [e1, e3], [f"{f}/concat"])
            out = f"{f}/concat"
            if mod.bypass == "identity":
                layer(f"{f}/bypass", "Eltwise", [x, out], [f"{f}/bypass"])
                out = f"{f}/bypass"
            elif mod.bypass == "conv":
                sc = conv(f"{f}/shortcut", x, mod.shortcut)
                layer(f"{f}/bypass", "Eltwise", [sc, out], [f"{f}/bypass"])
                out = f"{f}/bypass"
            x = out
        elif isinstance(mod, nn.MaxPool2d):
            x = maxpool(f"pool{fire_i}", x)
        else:  # pragma: no cover
            raise SqueezeNetError(f"cannot export feature layer {type(mod).__name__}")
    drop = layer(f"drop{fire_i}", "Dropout", [x], [x])
    drop.dropout_param.dropout_ratio = float(cfg.dropout)
    x = conv("conv10", x, model.classifier[1])
    relu("relu_conv10", x)
    gp = layer("pool10", "Pooling", [x], ["pool10"])
    gp.pooling_param.pool = 1
    gp.pooling_param.global_pooling = True
    layer("prob", "Softmax", ["pool10"], ["prob"])
    return net


def export_caffe(model, out_dir: str | os.PathLike, name: str = "squeezenet",
                 input_size: int | None = None) -> tuple[Path, Path]:
    """Write ``deploy.prototxt`` and ``<name>.caffemodel`` for a SqueezeNet into ``out_dir``.

    >>> import squeezenet, tempfile
    >>> from squeezenet.interop.caffe import export_caffe, import_caffe
    >>> m = squeezenet.create_model("squeezenet1_1").eval()
    >>> proto, weights = export_caffe(m, tempfile.mkdtemp())
    >>> back = import_caffe(proto, weights)
    >>> x = torch.randn(1, 3, 224, 224)
    >>> bool(torch.equal(back(x), m(x)))
    True
    """
    from google.protobuf import text_format
    from ...io import atomic_write, atomic_write_text
    from ...models import SqueezeNet
    if not isinstance(model, SqueezeNet):
        raise SqueezeNetError(f"export-caffe needs a SqueezeNet, got {type(model).__name__}")
    if getattr(model.config, "batch_norm", False):
        raise SqueezeNetError("export-caffe: models with --batch-norm are not exported to Caffe (the "
                              "released SqueezeNets have no BatchNorm); use `squeezenet export` (ONNX)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    deploy = squeezenet_to_netparameter(model, with_weights=False, input_size=input_size)
    full = squeezenet_to_netparameter(model, with_weights=True, input_size=input_size)
    proto_path, weights_path = out_dir / "deploy.prototxt", out_dir / f"{name}.caffemodel"
    header = (f"# SqueezeNet exported by squeezenet (config: {model.config.to_dict()})\n"
              f"# preprocessing: {getattr(model, 'preprocess', None) or 'unspecified'}\n")
    atomic_write_text(proto_path, header + text_format.MessageToString(deploy))
    data = full.SerializeToString()
    atomic_write(weights_path, lambda tmp: Path(tmp).write_bytes(data))
    return proto_path, weights_path
