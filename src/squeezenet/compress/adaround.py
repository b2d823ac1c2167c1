"""Learned rounding to a k-means codebook (AdaRound, Nagel et al. 2020), layer by layer, from
calibration images; and bias correction.

Rounding every weight to its *nearest* centroid minimises the weight error, not the error of the
layer's output. AdaRound instead learns, for every weight, which of its two nearest centroids it
takes so that the layer's output on calibration images changes least. For a layer with inputs
``X`` (columns of im2col for a conv) the output error of weights ``Q`` is the quadratic form

    E(Q) = tr(Q Hqq Q^T) - 2 tr(G Q^T) + const,   Hqq = X_q X_q^T / n,   G = W X_fp X_q^T / n

where ``X_q`` are the inputs the layer sees in the already-compressed network and ``X_fp`` those
of the original network (``G = W Hqq`` when both are the same: the plain layer-wise objective;
with the cross term the layer also corrects the error of the layers before it). The choice is
relaxed to ``q = lo + h(V) (hi - lo)`` with AdaRound's rectified sigmoid ``h`` and pushed to
0/1 by the regulariser ``sum 1 - |2h - 1|^beta`` (beta annealed from 20 to 2). Everything needs
only the ``d x d`` matrices, so each iteration costs one ``rows x d x d`` product whatever the
number of calibration images. Pruned weights (zeros) stay zero.

:func:`bias_correction` moves a layer's bias by the mean output error
``W E[x_fp] - Q E[x_q]`` (biases are stored as float32 in a ``.sqz``, so this costs no bytes).

>>> import torch
>>> _ = torch.manual_seed(0)
>>> W = torch.randn(8, 16); X = torch.randn(16, 256); H = X @ X.T / 256
>>> cb = torch.linspace(-2, 2, 8)
>>> codes = adaround_layer(W, H, cb, iters=300)
>>> Qn = cb[(W.unsqueeze(-1) - cb).abs().argmin(-1)]
>>> Qa = cb[codes - 1]
>>> bool(torch.trace((Qa - W) @ H @ (Qa - W).T) < torch.trace((Qn - W) @ H @ (Qn - W).T))
True
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .compensate import _Stop, _columns

ZETA, GAMMA = 1.1, -0.1


def _h(V: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _h_inv(h: torch.Tensor) -> torch.Tensor:
    p = ((h.clamp(0.01, 0.99) - GAMMA) / (ZETA - GAMMA))
    return torch.log(p / (1 - p))


def bracket(W: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each weight the indices (into the sorted ``codebook``) of its two nearest centroids
    ``lo < hi`` and the fraction ``(w - c_lo) / (c_hi - c_lo)`` clipped to [0, 1] (weights
    outside the codebook's range use its two outermost centroids)."""
    cb = codebook
    K = cb.numel()
    if K < 2:
        z = torch.zeros_like(W, dtype=torch.long)
        return z, z, torch.zeros_like(W)
    hi = torch.searchsorted(cb.contiguous(), W.contiguous()).clamp(1, K - 1)
    lo = hi - 1
    frac = ((W - cb[lo]) / (cb[hi] - cb[lo]).clamp_min(1e-30)).clamp(0, 1)
    return lo, hi, frac


def adaround_layer(W: torch.Tensor, H: torch.Tensor, codebook, G: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None, iters: int = 1000, lr: float = 1e-2,
                   reg: float = 0.1, warmup: float = 0.2, beta: tuple[float, float] = (20.0, 2.0),
                   log: Callable | None = None) -> torch.Tensor:
    """Codes (``0`` = zero weight, ``j`` = ``sorted(codebook)[j - 1]``, shaped like ``W``) of
    the learned rounding of the 2-D weight ``W`` (rows x d).

    ``H``: ``X_q X_q^T / n`` (d x d); ``G``: ``W X_fp X_q^T / n`` (rows x d, default ``W H``);
    ``mask``: weights to keep non-zero (default ``W != 0``). The reconstruction term is
    normalised by its value at nearest rounding (1.0 = nearest rounding's output error) and
    the rounding regulariser is a mean over the weights, so ``reg`` does not depend on the
    layer's scale or size.
    """
    W = W.detach().double()
    H = H.detach().double()
    cb = torch.as_tensor(np.sort(np.asarray(codebook, dtype=np.float64)) if not isinstance(codebook, torch.Tensor)
                         else torch.sort(codebook.double()).values)
    mask = (W != 0) if mask is None else mask.bool()
    G = (W @ H) if G is None else G.detach().double()
    lo, hi, frac = bracket(W, cb)
    base, span = cb[lo], cb[hi] - cb[lo]
    m = mask.double()
    V = _h_inv(frac).requires_grad_(True)

    def recon(Q):
        return (torch.einsum("rd,de,re->", Q, H, Q) - 2 * (G * Q).sum())

    with torch.no_grad():
        Qn = torch.where(frac > 0.5, cb[hi], cb[lo]) * m
        c0 = recon(W * m)                            # constant part is irrelevant; scale only
        scale = (recon(Qn) - c0).abs().clamp_min(1e-30)
    n = max(1, int(mask.sum()))
    opt = torch.optim.Adam([V], lr=lr)
    w_iters = int(warmup * iters)
    for it in range(iters):
        h = _h(V)
        Q = (base + h * span) * m
        loss = (recon(Q) - c0) / scale
        if it >= w_iters:
            t = (it - w_iters) / max(1, iters - w_iters)
            b = beta[1] + 0.5 * (beta[0] - beta[1]) * (1 + np.cos(np.pi * t))
            loss = loss + reg * ((1 - (2 * h - 1).abs().pow(b)) * m).sum() / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (it % max(1, iters // 5) == 0 or it == iters - 1):
            log(f"    adaround it {it}: loss {float(loss):.4f}")
    with torch.no_grad():
        up = _h(V) >= 0.5
        idx = torch.where(up, hi, lo)
        codes = torch.where(mask, idx + 1, torch.zeros_like(idx))
    return codes


@torch.no_grad()
def paired_statistics(fp_model: nn.Module, q_model: nn.Module, key: str,
                      batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Input statistics of the layer ``key`` on ``batches`` in the original (``fp_model``) and
    the compressed network (``q_model``): ``Hqq = X_q X_q^T / n``, ``Hfq = X_fp X_q^T / n`` and
    the column means ``mu_q``, ``mu_f`` (float64)."""
    mods = [m.get_submodule(key.rsplit(".", 1)[0]) for m in (fp_model, q_model)]
    d = mods[0].weight[0].numel()
    grab = {}

    def hook(name):
        def f(mod, inputs):
            grab[name] = _columns(mod, inputs[0]).double()
            raise _Stop
        return f

    acc = {"Hqq": torch.zeros(d, d, dtype=torch.float64), "Hfq": torch.zeros(d, d, dtype=torch.float64),
           "mu_q": torch.zeros(d, dtype=torch.float64), "mu_f": torch.zeros(d, dtype=torch.float64)}
    n = 0
    hs = [mods[0].register_forward_pre_hook(hook("f")), mods[1].register_forward_pre_hook(hook("q"))]
    try:
        fp_model.eval()
        q_model.eval()
        for xb in batches:
            for mdl in (fp_model, q_model):
                try:
                    mdl(xb)
                except _Stop:
                    pass
            xf, xq = grab["f"], grab["q"]
            acc["Hqq"] += xq @ xq.t()
            acc["Hfq"] += xf @ xq.t()
            acc["mu_q"] += xq.sum(1)
            acc["mu_f"] += xf.sum(1)
            n += xq.shape[1]
    finally:
        for h in hs:
            h.remove()
    return {k: v / max(1, n) for k, v in acc.items()}


@torch.no_grad()
def asymmetric_target(W: torch.Tensor, Hqq: torch.Tensor, Hfq: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """``W Hfq Hqq^-1``: the weights whose outputs on the compressed network's inputs ``X_q``
    best match the original outputs ``W X_fp`` (least squares, ``damp`` times the mean
    diagonal added to ``Hqq``). Rounding *this* target with GPTQ
    (``compensate_layer(target, Hqq, codebook=..., zero=pruned)``) minimises the same
    objective as :func:`adaround_layer` with ``G = W Hfq``: the layer also corrects the error
    of the layers before it.
    """
    Hqq = Hqq.double()
    d = damp * torch.diag(Hqq).mean().clamp_min(1e-30) * torch.eye(Hqq.shape[0], dtype=Hqq.dtype)
    return torch.linalg.solve(Hqq + d, (W.double() @ Hfq.double()).T).T


@torch.no_grad()
def bias_correction(W: torch.Tensor, Q: torch.Tensor, mu_f: torch.Tensor, mu_q: torch.Tensor) -> torch.Tensor:
    """The bias change ``W mu_f - Q mu_q`` (per output) that cancels the mean output error of
    replacing ``W`` (on original inputs, mean ``mu_f``) by ``Q`` (on compressed-network inputs,
    mean ``mu_q``); ``W``, ``Q``: (rows x d).

    >>> W = torch.tensor([[1.0, 2.0]]); Q = torch.tensor([[1.0, 1.5]])
    >>> bias_correction(W, Q, torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])).tolist()
    [0.5]
    """
    return W.double() @ mu_f.double() - Q.double() @ mu_q.double()
