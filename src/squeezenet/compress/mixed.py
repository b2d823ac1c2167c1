"""Mixed precision: bits and kept fraction per layer, allocated over all layers at once under a
byte budget, from each weight's measured sensitivity and the real Huffman-coded size.

Deep Compression gives every layer the same number of bits (and hand-set pruning fractions).
Layers differ twice over: in how much the model's output cares about their weights (conv1 and
the first squeeze layers of SqueezeNet are sensitive, conv10 -- 41 % of SqueezeNet 1.1's
weights -- is not), and in how many bytes a bit costs (proportional to the weight count). The
allocation here measures both and spends the bytes where they buy the most:

* **sensitivity**: :func:`fisher_diagonal` estimates, for every weight, the curvature ``F_i``
  of the loss ``KL(dense model || compressed model)`` at the dense weights (the diagonal of the
  Fisher information, i.e. of the Gauss-Newton Hessian, from gradients with labels sampled from
  the model's own prediction: no labels needed). Changing the weights by ``dw`` then costs about
  ``0.5 * sum_i F_i dw_i**2`` (Optimal Brain Damage's estimate).
* **options**: :func:`layer_options` quantizes one layer for each (bits, kept fraction):
  pruning by saliency ``F_i w_i**2`` (or magnitude), then k-means on the kept weights (weighted
  by ``F_i``: Hessian-weighted k-means, Choi et al. 2017, "Towards the limit of network
  quantization"). Each option's size is the exact number of payload bytes the ``.sqz`` writer
  will spend on it (:func:`layer_bytes`, by the writer's own rule), and its
  cost is the estimated loss increase.
* **allocation**: :func:`allocate` picks one option per layer minimising the summed loss
  increase with the summed bytes within the budget (multiple-choice knapsack, solved exactly by
  dynamic programming over bytes at a fine resolution).

>>> import numpy as np
>>> w = np.random.default_rng(0).normal(size=4096)
>>> opts = layer_options("w", w, np.ones_like(w), bits=(3, 4), keeps=(1.0, 0.5))
>>> sorted({(o.bits, o.keep) for o in opts})
[(3, 0.5), (3, 1.0), (4, 0.5), (4, 1.0)]
>>> pick = allocate({"w": opts}, budget=min(o.bytes for o in opts) + 1)
>>> pick["w"].bytes == min(o.bytes for o in opts)
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ConfigError
from . import quantize as Q
from ..io.huffman import code_lengths
from ..io.sqz import encode_layer
from .sizing import sqz_record


# ----------------------------------------------------------------------------- sizes

def layer_bytes(codes: np.ndarray, n_centroids: int, gap_bits: int = 4) -> int:
    """Payload bytes the ``.sqz`` writer spends on a quantized layer: codebook (``[0]`` + the
    centroids, float32), Huffman-coded codes, and -- when the sparse form is the smaller --
    the Huffman-coded position gaps, as :func:`squeezenet.io.sqz.encode_layer` (the writer's
    own rule) counts them. ``codes``: flat QuantLayer codes (0 = zero weight, ``j`` = centroid
    ``j - 1``). The bias and the JSON header are not included (they do not depend on the
    quantization).

    >>> layer_bytes(np.array([0, 2, 0, 0, 1, 0, 0, 0]), 2)   # codebook 12 B + codes 3 B + gaps 9 B
    24
    """
    codes = np.asarray(codes).ravel()
    return encode_layer(sqz_record("w", codes.shape, codes, np.zeros(int(n_centroids), np.float32),
                                   gap_bits)).bytes


# ----------------------------------------------------------------------------- sensitivity

def fisher_diagonal(model: nn.Module, batches: Iterable[torch.Tensor], keys: Sequence[str],
                    samples: int = 1, seed: int = 0, target: str = "logits",
                    progress: Callable | None = None) -> dict[str, torch.Tensor]:
    """Per-weight curvature ``F_i`` of a distillation loss at ``model``'s weights (the diagonal
    of its Gauss-Newton Hessian), one tensor per weight key (same shape), averaged per image.

    ``target="kl"``: the loss ``KL(model || perturbed model)`` (diagonal Fisher information).
    Per batch, labels are drawn ``samples`` times from the model's own softmax and the squared
    gradient of the summed cross-entropy is accumulated. With sampled labels the gradients of
    different images have zero mean and are independent, so the squared *batch* gradient is
    an unbiased estimate of the sum of per-image Fishers: one backward pass per batch.

    ``target="logits"`` (default): the loss ``0.5 * ||z - z'||^2`` over *all* outputs (the
    high-temperature limit of distillation); per batch a Gaussian vector ``v`` per image and
    the squared gradient of ``sum v . z`` (again unbiased, ``E[v v^T] = I``). Every class
    counts the same whether or not the calibration images show it: with images of only a few
    classes (ImageNet20: 20 of 1000), the KL curvature of the other classes' classifier
    weights is near zero and pruning by it destroyed the 1000-way model (measured: dev top-1
    59.8 -> 20.2 % at 560 KB, while the 20 classes' own test images went up).
    No labels are needed in either case.
    """
    if target not in ("kl", "logits"):
        raise ConfigError(f"fisher target {target!r}: use kl or logits")
    g = torch.Generator().manual_seed(seed)
    params = {k: model.get_parameter(k) for k in keys}
    acc = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in params.items()}
    was_training = model.training
    model.eval()
    n = 0
    req = {k: p.requires_grad for k, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    try:
        for i, x in enumerate(batches):
            logits = model(x)
            prob = F.softmax(logits.detach().double(), 1)
            for s in range(samples):
                if target == "kl":
                    y = torch.multinomial(prob, 1, generator=g).squeeze(1)
                    loss = F.cross_entropy(logits, y, reduction="sum")
                else:
                    v = torch.randn(logits.shape, generator=g, dtype=logits.dtype)
                    loss = (logits * v).sum()
                grads = torch.autograd.grad(loss, list(params.values()), retain_graph=s < samples - 1)
                for k, gr in zip(params, grads):
                    acc[k] += gr.double() ** 2
            n += x.shape[0]
            if progress:
                progress(i)
    finally:
        for k, p in params.items():
            p.requires_grad_(req[k])
        model.train(was_training)
    return {k: (a / max(1, n * samples)).float() for k, a in acc.items()}


# ----------------------------------------------------------------------------- options

@dataclass
class Option:
    """One way to store one layer: its bits, kept fraction, exact payload bytes, the estimated
    loss increase ``0.5 * sum F_i (w_i - q_i)**2`` and the quantized layer itself (``None``
    when the options were made with ``keep_layers=False``: :func:`realize` rebuilds it).
    ``step``: the grid step of a uniform option (``None`` for k-means)."""

    key: str
    bits: int
    keep: float
    bytes: int
    distortion: float
    layer: Q.QuantLayer | None
    step: float | None = None


def quantize_option(key: str, w: np.ndarray, importance: np.ndarray, bits: int, keep: float,
                    prune_by: str = "magnitude", weighted: bool = False, init: str = "linear",
                    shape: tuple | None = None) -> Q.QuantLayer:
    """Prune ``w`` to ``keep`` (the largest ``F_i w_i**2`` -- or ``|w_i|`` with
    ``prune_by="magnitude"``), then k-means the kept weights into ``2**bits`` centroids
    (weighted by ``importance`` when ``weighted``); zeros already in ``w`` stay zero."""
    w = np.asarray(w, dtype=np.float64).ravel()
    imp = np.asarray(importance, dtype=np.float64).ravel()
    nz = _kept(w.size, keep, _ranked(w, imp, prune_by))
    return _quantize_kept(key, w, imp, bits, nz, None, weighted, init, shape)


def _ranked(w: np.ndarray, imp: np.ndarray, prune_by: str) -> np.ndarray:
    """The non-zero positions of ``w`` from the most salient down (stable): the same for
    every kept fraction, so :func:`layer_options` ranks a layer once."""
    if prune_by not in ("saliency", "magnitude"):
        raise ConfigError(f"prune_by {prune_by!r}: use saliency or magnitude")
    nz = np.flatnonzero(w)
    sal = w[nz] ** 2 * (imp[nz] if prune_by == "saliency" else 1.0)
    return nz[np.argsort(-sal, kind="stable")]


def _kept(size: int, keep: float, ranked: np.ndarray) -> np.ndarray:
    """The positions kept at fraction ``keep`` of ``size`` weights (sorted), from :func:`_ranked`."""
    return np.sort(ranked[:max(1, int(round(keep * size)))])


def _quantize_kept(key, w, imp, bits, nz, order, weighted, init, shape) -> Q.QuantLayer:
    K = 1 << int(bits)
    codes = np.zeros(w.size, dtype=np.int64)
    if nz.size <= K:
        cb = np.unique(w[nz]) if nz.size else np.zeros(1)
        codes[nz] = np.searchsorted(cb, w[nz]) + 1
    else:
        cb, lab = Q.kmeans_1d(w[nz], K, init, weights=imp[nz] if weighted else None, order=order)
        codes[nz] = lab + 1
    return Q.QuantLayer(key, tuple(shape or w.shape), int(bits), cb.astype(np.float32), codes)


def distortion(w: np.ndarray, q: np.ndarray, importance: np.ndarray) -> float:
    """``0.5 * sum F_i (w_i - q_i)**2``: the loss increase OBD predicts for ``w -> q``."""
    d = np.asarray(w, dtype=np.float64).ravel() - np.asarray(q, dtype=np.float64).ravel()
    return float(0.5 * np.sum(np.asarray(importance, dtype=np.float64).ravel() * d * d))


def uniform_option(key: str, w: np.ndarray, step: float, keep: float = 1.0,
                   max_levels: int = 256, shape: tuple | None = None) -> Q.QuantLayer | None:
    """Prune ``w`` to ``keep`` by magnitude, then round every weight to the grid ``step * j``
    (integer ``j``; ``j = 0`` is a zero weight): a dead-zone uniform quantizer whose levels are
    then Huffman-coded. At equal coded size a uniform grid has less error than k-means
    centroids (entropy-coded scalar quantization, Gish & Pierce 1968; measured on SqueezeNet
    1.1: about 30 % less estimated loss at 538 KB). The codebook holds only the levels used.
    ``None`` when more than ``max_levels`` non-zero levels would be needed.
    """
    w = np.asarray(w, dtype=np.float64).ravel()
    a = np.abs(w)
    n = max(1, int(round(keep * w.size)))
    if n < w.size:
        thr = np.partition(a, w.size - n)[w.size - n]
        w = np.where(a >= thr, w, 0.0)
    lv = np.round(w / step).astype(np.int64)
    lv[w == 0] = 0
    nzl = lv[lv != 0]
    used = np.unique(nzl)
    if used.size > max_levels:
        return None
    codes = np.zeros(w.size, dtype=np.int64)
    codes[lv != 0] = np.searchsorted(used, nzl) + 1
    cb = (used * step).astype(np.float32) if used.size else np.zeros(1, np.float32)
    bits = max(1, int(np.ceil(np.log2(max(2, used.size)))))
    return Q.QuantLayer(key, tuple(shape or w.shape), bits, cb, codes)


#: Grid steps of the uniform family, in units of the layer's weight standard deviation.
UNIFORM_STEPS = tuple(np.geomspace(0.02, 2.0, 24).round(5))


def layer_options(key: str, w, importance, bits: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
                  keeps: Sequence[float] = (1.0, 0.8, 0.65, 0.5, 0.4, 0.3, 0.2),
                  prune_by: str = "magnitude", weighted: bool = False, gap_bits: int = 4,
                  shape: tuple | None = None, family: str = "kmeans",
                  steps: Sequence[float] = UNIFORM_STEPS, keep_layers: bool = True) -> list[Option]:
    """Every option of one layer with its exact bytes and estimated distortion.

    ``family``: ``kmeans`` (each of ``bits`` x ``keeps``: :func:`quantize_option`),
    ``uniform`` (each of ``steps`` -- in units of the weights' standard deviation -- x
    ``keeps``: :func:`uniform_option`) or ``both``. The defaults (magnitude pruning,
    unweighted k-means) are the measured best: per-weight curvature estimated on a few hundred
    images is too noisy to choose single weights (pruning by ``F w^2`` lost 9 points of dev
    top-1 at 560 KB against magnitude pruning), though its layer sums allocate well.
    ``keep_layers=False`` drops each option's quantized layer after measuring it (a layer of
    SqueezeNet 1.1 has ~200 options); :func:`realize` rebuilds the chosen ones.
    """
    if family not in ("kmeans", "uniform", "both"):
        raise ConfigError(f"option family {family!r}: use kmeans, uniform or both")
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    imp = importance.detach().cpu().numpy() if isinstance(importance, torch.Tensor) else np.asarray(importance)
    shape = tuple(shape or w.shape)
    out = []
    if family in ("kmeans", "both"):
        wf = np.asarray(w, dtype=np.float64).ravel()
        impf = np.asarray(imp, dtype=np.float64).ravel()
        ranked, kept = _ranked(wf, impf, prune_by), {}   # one ranking and one sort per kept fraction
        for b in bits:
            for f in keeps:
                if f not in kept:
                    nz = _kept(wf.size, f, ranked)
                    kept[f] = (nz, np.argsort(wf[nz], kind="stable"))
                q = _quantize_kept(key, wf, impf, b, *kept[f], weighted, "linear", shape)
                out.append(Option(key, int(b), float(f), layer_bytes(q.codes, q.codebook.size, gap_bits),
                                  distortion(w, q.weight(), imp), q if keep_layers else None))
    if family in ("uniform", "both"):
        sd = float(np.std(w)) or 1.0
        for f in keeps:
            for st in steps:
                q = uniform_option(key, w, st * sd, f, shape=shape)
                if q is None:
                    continue
                out.append(Option(key, q.bits, float(f), layer_bytes(q.codes, q.codebook.size, gap_bits),
                                  distortion(w, q.weight(), imp), q if keep_layers else None, st * sd))
    return out


def realize(option: Option, w, importance, prune_by: str = "magnitude", weighted: bool = False) -> Q.QuantLayer:
    """The quantized layer of ``option`` (rebuilt from ``w`` when it was not kept); the same
    ``prune_by`` / ``weighted`` as :func:`layer_options` was given."""
    if option.layer is not None:
        return option.layer
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    imp = importance.detach().cpu().numpy() if isinstance(importance, torch.Tensor) else np.asarray(importance)
    if option.step is not None:
        return uniform_option(option.key, w, option.step, option.keep, shape=w.shape)
    return quantize_option(option.key, w, imp, option.bits, option.keep, prune_by, weighted, shape=w.shape)


def allocate(options: dict[str, list[Option]], budget: int, resolution: int | None = None) -> dict[str, Option]:
    """One option per layer minimising the summed distortion with summed bytes <= ``budget``.

    Exact multiple-choice knapsack by dynamic programming over bytes, rounded up to
    ``resolution`` (default ``budget / 20000``: each layer's bytes are rounded up by less than
    that, so with SqueezeNet's 26 layers at most ~0.13 % of the budget is left unused).
    Raises ConfigError when even the smallest options do not fit.
    """
    keys = list(options)
    if not keys:
        return {}
    res = max(1, int(resolution or budget // 20000))
    nb = budget // res
    smallest = sum(min(o.bytes for o in options[k]) for k in keys)
    if smallest > budget:
        raise ConfigError(f"byte budget {budget:,}: the smallest options of the layers need {smallest:,} B")
    INF = np.inf
    best = np.full(nb + 1, INF)
    best[0] = 0.0
    choice = []
    for k in keys:
        new = np.full(nb + 1, INF)
        arg = np.full(nb + 1, -1, dtype=np.int64)
        for j, o in enumerate(options[k]):
            r = -(-o.bytes // res)
            if r > nb:
                continue
            cand = np.full(nb + 1, INF)
            cand[r:] = best[:nb + 1 - r] + o.distortion
            better = cand < new
            new[better] = cand[better]
            arg[better] = j
        best = new
        choice.append(arg)
    # best[b] = min distortion using exactly b units; walk back from the best end point
    end = int(np.argmin(best))
    out = {}
    for k, arg in zip(reversed(keys), reversed(choice)):
        j = int(arg[end])
        o = options[k][j]
        out[k] = o
        end -= -(-o.bytes // res)
    return dict(reversed(list(out.items())))


def allocation_summary(choice: dict[str, Option]) -> dict:
    """Totals of an allocation: bytes, distortion, weights kept, mean bits per kept weight."""
    have = all(o.layer is not None for o in choice.values())
    n = sum(int(np.prod(o.layer.shape)) for o in choice.values()) if have else 0
    kept = sum(int(np.count_nonzero(o.layer.codes)) for o in choice.values()) if have else 0
    return {"bytes": sum(o.bytes for o in choice.values()),
            "distortion": sum(o.distortion for o in choice.values()),
            "kept": kept / max(1, n) if have else None,
            "layers": {k: {"bits": o.bits, "keep": o.keep, "step": o.step, "bytes": o.bytes,
                           "distortion": o.distortion} for k, o in choice.items()}}


@torch.no_grad()
def apply_layers(model: nn.Module, layers: dict[str, Q.QuantLayer]) -> None:
    """Write the quantized layers' weights into ``model`` (in place)."""
    for k, q in layers.items():
        p = model.get_parameter(k)
        p.copy_(torch.from_numpy(q.weight()).to(p.device, p.dtype))


# ----------------------------------------------------------------------------- exact fit

def _assign(v: np.ndarray, cb: np.ndarray, imp: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """argmin_k imp * (v - cb[k])**2 + penalty[k] over the two centroids around each value
    (indices into the sorted ``cb``)."""
    K = cb.size
    hi = np.clip(np.searchsorted(cb, v), 1, max(1, K - 1)) if K > 1 else np.zeros(v.size, np.int64)
    lo = np.maximum(hi - 1, 0)
    c_lo = imp * (v - cb[lo]) ** 2 + penalty[lo]
    c_hi = imp * (v - cb[hi]) ** 2 + penalty[hi]
    return np.where(c_hi < c_lo, hi, lo)


def assign_within_budget(values: dict[str, np.ndarray], codebooks: dict[str, np.ndarray],
                         keep: dict[str, np.ndarray], importance: dict[str, np.ndarray], budget: int,
                         bits: dict[str, int] | None = None, gap_bits: int = 4,
                         iters: int = 20) -> tuple[dict[str, Q.QuantLayer], float]:
    """Codes for real-valued weights (e.g. the float weights of straight-through training)
    with total :func:`layer_bytes` <= ``budget``, changing as little as possible.

    Each weight takes the centroid minimising ``F_i (v_i - c)^2 + mu * len(c)``, where
    ``len(c)`` is the Huffman code length (bits) of centroid ``c`` under the nearest
    assignment: ``mu = 0`` is nearest rounding, and a larger ``mu`` moves the weights that
    sit nearest a midpoint to the neighbour with the shorter code -- the smallest loss per
    byte saved (entropy-constrained quantization). ``mu`` is found by bisection, one value
    for all layers (``F`` makes their losses comparable). Zeros (``keep`` False) stay zero.
    Returns the layers and ``mu`` (0.0 when nearest rounding already fits).
    """
    keys = list(values)
    prep = {}
    for k in keys:
        cb = np.asarray(codebooks[k], dtype=np.float64)
        order = np.argsort(cb, kind="stable")
        v = np.asarray(values[k], dtype=np.float64).ravel()
        kp = np.asarray(keep[k]).ravel().astype(bool)
        imp = np.asarray(importance[k], dtype=np.float64).ravel()[kp]
        imp = np.maximum(imp, 1e-12 * (imp.max() if imp.size else 1.0) + 1e-30)
        near = _assign(v[kp], cb[order], np.ones(kp.sum()), np.zeros(cb.size))
        hist = np.bincount(near, minlength=cb.size)
        lengths = code_lengths(hist).astype(np.float64)
        lengths[lengths == 0] = lengths.max() + 1 if lengths.max() > 0 else 1.0
        prep[k] = (cb, order, v, kp, imp, lengths)

    def build(mu: float) -> tuple[dict[str, Q.QuantLayer], int]:
        out, total = {}, 0
        for k in keys:
            cb, order, v, kp, imp, lengths = prep[k]
            idx = _assign(v[kp], cb[order], imp, mu * lengths)
            codes = np.zeros(v.size, dtype=np.int64)
            codes[kp] = order[idx] + 1
            b = (bits or {}).get(k) or max(1, int(np.ceil(np.log2(max(2, cb.size)))))
            shape = values[k].shape if hasattr(values[k], "shape") else (v.size,)
            q = Q.QuantLayer(k, tuple(shape), int(b), cb.astype(np.float32), codes)
            out[k] = q
            total += layer_bytes(codes, cb.size, gap_bits)
        return out, total

    layers, total = build(0.0)
    if total <= budget:
        return layers, 0.0
    lo, hi = 0.0, 1e-12
    while True:
        cand, t = build(hi)
        if t <= budget:
            break
        lo, hi = hi, hi * 10
        if hi > 1e12:
            raise ConfigError(f"byte budget {budget:,}: not reachable by re-assigning codes "
                              f"({t:,} B at the strongest setting)")
    best = cand
    for _ in range(iters):
        mid = (lo * hi) ** 0.5 if lo > 0 else hi / 10
        cand, t = build(mid)
        if t <= budget:
            hi, best = mid, cand
        else:
            lo = mid
    return best, hi


# ----------------------------------------------------------------------------- rounding

def round_sequential(model: nn.Module, dense: nn.Module, options: dict[str, list[Option]],
                     choice: dict[str, Option], budget: int, importance: dict, batches: Sequence[torch.Tensor],
                     gap_bits: int = 4, log: Callable | None = None,
                     progress: Callable | None = None) -> tuple[dict[str, Q.QuantLayer], dict[str, Option]]:
    """GPTQ-style rounding of every allocated layer to its option's codebook, in forward order,
    with sequential re-allocation; returns the layers (also written into ``model``) and the
    final choice.

    ``model`` holds the layers already rounded, so each layer's input statistics (its
    ``H = X X^T`` on ``batches``) come from the compressed layers before it and it absorbs
    their error (:func:`~squeezenet.compress.compensate.compensate_layer`); ``dense`` gives the
    weights and kept positions (its option's zeros stay zero). Compensated rounding moves
    weights across midpoints, so a layer's coded size differs from its option's by a few
    percent: after each layer the later layers are re-allocated (:func:`allocate`) within what
    is left of ``budget``, and the last layer steps down to a smaller option if it would
    overflow. The summed :func:`layer_bytes` ends within ``budget``. ``progress()`` is called
    after each layer.
    """
    from .compensate import compensate_layer, layer_hessian
    keys = list(choice)
    choice = dict(choice)

    def one(k: str, o: Option) -> Q.QuantLayer:
        w = dense.get_parameter(k).detach()
        q = realize(o, w, importance[k])
        mask = torch.from_numpy(q.codes.reshape(w.shape[0], -1) != 0)
        W = w.reshape(w.shape[0], -1).double() * mask
        cb = np.sort(q.codebook.astype(np.float64))
        H = layer_hessian(model, k, batches)
        _, codes = compensate_layer(W, H, codebook=cb)
        return Q.QuantLayer(k, q.shape, q.bits, cb.astype(np.float32), np.asarray(codes).reshape(-1).astype(np.int64))

    layers: dict[str, Q.QuantLayer] = {}
    spent = 0
    for i, k in enumerate(keys):
        o = choice[k]
        q = one(k, o)
        real = layer_bytes(q.codes, q.codebook.size, gap_bits)
        if i == len(keys) - 1:
            for _ in range(8):
                if spent + real <= budget:
                    break
                over = spent + real - budget
                smaller = [c for c in options[k] if c.bytes <= o.bytes - over]
                if not smaller:
                    break
                o = min(smaller, key=lambda c: c.distortion)
                q = one(k, o)
                real = layer_bytes(q.codes, q.codebook.size, gap_bits)
            choice[k] = o
        apply_layers(model, {k: q})
        layers[k] = q
        spent += real
        rest = keys[i + 1:]
        if rest and real != o.bytes:
            new = allocate({r: options[r] for r in rest}, budget - spent)
            choice.update(new)
        if log:
            log(f"  rounded {k}: {real:,} B ({real - o.bytes:+,} vs its option)")
        if progress:
            progress()
    return layers, choice
