"""Magnitude pruning (Deep Compression stage 1) with masks kept through retraining.

Fractions are *kept* fractions per weight tensor (state_dict key of the conv weight).
Presets: ``paper`` (SqueezeNet Table 1: s1x1/e1x1/e3x3 kept per Fire module, conv1 100 %,
conv10 20 %) and ``uniform:F``. :class:`MaskCallback` re-applies the masks right after every
optimizer step (Trainer hook ``on_step_end``) and clears the momentum at pruned weights, so
neither momentum nor weight decay can revive a pruned weight.

>>> import squeezenet
>>> m = squeezenet.create_model("squeezenet1_0")
>>> f = prune_fractions(m, "paper")
>>> f["classifier.1.weight"], f["features.3.expand3x3.weight"]
(0.2, 0.33)
>>> masks = magnitude_masks(m, f); apply_masks(m, masks)
>>> round(density(m)["features.3.expand3x3.weight"], 2)
0.33
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.utils import prunable  # defined with the models; compress code says P.prunable

#: Table 1 of the paper: kept fraction (s1x1, e1x1, e3x3) for fire2..fire9.
PAPER_FIRE = [(1.0, 1.0, 0.33)] * 4 + [(1.0, 0.5, 0.33), (0.5, 1.0, 0.33), (1.0, 0.5, 0.33),
                                       (0.5, 1.0, 0.30)]
PAPER_CONV1 = 1.0
PAPER_CONV10 = 0.2


def _role(key: str, model: nn.Module) -> tuple[str, int | None]:
    """("conv1"|"conv10"|"squeeze"|"expand1x1"|"expand3x3"|"other", fire index)."""
    from ..models.fire import Fire
    keys = list(prunable(model))
    if key == keys[0]:
        return "conv1", None
    if key == keys[-1]:
        return "conv10", None
    fires = [n for n, m in model.named_modules() if isinstance(m, Fire)]
    for i, f in enumerate(fires):
        for part in ("squeeze", "expand1x1", "expand3x3"):
            if key == f"{f}.{part}.weight":
                return part, i
    return "other", None


def prune_fractions(model: nn.Module, spec: str | dict | float) -> dict[str, float]:
    """Kept fraction per weight key from ``"paper"``, ``"uniform:F"``, a float or a dict.

    A dict may name a subset of layers (the rest stay dense) or give ``{"default": F}``.
    """
    keys = list(prunable(model))
    if isinstance(spec, (int, float)):
        spec = f"uniform:{spec}"
    if isinstance(spec, dict):
        bad = [k for k in spec if k not in keys and k != "default"]
        if bad:
            raise ConfigError(f"prune fractions name unknown layers: {', '.join(bad[:3])}")
        out = {k: float(spec.get(k, spec.get("default", 1.0))) for k in keys}
    elif spec == "paper":
        out = {}
        for k in keys:
            role, i = _role(k, model)
            if role == "conv1":
                out[k] = PAPER_CONV1
            elif role == "conv10":
                out[k] = PAPER_CONV10
            elif role in ("squeeze", "expand1x1", "expand3x3") and i < len(PAPER_FIRE):
                out[k] = PAPER_FIRE[i][("squeeze", "expand1x1", "expand3x3").index(role)]
            else:
                out[k] = 1.0
    elif isinstance(spec, str) and spec.startswith("uniform:"):
        try:
            f = float(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"--prune {spec!r}: expected uniform:F with F a kept fraction in (0, 1]") from None
        out = {k: f for k in keys}
    else:
        raise ConfigError(f"--prune {spec!r}: use paper, uniform:F, auto or a per-layer mapping")
    for k, f in out.items():
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"kept fraction {f} for {k}: must be in (0, 1]")
    return out


def magnitude_masks(model: nn.Module, fractions: dict[str, float]) -> dict[str, torch.Tensor]:
    """Boolean masks keeping the ``round(f * numel)`` largest-magnitude weights per layer."""
    sd = model.state_dict()
    masks = {}
    for k, f in fractions.items():
        w = sd[k]
        keep = max(1, int(round(f * w.numel())))
        if keep >= w.numel():
            masks[k] = torch.ones_like(w, dtype=torch.bool)
            continue
        flat = w.abs().flatten()
        idx = torch.topk(flat, keep, sorted=False).indices
        m = torch.zeros_like(flat, dtype=torch.bool)
        m[idx] = True
        masks[k] = m.view_as(w)
    return masks


def _param(model: nn.Module, key: str) -> torch.Tensor:
    return model.get_parameter(key)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor], optimizer=None) -> None:
    """Zero pruned weights (and their momentum buffers, if an optimizer is given)."""
    for k, m in masks.items():
        p = _param(model, k)
        p.mul_(m.to(p.device, p.dtype))
        if optimizer is not None:
            st = optimizer.state.get(p, {})
            for name in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
                buf = st.get(name)
                if isinstance(buf, torch.Tensor) and buf.shape == p.shape:
                    buf.mul_(m.to(buf.device, buf.dtype))


class MaskCallback:
    """Trainer callback: keep pruned weights at exactly zero through retraining."""

    def __init__(self, masks: dict[str, torch.Tensor]):
        self.masks = masks

    def on_train_start(self, trainer) -> None:
        apply_masks(trainer.model, self.masks, getattr(trainer, "optimizer", None))

    def on_step_end(self, trainer) -> None:
        apply_masks(trainer.model, self.masks, getattr(trainer, "optimizer", None))


def density(model: nn.Module) -> dict[str, float]:
    """Fraction of non-zero weights per prunable layer."""
    sd = model.state_dict()
    return {k: float((sd[k] != 0).float().mean()) for k in prunable(model)}


@torch.no_grad()
def sensitivity(model: nn.Module, score, fractions=(1.0, 0.7, 0.5, 0.33, 0.2, 0.1),
                layers: list[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    """Accuracy vs kept fraction, pruning one layer at a time (others dense).

    ``score(model) -> float`` (e.g. top-1 on validation data). Returns, per layer, a list of
    (fraction, score). The model is restored afterwards.
    """
    keys = layers or list(prunable(model))
    out = {}
    for k in keys:
        p = _param(model, k)
        saved = p.detach().clone()
        rows = []
        for f in fractions:
            m = magnitude_masks(model, {k: f})[k]
            p.mul_(m)
            rows.append((float(f), float(score(model))))
            p.copy_(saved)
        out[k] = rows
    return out


def choose_fractions(sens: dict[str, list[tuple[float, float]]], max_drop: float) -> dict[str, float]:
    """Per layer, the smallest kept fraction whose score drop (vs the densest) is <= max_drop."""
    out = {}
    for k, rows in sens.items():
        base = max(rows, key=lambda r: r[0])[1]
        ok = [f for f, s in rows if base - s <= max_drop]
        out[k] = min(ok) if ok else 1.0
    return out
