"""Deep Compression end to end: prune -> retrain -> quantize -> retrain centroids -> Huffman.

:func:`compress_model` runs the stages on a trained SqueezeNet, evaluates after each, writes
the ``.sqz`` and returns a Table-2 style report (see :mod:`squeezenet.compress.report`).
Retraining uses ``squeezenet.train.Trainer`` when available (callbacks ``on_step_end`` keep
the pruning masks), else a minimal SGD loop with the same callback protocol. With unlabeled
data, retraining distills the uncompressed model (no labels needed).

>>> from squeezenet.compress.pipeline import CompressConfig   # doctest: +SKIP
>>> report = compress_model(model, train, val_loader, CompressConfig(prune="paper", bits=6),
...                         "m.sqz")                            # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from . import prune as P
from . import quantize as Q
from .compensate import calibration_batches, compensate_model
from .sqz import SparseLayer, sparse_entries, write_sqz

#: Fraction under --target-size that the size search aims for when retraining follows.
TARGET_MARGIN = 0.04
#: ... and when only error-compensated pruning/quantization may follow (they shift the code
#: histogram too: SqueezeNet 1.1 fitted to 660,000 B encoded to ~665 KB, and the refit by
#: dropping weights after the last stage cost 4.8 points).
CALIBRATION_MARGIN = 0.015

#: torchvision AlexNet's parameter count (the paper's 240 MB row).
ALEXNET_PARAMS = 61_100_840
ALEXNET_BYTES = ALEXNET_PARAMS * 4


@dataclass
class CompressConfig:
    """Options of the Deep Compression pipeline (one commented field per line)."""

    prune: Any = "paper"            # paper | uniform:F | auto | {key: kept fraction}
    bits: Any = None                # bits per layer (int or {key: bits}); 2**bits centroids;
                                    # None: 6, or the best of 5/6/7 for a target size
    init: str = "linear"            # k-means init: linear | density | random
    gap_bits: int = 4               # width of a relative sparse-position gap (fillers beyond)
    target_size: int | None = None  # bytes: choose sparsity scale and bits to fit
    finetune_epochs: float = 1.0    # retraining epochs after pruning and after quantization
    max_steps: int | None = None    # cap on optimizer steps per retraining stage
    lr: float = 1e-3                # retraining learning rate
    optimizer: str = "sgd"          # retraining optimizer: sgd (momentum 0.9, the paper's) | adamw
    centroid_lr: float | None = None  # Adam step of centroid fine-tuning (default lr)
    batch_size: int = 64            # retraining batch size
    weight_decay: float = 0.0       # retraining weight decay (masks keep pruned weights at 0)
    temperature: float = 2.0        # distillation temperature with unlabeled data
    max_drop: float = 0.01          # auto pruning: allowed top-1 drop per layer
    svd_energy: float | None = None  # also report an SVD row keeping this energy
    seed: int = 0                   # seed for data order and k-means random init
    calibration_images: int = 256   # images (labels unused) for error-compensated quantization
                                    # (GPTQ-style, a scored alternative to plain k-means); 0 = off


# ----------------------------------------------------------------------------- training

def distill_loss(teacher: nn.Module, temperature: float = 2.0) -> Callable:
    """``loss_fn(model, images, targets)``: KL to the teacher's softened outputs (labels unused)."""
    teacher.eval()

    def loss_fn(model, images, targets):
        with torch.no_grad():
            t = teacher(images)
        s = model(images)
        T = temperature
        return F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), log_target=True,
                        reduction="batchmean") * T * T
    return loss_fn


def retrain(model: nn.Module, train_data, cfg: CompressConfig, callbacks=(), loss_fn=None,
            lr: float | None = None) -> list[dict]:
    """One retraining stage with ``squeezenet.train.Trainer`` (``cfg.optimizer``, poly lr).

    Only parameters with ``requires_grad`` move (the centroid stage freezes the rest).
    """
    from ..train import TrainConfig, Trainer
    if train_data is None or (cfg.finetune_epochs <= 0 and not cfg.max_steps):
        return []
    steps = _stage_steps(cfg, train_data)
    tc = TrainConfig(epochs=max(1, math.ceil(cfg.finetune_epochs)), batch_size=cfg.batch_size,
                     accum_steps=1, lr=cfg.lr if lr is None else lr, momentum=0.9, optimizer=cfg.optimizer,
                     weight_decay=cfg.weight_decay, dropout=None, seed=cfg.seed, max_steps=steps,
                     progress=False, device="cpu")
    out = Trainer(model, tc, train_data, callbacks=list(callbacks), loss_fn=loss_fn).fit()
    model.eval()
    return out


def _stage_steps(cfg: CompressConfig, data) -> int:
    """Optimizer steps of one retraining stage: ``max_steps``, else ``finetune_epochs`` epochs."""
    if cfg.max_steps:
        return int(cfg.max_steps)
    return max(1, math.ceil(cfg.finetune_epochs * math.ceil(len(data) / cfg.batch_size)))


# ----------------------------------------------------------------------------- sizes

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


def sparse_layers(model: nn.Module, layers: dict[str, Q.QuantLayer], gap_bits: int) -> tuple[list, dict]:
    """The .sqz records of a quantized model (+ the dense rest)."""
    sd = model.state_dict()
    recs, used = [], set()
    for k, q in layers.items():
        bias_key = k[:-len("weight")] + "bias"
        nz = np.flatnonzero(q.codes)
        gaps, codes = sparse_entries(nz, q.codes[nz], gap_bits, 0)
        cb = np.concatenate([[0.0], q.codebook]).astype(np.float32)
        recs.append(SparseLayer(k, q.shape, cb, codes, gaps, gap_bits, 0,
                                bias_key if bias_key in sd else None,
                                sd[bias_key].cpu().numpy() if bias_key in sd else None, q.bits))
        used |= {k, bias_key}
    dense = {k: v.cpu().numpy() for k, v in sd.items() if k not in used}
    return recs, dense


def save_quantized(model: nn.Module, layers: dict[str, Q.QuantLayer], path, gap_bits: int = 4,
                   metadata: dict | None = None) -> dict:
    """Write a quantized (and pruned) model as ``.sqz``."""
    recs, dense = sparse_layers(model, layers, gap_bits)
    meta = dict(getattr(model, "metadata", {}) or {})
    meta.update(metadata or {})
    return write_sqz(path, model.config, recs, dense, classes=getattr(model, "classes", None),
                     preprocess=getattr(model, "preprocess", None), metadata=meta)


def estimate_bytes(model: nn.Module, fractions: dict[str, float], bits, gap_bits: int,
                   init: str = "linear") -> int:
    """Size of the .sqz that pruning to ``fractions`` and quantizing to ``bits`` would give
    (no retraining; quick k-means), by actually encoding it."""
    m = copy.deepcopy(model)
    P.apply_masks(m, P.magnitude_masks(m, fractions))
    layers = _quantize_quick(m, bits, init)
    with tempfile.TemporaryDirectory() as d:
        return save_quantized(m, layers, Path(d) / "est.sqz", gap_bits)["bytes"]


def _quantize_quick(model, bits, init):
    # the same k-means as the pipeline's: fewer Lloyd iterations leave the centroids near
    # their linear init, which skews the code histogram and under-estimates the Huffman
    # size (measured: 658 KB estimated vs 730 KB encoded on SqueezeNet 1.1 at 6 bits)
    return Q.quantize_model(model, bits, init)


def fit_target(model: nn.Module, base: dict[str, float], bits, gap_bits: int, target: int,
               init: str = "linear", log=print) -> tuple[dict[str, float], float, int]:
    """Largest scale ``s`` (kept fractions ``min(1, s * base)``) whose .sqz fits ``target``."""
    def fr(s):
        return {k: min(1.0, max(1e-3, s * f)) for k, f in base.items()}
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
        raise ConfigError(f"--target-size {target}: even keeping almost nothing at {bits} bits "
                          f"does not fit; use fewer --bits or a larger target")
    log(f"  target {target:,} B at {_bits_label(bits) if isinstance(bits, dict) else bits} bits: "
        f"scale {lo:.3f} -> estimated {best:,} B")
    return fr(lo), lo, best


# ----------------------------------------------------------------------------- pipeline

def _row(stage, approach, bits, size, fp32, metrics, **extra):
    r = {"stage": stage, "approach": approach, "bits": bits, "bytes": int(size),
         "ratio_vs_fp32": fp32 / size, "ratio_vs_alexnet": ALEXNET_BYTES / size,
         "top1": metrics.get("top1") if metrics else None,
         "top5": metrics.get("top5") if metrics else None}
    r.update(extra)
    return r


def compress_model(model: nn.Module, train_data, val_loader, cfg: CompressConfig,
                   out_path: str | os.PathLike, unlabeled=None, score_loader=None,
                   log: Callable = print) -> dict:
    """Run the pipeline on ``model`` (modified in place); write ``out_path`` (.sqz).

    ``train_data``: labeled retraining data (or None); ``unlabeled``: data for distillation
    from the uncompressed model (used instead of labels when given); ``val_loader``: the
    evaluation data for every row; ``score_loader``: a small loader to choose bits for a
    target size (default ``val_loader``).
    """
    from ..evaluate import evaluate
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    model.eval()
    # A --batch-norm model is stored folded (BatchNorm into its convs: no BN tensors in the
    # file, and pruning/k-means see the effective weights) but retrained with its BatchNorm,
    # whose statistics then follow the pruned weights
    bn_model, keymap = None, {}
    if getattr(getattr(model, "config", None), "batch_norm", False):
        from ..models.fold import fold_batch_norm, folded_key_map
        bn_model = model
        model = fold_batch_norm(bn_model).eval()
        keymap = folded_key_map(bn_model, model)
        log("BatchNorm folded into the convolutions for storage")
    teacher = copy.deepcopy(model).eval()
    n_params = sum(p.numel() for p in model.parameters())
    fp32 = n_params * 4
    rows, timings = [], {}

    def ev(m):
        return evaluate(m, val_loader) if val_loader is not None else {}

    t = time.time()
    dense = ev(model)
    rows.append(_row("dense", "none", 32, fp32, fp32, dense))
    log(f"dense: {fp32:,} B top-1 {dense.get('top1', float('nan')):.4f}")
    timings["dense_eval"] = time.time() - t

    retrain_data, loss_fn = train_data, None
    if unlabeled is not None:
        retrain_data, loss_fn = unlabeled, distill_loss(teacher, cfg.temperature)

    sl = score_loader or val_loader
    retrains = retrain_data is not None and (cfg.finetune_epochs > 0 or bool(cfg.max_steps))
    calib = retrain_data if retrain_data is not None else train_data
    calibrates = cfg.calibration_images > 0 and calib is not None and sl is not None

    keys = list(P.prunable(model))
    bits = cfg.bits if isinstance(cfg.bits, dict) else {k: int(cfg.bits or 6) for k in keys}

    # 1. choose kept fractions
    t = time.time()
    if cfg.prune == "auto":
        base_top1 = evaluate(model, sl)["top1"]
        sens = P.sensitivity(model, lambda m: evaluate(m, sl)["top1"])
        fractions = P.choose_fractions(sens, cfg.max_drop)
        log(f"auto pruning (base top-1 {base_top1:.4f}, max drop {cfg.max_drop}): "
            f"{sum(fractions.values()) / len(fractions):.2f} mean kept")
    else:
        fractions = P.prune_fractions(model, cfg.prune)
    chosen_bits = None
    if cfg.target_size:
        cands = [5, 6, 7, 8] if cfg.bits is None else sorted(set(bits.values()))
        # retraining moves the weights and so the code histogram: the encoded file came out
        # 2-3 % over the fit (measured on CIFAR-10: 297 KB for a 290 KB fit), and the refit
        # after the last stage (pruning without retraining) cost 4.4 points. Fit with a margin.
        margin = TARGET_MARGIN if retrains else CALIBRATION_MARGIN if calibrates else 0.0
        fit_size = int(cfg.target_size * (1 - margin))
        best = None
        for b in cands:
            bb = dict(bits) if isinstance(cfg.bits, dict) else {k: b for k in keys}
            fr, s, est = fit_target(model, fractions, bb, cfg.gap_bits, fit_size, cfg.init, log)
            m = copy.deepcopy(model)
            P.apply_masks(m, P.magnitude_masks(m, fr))
            Q.quantize_model(m, bb, cfg.init)
            score = evaluate(m, sl)["top1"] if sl is not None else 0.0
            log(f"  {b} bits: kept {_kept(m, keys):.3f} of weights, quick top-1 {score:.4f}")
            if best is None or score > best[0]:
                best = (score, b, fr)
        _, chosen_bits, fractions = best
        if not isinstance(cfg.bits, dict):
            bits = {k: chosen_bits for k in keys}
    timings["choose"] = time.time() - t

    # 2. prune + retrain with masks. With calibration images, magnitude pruning and
    # error-compensated (OBS / SparseGPT-style) pruning at the same kept fractions are both
    # tried; the one scoring better on the score data before retraining goes on
    t = time.time()
    calib_batches = calibration_batches(calib, cfg.calibration_images, 32, cfg.seed) if calibrates else None
    prune_method = "magnitude"
    obs = None
    if calibrates:
        obs = copy.deepcopy(model)
        compensate_model(obs, calib_batches, keys, fractions=fractions)
    masks = P.magnitude_masks(model, fractions)
    P.apply_masks(model, masks)
    if obs is not None:
        s_mag, s_obs = evaluate(model, sl)["top1"], evaluate(obs, sl)["top1"]
        log(f"  pruned by magnitude: top-1 {s_mag:.4f}, with error compensation: {s_obs:.4f} on the score data")
        if s_obs > s_mag:
            prune_method = "error-compensated (OBS)"
            model.load_state_dict(obs.state_dict())
            sd = model.state_dict()
            masks = {k: sd[k] != 0 for k in keys}
        del obs
    unretrained = copy.deepcopy(model) if retrains else None
    if bn_model is not None:
        # the same zeros in the BatchNorm model (folding scales whole output channels)
        bn_masks = {keymap[k]: m for k, m in masks.items()}
        if prune_method != "magnitude":
            from ..models.fold import unfold_weights
            unfold_weights(bn_model, model)     # compensated weights, not only zeros
        P.apply_masks(bn_model, bn_masks)
        hist = retrain(bn_model, retrain_data, cfg, callbacks=[P.MaskCallback(bn_masks)], loss_fn=loss_fn)
        P.apply_masks(bn_model, bn_masks)
        if hist:
            model = fold_batch_norm(bn_model).eval()
    else:
        hist = retrain(model, retrain_data, cfg, callbacks=[P.MaskCallback(masks)], loss_fn=loss_fn)
    P.apply_masks(model, masks)
    pruned = ev(model)
    kept = _kept(model, keys)
    rows.append(_row("pruned", "network pruning", 32, sparse_sizes(model, cfg.gap_bits), fp32, pruned,
                     kept=kept, retrain=hist[-1] if hist else None, method=prune_method))
    log(f"pruned ({kept:.3f} kept): top-1 {pruned.get('top1', float('nan')):.4f}")
    timings["prune_retrain"] = time.time() - t

    # 3. quantize. Candidates: plain k-means, and k-means codebooks with error-compensated
    # assignment on calibration images (compensate.py: each layer's output error, not its
    # weight error, is minimised), each on the retrained and on the pruned-only weights
    # (retraining with few steps or on other images can leave weights that cluster worse).
    # The candidate scoring best on the score data (default: the evaluation data) goes on.
    t = time.time()
    methods = ["k-means"] + (["k-means + error compensation"] if calibrates else [])
    sources = [("retrained", model)]
    if hist and unretrained is not None and sl is not None:
        sources.append(("pruned-only", unretrained))
    cands = []
    for src_name, src in sources:
        for method in methods:
            m = copy.deepcopy(src)
            if method == "k-means":
                lay = Q.quantize_model(m, bits, cfg.init, keys)
            else:
                lay = compensate_model(m, calib_batches, keys, bits=bits, init=cfg.init)
            score = evaluate(m, sl)["top1"] if len(sources) * len(methods) > 1 else None
            cands.append((score, src_name, method, m, lay))
            if score is not None:
                log(f"  quantized {src_name} weights with {method}: top-1 {score:.4f} on the score data")
    _, src_name, method, chosen, layers = cands[0] if len(cands) == 1 else max(cands, key=lambda c: c[0])
    model.load_state_dict(chosen.state_dict())
    del unretrained, cands, chosen
    used_retrained = src_name == "retrained"
    quant = ev(model)
    rows.append(_row("quantized", "k-means weight sharing", _bits_label(bits),
                     sparse_sizes(model, cfg.gap_bits, bits), fp32, quant, from_retrained=used_retrained,
                     method=method))
    log(f"quantized: top-1 {quant.get('top1', float('nan')):.4f}")

    # 4. centroid fine-tuning (Adam on the summed member gradients); the better of
    # before/after on the evaluation data is kept, so this stage never makes things worse
    if retrains:
        steps = _stage_steps(cfg, retrain_data)
        before = {k: copy.deepcopy(q) for k, q in layers.items()}
        tuned_layers = Q.tune_centroids(model, layers, retrain_data, steps,
                                        cfg.centroid_lr or cfg.lr, cfg.batch_size, loss_fn, cfg.seed)
        tuned = ev(model)
        kept_tuned = not quant or tuned.get("top1", 0) >= quant.get("top1", 0)
        if kept_tuned:
            layers = tuned_layers
        else:
            layers = before
            _load_layers(model, layers)
        rows.append(_row("centroids tuned", "trained quantization", _bits_label(bits),
                         sparse_sizes(model, cfg.gap_bits, bits), fp32, tuned if kept_tuned else quant,
                         tuned_top1=tuned.get("top1"), kept_tuned=kept_tuned, steps=steps))
        log(f"centroids tuned: top-1 {tuned.get('top1', float('nan')):.4f}"
            + ("" if kept_tuned else " (worse: kept the untuned codebooks)"))
    timings["quantize"] = time.time() - t

    # 5. Huffman -> .sqz, reloaded from disk
    t = time.time()
    info = save_quantized(model, layers, out_path, cfg.gap_bits,
                          metadata={"compressed_from_params": n_params})
    refits = 0
    if cfg.target_size:   # the size was estimated before retraining: check the real file
        while info["bytes"] > cfg.target_size:
            if refits >= 12:
                Path(out_path).unlink(missing_ok=True)
                raise ConfigError(f"--target-size {cfg.target_size}: the encoded model is still "
                                  f"{info['bytes']:,} B after {refits} refits; use a larger target or fewer --bits")
            layers = prune_more(layers, cfg.target_size / info["bytes"])
            _load_layers(model, layers)
            refits += 1
            info = save_quantized(model, layers, out_path, cfg.gap_bits,
                                  metadata={"compressed_from_params": n_params})
            log(f"  refit {refits}: {info['bytes']:,} B (target {cfg.target_size:,})")
    from .sqz import load_sqz
    reloaded = load_sqz(out_path)
    final = ev(reloaded)
    rows.append(_row("huffman (.sqz)", "Deep Compression", _bits_label(bits), info["bytes"], fp32, final,
                     parts=info["parts"], refits=refits))
    log(f".sqz: {info['bytes']:,} B top-1 {final.get('top1', float('nan')):.4f}")
    timings["huffman"] = time.time() - t

    if cfg.svd_energy:
        t = time.time()
        from .svd import svd_factorize
        m = copy.deepcopy(teacher)
        info_svd = svd_factorize(m, energy=cfg.svd_energy)
        retrain(m, retrain_data, cfg, loss_fn=distill_loss(teacher, cfg.temperature) if unlabeled is not None else None)
        n_svd = sum(p.numel() for p in m.parameters())
        rows.insert(1, _row("svd", "SVD", 32, n_svd * 4, fp32, ev(m), layers=len(info_svd)))
        timings["svd"] = time.time() - t

    return {"rows": rows, "out": str(out_path), "params": n_params, "fp32_bytes": fp32,
            "alexnet_bytes": ALEXNET_BYTES, "fractions": fractions, "bits": bits,
            "config": {k: v for k, v in cfg.__dict__.items()}, "seconds": time.time() - t_start,
            "timings": timings}


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


@torch.no_grad()
def _load_layers(model: nn.Module, layers: dict[str, Q.QuantLayer]) -> None:
    """Write quantized layers' weights into ``model``."""
    for k, q in layers.items():
        p = model.get_parameter(k)
        p.copy_(torch.from_numpy(q.weight()).to(p.device, p.dtype))


def _kept(model, keys):
    sd = model.state_dict()
    nz = sum(int((sd[k] != 0).sum()) for k in keys)
    return nz / sum(sd[k].numel() for k in keys)


def _bits_label(bits: dict) -> str | int:
    vals = sorted(set(bits.values()))
    return vals[0] if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"
