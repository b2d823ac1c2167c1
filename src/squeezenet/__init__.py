"""squeezenet: the SqueezeNet paper as a toolkit (models, training, weights, compression,
design-space exploration, deployment).

>>> import squeezenet
>>> m = squeezenet.create_model("squeezenet1_1")
>>> sum(p.numel() for p in m.parameters())
1235496
"""
from .errors import ConfigError, FormatError, SqueezeNetError

__version__ = "0.1.0"

# Lazy attributes: `squeezenet --help` and error paths must not pay for importing torch.
_LAZY = {"load": "io", "save": "io", "Fire": "models", "MetaParams": "models",
         "SqueezeNet": "models", "SqueezeNetConfig": "models", "create_model": "models",
         "list_models": "models", "summary": "models"}
# create_model with pretrained weights (`pretrained=True`, `weights="squeezenet1_1.onnx_zoo"`)
_LAZY["create_model"] = "interop.pretrained"
#: submodules offered as attributes: `squeezenet.weights.get("squeezenet1_1.onnx_zoo")`
_MODULES = {"weights": "interop.pretrained"}


def __getattr__(name):
    if name in _MODULES:
        import importlib
        value = importlib.import_module(f".{_MODULES[name]}", __name__)
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'squeezenet' has no attribute {name!r}")

__all__ = ["create_model", "list_models", "load", "save", "summary", "Fire", "SqueezeNet",
           "SqueezeNetConfig", "MetaParams", "SqueezeNetError", "FormatError", "ConfigError",
           "__version__", "weights"]
