"""Quantization-aware distillation: retrain a weight-shared (and pruned) model to reproduce the
dense model's outputs on unlabeled images, keeping the file size fixed.

Deep Compression retrains the shared centroids on the labeled training set. With a few thousand
photos of a few classes (ImageNet20: 20 of the 1000 classes), labels would teach the model to
forget the other classes; the dense model's *outputs* on the same photos carry information about
all 1000 (:func:`distill_loss`: KL at a temperature, or squared error of all logits). What moves:

* ``"centroids"``: the codebooks (codes fixed, so the ``.sqz`` size does not change at all: the
  Huffman streams depend only on the codes) and the biases (stored as float32, free);
* ``"ste"``: a float copy of every kept weight, used through its nearest centroid (straight-
  through estimator) so weights may move to another centroid; the codebooks and biases train
  too. Zeros stay zero. The codes -- and so the size -- can change a little; the returned layers
  hold the final nearest-centroid codes.

Everything runs in eval mode (SqueezeNet's dropout off; a model with BatchNorm should be folded
first), on whatever batches the caller yields (augmented crops at a lower resolution train
about 3x faster on a CPU: the network is fully convolutional).

>>> import torch, squeezenet
>>> from squeezenet.compress import quantize as Q
>>> t = squeezenet.create_model("squeezenet_small", num_classes=10).eval()
>>> s = squeezenet.create_model("squeezenet_small", num_classes=10); s.load_state_dict(t.state_dict())
<All keys matched successfully>
>>> layers = Q.quantize_model(s, 2)
>>> batches = [torch.randn(8, 3, 32, 32) for _ in range(3)]
>>> new, hist = distill_quantized(s, t, layers, batches, steps=3, lr=1e-3)
>>> len(hist), all(new[k].codes.tolist() == layers[k].codes.tolist() for k in layers)
(3, True)
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ConfigError
from . import quantize as Q

MODES = ("centroids", "ste")


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "kl",
                 temperature: float = 1.0) -> torch.Tensor:
    """Distillation loss per image (mean over the batch).

    ``kl``: ``T^2 KL(softmax(t/T) || softmax(s/T))`` (Hinton et al.); ``mse``: mean over
    images of ``0.5 * ||s - t||^2`` summed over all outputs (every class counts the same).

    >>> z = torch.randn(4, 10)
    >>> float(distill_loss(z, z)), float(distill_loss(z, z, "mse"))
    (0.0, 0.0)
    """
    if kind == "kl":
        T = float(temperature)
        return F.kl_div(F.log_softmax(student / T, 1), F.log_softmax(teacher / T, 1), log_target=True,
                        reduction="batchmean") * T * T
    if kind == "mse":
        return 0.5 * (student - teacher).pow(2).sum(1).mean()
    raise ConfigError(f"distillation loss {kind!r}: use kl or mse")


class _SteWeight:
    """Forward pre-hook: ``weight = latent + (nearest_centroid(latent) - latent).detach()``,
    with the centroids trainable (their gradient is the sum over their members) and pruned
    weights held at zero."""

    def __call__(self, module, inputs):
        lat = module.latent
        cb = module.centroids
        srt, order = torch.sort(cb.detach())
        mids = (srt[1:] + srt[:-1]) / 2
        idx = order[torch.searchsorted(mids, lat.detach().reshape(-1).contiguous())].reshape(lat.shape)
        q = cb[idx]
        w = lat + (q - lat).detach() + (q - q.detach())     # value q; grads to latent and cb
        module.weight = w * module.keep


def _attach_ste(model: nn.Module, layers: dict[str, Q.QuantLayer]) -> list[nn.Parameter]:
    params = []
    for k, q in layers.items():
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        dev = mod.weight.device
        lat = torch.from_numpy(q.weight()).to(dev)
        del mod._parameters["weight"]
        mod.latent = nn.Parameter(lat)
        mod.centroids = nn.Parameter(torch.from_numpy(q.codebook.copy()).to(dev))
        mod.register_buffer("keep", torch.from_numpy(q.codes.reshape(q.shape) != 0).to(dev, lat.dtype),
                            persistent=False)
        mod._ste_hook = mod.register_forward_pre_hook(_SteWeight())
        params += [mod.latent, mod.centroids]
    return params


@torch.no_grad()
def _detach_ste(model: nn.Module, layers: dict[str, Q.QuantLayer], max_bytes: int | None = None,
                importance: dict | None = None, gap_bits: int = 4) -> dict[str, Q.QuantLayer]:
    from .mixed import assign_within_budget
    lat, cbs, keeps, devs = {}, {}, {}, {}
    for k, q in layers.items():
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        cbs[k] = mod.centroids.detach().cpu().numpy().astype(np.float64)
        lat[k] = mod.latent.detach().cpu().numpy().astype(np.float64)
        keeps[k] = mod.keep.detach().cpu().numpy() != 0
        devs[k] = mod.latent.device
        mod._ste_hook.remove()
        del mod._ste_hook
        del mod._parameters["latent"], mod._parameters["centroids"], mod._buffers["keep"]
    imp = {k: (importance[k].detach().cpu().numpy() if isinstance(importance[k], torch.Tensor) else importance[k])
           if importance is not None else np.ones(lat[k].size) for k in layers}
    out, _ = assign_within_budget(lat, cbs, keeps, imp, max_bytes if max_bytes is not None else 1 << 62,
                                  {k: q.bits for k, q in layers.items()}, gap_bits)
    for k, nq in out.items():
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        if "weight" in mod.__dict__:
            del mod.__dict__["weight"]
        mod.weight = nn.Parameter(torch.from_numpy(nq.weight()).to(devs[k]))
    return out


def distill_quantized(model: nn.Module, teacher: nn.Module | None, layers: dict[str, Q.QuantLayer],
                      batches: Iterable, steps: int, lr: float = 1e-4, mode: str = "centroids",
                      loss: str = "kl", temperature: float = 1.0, train_bias: bool = True,
                      frozen_bias: Iterable[str] = (), latent_lr: float | None = None,
                      max_bytes: int | None = None, importance: dict | None = None,
                      log: Callable | None = None, log_every: int = 50, device: str | None = None,
                      bf16: bool = False, progress: bool = False) -> tuple[dict[str, Q.QuantLayer], list[float]]:
    """Distill ``teacher`` into the quantized ``model`` for ``steps`` Adam steps (cosine-decayed
    ``lr``); returns the new layers (also written into ``model``) and the loss per step.

    ``batches`` yields image tensors, or ``(images, teacher_logits)`` pairs (precomputed
    teacher outputs; ``teacher`` may then be None); it is cycled if shorter than ``steps``.
    ``mode``: ``centroids`` (codes fixed; size unchanged) or ``ste`` (weights may change
    centroid). ``train_bias``: biases train too, except those named in ``frozen_bias``.
    ``latent_lr``: the STE weights' learning rate (default ``lr``).
    ``max_bytes`` (``ste``): the summed :func:`~squeezenet.compress.mixed.layer_bytes` the
    final codes must fit; weights crossing midpoints during training shift the code histogram
    (measured on SqueezeNet 1.1 at 560 KB: -133 to +6 B), and the final assignment then moves
    the weights nearest a midpoint toward shorter codes, weighted by ``importance`` (per-weight
    curvature, e.g. :func:`~squeezenet.compress.mixed.fisher_diagonal`), until it fits
    (:func:`~squeezenet.compress.mixed.assign_within_budget`).

    The loop is :class:`squeezenet.train.Trainer`'s (eval mode, a ``batches`` stream), on
    ``device`` (default: where the model is; the model, and the teacher, come back where they
    were), with ``bf16`` autocast if asked; under torchrun each process takes its share of
    every batch and DDP averages the gradients.
    ``progress``: a bar on stderr, every step, with the running loss and the time left (``log``
    then hears only the first and last step).
    """
    if mode not in MODES:
        raise ConfigError(f"distillation mode {mode!r}: use one of {', '.join(MODES)}")
    if steps <= 0:
        return layers, []
    frozen_bias = set(frozen_bias)
    req = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    biases = []
    if train_bias:
        for k in layers:
            bk = k[:-len("weight")] + "bias"
            if bk in req and bk not in frozen_bias:
                b = model.get_parameter(bk)
                b.requires_grad_(True)
                biases.append(b)
    if mode == "centroids":
        main = Q.share_weights(model, layers)
        groups = [{"params": main}]
    else:
        main = _attach_ste(model, layers)
        lat = [p for i, p in enumerate(main) if i % 2 == 0]
        cbs = [p for i, p in enumerate(main) if i % 2 == 1]
        groups = [{"params": lat, "lr": latent_lr or lr}, {"params": cbs}]
    if biases:
        groups.append({"params": biases})
    for g in groups:    # the cosine schedule scales each group's own rate
        g["lr_mult"] = g.get("lr", lr) / lr
    opt = torch.optim.Adam(groups, lr=lr)
    hist: list[float] = []
    if teacher is not None:
        teacher.eval()
    dev0 = next(model.parameters()).device

    def loss_fn(net, x, t):
        if t is None:
            with torch.no_grad():
                t = teacher(x)
        s = net(x)
        return distill_loss(s, t.to(s.dtype), loss, temperature)

    def pairs(epoch):
        for item in _cycle(batches):
            if isinstance(item, (tuple, list)):
                yield item[0], item[1]
            else:
                yield item, None

    class _Log:
        def on_step_end(self, trainer):
            hist.append(trainer.last_loss)
            step = trainer.step - 1
            if log and (step == 0 or step == steps - 1 or (not progress and step % log_every == 0)):
                log(f"  distill step {step + 1}/{steps}: loss {np.mean(hist[-log_every:]):.4f}")

    from ..train import TrainConfig, Trainer
    cfg = TrainConfig(epochs=1, batch_size=1, accum_steps=1, lr=lr, schedule="cosine", max_steps=steps,
                      dropout=None, progress=progress, bf16=bf16, device=device or str(dev0))
    try:
        if teacher is not None and device is not None:
            teacher.to(Trainer.pick_device(device))
        Trainer(model, cfg, loss_fn=loss_fn, optimizer=opt, batches=pairs, batches_per_epoch=steps,
                callbacks=[_Log()], log_epochs=False, reseed=False, train_mode=False,
                progress_desc="distill").fit()
    finally:
        new = (Q.unshare_weights(model, layers) if mode == "centroids"
               else _detach_ste(model, layers, max_bytes, importance))
        model.to(dev0)
        if teacher is not None and device is not None:
            teacher.to(dev0)
        for n, p in model.named_parameters():
            p.requires_grad_(req.get(n, True))
        model.eval()
    return new, hist


def _cycle(batches: Iterable) -> Iterator:
    """Iterate ``batches``; a re-iterable (a list, a DataLoader) starts again when exhausted,
    a one-shot iterator (a generator) must yield enough itself."""
    while True:
        n = 0
        for b in batches:
            n += 1
            yield b
        if n == 0 or iter(batches) is batches:
            raise ConfigError("distillation ran out of batches (none, or a one-shot iterator "
                              "shorter than the number of steps)")
