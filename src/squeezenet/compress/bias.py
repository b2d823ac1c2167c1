"""Empirical bias correction: give back each layer's output mean that compression shifted.

Pruning and weight sharing change every conv's expected output: ``E[W x] != E[W_q x]``. With a
few unlabeled images, layer by layer in network order, the compressed layer's bias gets
``+= E[y_ref] - E[y_q]`` per output channel, where ``y_ref`` is the uncompressed model's
pre-activation output and ``y_q`` the compressed model's (whose inputs already carry the
corrections of the layers before). Biases are stored as float32 in ``.sqz``, so the
correction costs no bytes; it needs no labels and no gradient (Nagel et al. 2019,
"Data-Free Quantization Through Weight Equalization and Bias Correction", empirical variant).

>>> # bias_correct(compressed, reference, unlabeled_images)   # both models in eval mode
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def bias_correct(model: nn.Module, reference: nn.Module, images: torch.Tensor | Iterable,
                 max_images: int = 128, batch_size: int = 32) -> dict[str, float]:
    """Correct the biases of ``model``'s convs and linears in place; returns, per layer, the
    mean absolute correction. ``images``: a tensor (N, C, H, W) or an iterable of batches
    (``(images, targets)`` pairs or tensors)."""
    x = _collect(images, max_images)
    model.eval(), reference.eval()
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ref_layers = dict(reference.named_modules())
    out = {}
    for name, layer in layers:
        ref = ref_layers.get(name)
        if ref is None or layer.bias is None:
            continue
        mq, mr = _channel_mean(model, layer, x, batch_size), _channel_mean(reference, ref, x, batch_size)
        delta = (mr - mq).to(layer.bias.dtype)
        layer.bias.add_(delta)
        out[name] = float(delta.abs().mean())
    return out


def _collect(images, max_images: int) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[:max_images]
    got, n = [], 0
    for b in images:
        b = b[0] if isinstance(b, (tuple, list)) else b
        got.append(b[:max_images - n])
        n += got[-1].shape[0]
        if n >= max_images:
            break
    if not got:
        raise ValueError("bias correction needs at least one image")
    return torch.cat(got)


def _channel_mean(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean of ``layer``'s output per channel over the images (and positions) of ``x``."""
    sums, counts = [], []

    class _Stop(Exception):
        pass

    def hook(_m, _inp, y):
        dims = [d for d in range(y.dim()) if d != 1]
        sums.append(y.float().sum(dims))
        counts.append(y.numel() // y.shape[1])
        raise _Stop   # nothing after this layer is needed

    h = layer.register_forward_hook(hook)
    try:
        for i in range(0, x.shape[0], batch_size):
            try:
                model(x[i:i + batch_size])
            except _Stop:
                pass
    finally:
        h.remove()
    return torch.stack(sums).sum(0) / sum(counts)
