"""int8 static post-training quantization of an exported SqueezeNet with ONNX Runtime's quantizer.

QDQ format, per-channel symmetric int8 weights, uint8 activations whose ranges come from
calibration images (MinMax by default). The fp32 graph is first run through ONNX Runtime's
``quant_pre_process`` (shape inference + graph optimisation) as its docs recommend.

``reduce_range`` (default on) keeps weights to 7 bits. On x86 CPUs with AVX2 but no VNNI,
ONNX Runtime's u8 x s8 kernels (``vpmaddubsw``) saturate 16-bit pair sums; with full 8-bit
weights the real SqueezeNet 1.1 lost 3.4 top-1 points on the dev set (26 % of top-1 answers
changed), with 7-bit weights it lost none (benchmarks/inference.py --accuracy). A quantized
file may be deployed on such a CPU, so the safe choice is the default.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import SqueezeNetError

METHODS = ("minmax", "entropy", "percentile")


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over an iterable of NCHW arrays."""

    def __init__(self, batches: Iterable, input_name: str) -> None:
        self._it = iter(batches)
        self.name = input_name
        self.count = 0

    def get_next(self):
        b = next(self._it, None)
        if b is None:
            return None
        a = b.detach().cpu().numpy() if hasattr(b, "detach") else np.asarray(b)
        self.count += a.shape[0]
        return {self.name: np.ascontiguousarray(a, dtype=np.float32)}

    def rewind(self):  # not needed for one pass; present for the protocol
        pass


def quantize_int8(fp32_model: bytes | str | os.PathLike, calibration: Iterable,
                  method: str = "minmax", per_channel: bool = True,
                  reduce_range: bool = True) -> bytes:
    """int8 QDQ ONNX bytes of ``fp32_model`` calibrated on ``calibration`` (NCHW float batches).

    >>> import squeezenet, torch
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> fp32 = to_onnx_bytes(squeezenet.create_model("squeezenet_small"))
    >>> q = quantize_int8(fp32, [torch.randn(4, 3, 32, 32)])
    >>> len(q) < len(fp32) / 2
    True
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if method not in METHODS:
        raise SqueezeNetError(f"calibration method {method!r}: choose {', '.join(METHODS)}")
    calibration = iter(calibration)
    first = next(calibration, None)   # ONNX Runtime fails with a traceback on no data at all
    if first is None:
        raise SqueezeNetError("no readable calibration images: give --unlabeled a folder with images")
    calibration = itertools.chain([first], calibration)
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="sqz-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        if isinstance(fp32_model, (bytes, bytearray)):
            src.write_bytes(fp32_model)
        else:
            src.write_bytes(Path(fp32_model).read_bytes())
        proto = onnx.load(str(src))
        input_name = proto.graph.input[0].name
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        reader = _Reader(calibration, input_name)
        # ORT's calibrators print progress to stdout, which would corrupt --json output
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=cm)
        if reader.count == 0:
            raise SqueezeNetError("no calibration images: give --unlabeled a folder with images")
        q = onnx.load(str(out))
        # keep the fp32 model's metadata (classes, preprocessing) and say how it was quantized
        del q.metadata_props[:]
        for p in proto.metadata_props:
            q.metadata_props.add(key=p.key, value=p.value)
        q.metadata_props.add(key="quantization",
                             value=f'{{"scheme": "static int8 QDQ", "per_channel": {str(per_channel).lower()}, '
                                   f'"method": "{method}", "reduce_range": {str(reduce_range).lower()}, '
                                   f'"calibration_images": {reader.count}}}')
        return q.SerializeToString()
