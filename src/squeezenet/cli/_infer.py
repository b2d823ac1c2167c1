"""Shared by ``eval`` and ``predict``: the inference engine (the preset: ``squeezenet.data.preset_for``)."""
from __future__ import annotations

from typing import Callable

ENGINES_HELP = ("inference engine: auto (default: the fastest on this CPU, measured once and cached), "
                "eager, channels_last, torchscript, compile, onnxruntime")


def forward_for(model, engine: str) -> Callable | None:
    """``None`` for eager; else ``squeezenet.runtime.compile_model(model, engine)``."""
    if engine in (None, "", "eager"):
        return None
    from .. import runtime
    return runtime.compile_model(model, engine)
