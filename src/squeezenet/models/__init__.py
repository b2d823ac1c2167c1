"""SqueezeNet models: Fire, SqueezeNet, the registry and the per-layer summary."""
from . import builders as _builders  # noqa: F401  (registers the named models)
from .builders import VARIANTS, squeezenet1_0, squeezenet1_0_caffe, squeezenet1_1, squeezenet_small
from .data_config import DataConfig, data_config
from .fire import Fire
from .registry import (create_model, default_input_size, default_preset, get_model_entry, list_models,
                       register_model)
from .squeezenet import MetaParams, SqueezeNet, SqueezeNetConfig, fire_bypass_kinds
from .summary import Summary, summary

__all__ = ["Fire", "SqueezeNet", "SqueezeNetConfig", "MetaParams", "create_model", "list_models",
           "register_model", "get_model_entry", "summary", "Summary", "squeezenet1_0",
           "squeezenet1_1", "squeezenet1_0_caffe", "squeezenet_small", "VARIANTS",
           "fire_bypass_kinds", "default_input_size", "default_preset", "DataConfig", "data_config"]
