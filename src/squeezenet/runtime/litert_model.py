"""LiteRT (TFLite): export our ONNX graph (fp32, or int8 QDQ) to a ``.tflite`` file, load and run it
in LiteRT's interpreter (``pip install 'squeezenet[litert]'``: ``ai-edge-litert``).

Why our own translator: LiteRT's converters on PyPI do not install beside this toolkit
(``litert-torch``/``ai-edge-torch`` pull jax + transformers and pin torch; ``onnx2tf`` needs
tensorflow). ``ai-edge-litert`` itself ships the flatbuffer schema as a Python object API
(``ai_edge_litert.schema_py_generated``), so the file is written with it: each node of the
ONNX graph becomes the matching builtin op in NHWC layout (a ``TRANSPOSE`` first, so the file
takes the same NCHW float input as every other runtime):

=====================  ===========================================================
ONNX                   LiteRT
=====================  ===========================================================
Conv (+ Relu)          CONV_2D (weights OHWI, fused RELU; SAME/VALID or a PAD)
MaxPool (ceil_mode)    MAX_POOL_2D (VALID, or SAME where its windows are the same)
Concat (channels)      CONCATENATION on axis 3
Add                    ADD
GlobalAveragePool      MEAN over H, W
Relu, Softmax          RELU, SOFTMAX
Flatten                RESHAPE (after a TRANSPOSE back to NCHW unless H = W = 1)
Identity, Dropout      nothing
=====================  ===========================================================

Any other op is refused in one line naming it. An int8 QDQ file (runtime/quantize.py) keeps its
calibration: each QuantizeLinear gives its tensor's scale and zero point (uint8 -> int8 by
shifting the zero point by 128, exact), weights stay per-channel symmetric int8, biases
int32 at input scale x weight scale. Convolutions, max pools, concatenations and adds whose
tensors all carry such ranges run in int8 (a concatenation requantizes inputs to its output's
range, LiteRT's int8 kernel wants them equal); what ONNX Runtime's quantizer kept in float
(the classifier's tail, ``--max-drop`` layers) stays float, with QUANTIZE/DEQUANTIZE at the
borders, so input and logits are float (no tied top scores).

The ONNX metadata (preset, class list, config, quantization) travels as the ``.tflite``
file's own metadata: an entry ``squeezenet`` whose buffer is a JSON object.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, SqueezeNetError, first_line
from .exported_model import ExportedModel, decode_props, model_facts, onnx_props

META_NAME = "squeezenet"
MAX_META_BYTES = 16 << 20


def export_litert(onnx_bytes: bytes, path: str | os.PathLike) -> list[Path]:
    """Write ``path`` (.tflite, metadata inside); returns ``[path]``.

    >>> import squeezenet, tempfile, os, torch
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> m = squeezenet.create_model("squeezenet_small"); m.preprocess = "small"
    >>> p = export_litert(to_onnx_bytes(m), os.path.join(tempfile.mkdtemp(), "m.tflite"))[0]
    >>> o = load_litert(p)
    >>> o.preprocess, o.precision, torch.allclose(o(torch.ones(2, 3, 32, 32)), m.eval()(torch.ones(2, 3, 32, 32)), atol=1e-4)
    ('small', 'f32', True)
    """
    from ..io import atomic_write
    path = Path(path)
    data = tflite_bytes(onnx_bytes)
    atomic_write(path, lambda t: Path(t).write_bytes(data))
    return [path]


def tflite_bytes(onnx_bytes: bytes) -> bytes:
    """The ``.tflite`` flatbuffer of ONNX bytes (ours), with their metadata as JSON inside."""
    import onnx
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray
    proto = onnx.load_from_string(onnx_bytes)
    b = _Builder(proto)
    b.translate()
    meta = json.dumps(decode_props(onnx_props(onnx_bytes), "the ONNX export")).encode()
    model = S.ModelT()
    model.version = 3
    model.description = "squeezenet export --to litert"
    model.operatorCodes = b.opcodes
    sub = S.SubGraphT()
    sub.tensors, sub.operators, sub.name = b.tensors, b.operators, "main"
    sub.inputs, sub.outputs = [b.graph_input], [b.graph_output]
    model.subgraphs = [sub]
    b.buffers.append(_buffer(np.frombuffer(meta, np.uint8)))
    md = S.MetadataT()
    md.name, md.buffer = META_NAME, len(b.buffers) - 1
    model.metadata = [md]
    model.buffers = b.buffers
    return bytes(convert_object_to_bytearray(model))


def _buffer(a: np.ndarray | None):
    from ai_edge_litert import schema_py_generated as S
    buf = S.BufferT()
    if a is not None:
        buf.data = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
    return buf


class _Builder:
    """ONNX graph (QDQ pairs folded into per-tensor ranges) -> TFLite tensors and operators."""

    def __init__(self, proto) -> None:
        from onnx import numpy_helper
        from ai_edge_litert import schema_py_generated as S
        self.S, self.g = S, proto.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in self.g.initializer}
        self.qconst: dict[str, tuple] = {}     # DQ(constant) -> (int values, scales, zero points, axis)
        self.params: dict[str, tuple] = {}     # activation -> (scale, int8 zero point)
        self.alias: dict[str, str] = {}
        self.tensors, self.operators, self.opcodes = [], [], []
        self.buffers = [_buffer(None)]
        self._codes: dict[int, int] = {}
        self.reps: dict[str, dict] = {}         # onnx name -> {"f" | ("q", scale, zp): tensor index}
        self.shape: dict[int, list[int]] = {}   # tensor index -> static NHWC (or N, C) shape, N = 1

    # --- tensors and ops ------------------------------------------------------------------
    def tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None, q=None) -> int:
        S = self.S
        t = S.TensorT()
        t.name, t.type, t.shape = name, ttype, [int(d) for d in shape]
        if data is not None:
            self.buffers.append(_buffer(data))
            t.buffer = len(self.buffers) - 1
        else:
            self.buffers.append(_buffer(None))
            t.buffer = len(self.buffers) - 1
            t.shapeSignature = [-1] + t.shape[1:]
        if q is not None:
            qp = S.QuantizationParametersT()
            scale, zp, dim = q
            qp.scale = [float(s) for s in np.atleast_1d(scale)]
            qp.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
            qp.quantizedDimension = dim
            t.quantization = qp
        self.tensors.append(t)
        idx = len(self.tensors) - 1
        self.shape[idx] = t.shape
        return idx

    def const_i32(self, name: str, values) -> int:
        a = np.asarray(values, dtype=np.int32)
        return self.tensor(name, a.shape, self.S.TensorType.INT32, a)

    def op(self, code: int, inputs, outputs, opt_type: int = 0, opt=None) -> None:
        S = self.S
        if code not in self._codes:
            c = S.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            self.opcodes.append(c)
            self._codes[code] = len(self.opcodes) - 1
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self._codes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.operators.append(o)

    def act(self, name: str, shape, q=None) -> int:
        T = self.S.TensorType
        if q is None:
            return self.tensor(name, shape, T.FLOAT32)
        return self.tensor(name, shape, T.INT8, q=(q[0], q[1], 0))

    def get(self, name: str, want) -> int:
        """Tensor index of activation ``name`` as float (``"f"``) or int8 ``("q", scale, zp)``,
        adding a QUANTIZE (float -> int8, or int8 requantize) or DEQUANTIZE where needed."""
        B = self.S.BuiltinOperator
        reps = self.reps[name]
        if want in reps:
            return reps[want]
        src = reps.get("f", next(iter(reps.values())))
        shape = self.shape[src]
        if want == "f":
            out = self.act(f"{name}/float", shape)
            self.op(B.DEQUANTIZE, [src], [out])
        else:
            out = self.act(f"{name}/int8", shape, want[1:])
            self.op(B.QUANTIZE, [src], [out])
        reps[want] = out
        return out

    def qkey(self, name: str):
        p = self.params.get(name)
        return None if p is None else ("q", p[0], p[1])

    # --- the graph ----------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def translate(self) -> None:
        from onnx import helper, numpy_helper
        nodes = []
        for n in self.g.node:   # fold constants, Identity/Dropout and QDQ pairs
            ins = [self.resolve(i) for i in n.input]
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            elif n.op_type in ("Identity", "Dropout"):
                self.alias[n.output[0]] = ins[0]
                for extra in n.output[1:]:
                    if extra:
                        raise SqueezeNetError(f"ONNX {n.op_type} {n.name!r} with a mask output has no LiteRT translation")
            elif n.op_type == "DequantizeLinear" and ins[0] in self.consts:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                q, s = self.consts[ins[0]], self.consts[ins[1]]
                zp = self.consts[ins[2]] if len(ins) > 2 and ins[2] else np.zeros_like(s, dtype=q.dtype)
                shp = [1] * q.ndim
                if s.size > 1:
                    axis = axis % q.ndim
                    shp[axis] = -1
                self.consts[n.output[0]] = ((q.astype(np.float64) - zp.reshape(shp).astype(np.float64))
                                            * s.reshape(shp).astype(np.float64)).astype(np.float32)
                self.qconst[n.output[0]] = (q, s, zp, axis)
            elif n.op_type == "QuantizeLinear":
                s, zp = self.consts[ins[1]], self.consts[ins[2]]
                if s.size != 1:
                    raise SqueezeNetError(f"ONNX QuantizeLinear {n.name!r}: per-channel activation ranges "
                                          f"have no LiteRT translation")
                z = int(zp.reshape(-1)[0]) - (128 if zp.dtype == np.uint8 else 0)
                if zp.dtype not in (np.uint8, np.int8):
                    raise SqueezeNetError(f"ONNX QuantizeLinear {n.name!r}: {zp.dtype} has no LiteRT translation")
                p = (float(s.reshape(-1)[0]), z)
                self.params.setdefault(ins[0], p)
                self.alias[n.output[0]] = ins[0]   # the DQ that follows gives the same tensor back
            elif n.op_type == "DequantizeLinear":
                self.alias[n.output[0]] = ins[0]
            else:
                nodes.append((n, ins))
        consumers: dict[str, int] = {}
        for n, ins in nodes:
            for i in ins:
                consumers[i] = consumers.get(i, 0) + 1
        out_name = self.resolve(self.g.output[0].name)
        consumers[out_name] = consumers.get(out_name, 0) + 1

        inp = self.g.input[0]
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4 or not all(dims[1:]):
            raise SqueezeNetError(f"ONNX input {inp.name!r} of shape {dims}: LiteRT export needs N x C x H x W "
                                  f"with fixed C, H, W")
        _, c, h, w = dims
        B, O = self.S.BuiltinOperator, self.S.BuiltinOptions
        self.graph_input = self.tensor(inp.name, [1, c, h, w], self.S.TensorType.FLOAT32)
        nhwc = self.act(f"{inp.name}/nhwc", [1, h, w, c])
        self.op(B.TRANSPOSE, [self.graph_input, self.const_i32("perm_nhwc", [0, 2, 3, 1])], [nhwc])
        self.reps[inp.name] = {"f": nhwc}

        skip = set()
        for k, (n, ins) in enumerate(nodes):
            if k in skip:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            out = n.output[0]
            t = n.op_type
            acts = ins[:1] if t == "Conv" else [i for i in ins if i]
            missing = [i for i in acts if i not in self.reps]
            if missing:
                raise SqueezeNetError(f"ONNX {t} {n.name!r}: input {missing[0]!r} is "
                                      f"{'a constant' if missing[0] in self.consts else 'not computed before it'}, "
                                      f"which has no LiteRT translation here")
            if t == "Conv":
                relu = None
                if k + 1 < len(nodes) and nodes[k + 1][0].op_type == "Relu" and nodes[k + 1][1][0] == out \
                        and consumers.get(out, 0) == 1:
                    relu = nodes[k + 1][0].output[0]
                    skip.add(k + 1)
                self.conv(n, ins, attrs, out, relu)
                out = relu or out
            elif t == "Relu":
                q = self.qkey(ins[0]) if self.qkey(out) == self.qkey(ins[0]) else None
                x = self.get(ins[0], q or "f")
                y = self.act(out, self.shape[x], None if q is None else q[1:])
                self.op(B.RELU, [x], [y])
                self.reps[out] = {q or "f": y}
            elif t == "MaxPool":
                self.maxpool(n, ins, attrs, out)
            elif t == "Concat":
                self.concat(n, ins, attrs, out)
            elif t == "Add":
                q = self.qkey(out)
                keys = [self.qkey(i) for i in ins]
                if q is None or None in keys:
                    q, keys = None, ["f", "f"]
                xs = [self.get(i, kk) for i, kk in zip(ins, keys)]
                if self.shape[xs[0]] != self.shape[xs[1]]:
                    raise SqueezeNetError(f"ONNX Add {n.name!r} with broadcasting has no LiteRT translation here")
                y = self.act(out, self.shape[xs[0]], None if q is None else q[1:])
                self.op(B.ADD, xs, [y], O.AddOptions, self.S.AddOptionsT())
                self.reps[out] = {q or "f": y}
            elif t == "GlobalAveragePool" or (t == "AveragePool" and self._is_global(ins[0], attrs)):
                x = self.get(ins[0], "f")
                s = self.shape[x]
                y = self.act(out, [s[0], 1, 1, s[3]])
                opt = self.S.ReducerOptionsT()
                opt.keepDims = True
                self.op(B.MEAN, [x, self.const_i32(f"{out}/axes", [1, 2])], [y], O.ReducerOptions, opt)
                self.reps[out] = {"f": y}
            elif t == "Flatten" and attrs.get("axis", 1) == 1:
                x = self.get(ins[0], "f")
                s = self.shape[x]
                if len(s) == 4 and (s[1] != 1 or s[2] != 1):   # NHWC -> NCHW order before flattening
                    tr = self.act(f"{out}/nchw", [s[0], s[3], s[1], s[2]])
                    self.op(B.TRANSPOSE, [x, self.const_i32(f"{out}/perm", [0, 3, 1, 2])], [tr])
                    x = tr
                flat = int(np.prod(s[1:]))
                y = self.act(out, [s[0], flat])
                opt = self.S.ReshapeOptionsT()
                opt.newShape = [-1, flat]
                self.op(B.RESHAPE, [x, self.const_i32(f"{out}/shape", [-1, flat])], [y], O.ReshapeOptions, opt)
                self.reps[out] = {"f": y}
            elif t == "Softmax" and len(self.shape[next(iter(self.reps[ins[0]].values()))]) == 2:
                x = self.get(ins[0], "f")
                y = self.act(out, self.shape[x])
                opt = self.S.SoftmaxOptionsT()
                opt.beta = 1.0
                self.op(B.SOFTMAX, [x], [y], O.SoftmaxOptions, opt)
                self.reps[out] = {"f": y}
            else:
                raise SqueezeNetError(f"ONNX op {t} (node {n.name!r}) has no LiteRT translation in squeezenet "
                                      f"export --to litert (supported: Conv, Relu, MaxPool, Concat, Add, "
                                      f"GlobalAveragePool, Flatten, Softmax, Identity, Dropout)")
            if out not in self.reps:
                raise SqueezeNetError(f"ONNX {t} {n.name!r}: no LiteRT translation for its attributes")
        if out_name not in self.reps:
            raise SqueezeNetError(f"ONNX output {out_name!r} is not computed by a translated node")
        self.graph_output = self.get(out_name, "f")
        self.tensors[self.graph_output].name = self.g.output[0].name

    def _is_global(self, name: str, attrs) -> bool:
        s = self.shape[next(iter(self.reps[name].values()))]
        return (list(attrs.get("kernel_shape", [])) == s[1:3] and not any(attrs.get("pads", [0]))
                and not attrs.get("ceil_mode", 0))

    @staticmethod
    def _padding(size, k, s, d, pads, ceil: bool, pool: bool):
        """(TFLite padding, explicit pads or None, output size) matching ONNX's windows."""
        eff = [(kk - 1) * dd + 1 for kk, dd in zip(k, d)]
        outs = []
        for i in range(2):
            span = size[i] + pads[i] + pads[i + 2] - eff[i]
            o = (-(-span // s[i]) if ceil else span // s[i]) + 1
            if ceil and (o - 1) * s[i] >= size[i] + pads[i]:
                o -= 1   # the last window must start inside the input or its top/left padding
            outs.append(o)
        valid = [(size[i] - eff[i]) // s[i] + 1 for i in range(2)]
        same = [-(-size[i] // s[i]) for i in range(2)]
        same_top = [max((same[i] - 1) * s[i] + eff[i] - size[i], 0) // 2 for i in range(2)]
        same_total = [max((same[i] - 1) * s[i] + eff[i] - size[i], 0) for i in range(2)]
        if not any(pads) and valid == outs:
            return "VALID", None, outs
        if same == outs and same_top == [pads[0], pads[1]] and (
                pool or same_total == [pads[0] + pads[2], pads[1] + pads[3]]):
            return "SAME", None, outs   # pooling ignores SAME's padded cells, as ONNX's -inf pads do
        if not pool and not ceil:
            return "VALID", [pads[0], pads[2], pads[1], pads[3]], outs   # zero PAD first, then VALID
        return None, None, outs

    def conv(self, n, ins, attrs, out, relu) -> None:
        S, B, O = self.S, self.S.BuiltinOperator, self.S.BuiltinOptions
        if attrs.get("group", 1) != 1:
            raise SqueezeNetError(f"ONNX Conv {n.name!r} with groups has no LiteRT translation here")
        wname = ins[1]
        if wname not in self.consts:
            raise SqueezeNetError(f"ONNX Conv {n.name!r}: weights that are not constants have no LiteRT translation")
        w = self.consts[wname]
        bias = self.consts[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(w.shape[0], np.float32)
        k, s = list(w.shape[2:]), list(attrs.get("strides", [1, 1]))
        d, pads = list(attrs.get("dilations", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise SqueezeNetError(f"ONNX Conv {n.name!r}: auto_pad has no LiteRT translation here")
        final = relu or out
        qin, qout = self.qkey(ins[0]), self.qkey(final) or self.qkey(out)
        qw = self.qconst.get(wname)
        int8 = qin is not None and qout is not None and qw is not None and qw[0].dtype == np.int8 \
            and not np.any(qw[2]) and (qw[1].size == 1 or qw[3] == 0)
        x = self.get(ins[0], qin if int8 else "f")
        size = self.shape[x][1:3]
        padding, explicit, outs = self._padding(size, k, s, d, pads, False, False)
        if explicit is not None and any(explicit):
            xs = self.shape[x]
            padded = self.act(f"{out}/pad", [xs[0], xs[1] + explicit[0] + explicit[1],
                                             xs[2] + explicit[2] + explicit[3], xs[3]], qin[1:] if int8 else None)
            self.op(B.PAD, [x, self.const_i32(f"{out}/pads", [[0, 0], explicit[:2], explicit[2:], [0, 0]])],
                    [padded], O.PadOptions, S.PadOptionsT())
            x = padded
        ohwi = np.ascontiguousarray(np.transpose(qw[0] if int8 else w, (0, 2, 3, 1)))
        if int8:
            ws = np.broadcast_to(qw[1].astype(np.float64).reshape(-1), (w.shape[0],))
            wt = self.tensor(f"{wname}/ohwi", ohwi.shape, S.TensorType.INT8, ohwi,
                             q=(ws, np.zeros(len(ws), np.int64), 0))
            bs = qin[1] * ws
            bq = np.round(bias.astype(np.float64) / bs).clip(-2 ** 31, 2 ** 31 - 1).astype(np.int32)
            bt = self.tensor(f"{wname}/bias", bq.shape, S.TensorType.INT32, bq, q=(bs, np.zeros(len(bs), np.int64), 0))
        else:
            wt = self.tensor(f"{wname}/ohwi", ohwi.shape, S.TensorType.FLOAT32, ohwi.astype(np.float32))
            bt = self.tensor(f"{wname}/bias", bias.shape, S.TensorType.FLOAT32, bias.astype(np.float32))
        y = self.act(final, [self.shape[x][0], outs[0], outs[1], w.shape[0]], qout[1:] if int8 else None)
        opt = S.Conv2DOptionsT()
        opt.padding = getattr(S.Padding, padding)
        opt.strideH, opt.strideW = s
        opt.dilationHFactor, opt.dilationWFactor = d
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
        self.op(B.CONV_2D, [x, wt, bt], [y], O.Conv2DOptions, opt)
        self.reps[final] = {qout if int8 else "f": y}

    def maxpool(self, n, ins, attrs, out) -> None:
        S, B, O = self.S, self.S.BuiltinOperator, self.S.BuiltinOptions
        qin, qout = self.qkey(ins[0]), self.qkey(out)
        int8 = qin is not None and qout is not None
        x = self.get(ins[0], qin if int8 else "f")
        k, s = list(attrs["kernel_shape"]), list(attrs.get("strides", [1, 1]))
        d, pads = list(attrs.get("dilations", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
        if d != [1, 1] or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise SqueezeNetError(f"ONNX MaxPool {n.name!r}: dilation/auto_pad have no LiteRT translation here")
        padding, _, outs = self._padding(self.shape[x][1:3], k, s, d, pads, bool(attrs.get("ceil_mode", 0)), True)
        if padding is None:
            raise SqueezeNetError(f"ONNX MaxPool {n.name!r} (kernel {k}, stride {s}, pads {pads}) on "
                                  f"{self.shape[x][1:3]}: its windows match neither SAME nor VALID in LiteRT")
        xs = self.shape[x]
        y = self.act(out, [xs[0], outs[0], outs[1], xs[3]], qin[1:] if int8 else None)
        opt = S.Pool2DOptionsT()
        opt.padding = getattr(S.Padding, padding)
        opt.strideH, opt.strideW = s
        opt.filterHeight, opt.filterWidth = k
        self.op(B.MAX_POOL_2D, [x], [y], O.Pool2DOptions, opt)
        self.reps[out] = {qin if int8 else "f": y}   # int8 max pooling keeps its input's range

    def concat(self, n, ins, attrs, out) -> None:
        S, B, O = self.S, self.S.BuiltinOperator, self.S.BuiltinOptions
        q = self.qkey(out)
        if q is not None and any(self.qkey(i) is None for i in ins):
            q = None
        xs = [self.get(i, q or "f") for i in ins]   # int8: each input requantized to the output's range
        shapes = [self.shape[i] for i in xs]
        rank = len(shapes[0])
        axis = attrs.get("axis", 1) % rank
        if rank == 4:
            axis = {0: 0, 1: 3, 2: 1, 3: 2}[axis]
        shp = list(shapes[0])
        shp[axis] = sum(sh[axis] for sh in shapes)
        y = self.act(out, shp, None if q is None else q[1:])
        opt = S.ConcatenationOptionsT()
        opt.axis = axis
        self.op(B.CONCATENATION, xs, [y], O.ConcatenationOptions, opt)
        self.reps[out] = {q or "f": y}


def read_metadata(path: Path, data: bytes) -> dict:
    """The ``squeezenet`` metadata entry of a ``.tflite`` file (an empty dict where there is none)."""
    from ai_edge_litert import schema_py_generated as S
    try:
        m = S.Model.GetRootAs(data, 0)
        for i in range(m.MetadataLength()):
            md = m.Metadata(i)
            if (md.Name() or b"").decode("utf-8", "replace") != META_NAME:
                continue
            buf = m.Buffers(md.Buffer())
            raw = buf.DataAsNumpy() if buf is not None and buf.DataLength() else None
            if raw is None or isinstance(raw, int):
                return {}
            if raw.size > MAX_META_BYTES:
                raise FormatError(path, f"its {META_NAME} metadata is {raw.size:,} bytes (more than {MAX_META_BYTES:,})")
            from ..io import parse_json
            meta = parse_json(raw.tobytes().decode("utf-8", "replace"), path, f"{META_NAME} metadata")
            if not isinstance(meta, dict):
                raise FormatError(path, f"its {META_NAME} metadata is not a JSON object")
            return meta
    except (FormatError, SqueezeNetError):
        raise
    except Exception as e:   # a damaged flatbuffer: offsets past the end, ...
        raise FormatError(path, f"not a readable .tflite file (truncated or damaged: {type(e).__name__})") from None
    return {}


class _NativeStderr:
    """Holds what LiteRT's C++ code writes to file descriptor 2 while it builds an interpreter
    (an ``INFO: Created TensorFlow Lite XNNPACK delegate`` line no environment variable
    silences); ``text`` keeps it, for an error message."""

    def __enter__(self) -> "_NativeStderr":
        import sys
        import tempfile
        self.text = ""
        try:
            sys.stderr.flush()
            self._saved, self._tmp = os.dup(2), tempfile.TemporaryFile()
            os.dup2(self._tmp.fileno(), 2)
        except (OSError, ValueError):   # no real descriptor 2: let it through
            self._saved = None
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        self.text = self._tmp.read(8192).decode("utf-8", "replace")
        self._tmp.close()

    def errors(self) -> str:
        return " ".join(ln.strip() for ln in self.text.splitlines() if ln.startswith("ERROR"))[:200]


class LiteRtRunner:
    """Runs batches in one LiteRT interpreter (``threads`` threads), resized when the batch
    shape changes."""

    def __init__(self, data: bytes, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter
        with _NativeStderr():
            self.interp = Interpreter(model_content=data, num_threads=int(threads or torch.get_num_threads()))
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.shape: tuple | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        if a.shape != self.shape:
            self.interp.resize_tensor_input(self.inp["index"], list(a.shape))
            self.interp.allocate_tensors()
            self.shape = a.shape
        self.interp.set_tensor(self.inp["index"], a)
        self.interp.invoke()
        return torch.from_numpy(np.array(self.interp.get_tensor(self.out["index"]), copy=True))


def load_litert(path, preprocess=None, classes=None, threads=None, need_preprocess=True) -> ExportedModel:
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FormatError(path, "not a .tflite file (no TFL3 identifier)")
    meta = read_metadata(path, data)
    facts = model_facts(path, meta, preprocess, classes, need_preprocess)
    native = _NativeStderr()
    try:
        with native:
            runner = LiteRtRunner(data, threads)
            shape = tuple(int(v) for v in runner.inp["shape"])
            runner(torch.zeros(1, *shape[1:]))   # a broken file fails here, not in the first batch
    except Exception as e:
        raise FormatError(path, f"LiteRT cannot run it ({first_line(native.errors() or e, 200)})") from None
    int8 = facts.pop("int8") or any(d["dtype"] == np.int8 for d in runner.interp.get_tensor_details())
    if facts["num_classes"] is None:
        o = runner.out["shape"]
        facts["num_classes"] = int(o[1]) if len(o) == 2 else None
    return ExportedModel(path, "litert", runner, meta, int8=int8, precision="i8" if int8 else "f32",
                         input_shape=(None, *shape[1:]), **facts)
