"""Loading weights into a model: the strict state_dict check with one-line errors, and
torchvision's published SqueezeNet weights (``create_model(name, weights=...)``).

torchvision ``.pth`` files are read with ``torch.load(weights_only=True)``: a file from
elsewhere is never unpickled beyond plain tensors.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import FormatError, SqueezeNetError, first_line

#: the preprocessing preset torchvision's ImageNet weights were trained with
IMAGENET_PREPROCESS = "torchvision"


def load_state_dict_checked(model: nn.Module, tensors: dict[str, torch.Tensor], path) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the file and the key."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{'...' if len(unexpected) > 3 else ''}")
        raise FormatError(path, "weights do not fit the model: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise FormatError(path, f"{k}: shape {tuple(tensors[k].shape)} in file, model needs {tuple(v.shape)}")
    model.load_state_dict({k: t.to(own[k].dtype) for k, t in tensors.items()}, strict=True)


def read_torchvision_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FormatError(path, f"not a readable torchvision checkpoint ({first_line(e, 200)})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise FormatError(path, "not a state_dict of tensors")
    return sd


def load_torchvision_weights(model: nn.Module, arch: str, weights, progress: bool = True) -> None:
    """``weights``: a path to a ``.pth`` state_dict, or ``"torchvision"`` / ``"DEFAULT"`` to
    fetch torchvision's ImageNet weights through torchvision (needs network access)."""
    if isinstance(weights, (str, os.PathLike)) and Path(weights).suffix == ".pth":
        sd = read_torchvision_checkpoint(weights)
        load_state_dict_checked(model, sd, weights)
        model.preprocess = IMAGENET_PREPROCESS
        return
    if str(weights).lower() not in ("torchvision", "default", "imagenet1k_v1"):
        raise SqueezeNetError(f"weights={weights!r}: give a .pth file or 'torchvision'")
    base = {"squeezenet1_0": "squeezenet1_0", "squeezenet1_0_caffe": None,
            "squeezenet1_1": "squeezenet1_1"}.get(arch)
    if base is None:
        raise SqueezeNetError(f"torchvision publishes no weights for {arch}")
    import torchvision.models as tvm
    enum = getattr(tvm, {"squeezenet1_0": "SqueezeNet1_0_Weights",
                         "squeezenet1_1": "SqueezeNet1_1_Weights"}[base]).IMAGENET1K_V1
    try:
        sd = enum.get_state_dict(progress=progress)
    except Exception as e:  # URLError, OSError, HTTPError ...
        raise SqueezeNetError(
            f"cannot download torchvision's {base} weights ({first_line(e, 160)}); offline, download "
            f"{enum.url} elsewhere and pass the .pth file instead") from None
    load_state_dict_checked(model, sd, enum.url)
    model.classes = None
    model.preprocess = IMAGENET_PREPROCESS
