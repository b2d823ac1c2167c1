"""ncnn: export with ``pnnx`` (ONNX -> ncnn ``.param``/``.bin``, fp32 weights), load and run.

pnnx runs as its own executable on a copy of the ONNX file in a temporary folder (it writes
several side products there); only the ``.param`` and ``.bin`` are kept, with the ONNX
metadata in a side ``.json`` (ncnn's files have no place for it). ncnn runs one image per
extraction; a batch is a loop. fp16/bf16 storage and arithmetic are switched off, so ncnn
computes in float32 like the file (int8 layers in int8).

int8: ncnn's quantizer (``ncnn2table``, ``ncnn2int8``) is not on PyPI and pnnx does not read
QDQ graphs, so :func:`ncnn_int8` does what ``ncnn2int8`` does, from our calibration: pnnx
converts the fp32 graph, then each ``Convolution`` whose input our int8 ONNX file quantizes
gets ncnn's int8 form (``8=2``: int8 weights, ``127 / absmax`` per output channel, after the
``0x000D4B38`` tag; then the bias, the weight scales and the input scale ``127 / absmax``
of the calibrated activation range of that ONNX file); convolutions the file keeps in float
(``--max-drop``) stay float. The logits stay float, as in the ONNX file.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, SqueezeNetError, first_line
from .exported_model import ExportedModel, model_facts, onnx_props, write_side_json


def export_ncnn(onnx_bytes: bytes, path: str | os.PathLike, fp32_bytes: bytes | None = None) -> list[Path]:
    """Write ``path`` (.param), its ``.bin`` and ``.json`` (metadata); returns the paths. For an
    int8 ONNX file (ours, QDQ) ``fp32_bytes`` is the fp32 graph it was quantized from: pnnx
    converts that, and :func:`ncnn_int8` quantizes it with the int8 file's calibration.

    >>> import squeezenet, tempfile, os, torch
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> m = squeezenet.create_model("squeezenet_small"); m.preprocess = "small"
    >>> p = export_ncnn(to_onnx_bytes(m), os.path.join(tempfile.mkdtemp(), "m.param"))[0]
    >>> o = load_ncnn(p)
    >>> o.preprocess, torch.allclose(o(torch.ones(2, 3, 32, 32)), m.eval()(torch.ones(2, 3, 32, 32)), atol=1e-4)
    ('small', True)
    """
    import onnx
    import pnnx

    from ..io import atomic_write
    path = Path(path)
    props = onnx_props(onnx_bytes)
    qdq = None
    if "quantization" in props:
        if fp32_bytes is None:
            raise SqueezeNetError("ncnn int8 needs the fp32 ONNX graph the int8 file was quantized from (pnnx reads "
                                  "no QDQ graphs): export_ncnn(int8_bytes, path, fp32_bytes=...)")
        qdq, onnx_bytes = onnx_bytes, fp32_bytes
    proto = onnx.load_from_string(onnx_bytes)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    shape = [1] + [int(d) for d in dims[1:]]
    with tempfile.TemporaryDirectory(prefix="sqz-pnnx-") as tmp:
        t = Path(tmp)
        (t / "m.onnx").write_bytes(onnx_bytes)
        cmd = [pnnx.EXEC_PATH, "m.onnx", "inputshape=[" + ",".join(map(str, shape)) + "]f32", "fp16=0",
               "ncnnparam=m.param", "ncnnbin=m.bin", "pnnxparam=p.param", "pnnxbin=p.bin",
               "pnnxpy=p.py", "pnnxonnx=p.onnx", "ncnnpy=n.py"]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0 or not (t / "m.param").is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SqueezeNetError(f"pnnx could not convert the model to ncnn (exit {r.returncode}: {tail[0][:200]})")
        param, weights = (t / "m.param").read_bytes(), (t / "m.bin").read_bytes()
    if qdq is not None:
        text, weights, _ = ncnn_int8(param.decode(), weights, qdq)
        param = text.encode()
    names = _io_names(param.decode())
    atomic_write(path.with_suffix(".bin"), lambda p: Path(p).write_bytes(weights))
    write_side_json(path.with_suffix(".json"), {**props, "ncnn_input": f'"{names[0]}"', "ncnn_output": f'"{names[1]}"'})
    atomic_write(path, lambda p: Path(p).write_bytes(param))
    return [path, path.with_suffix(".bin"), path.with_suffix(".json")]


#: ncnn layer types without weights in the .bin (anything else but Convolution: int8 refused)
_WEIGHTLESS = frozenset("Input Pooling Split Concat BinaryOp ReLU Flatten Reshape Softmax Dropout Noop Crop".split())
_INT8_TAG = 0x000D4B38   # ncnn ModelBin: int8 weights follow (padded to 4 bytes)


def _qdq_convs(qdq_bytes: bytes) -> list[tuple[np.ndarray, float]]:
    """(dequantized weights, largest |activation| the input's quantization covers) of each Conv
    of our int8 QDQ graph whose input and weights are quantized."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load_from_string(qdq_bytes).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    out = []
    for n in g.node:
        if n.op_type != "Conv":
            continue
        a, w = producer.get(n.input[0]), producer.get(n.input[1])
        if a is None or w is None or a.op_type != "DequantizeLinear" or w.op_type != "DequantizeLinear":
            continue   # kept in float
        if not all(i in inits for i in (*a.input[1:], *w.input)):
            continue
        s = float(inits[a.input[1]].reshape(-1)[0])
        zp = inits[a.input[2]] if len(a.input) > 2 else np.zeros((), np.uint8)
        info = np.iinfo(zp.dtype)
        z = float(zp.reshape(-1)[0])
        absmax = max(abs((info.min - z) * s), abs((info.max - z) * s))
        wq, ws = inits[w.input[0]].astype(np.float32), inits[w.input[1]].astype(np.float32)
        wz = inits[w.input[2]].astype(np.float32) if len(w.input) > 2 else np.zeros_like(ws)
        shape = [-1] + [1] * (wq.ndim - 1) if ws.ndim == 1 else list(ws.shape)
        out.append((((wq - wz.reshape(shape)) * ws.reshape(shape)).astype(np.float32), absmax))
    return out


def ncnn_int8(param: str, weights: bytes, qdq_bytes: bytes) -> tuple[str, bytes, int]:
    """An fp32 ncnn model (``.param`` text, ``.bin`` bytes from pnnx) with each Convolution that
    ``qdq_bytes`` (our int8 ONNX file of the same model) quantizes in ncnn's int8 form; returns
    (param, bin, how many convolutions became int8). Each ncnn Convolution is matched to the
    ONNX Conv whose dequantized weights are nearest (within half a quantization step)."""
    convs = _qdq_convs(qdq_bytes)
    lines = param.splitlines()
    out_lines, out_bin, off, done = lines[:2], bytearray(), 0, 0
    for ln in lines[2:]:
        parts = ln.split()
        if not parts:
            continue
        typ, n_in, n_out = parts[0], int(parts[2]), int(parts[3])
        if typ in _WEIGHTLESS:
            out_lines.append(ln)
            continue
        if typ != "Convolution":
            raise SqueezeNetError(f"ncnn int8: layer type {typ} ({parts[1]}) is not one this int8 writer handles "
                                  f"(Convolution and weightless layers only)")
        kv = dict(t.split("=", 1) for t in parts[4 + n_in + n_out:])
        num_out, size, bias = int(kv["0"]), int(kv["6"]), int(kv.get("5", 0))
        if "8" in kv or int.from_bytes(weights[off:off + 4], "little") != 0:
            raise SqueezeNetError(f"ncnn int8: {parts[1]} is not stored as plain float32")
        w = np.frombuffer(weights, np.float32, size, off + 4)
        end = off + 4 + 4 * size + (4 * num_out if bias else 0)
        tail = weights[off + 4 + 4 * size:end]
        same = [(float(np.abs(wf.reshape(-1) - w).max()), i, a) for i, (wf, a) in enumerate(convs) if wf.size == size]
        best = min(same, default=None)
        step = float(np.abs(w).max()) / 63 if size else 0.0   # a 7-bit quantization step, the coarsest we write
        if best is None or best[0] > step:
            out_lines.append(ln)   # no quantized ONNX Conv: this layer stays float
            out_bin += weights[off:end]
            off = end
            continue
        convs.pop(best[1])
        wm = w.reshape(num_out, -1)
        amax = np.abs(wm).max(1)
        wscale = np.where(amax > 0, 127.0 / np.maximum(amax, 1e-30), 1.0).astype(np.float32)
        q = np.clip(np.round(wm * wscale[:, None]), -127, 127).astype(np.int8).tobytes()
        out_bin += _INT8_TAG.to_bytes(4, "little") + q + b"\0" * (-len(q) % 4)
        out_bin += tail + wscale.tobytes() + np.float32([127.0 / best[2] if best[2] > 0 else 1.0]).tobytes()
        out_lines.append(ln + " 8=2")
        off, done = end, done + 1
    if off != len(weights):
        raise SqueezeNetError(f"ncnn int8: {len(weights) - off} bytes of the .bin belong to no layer")
    return "\n".join(out_lines) + "\n", bytes(out_bin), done


def _io_names(param: str) -> tuple[str, str]:
    """(input blob, output blob) of an ncnn .param text: the Input layer's top, the last layer's top."""
    lines = [ln.split() for ln in param.splitlines()[2:] if ln.strip()]
    inp = next((ln[4] for ln in lines if ln[0] == "Input" and len(ln) > 4), None)
    if inp is None or not lines:
        raise SqueezeNetError("the ncnn .param has no Input layer")
    last = lines[-1]
    n_in, n_out = int(last[2]), int(last[3])
    return inp, last[4 + n_in + n_out - 1]


class NcnnRunner:
    """Runs each image of a batch through an ncnn extractor in float32, ``threads`` threads."""

    def __init__(self, param: Path, weights: Path, inp: str, out: str, threads: int | None) -> None:
        import ncnn
        net = ncnn.Net()
        o = net.opt
        o.num_threads = int(threads or torch.get_num_threads())
        if hasattr(o, "openmp_blocktime"):
            o.openmp_blocktime = 0   # no spin-waiting between layers: it starves other threads of the CPU
        for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_bf16_packed", "use_vulkan_compute"):
            if hasattr(o, flag):
                setattr(o, flag, False)
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise FormatError(param, "ncnn cannot load it (with its .bin)")
        self.net, self.inp, self.out, self._ncnn = net, inp, out, ncnn
        n8 = sum(1 for ln in param.read_text(errors="replace").splitlines()
                 if ln.startswith("Convolution") and " 8=" in ln)
        self.precision = f"int8 ({n8} convs) + f32" if n8 else "f32"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        rows = []
        for img in a:
            mat = self._ncnn.Mat(img)   # borrows img's memory, alive until extract returns
            ex = self.net.create_extractor()
            ex.input(self.inp, mat)
            rc, out = ex.extract(self.out)
            if rc != 0:
                raise SqueezeNetError(f"ncnn extraction failed (code {rc})")
            rows.append(np.array(out, copy=True).reshape(-1))
        return torch.from_numpy(np.stack(rows))


def load_ncnn(path, preprocess=None, classes=None, threads=None, need_preprocess=True) -> ExportedModel:
    from ..io import read_json
    path = Path(path)
    side, weights = path.with_suffix(".json"), path.with_suffix(".bin")
    if not weights.is_file():
        raise FormatError(path, f"its weights {weights.name} are missing beside it")
    meta = read_json(side, "ncnn metadata") if side.is_file() else {}
    if not isinstance(meta, dict):
        raise FormatError(side, "not a JSON object of metadata")
    try:
        inp, out = _io_names(path.read_text(errors="replace"))
    except (SqueezeNetError, ValueError, IndexError) as e:
        raise FormatError(path, f"not an ncnn .param file ({first_line(e, 120)})") from None
    inp, out = meta.get("ncnn_input", inp), meta.get("ncnn_output", out)
    facts = model_facts(path, meta, preprocess, classes, need_preprocess)
    runner = NcnnRunner(path, weights, str(inp), str(out), threads)
    side_len = meta.get("input_size")
    c = getattr(facts["config"], "in_channels", 3)
    shape = (None, c, side_len, side_len) if isinstance(side_len, int) else (None, c, None, None)
    int8 = facts.pop("int8")
    return ExportedModel(path, "ncnn", runner, meta, int8=int8, precision=runner.precision,
                         input_shape=shape, **facts)
