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
         "list_models": "models", "summary": "models", "DataConfig": "models", "data_config": "models",
         "input_size_for": "data",
         # the Python path: the CLI's own commands (squeezenet.cli._api), one implementation
         "finetune": "cli._api", "export": "cli._api", "transforms": "cli._api"}   # compress: _CompressFace
# create_model with pretrained weights (`pretrained=True`, `weights="squeezenet1_1.onnx_zoo"`)
_LAZY["create_model"] = "interop.pretrained"
#: submodules offered as attributes: `squeezenet.weights.get("squeezenet1_1.onnx_zoo")`
_MODULES = {"weights": "interop.pretrained"}


class _CompressFace:
    """``squeezenet.compress``: the function ``squeezenet.compress(model, data, out, ...)``
    (:func:`squeezenet.cli._api.compress`) that is also the name of the ``squeezenet.compress``
    package: calling it compresses, attributes come from the package
    (``squeezenet.compress.pipeline``), so importing the package never hides the function."""

    @staticmethod
    def _function():
        import importlib   # by name, as _LAZY: the face imports the CLI only when called
        return importlib.import_module(".cli._api", __name__).compress

    def __call__(self, *args, **kwargs):
        return self._function()(*args, **kwargs)

    def __getattr__(self, name):
        import importlib
        return getattr(importlib.import_module(".compress", __name__), name)

    def __dir__(self):
        import importlib
        return sorted(set(dir(importlib.import_module(".compress", __name__))) | {"__call__"})

    @property
    def __doc__(self):
        return self._function().__doc__

    def __repr__(self) -> str:
        return "<function squeezenet.compress (and the squeezenet.compress package)>"


class _Face(__import__("types").ModuleType):
    def __setattr__(self, name, value):   # the import system sets the subpackage here: keep the function
        if name == "compress" and not isinstance(value, _CompressFace):
            value = _CompressFace()
        super().__setattr__(name, value)


__import__("sys").modules[__name__].__class__ = _Face
compress = _CompressFace()


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

__all__ = ["create_model", "list_models", "load", "save", "summary", "finetune", "compress", "export", "transforms", "Fire", "SqueezeNet",
           "SqueezeNetConfig", "MetaParams", "DataConfig", "data_config", "input_size_for", "SqueezeNetError", "FormatError", "ConfigError",
           "__version__", "weights"]
