"""ncnn: export with ``pnnx`` (ONNX -> ncnn ``.param``/``.bin``, fp32 weights), load and run.

pnnx runs as its own executable on a copy of the ONNX file in a temporary folder (it writes
several side products there); only the ``.param`` and ``.bin`` are kept, with the ONNX
metadata in a side ``.json`` (ncnn's files have no place for it). ncnn runs one image per
extraction; a batch is a loop. fp16/bf16 storage and arithmetic are switched off, so ncnn
computes in float32 like the file. int8 is not offered: ncnn's quantizer (``ncnn2table``,
``ncnn2int8``) is not on PyPI, and pnnx does not read QDQ graphs.
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


def export_ncnn(onnx_bytes: bytes, path: str | os.PathLike) -> list[Path]:
    """Write ``path`` (.param), its ``.bin`` and ``.json`` (metadata); returns the paths.

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
    if "quantization" in props:
        raise SqueezeNetError("--to ncnn exports fp32 only (ncnn's int8 tools are not on PyPI); drop --int8")
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
    names = _io_names(param.decode())
    atomic_write(path.with_suffix(".bin"), lambda p: Path(p).write_bytes(weights))
    write_side_json(path.with_suffix(".json"), {**props, "ncnn_input": f'"{names[0]}"', "ncnn_output": f'"{names[1]}"'})
    atomic_write(path, lambda p: Path(p).write_bytes(param))
    return [path, path.with_suffix(".bin"), path.with_suffix(".json")]


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
        self.precision = "f32"

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
