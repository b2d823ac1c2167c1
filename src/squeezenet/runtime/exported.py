"""Exported files for runtimes other than ONNX Runtime: OpenVINO IR, ncnn and LiteRT.

``squeezenet export --to openvino|ncnn|litert`` goes through the ONNX export (fp32, or our int8
QDQ file) and the runtime's own converter from PyPI: OpenVINO's ``convert_model`` (the QDQ pairs
become OpenVINO's int8 ``FakeQuantize``) and ``pnnx`` (ONNX -> ncnn ``.param``/``.bin``); LiteRT's
converters do not install here, so :mod:`squeezenet.runtime.litert_model` translates the ONNX
graph itself with the flatbuffer schema ``ai-edge-litert`` ships (int8 QDQ -> int8 TFLite ops).
The ONNX file's metadata (:func:`squeezenet.interop.onnx_export.onnx_metadata`: preset, class
list, config, how it was quantized) travels along:

==========  ===========================  =================================================
format      files                        metadata
==========  ===========================  =================================================
openvino    ``m.xml`` + ``m.bin``        the IR's ``rt_info`` under ``squeezenet``
ncnn        ``m.param`` + ``m.bin``      a side file ``m.json`` (ncnn files have no place)
litert      ``m.tflite``                 the model's metadata entry ``squeezenet`` (JSON)
==========  ===========================  =================================================

:func:`load_exported` opens such a file as an :class:`ExportedModel` that ``eval``,
``predict`` and ``bench`` run in its runtime (LiteRT: its ``Interpreter``).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import FormatError, SqueezeNetError
from .exported_model import FORMATS, ExportedModel, require

__all__ = ["FORMATS", "ExportedModel", "require", "format_of", "output_files", "export_to", "load_exported"]


def format_of(path: str | os.PathLike) -> str | None:
    """The runtime of an exported file by its suffix (``.xml`` OpenVINO, ``.param`` ncnn,
    ``.tflite`` LiteRT), else None."""
    suffix = Path(str(path)).suffix.lower()
    return next((f for f, (s, _, _) in FORMATS.items() if s == suffix), None)


def output_files(fmt: str, path: str | os.PathLike) -> list[Path]:
    """Every file ``export --to fmt -o path`` writes (the weights and side files beside it)."""
    p = Path(path)
    if fmt == "openvino":
        return [p, p.with_suffix(".bin")]
    if fmt == "ncnn":
        return [p, p.with_suffix(".bin"), p.with_suffix(".json")]
    return [p]


def export_to(fmt: str, onnx_bytes: bytes, path: str | os.PathLike, fp32_bytes: bytes | None = None) -> list[Path]:
    """Convert ONNX bytes (ours: fp32 or int8 QDQ, with metadata) to ``fmt`` at ``path``;
    returns the files written (each atomically, the weights first). ``fp32_bytes``: the fp32
    graph an int8 file was quantized from (ncnn int8 converts that with the file's scales)."""
    if fmt == "openvino":
        from .openvino_model import export_openvino
        return export_openvino(onnx_bytes, path)
    if fmt == "ncnn":
        from .ncnn_model import export_ncnn
        return export_ncnn(onnx_bytes, path, fp32_bytes=fp32_bytes)
    if fmt == "litert":
        from .litert_model import export_litert
        return export_litert(onnx_bytes, path)
    raise SqueezeNetError(f"--to {fmt}: choose onnx, {', '.join(FORMATS)}")


def load_exported(path: str | os.PathLike, preprocess: str | None = None, classes=None,
                  threads: int | None = None, need_preprocess: bool = True) -> ExportedModel:
    """Open an exported OpenVINO (``.xml``), ncnn (``.param``) or LiteRT (``.tflite``) file in its runtime."""
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise FormatError(path, f"not an exported file this toolkit runs (suffixes: .onnx, "
                                f"{', '.join(s for s, _, _ in FORMATS.values())})")
    if not path.is_file():
        raise FormatError(path, "no such file")
    require(fmt)
    if fmt == "openvino":
        from .openvino_model import load_openvino
        return load_openvino(path, preprocess, classes, threads, need_preprocess)
    if fmt == "litert":
        from .litert_model import load_litert
        return load_litert(path, preprocess, classes, threads, need_preprocess)
    from .ncnn_model import load_ncnn
    return load_ncnn(path, preprocess, classes, threads, need_preprocess)


