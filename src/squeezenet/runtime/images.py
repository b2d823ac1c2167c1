"""Image batches for calibration and accuracy checks.

Goes through :func:`squeezenet.data.build_dataset` (evaluation transforms); a folder of
images without class folders (enough for calibration), or an install without
``squeezenet.data``, uses a small reader with the presets of
:data:`squeezenet.interop.onnx_export.PREPROCESS_SPECS` (the same preprocessing).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import torch

from ..errors import SqueezeNetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")


def read_class_list(classes) -> list[str] | None:
    """A list of class names from a list or a file with one name per line."""
    if classes is None or isinstance(classes, (list, tuple)):
        return None if classes is None else list(classes)
    p = Path(classes)
    if not p.is_file():
        raise SqueezeNetError(f"{p}: no such class-list file")
    return [l.split()[0] for l in p.read_text().splitlines() if l.strip()]


class _Folder(torch.utils.data.Dataset):
    """Fallback reader: ``root/<class>/<image>`` (or images directly under ``root``)."""

    def __init__(self, root: Path, preset: str, classes: list[str] | None) -> None:
        from ..interop.onnx_export import PREPROCESS_SPECS
        if preset not in PREPROCESS_SPECS:
            raise SqueezeNetError(f"preset {preset!r}: this reader knows {', '.join(PREPROCESS_SPECS)} "
                                  "(the squeezenet.data module knows more)")
        self.spec = PREPROCESS_SPECS[preset]
        dirs = sorted(d for d in root.iterdir() if d.is_dir())
        self.classes = classes or [d.name for d in dirs]
        index = {c: i for i, c in enumerate(self.classes)}
        self.items: list[tuple[Path, int]] = []
        for d in dirs:
            if d.name not in index:
                raise SqueezeNetError(f"{d}: class folder not in the class list")
            self.items += [(f, index[d.name]) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        self.items += [(f, -1) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        from torchvision.transforms import functional as F
        path, label = self.items[i]
        s = self.spec
        with Image.open(path) as im:
            im = F.center_crop(F.resize(im.convert("RGB"), s["resize"]), s["crop"])
            x = F.pil_to_tensor(im).float() * s["scale"]
        if s["color"] == "BGR":
            x = x.flip(0)
        x = (x - torch.tensor(s["mean"]).view(3, 1, 1)) / torch.tensor(s["std"]).view(3, 1, 1)
        return x, label


def image_dataset(spec: str | os.PathLike, preset: str | None = "torchvision", classes=None):
    """An evaluation-mode dataset of (image tensor, label) from ``spec``."""
    classes = read_class_list(classes)
    try:
        from ..data import build_dataset
    except ImportError:
        build_dataset = None
    root = Path(spec)
    flat = root.is_dir() and not any(d.is_dir() for d in root.iterdir())
    # calibration needs no labels: a flat folder of photos is fine here (build_dataset wants classes)
    if build_dataset is not None and not flat:
        return build_dataset(spec, split="test", preset=preset, classes=classes)
    if not root.is_dir():
        raise SqueezeNetError(f"{root}: not a folder of images (class folders or image files)")
    return _Folder(root, preset or "torchvision", classes)


def take(ds, count: int | None = None) -> list[int]:
    """Indices of ``count`` items spread evenly over ``ds`` (deterministic; all if None)."""
    n = len(ds)
    if count is None or count >= n:
        return list(range(n))
    return [int(k * n / count) for k in range(count)]


def batches(ds, indices, batch_size: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches of ``ds[indices]``."""
    for s in range(0, len(indices), batch_size):
        items = [ds[i] for i in indices[s:s + batch_size]]
        yield torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])
