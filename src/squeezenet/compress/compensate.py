"""Layer-wise pruning and weight sharing with error compensation (OBS family) from unlabeled
calibration images: SparseGPT-style pruning and GPTQ-style quantization to a k-means codebook.

Deep Compression recovers the accuracy lost to pruning and weight sharing by retraining on the
training set. A user without it (ImageNet SqueezeNet from the model zoo, say) still has images:
with a few hundred of them every layer can be compressed so that its *outputs* change as little
as possible, not its weights. For a layer with weight ``W`` (rows = output channels, columns =
the ``C*kh*kw`` inputs of a conv) and calibration inputs ``X`` the error ``||W X - Q X||^2`` is
a quadratic form in ``H = X X^T``; zeroing or rounding one weight is followed by the update of
the row's not-yet-processed weights that best cancels its effect (Optimal Brain Surgeon, applied
column by column with a Cholesky factor of ``H^-1`` as in GPTQ, Frantar et al. 2023, and
SparseGPT, Frantar & Alistarh 2023). Layers are processed in forward order and each layer's
``H`` is measured on the outputs of the already-compressed layers before it, so later layers
also absorb the error of earlier ones.

Pruning chooses which weights to drop by the OBS saliency ``w^2 / [H^-1]_ii^2`` within blocks of
columns (each block keeps the layer's kept fraction). Quantization keeps the layer's zeros, maps
every other weight to its nearest centroid of the layer's k-means codebook (``refit=True``
then re-solves the centroids by least squares on the same quadratic form, codes fixed; off by
default: it did not help on CIFAR-10). The pipeline tries this beside plain k-means and keeps
whichever scores better: calibration images from another domain can make it worse (measured:
SqueezeNet 1.1 calibrated on upscaled CIFAR-10 images gained nothing).

>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0); conv = nn.Conv2d(4, 8, 3)
>>> x = torch.randn(64, 4, 6, 6)
>>> H = conv_hessian(conv, x)
>>> H.shape
torch.Size([36, 36])
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import quantize as Q


class _Stop(Exception):
    pass


def _columns(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as columns (d, n): im2col for a conv, rows for a linear layer."""
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                        stride=module.stride)                    # (B, C*kh*kw, L)
        return cols.transpose(0, 1).reshape(cols.shape[1], -1)
    return x.reshape(-1, x.shape[-1]).t()


def conv_hessian(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``X X^T / n`` (float64) of the inputs ``x`` of a conv or linear layer."""
    c = _columns(module, x).double()
    return c @ c.t() / max(1, c.shape[1])


@torch.no_grad()
def layer_hessian(model: nn.Module, key: str, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """``X X^T / n`` of the inputs that the layer of weight ``key`` sees when ``model`` runs on
    ``batches`` (the forward stops at that layer)."""
    mod = model.get_submodule(key.rsplit(".", 1)[0])
    d = mod.weight[0].numel()
    acc = {"H": torch.zeros(d, d, dtype=torch.float64), "n": 0}

    def hook(m, inputs):
        c = _columns(m, inputs[0]).double()
        acc["H"] += c @ c.t()
        acc["n"] += c.shape[1]
        raise _Stop

    h = mod.register_forward_pre_hook(hook)
    try:
        model.eval()
        for xb in batches:
            try:
                model(xb)
            except _Stop:
                pass
    finally:
        h.remove()
    return acc["H"] / max(1, acc["n"])


def _hinv_chol(H: torch.Tensor, W: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of the damped ``H^-1`` (inputs never active get weight 0)."""
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(H.shape[0], dtype=H.dtype)
    for extra in (0.0, 0.1, 1.0, 10.0):
        try:
            L = torch.linalg.cholesky(H + extra * torch.mean(torch.diag(H)) * torch.eye(H.shape[0], dtype=H.dtype))
            Hinv = torch.cholesky_inverse(L)
            return torch.linalg.cholesky(Hinv, upper=True)
        except RuntimeError:
            continue
    raise RuntimeError("calibration Hessian is not positive definite even after damping")


def _nearest(w: torch.Tensor, cb: torch.Tensor, mids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.searchsorted(mids, w.contiguous())
    return cb[idx], idx


def compensate_layer(W: torch.Tensor, H: torch.Tensor, *, keep: float | None = None,
                     codebook: np.ndarray | None = None, damp: float = 0.01,
                     blocksize: int = 128, zero: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray | None]:
    """Prune (``keep``: kept fraction) or quantize (``codebook``: centroids; zeros of ``W`` stay
    zero) the 2-D weight ``W`` (rows x d) with OBS error compensation under ``H`` (d x d).

    ``zero`` (bool, like ``W``): when quantizing, the weights forced to zero (default
    ``W == 0``); lets ``W`` be a dense target, e.g. the least-squares weights for the inputs
    the compressed network produces.
    Returns the new weight (float64) and, when quantizing, the codes (0 = zero, j = centroid
    ``j - 1``), flattened like ``W``.
    """
    W = W.detach().double().clone()
    rows, d = W.shape
    Hc = _hinv_chol(H.double(), W, damp)     # also zeroes weights of never-active inputs
    dead = (torch.diag(H) == 0).unsqueeze(0)
    zero = (W == 0) if zero is None else (zero.bool() | dead)
    if codebook is not None:
        cb = torch.from_numpy(np.sort(np.asarray(codebook, dtype=np.float64)))
        mids = (cb[1:] + cb[:-1]) / 2
        codes = torch.zeros(rows, d, dtype=torch.int64)
    for i1 in range(0, d, blocksize):
        i2 = min(i1 + blocksize, d)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        E1 = torch.zeros_like(W1)
        Hc1 = Hc[i1:i2, i1:i2]
        if keep is not None:
            sal = W1 ** 2 / torch.diag(Hc1).reshape(1, -1) ** 2
            n_drop = int(round(sal.numel() * (1.0 - keep)))
            drop = torch.zeros_like(W1, dtype=torch.bool)
            if n_drop > 0:
                drop.view(-1)[torch.topk(sal.view(-1), n_drop, largest=False).indices] = True
        else:
            drop = zero[:, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            if codebook is not None:
                q, idx = _nearest(w, cb, mids)
                q = torch.where(drop[:, i], torch.zeros_like(q), q)
                codes[:, i1 + i] = torch.where(drop[:, i], torch.zeros_like(idx), idx + 1)
            else:
                q = torch.where(drop[:, i], torch.zeros_like(w), w)
            Q1[:, i] = q
            err = (w - q) / Hc1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hc1[i, i:].unsqueeze(0)
            E1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= E1 @ Hc[i1:i2, i2:]
    if codebook is None:
        return W, None
    return W, codes.reshape(-1).numpy()


def refit_codebook(W0: torch.Tensor, codes: np.ndarray, H: torch.Tensor, K: int,
                   chunk: int = 64) -> np.ndarray | None:
    """Centroids minimising ``tr((Q - W0) H (Q - W0)^T)`` for fixed codes (least squares);
    ``None`` if the system is singular."""
    W0 = W0.double()
    rows, d = W0.shape
    C = torch.from_numpy(codes.reshape(rows, d))
    A = torch.zeros(K, K, dtype=torch.float64)
    b = torch.zeros(K, dtype=torch.float64)
    H = H.double()
    for r0 in range(0, rows, chunk):
        c = C[r0:r0 + chunk]
        oh = F.one_hot(c, K + 1)[..., 1:].double()          # (r, d, K), zeros drop out
        HO = torch.einsum("de,rek->rdk", H, oh)
        A += torch.einsum("rdk,rdl->kl", oh, HO)
        b += torch.einsum("rd,rdk->k", W0[r0:r0 + chunk], HO)
    used = torch.diag(A) > 0
    if not bool(used.any()):
        return None
    A_u = A[used][:, used]
    A_u = A_u + 1e-9 * torch.mean(torch.diag(A_u)) * torch.eye(A_u.shape[0], dtype=A.dtype)
    try:
        sol = torch.linalg.solve(A_u, b[used])
    except RuntimeError:
        return None
    if not bool(torch.isfinite(sol).all()):
        return None
    out = torch.zeros(K, dtype=torch.float64)
    out[used] = sol
    return out.numpy()


def calibration_batches(data, n_images: int, batch_size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """``n_images`` images of ``data`` in batches: distinct images in a seeded random order; a
    dataset smaller than ``n_images`` is cycled (a training split's augmentation then gives new
    crops of the same images, so even a handful of photos calibrates). An unreadable image is
    left out and recorded on the dataset (one warning line naming it, counted in
    ``dataset.skipped``), as the data loaders do."""
    from ..data import base_dataset
    from ..errors import SqueezeNetError
    g = np.random.default_rng(seed)
    n = len(data)
    reps = -(-n_images // n)
    idx = np.concatenate([g.permutation(n) for _ in range(reps)])[:n_images]
    # an unreadable image comes back as a `Skipped` marker (not a tuple): leave it out, counted
    imgs, bad = [], []
    for i in idx:
        it = data[int(i)]
        if isinstance(it, (tuple, list)):
            imgs.append(it[0])
        elif hasattr(it, "path"):
            bad.append(it)
    if not imgs:
        where = getattr(data, "root", "the calibration data")
        more = f" ({len({b.path for b in bad})} unreadable)" if bad else ""
        raise SqueezeNetError(f"{where}: no readable calibration images{more}")
    owner = base_dataset(data)
    for b in bad:
        if hasattr(owner, "record_skipped"):
            owner.record_skipped(b.path, b.reason)
    return list(torch.stack(imgs).split(batch_size))


@torch.no_grad()
def compensate_model(model: nn.Module, data, keys: list[str], *, fractions: dict[str, float] | None = None,
                     bits: dict[str, int] | None = None, init: str = "linear", n_images: int = 256,
                     batch_size: int = 32, damp: float = 0.01, refit: bool = False, seed: int = 0,
                     log: Callable = lambda *a: None) -> dict[str, Q.QuantLayer] | None:
    """Prune (``fractions``) or quantize (``bits``) every layer of ``keys`` in forward order,
    in place, compensating each layer's output error on ``n_images`` images of ``data``
    (labels unused). Quantizing returns the :class:`QuantLayer` of each layer."""
    batches = data if isinstance(data, list) else calibration_batches(data, n_images, batch_size, seed)
    out = {}
    for k in keys:
        p = model.get_parameter(k)
        W0 = p.detach().reshape(p.shape[0], -1).double()
        H = layer_hessian(model, k, batches)
        if bits is None:
            W, _ = compensate_layer(W0, H, keep=float(fractions[k]), damp=damp)
        else:
            b = int(bits[k])
            nzv = W0.reshape(-1)[W0.reshape(-1) != 0].numpy()
            K = 1 << b
            if nzv.size <= K:   # fewer weights than centroids: exact
                qs = Q.quantize_model(model, {k: b}, init, [k])
                out[k] = qs[k]
                continue
            cb, _ = Q.kmeans_1d(nzv, K, init)
            W, codes = compensate_layer(W0, H, codebook=cb, damp=damp)
            cb = np.sort(cb)
            if refit:
                new = refit_codebook(W0, codes, H, K)
                if new is not None:
                    cb = np.where(np.bincount(codes, minlength=K + 1)[1:] > 0, new, cb)
            q = Q.QuantLayer(k, tuple(p.shape), b, cb.astype(np.float32), codes.astype(np.int64))
            out[k] = q
            W = torch.from_numpy(q.weight()).double()
        p.copy_(W.reshape(p.shape).to(p.dtype))
    return out if bits is not None else None
