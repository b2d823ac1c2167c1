"""Shared by ``eval``, ``predict`` and ``bench``: the model to run (any model file, or an exported
``.onnx`` run by ONNX Runtime) and the inference engine (the preset: ``squeezenet.data.preset_for``)."""
from __future__ import annotations

from typing import Callable

ENGINES_HELP = ("inference engine: auto (default: the fastest on this CPU, measured once and cached), "
                "eager, channels_last, torchscript, compile, onnxruntime, openvino (an .onnx file runs with onnxruntime, "
                "openvino or litert, auto measuring those installed per batch size; an OpenVINO .xml with openvino, an ncnn .param with "
                "ncnn, a .tflite with litert)")


def is_onnx(path) -> bool:
    from pathlib import Path
    return Path(str(path)).suffix.lower() == ".onnx"


def is_exported(path) -> bool:
    """An OpenVINO (.xml), ncnn (.param) or LiteRT (.tflite) file written by ``squeezenet export --to``."""
    from ..runtime.exported import format_of
    return format_of(path) is not None


def load_model(path, preprocess: str | None = None, classes=None, threads: int | None = None,
               need_preprocess: bool = True, force_preprocess: bool = False):
    """A model file through ``squeezenet.load``, or an ``.onnx`` file as a
    :class:`squeezenet.runtime.onnx_model.OnnxModel`; ``classes`` (a class-list file) replaces
    the model's class list, ``preprocess`` fills in a file's missing preset; one that contradicts
    the stored preset is refused unless ``force_preprocess``
    (:func:`squeezenet.data.choose_preset` decides)."""
    import sys

    from ..data import choose_preset

    def warn(msg):
        print(f"squeezenet: warning: {msg}", file=sys.stderr, flush=True)
    if is_onnx(path):
        from ..runtime.onnx_model import load_onnx
        model = load_onnx(path, preprocess=preprocess, classes=classes, threads=threads,
                          need_preprocess=need_preprocess)
    elif is_exported(path):
        from ..runtime.exported import load_exported
        model = load_exported(path, preprocess=preprocess, classes=classes, threads=threads,
                              need_preprocess=need_preprocess)
    else:
        model = None
    if model is not None:   # an exported file: its metadata's preset against --preprocess
        meta = model.metadata.get("preprocess") if isinstance(model.metadata.get("preprocess"), dict) else {}
        model.preprocess = choose_preset(meta.get("preset"), preprocess, path, force_preprocess, warn)
        return model
    from ._common import load_model_file
    model = load_model_file(path)
    model.preprocess = choose_preset(getattr(model, "preprocess", None), preprocess, path, force_preprocess, warn)
    if classes is not None:   # the model's class list from a file (ids, and names if it has them)
        from ..data import read_class_names
        from ..errors import SqueezeNetError
        ids, names = read_class_names(classes)
        if len(ids) != model.num_classes:
            raise SqueezeNetError(f"{classes}: {len(ids)} classes, but {path} has {model.num_classes} outputs "
                                  f"(--classes lists the model's classes in output order)")
        model.classes, model.class_names = ids, names
    return model


def forward_for(model, engine: str, log=None) -> Callable | None:
    """``None`` for eager; for an ``.onnx`` file its ONNX Runtime session, OpenVINO, LiteRT, or
    under ``auto`` the fastest of those installed per batch size (``squeezenet.runtime.compile_file``); else
    ``squeezenet.runtime.compile_model(model, engine)``. ``log`` hears about a first ``auto``
    measurement (it takes seconds)."""
    from ..errors import SqueezeNetError
    from ..runtime.onnx_model import OnnxModel
    if isinstance(model, OnnxModel):
        from ..runtime.auto import FILE_CANDIDATES, compile_file
        if engine not in (None, "", "auto", *FILE_CANDIDATES):
            raise SqueezeNetError(f"--engine {engine}: an .onnx file runs with {', '.join(FILE_CANDIDATES[:-1])} "
                                  f"or {FILE_CANDIDATES[-1]} (or auto)")
        if engine == "onnxruntime":
            return model
        return compile_file(model, candidates=(engine,) if engine in FILE_CANDIDATES else FILE_CANDIDATES, log=log)
    from ..runtime.exported import ExportedModel
    if isinstance(model, ExportedModel):
        if engine not in (None, "", "auto", model.engine):
            raise SqueezeNetError(f"--engine {engine}: {model.path.name} runs with {model.engine} (or auto)")
        return model
    if engine in (None, "", "eager"):
        return None
    from .. import runtime
    return runtime.compile_model(model, engine, log=log)


def engine_used(forward, batch: int | None = None) -> str:
    """The engine that runs (at ``batch`` images a call, where ``auto`` picked per batch size):
    what ``auto`` picked, the runtime of an exported file, else eager."""
    if batch is not None and hasattr(forward, "engine_for"):
        return forward.engine_for(batch)
    return getattr(forward, "engine", None) or "eager"
