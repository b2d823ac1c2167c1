"""Top-1 / top-5 accuracy of a model over a loader.

>>> import squeezenet
>>> from squeezenet.data import build_dataset, make_loader
>>> m = squeezenet.create_model("squeezenet_small")
>>> r = evaluate(m, make_loader(build_dataset("digits", "test"), 64))
>>> r["count"], 0.0 <= r["top1"] <= r["top5"] <= 1.0
(360, True)
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import torch
from torch import nn

from .errors import SqueezeNetError


def count_correct(logits: torch.Tensor, targets: torch.Tensor, k: int = 5) -> tuple[int, int]:
    """(top-1 hits, top-k hits) of one batch; with fewer than ``k`` classes, top-k is over all.

    >>> count_correct(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), k=2)
    (1, 1)
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices.eq(targets.view(-1, 1))
    return int(top[:, 0].sum()), int(top.any(dim=1).sum())


class NonFiniteOutput(SqueezeNetError):
    """A model gave NaN or infinite outputs: no figure is reported from them."""


def check_finite(logits: torch.Tensor, what: str = "the model") -> None:
    """Refuse outputs holding NaN or infinity with one line (a broken or diverged model, a NaN
    int8 scale in an ONNX file): every reported figure comes from finite outputs.

    >>> check_finite(torch.tensor([[float("nan"), 1.0]]))
    Traceback (most recent call last):
    ...
    squeezenet.evaluate.NonFiniteOutput: the model gave 1 non-finite output(s) (NaN or infinity) in a batch of 1 image(s): no figure is reported from them
    """
    bad = ~torch.isfinite(logits)
    if bool(bad.any()):
        raise NonFiniteOutput(f"{what} gave {int(bad.sum()):,} non-finite output(s) (NaN or infinity) in a batch "
                              f"of {logits.shape[0] if logits.ndim else 1} image(s): no figure is reported from them")


def evaluate(model: nn.Module | None, loader: Iterable, forward: Callable | None = None,
             device: str | torch.device | None = None, progress: bool = False) -> dict:
    """Score ``model`` on ``loader`` (batches of ``(images, targets)``).

    ``forward`` replaces ``model(x)`` (e.g. a compiled engine from ``squeezenet.runtime``).
    Returns ``top1``, ``top5`` (fractions 0..1), ``count``, ``seconds``, ``images_per_s``,
    ``skipped`` (unreadable images dropped by the loader). With fewer than 5 classes, top5 is
    top-k over all classes.
    """
    if model is None and forward is None:
        raise SqueezeNetError("evaluate needs a model or a forward function")
    if model is not None:
        model.eval()
        if device is None:
            try:
                device = next(model.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
    device = torch.device(device or "cpu")
    fwd = forward or model
    correct1 = correct5 = count = 0
    compute = 0.0
    t0 = time.perf_counter()
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc="eval", unit="batch", leave=False)
    with torch.inference_mode():
        for images, targets in it:
            images = images.to(device, non_blocking=True)
            targets = targets.to(device)
            t = time.perf_counter()
            logits = fwd(images)
            if not isinstance(logits, torch.Tensor):
                logits = torch.as_tensor(logits)
            logits = logits.float().to(device)
            compute += time.perf_counter() - t
            if logits.ndim != 2 or logits.shape[0] != targets.shape[0]:
                raise SqueezeNetError(f"model output has shape {tuple(logits.shape)}, expected "
                                      f"({targets.shape[0]}, classes)")
            check_finite(logits)
            if int(targets.max()) >= logits.shape[1]:
                raise SqueezeNetError(f"the data has class index {int(targets.max())} but the model has only "
                                      f"{logits.shape[1]} outputs; pass the model's class list (--classes)")
            hit1, hit5 = count_correct(logits, targets)
            correct1 += hit1
            correct5 += hit5
            count += targets.shape[0]
    seconds = time.perf_counter() - t0
    from .data import base_dataset
    owner = base_dataset(getattr(loader, "dataset", None)) if hasattr(loader, "dataset") else None
    skipped = len(getattr(owner, "skipped", {}) or {})
    if count == 0:   # a figure of nothing (every image unreadable): no figure
        why = f"none of the {skipped} image(s) could be read (listed above)" if skipped else "no images"
        raise SqueezeNetError(f"{why}: nothing to score")
    return {
        "top1": correct1 / count if count else 0.0,
        "top5": correct5 / count if count else 0.0,
        "count": count,
        "skipped": skipped,
        "seconds": seconds,
        "images_per_s": count / seconds if seconds > 0 else 0.0,
        "model_images_per_s": count / compute if compute > 0 else 0.0,
    }
