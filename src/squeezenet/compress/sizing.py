"""Sizes of a compressed model: the fixed-width sizes of Table 2's rows, the encoded ``.sqz``
size of a pruning/quantization choice, the search that fits a size budget, and the refit that
shrinks a file which came out over it.

Bits are per layer everywhere (``{weight key: bits}``; a plain int means every layer).

>>> import torch
>>> from torch import nn
>>> m = nn.Sequential(nn.Linear(8, 4, bias=False))
>>> with torch.no_grad():
...     _ = m[0].weight.copy_(torch.eye(4, 8) * 3)    # 4 of 32 weights left
>>> sparse_sizes(m, gap_bits=4)                     # 4 entries x (32 + 4) bits, not 32 x 32
18
>>> kept_fraction(m, ["0.weight"])
0.125
"""
from __future__ import annotations

import copy
import math

import numpy as np
from torch import nn

from ..errors import ConfigError
from . import prune as P
from . import quantize as Q
from .report import bits_label
from ..io.sqz import SparseLayer, encode_sqz, sparse_entries, sqz_size, write_sqz

#: Fraction under --target-size that the size search aims for when retraining follows:
#: retraining moves the weights and so the code histogram (measured on CIFAR-10: the file
#: came out 2-3 % over the fit, 297 KB for a 290 KB fit, and the refit after the last stage,
#: pruning without retraining, cost 4.4 points).
TARGET_MARGIN = 0.04
#: ... and when only error-compensated pruning/quantization may follow (they shift the code
#: histogram too: SqueezeNet 1.1 fitted to 660,000 B encoded to ~665 KB, and the refit by
#: dropping weights after the last stage cost 4.8 points).
CALIBRATION_MARGIN = 0.015


def fit_margin(retrains: bool, calibrates: bool) -> float:
    """The margin under the size budget that the fit aims for, given the stages that follow.

    >>> fit_margin(True, True), fit_margin(False, True), fit_margin(False, False)
    (0.04, 0.015, 0.0)
    """
    return TARGET_MARGIN if retrains else CALIBRATION_MARGIN if calibrates else 0.0


def sparse_sizes(model: nn.Module, gap_bits: int, value_bits: int | dict = 32) -> int:
    """Bytes of a pruned model stored as (value, gap) entries with fillers, plus the rest
    dense: the fixed-width size before Huffman coding (the paper's pruning/quantization rows)."""
    sd = model.state_dict()
    keys = set(P.prunable(model))
    total = 0
    for k, v in sd.items():
        if k not in keys:
            total += v.numel() * 4
            continue
        b = value_bits[k] if isinstance(value_bits, dict) else value_bits
        flat = v.flatten().cpu().numpy()
        nz = np.flatnonzero(flat)
        d = np.diff(nz, prepend=-1) - 1
        entries = nz.size + int((d >> gap_bits).sum())
        dense_bits = flat.size * b
        sparse_bits = entries * (b + gap_bits)
        total += int(math.ceil(min(dense_bits, sparse_bits) / 8))
        if b < 32:
            total += (1 << b) * 4           # codebook
    return total


def kept_fraction(model: nn.Module, keys) -> float:
    """Fraction of non-zero weights over the layers ``keys``."""
    sd = model.state_dict()
    nz = sum(int((sd[k] != 0).sum()) for k in keys)
    return nz / sum(sd[k].numel() for k in keys)


def sqz_record(key: str, shape, codes: np.ndarray, codebook: np.ndarray, gap_bits: int,
               bits: int | None = None, bias_name: str | None = None, bias=None) -> SparseLayer:
    """The ``.sqz`` record of one quantized layer: QuantLayer ``codes`` (0 = a zero weight,
    ``j`` = centroid ``j - 1`` of ``codebook``) as sparse entries over the codebook ``[0] +
    codebook``."""
    codes = np.asarray(codes).ravel()
    nz = np.flatnonzero(codes)
    gaps, scodes = sparse_entries(nz, codes[nz], gap_bits, 0)
    cb = np.concatenate([[0.0], codebook]).astype(np.float32)
    return SparseLayer(key, tuple(shape), cb, scodes, gaps, gap_bits, 0, bias_name, bias, bits)


def sparse_layers(model: nn.Module, layers: dict[str, Q.QuantLayer], gap_bits: int) -> tuple[list, dict]:
    """The .sqz records of a quantized model (+ the dense rest)."""
    sd = model.state_dict()
    recs, used = [], set()
    for k, q in layers.items():
        bias_key = k[:-len("weight")] + "bias"
        recs.append(sqz_record(k, q.shape, q.codes, q.codebook, gap_bits, q.bits,
                               bias_key if bias_key in sd else None,
                               sd[bias_key].cpu().numpy() if bias_key in sd else None))
        used |= {k, bias_key}
    dense = {k: v.cpu().numpy() for k, v in sd.items() if k not in used}
    return recs, dense


def _sqz_args(model: nn.Module, layers: dict[str, Q.QuantLayer], gap_bits: int, metadata: dict | None):
    recs, dense = sparse_layers(model, layers, gap_bits)
    from ..models.data_config import data_config, file_metadata
    cfg = data_config(model)
    meta = file_metadata(cfg, getattr(model, "metadata", {}))   # the data config rides in the metadata
    meta.update(metadata or {})
    from ..models.data_config import data_config, file_metadata
    cfg = data_config(model)
    meta = file_metadata(cfg, getattr(model, "metadata", {}))   # the data config rides in the metadata
    meta.update(metadata or {})
    return (model.config, recs, dense), {"classes": list(cfg.classes) if cfg.classes is not None else None,
                                         "preprocess": cfg.preset, "metadata": meta}


def save_quantized(model: nn.Module, layers: dict[str, Q.QuantLayer], path, gap_bits: int = 4,
                   metadata: dict | None = None) -> dict:
    """Write a quantized (and pruned) model as ``.sqz``; returns :func:`~.sqz.write_sqz`'s info."""
    args, kw = _sqz_args(model, layers, gap_bits, metadata)
    return write_sqz(path, *args, **kw)


def quantized_size(model: nn.Module, layers: dict[str, Q.QuantLayer], gap_bits: int = 4,
                   metadata: dict | None = None) -> dict:
    """What :func:`save_quantized` would return (bytes and parts, exactly), writing nothing."""
    args, kw = _sqz_args(model, layers, gap_bits, metadata)
    return sqz_size(*args, **kw)


def quantized_bytes(model: nn.Module, layers: dict[str, Q.QuantLayer], gap_bits: int = 4,
                    metadata: dict | None = None) -> tuple[bytes, dict]:
    """The ``.sqz`` file :func:`save_quantized` would write, in memory, and its info."""
    args, kw = _sqz_args(model, layers, gap_bits, metadata)
    return encode_sqz(*args, **kw)


def estimate_bytes(model: nn.Module, fractions: dict[str, float], bits, gap_bits: int,
                   init: str = "linear") -> int:
    """Size of the .sqz that pruning to ``fractions`` and quantizing to ``bits`` would give
    (no retraining), exactly (:func:`quantized_size`: the writer's own rule, no file).

    The k-means is the pipeline's own: fewer Lloyd iterations leave the centroids near their
    linear init, which skews the code histogram and under-estimates the Huffman size
    (measured: 658 KB estimated vs 730 KB encoded on SqueezeNet 1.1 at 6 bits).
    """
    m = copy.deepcopy(model)
    P.apply_masks(m, P.magnitude_masks(m, fractions))
    layers = Q.quantize_model(m, bits, init)
    return quantized_size(m, layers, gap_bits)["bytes"]


def fit_target(model: nn.Module, base: dict[str, float], bits, gap_bits: int, target: int,
               init: str = "linear", log=print) -> tuple[dict[str, float], float, int]:
    """Largest scale ``s`` (kept fractions ``min(1, s * base)``) whose .sqz fits ``target``.

    Returns the fractions, the scale and the estimated size.
    """
    def fr(s):
        return {k: min(1.0, max(1e-3, s * f)) for k, f in base.items()}
    label = bits_label(bits) if isinstance(bits, dict) else bits
    lo, hi = 0.0, 1.0 / min(base.values())
    size_hi = estimate_bytes(model, fr(hi), bits, gap_bits, init)
    if size_hi <= target:
        return fr(hi), hi, size_hi
    best = None
    for _ in range(9):
        mid = (lo + hi) / 2
        size = estimate_bytes(model, fr(mid), bits, gap_bits, init)
        if size <= target:
            lo, best = mid, size
        else:
            hi = mid
    if best is None:
        raise ConfigError(f"--target-size {target}: even keeping almost nothing at {label} bits "
                          f"does not fit; use fewer --bits or a larger target")
    log(f"  target {target:,} B at {label} bits: scale {lo:.3f} -> estimated {best:,} B")
    return fr(lo), lo, best


def plain_at_size(model: nn.Module, base: dict[str, float], bits: int, target: int, gap_bits: int = 4):
    """Deep Compression without retraining at a byte budget: ``base``'s kept fractions scaled
    by :func:`fit_target` to fit ``target``, magnitude pruning, k-means at ``bits`` for every
    prunable layer, Huffman-coded into a ``.sqz`` and read back (the file's bytes, not the in-memory
    copy, is what a user gets). Returns ``(loaded model, bytes, kept fraction)``; a
    :class:`~squeezenet.errors.ConfigError` when nothing at ``bits`` fits.
    """
    from ..io.sqz import load_sqz
    per_layer = {k: bits for k in base}
    fractions, _, _ = fit_target(model, base, per_layer, gap_bits, target, log=lambda *a: None)
    m = copy.deepcopy(model)
    P.apply_masks(m, P.magnitude_masks(m, fractions))
    layers = Q.quantize_model(m, per_layer)
    data, info = quantized_bytes(m, layers, gap_bits)
    loaded, size = load_sqz("<plain_at_size>.sqz", data), info["bytes"]
    return loaded, size, kept_fraction(m, list(base))


def prune_more(layers: dict[str, Q.QuantLayer], ratio: float) -> dict[str, Q.QuantLayer]:
    """Zero the smallest-magnitude shared weights so each layer keeps about ``ratio`` of its
    non-zeros (a little less, since the header does not shrink): the refit used when the
    final ``.sqz`` exceeds ``--target-size``. Codebooks are unchanged.

    >>> q = Q.QuantLayer("w", (4,), 2, np.array([-1., .5, 2.], np.float32), np.array([1, 2, 3, 2]))
    >>> prune_more({"w": q}, 0.5)["w"].codes.tolist()
    [1, 0, 3, 0]
    """
    out = {}
    for k, q in layers.items():
        nz = np.flatnonzero(q.codes)
        keep = math.ceil(nz.size * max(0.05, min(1.0, ratio - 0.005)))
        if keep >= nz.size:
            out[k] = q
            continue
        mag = np.abs(q.weight().ravel()[nz])
        drop = nz[np.argsort(mag, kind="stable")[:nz.size - keep]]
        codes = q.codes.copy()
        codes[drop] = 0
        out[k] = Q.QuantLayer(k, q.shape, q.bits, q.codebook, codes)
    return out
