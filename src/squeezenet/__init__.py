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
         "list_models": "models", "summary": "models",
         # the Python path: the CLI's own commands (squeezenet.cli._api), one implementation
         "finetune": "cli._api", "compress": "cli._api", "export": "cli._api", "transforms": "cli._api"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'squeezenet' has no attribute {name!r}")

__all__ = ["create_model", "list_models", "load", "save", "summary", "finetune", "compress", "export", "transforms", "Fire", "SqueezeNet",
           "SqueezeNetConfig", "MetaParams", "SqueezeNetError", "FormatError", "ConfigError",
           "__version__"]
