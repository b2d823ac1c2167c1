"""squeezenet: the SqueezeNet paper as a toolkit (models, training, weights, compression,
design-space exploration, deployment).

>>> import squeezenet
>>> m = squeezenet.create_model("squeezenet1_1")
>>> sum(p.numel() for p in m.parameters())
1235496
"""
from .errors import ConfigError, FormatError, SqueezeNetError
from .io import load, save
from .models import (Fire, MetaParams, SqueezeNet, SqueezeNetConfig, create_model, list_models,
                     summary)

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "load", "save", "summary", "Fire", "SqueezeNet",
           "SqueezeNetConfig", "MetaParams", "SqueezeNetError", "FormatError", "ConfigError",
           "__version__"]
