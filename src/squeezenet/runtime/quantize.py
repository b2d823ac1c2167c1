"""int8 static post-training quantization of an exported SqueezeNet with ONNX Runtime's quantizer.

QDQ format, per-channel symmetric int8 weights, uint8 activations whose ranges come from
calibration images (MinMax by default). The fp32 graph is first run through ONNX Runtime's
``quant_pre_process`` (shape inference + graph optimisation) as its docs recommend. The nodes
after the last convolution stay float, so the logits are not quantized (no tied top scores).
:func:`quantize_within` is accuracy-controlled quantization (``export --int8 --max-drop``).

``reduce_range`` (default on) keeps weights to 7 bits. On x86 CPUs with AVX2 but no VNNI,
ONNX Runtime's u8 x s8 kernels (``vpmaddubsw``) saturate 16-bit pair sums; with full 8-bit
weights the real SqueezeNet 1.1 lost 3.4 top-1 points on the dev set (26 % of top-1 answers
changed), with 7-bit weights it lost none (benchmarks/inference.py --accuracy). A quantized
file may be deployed on such a CPU, so the safe choice is the default.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import OutputError, SqueezeNetError

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
                  reduce_range: bool = True, float_nodes: Iterable[str] = ()) -> bytes:
    """int8 QDQ ONNX bytes of ``fp32_model`` calibrated on ``calibration`` (NCHW float batches).

    The classifier's tail (everything after the last convolution: ReLU, global average pool,
    flatten) stays in float, so the logits are float averages, not 256 quantized levels
    (with quantized logits ~6 % of ImageNet photos tie for the top score). ``float_nodes``
    names more nodes (of :attr:`Int8Quantizer.layers`) to keep in float.

    >>> import squeezenet, torch, onnx
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> fp32 = to_onnx_bytes(squeezenet.create_model("squeezenet_small"))
    >>> q = quantize_int8(fp32, [torch.randn(4, 3, 32, 32)])
    >>> len(q) < len(fp32) / 2
    True
    >>> onnx.load_from_string(q).graph.node[-1].op_type   # float logits, no QuantizeLinear at the end
    'Flatten'
    """
    try:
        with Int8Quantizer(fp32_model, calibration, method, per_channel, reduce_range) as qz:
            return qz.quantize(float_nodes)
    except OSError as e:   # a full disk (or a read-only temp folder) under the quantizer's temp files
        if isinstance(e, OutputError):
            raise
        from ..errors import first_line
        raise OutputError(tempfile.gettempdir(), f"cannot write the quantizer's temporary files "
                                                 f"({e.strerror or first_line(e)}); free space or set TMPDIR") from None


class Int8Quantizer:
    """Calibrates once, then writes int8 variants that keep chosen layers in float.

    ``layers``: the names of the quantizable layers (convolutions) in graph order;
    ``tail``: the nodes after the last one, always kept in float. Use as a context manager
    (it holds a temporary folder with the calibration cache).
    """

    def __init__(self, fp32_model: bytes | str | os.PathLike, calibration: Iterable,
                 method: str = "minmax", per_channel: bool = True, reduce_range: bool = True) -> None:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process
        if method not in METHODS:
            raise SqueezeNetError(f"calibration method {method!r}: choose {', '.join(METHODS)}")
        self.method, self.per_channel, self.reduce_range = method, per_channel, reduce_range
        calibration = iter(calibration)
        first = next(calibration, None)   # ONNX Runtime fails with a traceback on no data at all
        if first is None:
            raise SqueezeNetError("no readable calibration images: give --unlabeled a folder with images")
        self._tmp = tempfile.TemporaryDirectory(prefix="sqz-int8-")
        tmp = Path(self._tmp.name)
        src, self._pre, self._cache = tmp / "fp32.onnx", tmp / "pre.onnx", tmp / "calibration.json"
        src.write_bytes(bytes(fp32_model) if isinstance(fp32_model, (bytes, bytearray))
                        else Path(fp32_model).read_bytes())
        self._fp32 = onnx.load(str(src))
        quant_pre_process(str(src), str(self._pre), skip_symbolic_shape=True)
        graph = onnx.load(str(self._pre)).graph
        convs = [i for i, n in enumerate(graph.node) if n.op_type in ("Conv", "Gemm", "MatMul")]
        if not convs:
            raise SqueezeNetError("the model has no convolution to quantize")
        self.layers = [graph.node[i].name for i in convs]
        self.tail = [n.name for n in graph.node[convs[-1] + 1:]]
        reader = _Reader(itertools.chain([first], calibration), self._fp32.graph.input[0].name)
        self._run([], reader)   # calibrates and caches the activation ranges
        if reader.count == 0:
            raise SqueezeNetError("no calibration images: give --unlabeled a folder with images")
        self.count = reader.count

    def _run(self, exclude, reader=None) -> bytes:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        out = Path(self._tmp.name) / "int8.onnx"
        cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[self.method]
        # ORT's calibrators print progress to stdout, which would corrupt --json output
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(str(self._pre), str(out), reader, quant_format=QuantFormat.QDQ,
                            per_channel=self.per_channel, reduce_range=self.reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=cm, nodes_to_exclude=list(exclude) + list(getattr(self, "tail", [])),
                            calibration_cache_path=str(self._cache))
        q = onnx.load(str(out))
        # keep the fp32 model's metadata (classes, preprocessing) and say how it was quantized
        del q.metadata_props[:]
        for p in self._fp32.metadata_props:
            q.metadata_props.add(key=p.key, value=p.value)
        info = {"scheme": "static int8 QDQ", "per_channel": self.per_channel, "method": self.method,
                "reduce_range": self.reduce_range, "calibration_images": getattr(self, "count", 0),
                "float_layers": list(exclude), "float_output": True}
        q.metadata_props.add(key="quantization", value=json.dumps(info))
        return q.SerializeToString()

    def quantize(self, float_nodes: Iterable[str] = ()) -> bytes:
        """int8 QDQ ONNX bytes with ``float_nodes`` (names from :attr:`layers`) kept in float."""
        float_nodes = list(float_nodes)
        bad = [n for n in float_nodes if n not in self.layers]
        if bad:
            raise SqueezeNetError(f"no layer named {', '.join(map(repr, bad))} to keep in float")
        return self._run(float_nodes)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Int8Quantizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def batched_logits(run, images, batch: int = 50):
    """``run`` (a batch of images -> logits) over ``images`` in batches of ``batch``."""
    import torch
    return torch.cat([run(images[i:i + batch]) for i in range(0, len(images), batch)])


def top1_percent(logits, labels) -> float:
    """Top-1 accuracy of ``logits`` against class indices ``labels``, in percent."""
    return float((logits.argmax(1) == labels).float().mean()) * 100


def _logits(model_bytes: bytes, images, threads: int | None, batch: int = 50):
    import torch

    from .engines import ort_session
    s = ort_session(model_bytes, threads)
    name = s.get_inputs()[0].name
    return batched_logits(lambda x: torch.from_numpy(s.run(None, {name: x.numpy()})[0]), images, batch)


def quantize_within(fp32_model: bytes, calibration: Iterable, images, labels, max_drop: float,
                    method: str = "minmax", per_channel: bool = True, reduce_range: bool = True,
                    threads: int | None = None, rank_images: int = 100,
                    log=None) -> tuple[bytes, dict]:
    """Accuracy-controlled int8: the int8 file whose top-1 on ``images``/``labels`` (an NCHW
    tensor and its class indices) is at most ``max_drop`` points (percent) below fp32's,
    keeping the fewest layers in float.

    Each layer is ranked by how much keeping it alone in float brings the int8 logits closer to
    fp32's (mean squared error on the first ``rank_images`` photos); the most sensitive are kept
    in float one by one, re-scored on all photos each time, until the drop is within bound (or
    every layer is float). Returns (ONNX bytes, report: ``fp32_top1``, ``int8_top1``,
    ``drop_points`` and ``float_layers``, with the steps tried).

    >>> import squeezenet, torch
    >>> from squeezenet.interop.onnx_export import to_onnx_bytes
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> x = torch.randn(16, 3, 32, 32); y = m.eval()(x).argmax(1)
    >>> q, r = quantize_within(to_onnx_bytes(m), [x[:8]], x, y, max_drop=100)
    >>> r["float_layers"], r["drop_points"] <= 100
    ([], True)
    """
    import torch
    if not max_drop >= 0:
        raise SqueezeNetError(f"--max-drop {max_drop}: give points >= 0")
    if len(images) == 0 or len(images) != len(labels):
        raise SqueezeNetError("accuracy-controlled int8 needs labelled photos (none given)")
    say = log or (lambda m: None)
    labels = torch.as_tensor(labels)
    ref = _logits(fp32_model, images, threads)
    fp32_top1 = top1_percent(ref, labels)

    def score(data):
        out = _logits(data, images, threads)
        return top1_percent(out, labels), out

    with Int8Quantizer(fp32_model, calibration, method, per_channel, reduce_range) as qz:
        data = qz.quantize()
        top1, out = score(data)
        steps = [{"float_layers": 0, "top1": round(top1, 3), "bytes": len(data)}]
        say(f"fp32 top-1 {fp32_top1:.2f} %, int8 {top1:.2f} % (drop {fp32_top1 - top1:.2f} points, "
            f"bound {max_drop})")
        kept: list[str] = []
        if fp32_top1 - top1 > max_drop:
            n = min(rank_images, len(images))
            err = {}
            for i, layer in enumerate(qz.layers):
                o = _logits(qz.quantize([layer]), images[:n], threads)
                err[layer] = float(((o - ref[:n]) ** 2).mean())
                say(f"ranking layer {i + 1}/{len(qz.layers)} {layer}: logit MSE {err[layer]:.4g} when kept in float")
            for layer in sorted(qz.layers, key=lambda k: err[k]):
                kept.append(layer)
                data = qz.quantize(kept)
                top1, out = score(data)
                steps.append({"float_layers": len(kept), "layer": layer, "top1": round(top1, 3),
                              "bytes": len(data)})
                say(f"{len(kept)} layer(s) in float (+{layer}): top-1 {top1:.2f} % "
                    f"(drop {fp32_top1 - top1:.2f} points), {len(data):,} bytes")
                if fp32_top1 - top1 <= max_drop:
                    break
        report = {"fp32_top1": round(fp32_top1, 3), "int8_top1": round(top1, 3),
                  "drop_points": round(fp32_top1 - top1, 3), "max_drop": max_drop, "images": len(images),
                  "float_layers": kept, "layers": len(qz.layers), "bytes": len(data), "steps": steps,
                  "within": fp32_top1 - top1 <= max_drop}
    return data, report
