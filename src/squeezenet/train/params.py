"""What trains and how fast: ``--freeze`` (frozen weights get no gradient, frozen BatchNorm
layers keep their running statistics) and the optimizer's parameter groups (``--head-lr-mult``:
conv10's learning rate is the base lr times the multiplier; the Trainer reads ``lr_mult`` from
each group). Used by :class:`~squeezenet.train.Trainer` and :mod:`~squeezenet.train.finetune`.
"""
from __future__ import annotations

import types
from typing import Iterable

import torch
from torch import nn

from ..errors import ConfigError


def layer_names(model: nn.Module) -> dict[str, str]:
    """The paper's layer names -> module paths: ``conv1``, ``fire2``..``fire9``, ``conv10``.

    >>> import squeezenet
    >>> layer_names(squeezenet.create_model("squeezenet1_1"))["fire4"]
    'features.6'
    """
    from ..models.fire import Fire
    out: dict[str, str] = {}
    features = getattr(model, "features", None)
    if features is not None:
        fire = 2
        for i, mod in enumerate(features):
            if isinstance(mod, nn.Conv2d) and "conv1" not in out:
                out["conv1"] = f"features.{i}"
            elif isinstance(mod, Fire):
                out[f"fire{fire}"] = f"features.{i}"
                fire += 1
    if hasattr(model, "final_conv"):
        out["conv10"] = "classifier.1"
    return out


def resolve_freeze(model: nn.Module, names: str | Iterable[str] | None) -> list[str]:
    """Module paths for ``--freeze`` names (comma-separated or a list): a module path
    (``features``, ``features.3``, ``classifier``), a paper layer name (``conv1``, ``fire2``..
    ``fire9``, ``conv10``; ``conv1`` includes its BatchNorm) or ``none``. A name matching
    nothing is a :class:`~squeezenet.errors.ConfigError` naming it."""
    if names is None:
        return []
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n and n.strip()]
    modules = dict(model.named_modules())
    aliases = layer_names(model)
    paths: list[str] = []
    for name in names:
        if name.lower() == "none":
            continue
        path = aliases.get(name.lower(), name)
        if not path or path not in modules or not any(True for _ in modules[path].parameters()):
            import difflib
            known = ["features", "classifier", *aliases]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)}, or a module path)"
            raise ConfigError(f"--freeze {name!r} matches no layer with weights{hint}")
        paths.append(path)
        if name.lower() == "conv1" and path.startswith("features."):
            nxt = f"features.{int(path.split('.')[1]) + 1}"
            if isinstance(modules.get(nxt), nn.BatchNorm2d):
                paths.append(nxt)
    return paths


def freezes_backbone(model: nn.Module, names: str | Iterable[str] | None) -> bool:
    """True when ``names`` freeze every parameter of ``model.features`` and none of conv10's:
    training then only needs the backbone's features once (:func:`fit_head`), not a forward
    pass per epoch.

    >>> import squeezenet
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> freezes_backbone(m, "features"), freezes_backbone(m, "conv1,fire2"), freezes_backbone(m, None)
    (True, False, False)
    """
    paths = resolve_freeze(model, names)
    if not paths:
        return False
    modules = dict(model.named_modules())
    frozen = {id(p) for path in paths for p in modules[path].parameters()}
    body = {id(p) for p in model.features.parameters()}
    head = {id(p) for p in head_parameters(model)}
    return body <= frozen and not (head & frozen)


def _stay_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(model: nn.Module, names: str | Iterable[str] | None) -> list[str]:
    """Freeze the modules ``names`` select (see :func:`resolve_freeze`): their parameters get
    ``requires_grad=False`` and their BatchNorm layers stay in eval mode (running statistics
    unchanged) even when the model is put in training mode. Returns the frozen module paths.
    """
    paths = resolve_freeze(model, names)
    modules = dict(model.named_modules())
    for path in paths:
        mod = modules[path]
        for p in mod.parameters():
            p.requires_grad_(False)
        for sub in mod.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.train = types.MethodType(_stay_eval, sub)
                sub.eval()
    return paths


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's parameters (conv10)."""
    classifier = getattr(model, "classifier", None)
    return list(classifier.parameters()) if classifier is not None else []


def param_groups(model: nn.Module, head_lr_mult: float = 1.0) -> list[dict]:
    """Optimizer groups of the trainable parameters: the backbone (``lr_mult`` 1) and the head
    (``lr_mult`` = ``head_lr_mult``); with a multiplier of 1, one group of all of them (the
    layout of training-state files written before groups existed). Frozen parameters are left
    out; an empty group is dropped; nothing trainable at all is a ConfigError."""
    if not head_lr_mult > 0:
        raise ConfigError(f"head_lr_mult={head_lr_mult!r}: must be > 0")
    if head_lr_mult == 1:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: --freeze froze every parameter of the model")
        return [{"params": params, "lr_mult": 1.0}]
    head_ids = {id(p) for p in head_parameters(model)}
    head = [p for p in model.parameters() if p.requires_grad and id(p) in head_ids]
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [g for g in ({"params": body, "lr_mult": 1.0, "name": "backbone"},
                          {"params": head, "lr_mult": float(head_lr_mult), "name": "head"}) if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: --freeze froze every parameter of the model")
    return groups


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """The optimizer ``config`` names (``sgd`` | ``adamw``) over :func:`param_groups`."""
    groups = param_groups(model, getattr(config, "head_lr_mult", 1.0))
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.nesterov)
