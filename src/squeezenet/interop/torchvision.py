"""torchvision SqueezeNet checkpoints (``squeezenet1_*-*.pth`` state_dicts).

Loaded with ``torch.load(weights_only=True)``: a file from elsewhere is never unpickled
beyond plain tensors.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import FormatError, SqueezeNetError, first_line

IMAGENET_PREPROCESS = "torchvision"


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


def guess_arch(sd: dict[str, torch.Tensor], path) -> str:
    w = sd.get("features.0.weight")
    if w is None:
        raise FormatError(path, "no features.0.weight: not a torchvision SqueezeNet state_dict")
    if tuple(w.shape[:1]) == (96,) and w.shape[-1] == 7:
        return "squeezenet1_0"
    if tuple(w.shape[:1]) == (64,) and w.shape[-1] == 3:
        return "squeezenet1_1"
    raise FormatError(path, f"features.0.weight has shape {tuple(w.shape)}: not SqueezeNet 1.0 or 1.1")


def model_from_torchvision_checkpoint(path: str | os.PathLike) -> nn.Module:
    """A :class:`SqueezeNet` with ImageNet classes from a torchvision state_dict file."""
    from ..io import load_state_dict_checked
    from ..models import create_model
    sd = read_torchvision_checkpoint(path)
    arch = guess_arch(sd, path)
    num_classes = sd["classifier.1.weight"].shape[0] if "classifier.1.weight" in sd else 1000
    model = create_model(arch, num_classes=int(num_classes))
    load_state_dict_checked(model, sd, path)
    model.preprocess = IMAGENET_PREPROCESS
    model.metadata = {"source": f"torchvision:{Path(path).name}", "arch": arch}
    return model.eval()


def load_torchvision_weights(model: nn.Module, arch: str, weights, progress: bool = True) -> None:
    """``weights``: a path to a ``.pth`` state_dict, or ``"torchvision"`` / ``"DEFAULT"`` to
    fetch torchvision's ImageNet weights through torchvision (needs network access)."""
    from ..io import load_state_dict_checked
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
