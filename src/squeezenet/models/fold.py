"""Fold BatchNorm into the preceding convolutions (for storage and deployment).

A ``--batch-norm`` SqueezeNet (BatchNorm after every conv but conv10, see
:class:`~squeezenet.models.SqueezeNetConfig`) computes, in eval mode, exactly what a plain
SqueezeNet of the same shape computes with per-output-channel rescaled conv weights and
shifted biases::

    W' = W * g / sqrt(v + eps)          b' = (b - m) * g / sqrt(v + eps) + beta

:func:`fold_batch_norm` returns that plain network (``config.batch_norm = False``), so the
compressed file stores no BatchNorm tensors (they were 15 % of a 310 KB CIFAR-10 ``.sqz``) and
the stored weights are the effective ones (magnitude pruning and k-means then see what the
network really multiplies by).

>>> import torch
>>> from squeezenet import create_model
>>> m = create_model("squeezenet_small", num_classes=10, batch_norm=True).eval()
>>> f = fold_batch_norm(m)
>>> f.config.batch_norm, any(isinstance(x, torch.nn.BatchNorm2d) for x in f.modules())
(False, False)
>>> x = torch.randn(2, 3, 32, 32)
>>> bool(torch.allclose(m(x), f(x), atol=1e-5))
True
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .fire import Fire
from .squeezenet import SqueezeNet
from .utils import prunable


def _conv_bn_pairs(model: SqueezeNet) -> list[tuple[nn.Conv2d, nn.Module]]:
    """Every conv of a BatchNorm SqueezeNet with the BatchNorm after it (``Identity`` for
    conv10), in forward order: the order of ``prunable`` on the folded network."""
    pairs = [(model.features[0], model.features[1])]
    for f in (m for m in model.features if isinstance(m, Fire)):
        pairs += [(f.squeeze, f.squeeze_bn), (f.expand1x1, f.expand1x1_bn), (f.expand3x3, f.expand3x3_bn)]
        if f.shortcut is not None:
            pairs.append((f.shortcut, f.shortcut_bn))
    return pairs + [(model.final_conv, nn.Identity())]


def _folded_convs(model: SqueezeNet, folded: SqueezeNet) -> list[tuple[nn.Conv2d, nn.Module, nn.Conv2d]]:
    pairs, dst = _conv_bn_pairs(model), list(prunable(folded).values())
    if len(dst) != len(pairs):
        raise ValueError(f"folded model has {len(dst)} convs, the original {len(pairs)}")
    return [(conv, bn, d) for (conv, bn), d in zip(pairs, dst)]


def _scale(bn: nn.Module) -> torch.Tensor | None:
    if not isinstance(bn, nn.BatchNorm2d):
        return None
    return bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)


@torch.no_grad()
def fold_batch_norm(model: SqueezeNet) -> SqueezeNet:
    """A new plain SqueezeNet computing what ``model`` computes in eval mode.

    ``model`` is not changed. Its ``classes``, ``preprocess`` and ``metadata`` carry over;
    a model without BatchNorm comes back as a copy.
    """
    if not getattr(model.config, "batch_norm", False):
        return copy.deepcopy(model)
    out = SqueezeNet(model.config.replace(batch_norm=False))
    for attr in ("classes", "preprocess"):
        setattr(out, attr, copy.deepcopy(getattr(model, attr, None)))
    out.metadata = dict(getattr(model, "metadata", {}) or {})
    for conv, bn, dst in _folded_convs(model, out):
        w = conv.weight.double()
        b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        scale = _scale(bn)
        if scale is not None:
            w = w * scale.view(-1, 1, 1, 1)
            b = (b - bn.running_mean.double()) * scale + bn.bias.double()
        dst.weight.copy_(w.to(dst.weight.dtype))
        dst.bias.copy_(b.to(dst.bias.dtype))
    return out.train(model.training)


@torch.no_grad()
def unfold_weights(model: SqueezeNet, folded: SqueezeNet) -> None:
    """Write ``folded``'s conv weights back into the BatchNorm ``model`` (in place), undoing
    the per-channel BN scale: after it, ``fold_batch_norm(model)`` has ``folded``'s weights.
    Biases are left alone (changing weights only keeps the folded biases valid)."""
    for conv, bn, src in _folded_convs(model, folded):
        w = src.weight.double()
        scale = _scale(bn)
        if scale is not None:
            safe = torch.where(scale == 0, torch.ones_like(scale), scale)
            w = torch.where((scale == 0).view(-1, 1, 1, 1), torch.zeros_like(w), w / safe.view(-1, 1, 1, 1))
        conv.weight.copy_(w.to(conv.weight.dtype))


def folded_key_map(model: nn.Module, folded: nn.Module) -> dict[str, str]:
    """Conv weight key in the folded model -> the same conv's key in ``model``."""
    a, b = list(prunable(folded)), list(prunable(model))
    if len(a) != len(b):
        raise ValueError(f"folded model has {len(a)} convs, the original {len(b)}")
    return dict(zip(a, b))
