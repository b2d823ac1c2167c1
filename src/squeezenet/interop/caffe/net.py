"""The Caffe graph runner: :class:`CaffeNet` runs any net made of the :data:`SUPPORTED`
layers as a DAG over Caffe's blob names (in-place layers, Caffe's rounding-up pooling, global
pooling, TRAIN/TEST rules); :func:`load_caffe` builds one from a prototxt and/or caffemodel.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.transforms import PRESETS
from ...errors import FormatError, SqueezeNetError
from .parse import (DATA_TYPES, LOSS_TYPES, SUPPORTED, Layer, blob_shape, blob_to_array, layer_included,
                    net_layers, raw_layers, read_caffemodel, read_prototxt)

#: Limits that keep a corrupt or hostile file from allocating huge tensors.
MAX_LAYER_PARAMS = 1 << 26      # 64 M parameters (256 MB) in one layer
MAX_NET_PARAMS = 1 << 27        # 128 M parameters in one net
MAX_DIM = 1 << 20               # any single blob / kernel / channel dimension


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


def _shapes_match(file_shape: tuple, legacy: bool, expected: tuple) -> bool:
    if not legacy:
        return tuple(file_shape) == tuple(expected)
    if len(expected) > 4:
        return False
    # a legacy (num, channels, height, width) blob holds lower-rank shapes padded with 1s in front
    return tuple(file_shape) == (1,) * (4 - len(expected)) + tuple(expected)


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
            crop = PRESETS["caffe"].input_size   # ImageNet-era Caffe nets without a crop: 227
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
        for layer in raw_layers(weights):
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
