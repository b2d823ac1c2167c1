"""Per-layer summary: output shape, Fire filter counts, params, MACs, bytes (paper Table 1)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .fire import Fire

BYTES_FP32 = 4


@dataclass
class LayerInfo:
    name: str
    kind: str
    output: list[int]                 # C, H, W (or features) at batch 1
    params: int
    macs: int
    weight_bytes: int
    activation_bytes: int             # output tensor, fp32, batch 1
    s1x1: int | None = None
    e1x1: int | None = None
    e3x3: int | None = None
    bypass: str | None = None


@dataclass
class Summary:
    model: str
    input_size: list[int]
    layers: list[LayerInfo] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    size_bytes: int = 0
    size_mb: float = 0.0
    peak_activation_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Text table in the shape of the paper's Table 1."""
        head = f"{'layer':<12}{'output':>16}{'s1x1':>6}{'e1x1':>6}{'e3x3':>6}{'params':>12}{'MACs':>15}{'w bytes':>12}{'act bytes':>12}"
        rows = [head, "-" * len(head)]
        for l in self.layers:
            shape = "x".join(str(v) for v in (l.output[1:] + l.output[:1] if len(l.output) == 3 else l.output))
            f = lambda v: "" if v is None else str(v)
            rows.append(f"{l.name:<12}{shape:>16}{f(l.s1x1):>6}{f(l.e1x1):>6}{f(l.e3x3):>6}"
                        f"{l.params:>12,}{l.macs:>15,}{l.weight_bytes:>12,}{l.activation_bytes:>12,}")
        rows.append("-" * len(head))
        rows.append(f"{'total':<12}{'':>34}{self.params:>12,}{self.macs:>15,}{self.size_bytes:>12,}")
        rows.append(f"params {self.params:,} | MACs {self.macs / 1e9:.3f} G | fp32 size {self.size_bytes:,} bytes "
                    f"({self.size_mb:.2f} MB, {self.size_bytes / 2**20:.2f} MiB) | peak activations "
                    f"{self.peak_activation_bytes:,} bytes at batch 1")
        return "\n".join(rows)


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level units named as in Table 1 (conv1, maxpool1, fire2..., conv10, avgpool10)."""
    if not (hasattr(model, "features") and hasattr(model, "classifier")):
        return [(n, m) for n, m in model.named_children()]
    units: list[tuple[str, nn.Module]] = []
    fire_no, last = 1, "conv1"
    for m in model.features:
        if isinstance(m, Fire):
            fire_no += 1
            last = f"fire{fire_no}"
            units.append((last, m))
        elif isinstance(m, nn.MaxPool2d):
            units.append((f"maxpool{fire_no if fire_no > 1 else 1}", m))
        elif isinstance(m, nn.ReLU):
            continue
        elif isinstance(m, nn.Conv2d) or not units:
            units.append(("conv1", m))
        else:
            units.append((f"{type(m).__name__.lower()}{len(units)}", m))
    tail = fire_no + 1
    for m in model.classifier:
        if isinstance(m, (nn.Dropout, nn.ReLU)):
            continue
        if isinstance(m, nn.AdaptiveAvgPool2d):
            units.append((f"avgpool{tail}", m))
        else:
            units.append((f"conv{tail}", m))
    return units


def summary(model: nn.Module, input_size: int | tuple[int, int] = 224, name: str | None = None,
            in_channels: int = 3) -> Summary:
    """Summarise ``model`` at ``input_size`` (square side or (H, W)), batch 1.

    MACs count multiply-accumulates of convolutions and linear layers; sizes are fp32.
    Peak activation memory is the largest (input + intermediates + output) of any layer.

    >>> from squeezenet import create_model
    >>> summary(create_model("squeezenet1_0"), 227).params
    1248424
    """
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    from ..errors import ConfigError
    from .registry import MAX_INPUT_SIZE
    if not all(1 <= int(v) <= MAX_INPUT_SIZE for v in hw):
        raise ConfigError(f"input size {hw[0]}x{hw[1]}: each side must be in 1..{MAX_INPUT_SIZE}")
    macs: dict[nn.Module, int] = {}
    outs: dict[nn.Module, list[int]] = {}
    internal: dict[nn.Module, int] = {}
    hooks = []

    def conv_hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            macs[mod] = out.numel() // out.shape[0] * k
        else:
            macs[mod] = out.numel() // out.shape[0] * mod.in_features
        internal[mod] = out.numel() // out.shape[0] * BYTES_FP32

    def unit_hook(mod, inp, out):
        outs[mod] = list(out.shape[1:])
        internal[("in", mod)] = inp[0].numel() // inp[0].shape[0] * BYTES_FP32

    units = _units(model)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(conv_hook))
    for _, u in units:
        hooks.append(u.register_forward_hook(unit_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(1, in_channels, *hw, dtype=p.dtype if p is not None else torch.float32,
                        device=p.device if p is not None else "cpu")
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    s = Summary(model=name or type(model).__name__, input_size=[in_channels, *hw])
    peak = 0
    for uname, u in units:
        params = sum(p.numel() for p in u.parameters())
        convs = [m for m in u.modules() if m in macs]
        out = outs.get(u, [])
        act = BYTES_FP32
        for v in out:
            act *= v
        info = LayerInfo(name=uname, kind=type(u).__name__, output=out, params=params,
                         macs=sum(macs[m] for m in convs), weight_bytes=params * BYTES_FP32,
                         activation_bytes=act if out else 0)
        if isinstance(u, Fire):
            info.s1x1, info.e1x1, info.e3x3 = (u.squeeze.out_channels, u.expand1x1.out_channels,
                                              u.expand3x3.out_channels)
            info.bypass = u.bypass
        inner = sum(internal[m] for m in convs if m is not u) if isinstance(u, Fire) else 0
        peak = max(peak, internal.get(("in", u), 0) + inner + info.activation_bytes)
        s.layers.append(info)
    s.params = sum(p.numel() for p in model.parameters())
    s.macs = sum(macs.values())
    s.size_bytes = s.params * BYTES_FP32
    s.size_mb = s.size_bytes / 1e6
    s.peak_activation_bytes = peak
    return s
