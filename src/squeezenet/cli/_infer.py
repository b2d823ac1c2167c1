"""Shared by ``eval`` and ``predict``: loading a model, its preprocessing and its engine."""
from __future__ import annotations

from typing import Callable

ENGINES_HELP = "inference engine (default eager; others come from squeezenet.runtime when installed)"


def default_preset(model, data: str | None = None) -> str:
    from ..data.datasets import BUILTIN
    if getattr(model, "preprocess", None):
        return model.preprocess
    if getattr(getattr(model, "config", None), "stem", None) == "small" or data in BUILTIN:
        return "small"
    return "torchvision"


def forward_for(model, engine: str) -> Callable | None:
    """``None`` for eager; else ``squeezenet.runtime.compile_model(model, engine)``."""
    if engine in (None, "", "eager"):
        return None
    from ..errors import SqueezeNetError
    try:
        from .. import runtime  # built by another issue; optional here
    except ImportError:
        raise SqueezeNetError(f"--engine {engine}: squeezenet.runtime is not available in this install "
                              f"(use --engine eager)") from None
    return runtime.compile_model(model, engine)
