"""OpenVINO: export (``ov.convert_model`` of our ONNX file, fp32 or int8 QDQ), load and run.

fp32 is compiled with ``INFERENCE_PRECISION_HINT=f32``: on CPUs with AMX/AVX-512 BF16
OpenVINO would otherwise run in bf16 and change top-1 answers. int8 files keep their
``FakeQuantize`` layers, which OpenVINO runs as u8 x i8 kernels. :func:`runtime_precision`
reports what the compiled model really uses.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, first_line
from .exported_model import ExportedModel, decode_props, model_facts, onnx_props

RT_KEY = "squeezenet"


def _ov_error(e: Exception) -> str:
    """OpenVINO's message without its 'Exception from src/...cpp:N:' location lines."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from src/")]
    return first_line(" ".join(lines[:2]) or type(e).__name__, 200)


def _core():
    import openvino as ov
    return ov.Core()


def ov_model_from_onnx(onnx_bytes: bytes):
    import openvino as ov
    return ov.convert_model(io.BytesIO(onnx_bytes))


def export_openvino(onnx_bytes: bytes, path: str | os.PathLike) -> list[Path]:
    """Write ``path`` (.xml) and its ``.bin`` (fp32 weights kept fp32, int8 kept int8), with the
    ONNX metadata in ``rt_info``; returns the two paths.

    >>> import squeezenet, tempfile, os, torch
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> m = squeezenet.create_model("squeezenet_small"); m.preprocess = "small"
    >>> p = export_openvino(to_onnx_bytes(m), os.path.join(tempfile.mkdtemp(), "m.xml"))[0]
    >>> o = load_openvino(p)
    >>> o.preprocess, o.precision, torch.allclose(o(torch.ones(2, 3, 32, 32)), m.eval()(torch.ones(2, 3, 32, 32)), atol=1e-4)
    ('small', 'f32', True)
    """
    import openvino as ov

    from ..io import atomic_write
    path = Path(path)
    model = ov_model_from_onnx(onnx_bytes)
    for k, v in onnx_props(onnx_bytes).items():
        model.set_rt_info(v, [RT_KEY, k])
    with tempfile.TemporaryDirectory(prefix="sqz-ov-", dir=path.parent) as tmp:
        xml = Path(tmp) / "m.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        bin_text = xml.with_suffix(".bin").read_bytes()
        xml_text = xml.read_bytes()   # the IR names no weights file: readers take NAME.bin beside NAME.xml
    atomic_write(path.with_suffix(".bin"), lambda t: Path(t).write_bytes(bin_text))
    atomic_write(path, lambda t: Path(t).write_bytes(xml_text))
    return [path, path.with_suffix(".bin")]


def runtime_precision(compiled) -> str:
    """The element types the compiled model's convolutions really run in, e.g. ``f32``,
    ``bf16`` or ``i8+u8`` (OpenVINO's ``runtimePrecision``)."""
    got = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution" and "runtimePrecision" in info:
            got.add(info["runtimePrecision"].astype(str))
    return "+".join(sorted(got)) or "unknown"


class OpenVinoRunner:
    """Compiles ``model`` once per input shape (static shapes are OpenVINO's fast path) with
    ``threads`` inference threads, fp32 precision hint and the latency hint."""

    def __init__(self, model, threads: int | None = None) -> None:
        self.model, self.core = model, _core()
        self.threads = int(threads or torch.get_num_threads())
        self.compiled: dict[tuple, object] = {}
        self.precision = None

    def _get(self, shape: tuple):
        c = self.compiled.get(shape)
        if c is None:
            m = self.model.clone()
            m.reshape({m.inputs[0]: list(shape)})
            c = self.core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                   "INFERENCE_NUM_THREADS": self.threads,
                                                   "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
            self.precision = self.precision or runtime_precision(c)
            self.compiled[shape] = (c, c.create_infer_request())
            c = self.compiled[shape]
        return c

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        _, req = self._get(tuple(a.shape))
        req.infer({0: a})
        return torch.from_numpy(np.array(req.get_output_tensor(0).data, copy=True))


def load_openvino(path, preprocess=None, classes=None, threads=None, need_preprocess=True) -> ExportedModel:
    path = Path(path)
    try:
        model = _core().read_model(str(path))
    except Exception as e:
        raise FormatError(path, f"OpenVINO cannot read it with {path.with_suffix('.bin').name} ({_ov_error(e)})") from None
    props = {}
    if model.has_rt_info([RT_KEY]):
        for k, v in model.get_rt_info([RT_KEY]).astype(dict).items():
            props[k] = v.astype(str) if hasattr(v, "astype") else str(v)
    meta = decode_props(props, path)
    facts = model_facts(path, meta, preprocess, classes, need_preprocess)
    runner = OpenVinoRunner(model, threads)
    shape = tuple(d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape())
    side = meta.get("input_size")
    probe = [1, shape[1] or 3, *((side, side) if isinstance(side, int) else (shape[2] or 224, shape[3] or 224))]
    try:
        runner._get(tuple(probe))   # compile now: a broken file fails here, and the precision is known
    except Exception as e:
        raise FormatError(path, f"OpenVINO cannot compile it ({_ov_error(e)})") from None
    int8 = facts.pop("int8") or any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    if facts["num_classes"] is None:
        out = model.outputs[0].get_partial_shape()
        facts["num_classes"] = out[1].get_length() if len(out) == 2 and out[1].is_static else None
    return ExportedModel(path, "openvino", runner, meta, int8=int8, precision=runner.precision,
                         input_shape=shape, **facts)
