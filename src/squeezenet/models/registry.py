"""A small model registry: ``create_model(name, **kwargs)`` and ``list_models()``."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import SqueezeNetError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int          # the input side the model is documented for
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, input_size: int = 224, description: str = ""):
    """Decorator registering a builder under ``name`` (default: the function name).

    Refuses duplicate names, so two modules can never silently shadow each other.
    """
    def deco(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        _REGISTRY[key] = ModelEntry(key, fn, input_size, description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return deco


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(list_models())}"
    return f"unknown model {name!r}{hint}"


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SqueezeNetError(unknown_model_message(name)) from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model.

    >>> create_model("squeezenet1_1", num_classes=10).num_classes
    10
    """
    return get_model_entry(name).builder(**kwargs)
