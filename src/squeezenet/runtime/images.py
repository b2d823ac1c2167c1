"""Image batches for calibration and accuracy checks.

Goes through :func:`squeezenet.data.build_dataset` (evaluation transforms); a folder of
images without class folders is enough for calibration (its labels are all 0).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import torch


def image_dataset(spec: str | os.PathLike, preset: str | None = "torchvision", classes=None):
    """An evaluation-mode dataset of (image tensor, label) from ``spec`` (a dataset spec, a
    folder of class folders, or a flat folder of images); ``classes``: a list or a class-list
    file fixing the label order."""
    from ..data import build_dataset
    root = Path(spec)
    # calibration needs no labels: a flat folder of photos is fine here
    flat = root.is_dir() and not any(d.is_dir() for d in root.iterdir())
    return build_dataset(spec, split="test", preset=preset, classes=classes, unlabeled=flat)


def take(ds, count: int | None = None) -> list[int]:
    """Indices of ``count`` items spread evenly over ``ds`` (deterministic; all if None)."""
    from ..data import spread_indices
    return spread_indices(len(ds), count)


def batches(ds, indices, batch_size: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches of ``ds[indices]``; unreadable images are dropped (one warning
    each, recorded on the dataset) and a batch left empty is skipped."""
    from ..data import Skipped, base_dataset
    owner = base_dataset(ds)
    for s in range(0, len(indices), batch_size):
        items = []
        for i in indices[s:s + batch_size]:
            item = ds[i]
            if isinstance(item, Skipped):
                if hasattr(owner, "record_skipped"):
                    owner.record_skipped(item.path, item.reason)
                continue
            items.append(item)
        if items:
            yield torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])
