"""A small model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Each entry also carries what a model of its stem is documented for (like timm's
``pretrained_cfg``): the square input side and the default preprocessing preset. This is the
only place those facts are written; :func:`default_input_size` and :func:`default_preset`
read them for any model (by its config's stem).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import SqueezeNetError


#: The largest square input side any command builds a tensor for (``--input-size``): a
#: squeezenet1_0 at 2048x2048 needs ~0.4 GB for conv1's output at batch 1; 100,000 would ask
#: for ~120 GB before the first layer.
MAX_INPUT_SIZE = 2048


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int          # the input side the model is documented for
    description: str
    preset: str = "torchvision"   # the preprocessing preset new models of this entry use
    stem: str | None = None       # the conv1 layout (SqueezeNetConfig.stem) the entry builds


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, input_size: int = 224, description: str = "",
                   preset: str = "torchvision", stem: str | None = None):
    """Decorator registering a builder under ``name`` (default: the function name).

    Refuses duplicate names, so two modules can never silently shadow each other, and a stem
    registered twice with another input size or preset (the facts are per stem).
    """
    def deco(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        same = [e for e in _REGISTRY.values() if stem is not None and e.stem == stem]
        if same and (same[0].input_size, same[0].preset) != (input_size, preset):
            raise ValueError(f"model {key!r}: stem {stem!r} is registered by {same[0].name!r} with input size "
                             f"{same[0].input_size} and preset {same[0].preset!r}")
        _REGISTRY[key] = ModelEntry(key, fn, input_size, description or (fn.__doc__ or "").strip().split("\n")[0],
                                    preset, stem)
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


def entry_for(model: nn.Module) -> ModelEntry | None:
    """The registry entry of ``model``'s stem (``model.config.stem``), or None."""
    stem = getattr(getattr(model, "config", None), "stem", None)
    return next((e for e in _REGISTRY.values() if stem is not None and e.stem == stem), None)


def default_input_size(model: nn.Module) -> int:
    """The square input side a model is documented for (227 v1.0, 224 v1.1, 32 small; 224
    for a model the registry does not know).

    >>> default_input_size(create_model("squeezenet1_1"))
    224
    """
    entry = entry_for(model)
    return entry.input_size if entry is not None else 224


def default_preset(model: nn.Module) -> str:
    """The preprocessing preset a new model of this stem uses (``small`` for the 32x32 stem,
    else ``torchvision``); a model's own ``preprocess`` wins (see
    :func:`squeezenet.data.preset_for`)."""
    entry = entry_for(model)
    return entry.preset if entry is not None else "torchvision"


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model.

    >>> create_model("squeezenet1_1", num_classes=10).num_classes
    10
    """
    return get_model_entry(name).builder(**kwargs)
