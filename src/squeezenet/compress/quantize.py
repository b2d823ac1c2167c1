"""Trained quantization (Deep Compression stage 2): per-layer k-means weight sharing.

Each layer's *non-zero* weights are clustered into ``2**bits`` centroids (1-D k-means,
vectorised Lloyd iterations over the sorted values); pruned zeros are not a cluster and stay
exactly zero. Codes are stored as ``0`` for a zero weight and ``1..K`` for centroid ``k-1``.

Centroid fine-tuning: :func:`share_weights` turns each layer's weight into
``cat([0], centroids)[codes]``, so autograd's backward of the gather *is* the paper's rule:
each centroid's gradient is the sum of the gradients of the weights in its cluster.

>>> import numpy as np
>>> cb, codes = kmeans_1d(np.array([-1.0, -0.9, -0.1, 1.0, 1.1]), 2)
>>> np.round(cb, 2).tolist(), codes.tolist()
([-0.67, 1.05], [0, 0, 0, 1, 1])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

INITS = ("linear", "density", "random")


def kmeans_1d(x: np.ndarray, k: int, init: str = "linear", iters: int = 300,
              seed: int = 0, weights: np.ndarray | None = None,
              order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means: (centroids (k,), cluster of each value). Vectorised Lloyd iterations.

    ``init``: ``linear`` (evenly spaced over [min, max], the paper's best), ``density``
    (evenly spaced over the CDF) or ``random`` (Forgy: k distinct values at random).
    ``weights`` (>= 0, one per value) makes it weighted k-means: each centroid is the
    weighted mean of its cluster, i.e. ``sum(weights * (x - c)**2)`` is minimised (with a
    per-weight loss curvature this is Hessian-weighted k-means, Choi et al. 2017).
    ``order``: ``np.argsort(x, kind="stable")`` when the caller has it (several ``k`` of one
    ``x``: the sort is most of the time on large layers).
    """
    if init not in INITS:
        raise ConfigError(f"k-means init {init!r}: use one of {', '.join(INITS)}")
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        return np.zeros(k), np.zeros(0, dtype=np.int64)
    order = np.argsort(x, kind="stable") if order is None else np.asarray(order)
    xs = x[order]
    if weights is None:
        ws = np.ones_like(xs)
    else:
        ws = np.asarray(weights, dtype=np.float64).ravel()[order]
        if ws.shape != xs.shape or not np.all(np.isfinite(ws)) or ws.min() < 0:
            raise ConfigError("k-means weights must be finite, >= 0 and one per value")
        ws = ws + 1e-12 * (ws.max() + 1e-30)   # an all-zero cluster still has a mean
    if init == "linear":
        c = np.linspace(xs[0], xs[-1], k)
    elif init == "density":
        c = np.quantile(xs, (np.arange(k) + 0.5) / k)
    else:
        rng = np.random.default_rng(seed)
        c = np.sort(rng.choice(xs, size=k, replace=xs.size < k))
    csum = np.concatenate([[0.0], np.cumsum(xs * ws)])
    wsum = np.concatenate([[0.0], np.cumsum(ws)])
    for _ in range(iters):
        c = np.sort(c)
        # sorted data: cluster j holds xs[b[j]:b[j+1]], boundaries at centroid midpoints
        b = np.concatenate([[0], np.searchsorted(xs, (c[1:] + c[:-1]) / 2), [xs.size]])
        n = np.diff(b)
        s = csum[b[1:]] - csum[b[:-1]]
        m = wsum[b[1:]] - wsum[b[:-1]]
        new = np.where(n > 0, s / np.where(n > 0, m, 1.0), c)   # empty clusters keep their place
        # stop once no centroid moves by more than 1e-6 of the value range
        if np.abs(new - c).max() <= 1e-6 * (xs[-1] - xs[0] + 1e-30):
            c = new
            break
        c = new
    c = np.sort(c)
    b = np.searchsorted(xs, (c[1:] + c[:-1]) / 2)
    labels_sorted = np.cumsum(np.bincount(b, minlength=xs.size + 1)[:xs.size])
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return c, labels


@dataclass
class QuantLayer:
    """A weight-shared layer: ``weight.flat[i] = ([0] + codebook)[codes[i]]``."""

    key: str
    shape: tuple
    bits: int
    codebook: np.ndarray     # float32 (K,) centroids of the non-zero weights
    codes: np.ndarray        # int (numel,) 0 = zero weight, j = codebook[j - 1]

    def weight(self) -> np.ndarray:
        table = np.concatenate([[0.0], self.codebook]).astype(np.float32)
        return table[self.codes].reshape(self.shape)


@torch.no_grad()
def quantize_model(model: nn.Module, bits: int | dict[str, int], init: str = "linear",
                   keys: list[str] | None = None, iters: int = 300) -> dict[str, QuantLayer]:
    """Cluster every conv/linear weight in place; returns the per-layer codebooks and codes."""
    from ..models.utils import prunable
    keys = keys or list(prunable(model))
    out = {}
    for k in keys:
        b = bits[k] if isinstance(bits, dict) else bits
        if not 1 <= int(b) <= 16:
            raise ConfigError(f"bits {b} for {k}: must be in 1..16")
        p = model.get_parameter(k)
        w = p.detach().cpu().numpy().ravel().astype(np.float64)
        nz = np.flatnonzero(w)
        K = 1 << int(b)
        if nz.size <= K:   # fewer weights than centroids: each value is its own centroid
            cb = np.unique(w[nz]) if nz.size else np.zeros(1)
            lab = np.searchsorted(cb, w[nz])
        else:
            cb, lab = kmeans_1d(w[nz], K, init, iters)
        codes = np.zeros(w.size, dtype=np.int64)
        codes[nz] = lab + 1
        q = QuantLayer(k, tuple(p.shape), int(b), cb.astype(np.float32), codes)
        p.copy_(torch.from_numpy(q.weight()).to(p.device, p.dtype))
        out[k] = q
    return out


@torch.no_grad()
def load_layers(model: nn.Module, layers: dict[str, QuantLayer]) -> None:
    """Write quantized layers' weights (codebook[codes]) into ``model``."""
    for k, q in layers.items():
        p = model.get_parameter(k)
        p.copy_(torch.from_numpy(q.weight()).to(p.device, p.dtype))


class _SharedWeight:
    """Forward pre-hook: ``module.weight = cat([0], module.centroids)[module.codes]``."""

    def __call__(self, module, inputs):
        table = torch.cat([module.centroids.new_zeros(1), module.centroids])
        module.weight = table[module.codes]


def share_weights(model: nn.Module, layers: dict[str, QuantLayer],
                  per_layer_scale: bool = False) -> list[nn.Parameter]:
    """Make each layer's centroids the trainable parameters (weights become gathers).

    Returns the centroid parameters; the layer's ``weight`` parameter is removed until
    :func:`unshare_weights`. Zeros (code 0) are a constant, not a parameter.
    ``per_layer_scale`` multiplies a layer's centroid gradients (still member sums) by
    ``K / non-zero weights``: one global learning rate then suits a layer with 30 members
    per centroid and one with 8,000 (the summed gradient of a big layer diverges otherwise).
    """
    params = []
    for k, q in layers.items():
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        dev = mod.weight.device
        del mod._parameters["weight"]
        mod.centroids = nn.Parameter(torch.from_numpy(q.codebook.copy()).to(dev))
        if per_layer_scale:
            scale = q.codebook.size / max(1, int(np.count_nonzero(q.codes)))
            mod.centroids.register_hook(lambda g, s=scale: g * s)
        mod.register_buffer("codes", torch.from_numpy(q.codes.reshape(q.shape)).to(dev), persistent=False)
        mod._share_hook = mod.register_forward_pre_hook(_SharedWeight())
        _SharedWeight()(mod, None)
        params.append(mod.centroids)
    return params


@torch.no_grad()
def unshare_weights(model: nn.Module, layers: dict[str, QuantLayer]) -> dict[str, QuantLayer]:
    """Undo :func:`share_weights`: write the tuned centroids back as plain weights."""
    out = {}
    for k, q in layers.items():
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        cb = mod.centroids.detach().cpu().numpy().astype(np.float32)
        dev = mod.centroids.device
        mod._share_hook.remove()
        del mod._share_hook
        del mod._parameters["centroids"]
        del mod._buffers["codes"]
        nq = QuantLayer(k, q.shape, q.bits, cb, q.codes)
        if "weight" in mod.__dict__:
            del mod.__dict__["weight"]
        mod.weight = nn.Parameter(torch.from_numpy(nq.weight()).to(dev))
        out[k] = nq
    return out


def tune_centroids(model: nn.Module, layers: dict[str, QuantLayer], data, steps: int,
                   lr: float = 1e-4, batch_size: int = 64, loss_fn=None,
                   seed: int = 0, progress: bool = False, device: str | None = None,
                   bf16: bool = False) -> dict[str, QuantLayer]:
    """Fine-tune the shared centroids only (everything else frozen); returns the new layers.
    ``progress`` shows a tqdm bar of the steps on stderr.

    Each centroid's gradient is the sum of its members' gradients (autograd through the
    gather, see :func:`share_weights`). A plain SGD step on that sum is badly scaled: a
    centroid of a big layer has ~8,000 members and one of a small layer ~30, so one learning
    rate either diverges on the first or does nothing on the second. We therefore use Adam,
    whose per-centroid normalisation makes each step about ``lr`` in weight units whatever
    the member count, so ``lr`` is an absolute bound on how far a centroid moves per step.
    Typical call: ``layers = tune_centroids(model, layers, train_ds, steps=100, lr=1e-4)``.

    The loop is :class:`squeezenet.train.Trainer`'s (constant ``lr``, the model in training
    mode, dropout drawing on the random stream the caller left), on ``device`` (default: where
    the model is; it comes back there); under torchrun each process takes its share of every
    batch.
    """
    from ..data import make_loader
    from ..train import TrainConfig, Trainer
    if steps <= 0 or data is None:
        return layers
    dev0 = next(model.parameters()).device
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:     # biases and non-quantized layers stay as they are
        p.requires_grad_(False)
    params = share_weights(model, layers)
    try:
        loader = make_loader(data, batch_size, shuffle=True, seed=seed)

        def stream(epoch):     # the loader's batches, reshuffled each pass, for ``steps`` steps
            while True:
                yield from loader

        cfg = TrainConfig(epochs=1, batch_size=batch_size, accum_steps=1, lr=lr, schedule="constant",
                          max_steps=steps, seed=seed, dropout=None, progress=progress, bf16=bf16,
                          device=device or str(dev0))
        Trainer(model, cfg, loss_fn=loss_fn or _cross_entropy, optimizer=torch.optim.Adam(params, lr=lr),
                batches=stream, batches_per_epoch=steps, log_epochs=False, reseed=False,
                progress_desc="centroids").fit()
    finally:
        layers = unshare_weights(model, layers)
        model.to(dev0)
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
    return layers


def _cross_entropy(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)
