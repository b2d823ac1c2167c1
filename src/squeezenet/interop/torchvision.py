"""torchvision SqueezeNet checkpoints (``squeezenet1_*-*.pth`` state_dicts) as models.

Reading the file and loading torchvision's published weights live in
:mod:`squeezenet.models.weights` (``create_model(name, weights=...)`` needs them below this
layer); this module adds the import route: guess the architecture, build, load.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, FormatError, first_line
from ..models.weights import (IMAGENET_PREPROCESS, check_finite, check_shapes, load_state_dict_checked,
                              load_torchvision_weights, read_torchvision_checkpoint)

__all__ = ["guess_arch", "model_from_torchvision_checkpoint", "read_torchvision_checkpoint",
           "load_torchvision_weights", "IMAGENET_PREPROCESS"]


def guess_arch(sd: dict[str, torch.Tensor], path) -> str:
    w = sd.get("features.0.weight")
    if w is None:
        raise FormatError(path, "no features.0.weight: not a torchvision SqueezeNet state_dict")
    if w.dim() == 4 and w.shape[0] == 96 and w.shape[-1] == 7:
        return "squeezenet1_0"
    if w.dim() == 4 and w.shape[0] == 64 and w.shape[-1] == 3:
        return "squeezenet1_1"
    raise FormatError(path, f"features.0.weight has shape {tuple(w.shape)}: not SqueezeNet 1.0 or 1.1")


def model_from_torchvision_checkpoint(path: str | os.PathLike) -> nn.Module:
    """A :class:`SqueezeNet` with ImageNet classes from a torchvision state_dict file: the
    config (its class count read from conv10's weight) is checked, and every tensor's shape
    against it, before a model is built; NaN or infinite weights are refused."""
    from ..models import VARIANTS, create_model
    from ..models.squeezenet import state_shapes
    sd = read_torchvision_checkpoint(path)
    arch = guess_arch(sd, path)
    w = sd.get("classifier.1.weight")
    num_classes = int(w.shape[0]) if w is not None and w.dim() == 4 else 1000
    try:
        config = VARIANTS[arch].replace(num_classes=num_classes)
    except ConfigError as e:
        raise FormatError(path, f"classifier.1.weight of shape {tuple(w.shape)}: {first_line(e)}") from None
    check_shapes({k: tuple(v.shape) for k, v in sd.items()}, state_shapes(config), path)
    check_finite(sd, path)
    model = create_model(arch, num_classes=num_classes)
    load_state_dict_checked(model, sd, path)
    model.preprocess = IMAGENET_PREPROCESS
    model.metadata = {"source": f"torchvision:{Path(path).name}", "arch": arch}
    return model.eval()
