"""Low-rank factorization (the paper's "SVD" baseline, Table 2).

A conv ``W (O, I, kh, kw)`` seen as the matrix ``(O, I*kh*kw) = U S V^T`` becomes two convs:
``r`` filters ``V^T`` with the original kernel, stride and padding, then a 1x1 conv ``U S``
with the original bias. A linear layer becomes two linears the same way. The rank keeps a
fraction of the spectral energy (sum of squared singular values) or fits a parameter budget;
a layer is only factored when that saves parameters.

>>> import torch, squeezenet
>>> m = squeezenet.create_model("squeezenet_small")
>>> info = svd_factorize(m, energy=0.5)
>>> m(torch.zeros(1, 3, 32, 32)).shape
torch.Size([1, 10])
"""
from __future__ import annotations

import torch
from torch import nn


def _rank_for_energy(s: torch.Tensor, energy: float) -> int:
    e = torch.cumsum(s ** 2, 0) / torch.clamp((s ** 2).sum(), min=1e-30)
    return int(torch.searchsorted(e, torch.tensor(energy, dtype=e.dtype)).item()) + 1


@torch.no_grad()
def factor_module(mod: nn.Module, rank: int) -> nn.Module:
    """Two-layer low-rank replacement of a Conv2d or Linear with the given rank."""
    if isinstance(mod, nn.Conv2d):
        O = mod.out_channels
        W = mod.weight.reshape(O, -1)
    else:
        W = mod.weight
    U, S, Vh = torch.linalg.svd(W.float(), full_matrices=False)
    r = max(1, min(rank, S.numel()))
    A = Vh[:r] * S[:r, None].sqrt()
    B = U[:, :r] * S[None, :r].sqrt()
    if isinstance(mod, nn.Conv2d):
        first = nn.Conv2d(mod.in_channels, r, mod.kernel_size, mod.stride, mod.padding,
                          mod.dilation, mod.groups, bias=False)
        first.weight.copy_(A.reshape(r, *mod.weight.shape[1:]))
        second = nn.Conv2d(r, mod.out_channels, 1, bias=mod.bias is not None)
        second.weight.copy_(B.reshape(mod.out_channels, r, 1, 1))
    else:
        first = nn.Linear(mod.in_features, r, bias=False)
        first.weight.copy_(A)
        second = nn.Linear(r, mod.out_features, bias=mod.bias is not None)
        second.weight.copy_(B)
    if mod.bias is not None:
        second.bias.copy_(mod.bias)
    return nn.Sequential(first, second).to(mod.weight.device)


@torch.no_grad()
def svd_factorize(model: nn.Module, energy: float | None = 0.9, target_params: int | None = None,
                  skip_first: bool = True) -> dict[str, dict]:
    """Factor every conv/linear layer in place; returns per-layer ``{rank, before, after}``.

    ``energy``: kept fraction of the squared singular values per layer. ``target_params``:
    instead, lower one common energy level until the model has at most that many parameters.
    """
    if target_params is not None:
        import copy
        lo, hi = 0.0, 1.0
        for _ in range(12):   # bisection on the energy level
            mid = (lo + hi) / 2
            trial = copy.deepcopy(model)
            svd_factorize(trial, energy=mid, skip_first=skip_first)
            if sum(p.numel() for p in trial.parameters()) <= target_params:
                lo = mid
            else:
                hi = mid
        return svd_factorize(model, energy=lo, skip_first=skip_first)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if skip_first and targets:
        targets = targets[1:]   # the 3-channel stem gains nothing from factoring
    info = {}
    for name, mod in targets:
        W = mod.weight.reshape(mod.weight.shape[0], -1).float()
        S = torch.linalg.svdvals(W)
        r = _rank_for_energy(S, energy)
        before = W.numel()
        after = r * (W.shape[0] + W.shape[1])
        if after >= before:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, factor_module(mod, r))
        info[name] = {"rank": r, "before": before, "after": after}
    return info
