"""LSUV initialisation (Mishkin & Matas, 2016): data-driven unit-variance init.

SqueezeNet has no batch norm and a ReLU after conv10; trained from scratch with the paper's
Xavier init its signal shrinks layer by layer, and on few-class data conv10's outputs are
quickly driven below zero everywhere, after which the loss sits at ln(classes) for good
(spec section 7: "a lower lr or LSUV init fixed it for users"). LSUV starts every convolution
orthonormal and rescales it so that its output has unit variance on a real batch.
"""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def lsuv_init(model: nn.Module, images: torch.Tensor, tol: float = 0.05, max_iters: int = 5) -> nn.Module:
    """Re-initialise every Conv2d of ``model`` in forward order, in place; returns ``model``.

    >>> import squeezenet
    >>> m = lsuv_init(squeezenet.create_model("squeezenet_small"), torch.randn(16, 3, 32, 32))
    >>> round(float(m.classifier[1](m.features(torch.randn(16, 3, 32, 32))).std()), 1)
    1.0
    """
    was_training = model.training
    model.eval()  # dropout off while measuring
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        nn.init.orthogonal_(conv.weight)
        if conv.bias is not None:
            conv.bias.zero_()
        out = {}
        h = conv.register_forward_hook(lambda mod, i, o: out.__setitem__("y", o))
        try:
            for _ in range(max_iters):
                model(images)
                std = float(out["y"].std())
                if std < 1e-8 or abs(std - 1.0) < tol:
                    break
                conv.weight.div_(std)
        finally:
            h.remove()
    model.train(was_training)
    return model
