"""Preprocessing presets: how pixels become the tensors a model was trained on.

``torchvision``: RGB, /255, ImageNet mean/std, resize 256, centre crop 224 (torchvision's
copies of SqueezeNet and the ONNX-zoo weights).
``caffe``: BGR, 0-255, mean 104/117/123 subtracted, resize 256, centre crop 227 (the
DeepScale and Deep-Compression Caffe files, paper section 7).
``small``: 32x32 RGB, per-channel CIFAR-10 normalisation; for training the usual augmentation
(random crop with 4-pixel padding, horizontal flip).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError

PRESETS = ("torchvision", "caffe", "small")

#: Per preset: input side, and the (mean, std) applied to the tensor the preset produces.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
INPUT_SIZE = {"torchvision": 224, "caffe": 227, "small": 32}


class CaffeToTensor:
    """PIL RGB image -> float tensor in Caffe's convention: BGR, 0-255, mean subtracted."""

    def __call__(self, img) -> torch.Tensor:
        from torchvision.transforms.functional import pil_to_tensor
        x = pil_to_tensor(img.convert("RGB")).float()[[2, 1, 0]]  # RGB -> BGR
        return x - torch.tensor(CAFFE_MEAN_BGR).view(3, 1, 1)

    def __repr__(self) -> str:
        return "CaffeToTensor(BGR, 0-255, mean=(104, 117, 123))"


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        import difflib
        close = difflib.get_close_matches(str(preset), PRESETS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown preprocessing preset {preset!r} (known: {', '.join(PRESETS)}){hint}")
    return preset


def get_transform(preset: str, train: bool = False, hflip: bool = True) -> Callable:
    """The PIL-image -> tensor transform of a preset, for training or evaluation.

    ``hflip=False`` drops the horizontal flip from the training augmentation (digits must not
    be mirrored).

    >>> from PIL import Image
    >>> get_transform("caffe")(Image.new("RGB", (300, 400))).shape
    torch.Size([3, 227, 227])
    >>> get_transform("small", train=True)(Image.new("RGB", (32, 32))).shape
    torch.Size([3, 32, 32])
    """
    from torchvision import transforms as T
    check_preset(preset)
    flip = [T.RandomHorizontalFlip()] if hflip else []
    if preset == "torchvision":
        geo = ([T.RandomResizedCrop(224)] + flip) if train else [T.Resize(256), T.CenterCrop(224)]
        return T.Compose([T.Lambda(_rgb), *geo, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    if preset == "caffe":
        # Caffe's data layer: resized 256x256 images, random 227 crops + mirror for training.
        geo = ([T.Resize(256), T.RandomCrop(227)] + flip) if train else [T.Resize(256), T.CenterCrop(227)]
        return T.Compose([*geo, CaffeToTensor()])
    geo = [T.Resize((32, 32))]
    if train:
        geo += [T.RandomCrop(32, padding=4, padding_mode="reflect")] + flip
    return T.Compose([T.Lambda(_rgb), *geo, T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])


def _rgb(img):
    return img.convert("RGB") if img.mode != "RGB" else img
