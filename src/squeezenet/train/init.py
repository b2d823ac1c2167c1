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
    >>> _ = torch.manual_seed(0)
    >>> m = lsuv_init(squeezenet.create_model("squeezenet_small"), torch.randn(16, 3, 32, 32))
    >>> with torch.no_grad():    # conv10's output on fresh inputs has unit spread
    ...     round(float(m.classifier[1](m.features(torch.randn(16, 3, 32, 32))).std()), 1)
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
        # measure inside the hook: the in-place ReLU that follows would change the tensor
        h = conv.register_forward_hook(lambda mod, i, o: out.__setitem__("std", float(o.std())))
        try:
            for _ in range(max_iters):
                model(images)
                std = out["std"]
                if std < 1e-8 or abs(std - 1.0) < tol:
                    break
                conv.weight.div_(std)
        finally:
            h.remove()
    model.train(was_training)
    return model


def init_weights(model: nn.Module, scheme: str, data=None, batch: int = 128) -> nn.Module:
    """Initialise a new model for training from scratch; returns ``model``.

    ``paper``: as built (Caffe Xavier, conv10 Gaussian std 0.01). ``torchvision``: kaiming
    uniform. ``alive``: kaiming and conv10 bias 1, so conv10's ReLU starts (and stays) active;
    on 10-class data the paper and torchvision inits drive every conv10 output below zero within
    a few SGD steps and the loss then sits at ln(10). ``lsuv``: :func:`lsuv_init` on a batch of
    ``data``.
    """
    from ..errors import ConfigError
    from .recipes import INITS
    if scheme not in INITS:
        raise ConfigError(f"init={scheme!r}: must be {', '.join(INITS[:-1])} or {INITS[-1]}")
    if scheme == "paper":
        return model
    model.reset_parameters("torchvision")
    if scheme == "alive":
        with torch.no_grad():
            model.final_conv.bias.fill_(1.0)
    elif scheme == "lsuv":
        if data is None:
            raise ConfigError("init=lsuv needs training data")
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(data), generator=g)[:batch].tolist()
        images = torch.stack([data[i][0] for i in idx if not hasattr(data[i], "path")])
        lsuv_init(model, images)
    return model
