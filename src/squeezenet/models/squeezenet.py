"""SqueezeNet v1.0 / v1.1, bypass variants, the paper's design space, a small-image variant.

Variants are data: a :class:`SqueezeNetConfig` describes the stem, the Fire modules and where
the max-pools sit; :class:`SqueezeNet` builds any of them with torchvision's layout
(``features`` / ``classifier`` Sequentials), so torchvision state_dicts load with
``strict=True``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .fire import Fire

#: Stems: (out_channels, kernel, stride, padding) of conv1.
STEMS = {
    "v1.0": (96, 7, 2, 0),   # paper Table 1
    "v1.1": (64, 3, 2, 0),   # SqueezeNet v1.1 (DeepScale)
    "small": (64, 3, 1, 1),  # 32x32 inputs: keeps 32x32 after conv1
}
BYPASS = ("none", "simple", "complex")


@dataclass(frozen=True)
class MetaParams:
    """The paper's metaparameters (section 5) that generate the eight Fire modules.

    Fire module i (i = 0..7) has ``e_i = base_e + incr_e * floor(i / freq)`` expand filters,
    ``round(e_i * pct_3x3)`` of them 3x3 and the rest 1x1, and ``round(SR * e_i)`` squeeze
    filters. The defaults are SqueezeNet v1.0.

    >>> MetaParams().fires()[0]
    (16, 64, 64)
    """

    base_e: int = 128       # expand filters of the first Fire module
    incr_e: int = 128       # expand filters added every `freq` modules
    pct_3x3: float = 0.5    # fraction of expand filters that are 3x3
    freq: int = 2           # modules between increments of incr_e
    sr: float = 0.125       # squeeze ratio: squeeze filters / expand filters
    num_fires: int = 8      # number of Fire modules

    def __post_init__(self) -> None:
        def bad(name, value, why):
            raise ConfigError(f"metaparameter {name}={value!r}: {why}")
        if not isinstance(self.freq, int) or self.freq < 1:
            bad("freq", self.freq, "must be an integer >= 1")
        if not (0.0 < self.pct_3x3 < 1.0):
            bad("pct_3x3", self.pct_3x3, "must be in (0, 1)")
        if not (self.sr > 0):
            bad("SR", self.sr, "must be > 0")
        if self.base_e < 1:
            bad("base_e", self.base_e, "must be >= 1")
        if self.incr_e < 0:
            bad("incr_e", self.incr_e, "must be >= 0")
        if self.num_fires < 1:
            bad("num_fires", self.num_fires, "must be >= 1")
        for i in range(self.num_fires):
            e = self.base_e + self.incr_e * (i // self.freq)
            e3 = round(e * self.pct_3x3)
            s = round(self.sr * e)
            if e3 < 1 or e - e3 < 1:
                bad("pct_3x3", self.pct_3x3, f"fire{i + 2} gets {e3} 3x3 and {e - e3} 1x1 filters (each must be >= 1)")
            if s < 1:
                bad("SR", self.sr, f"fire{i + 2} gets {s} squeeze filters (must be >= 1)")

    def fires(self) -> list[tuple[int, int, int]]:
        """(s1x1, e1x1, e3x3) for each Fire module."""
        out = []
        for i in range(self.num_fires):
            e = self.base_e + self.incr_e * (i // self.freq)
            e3 = round(e * self.pct_3x3)
            out.append((round(self.sr * e), e - e3, e3))
        return out


V10_FIRES = tuple(MetaParams().fires())
V11_FIRES = V10_FIRES


@dataclass(frozen=True)
class SqueezeNetConfig:
    """Everything needed to rebuild a SqueezeNet; stored in every checkpoint as JSON."""

    stem: str = "v1.0"                      # conv1 layout, a key of STEMS
    fires: tuple = V10_FIRES                # (s1x1, e1x1, e3x3) per Fire module
    pool_after: tuple = (2, 6)              # max-pool after these Fire indices (and always after conv1)
    bypass: str = "none"                    # none | simple | complex (paper Table 3)
    num_classes: int = 1000                 # outputs of conv10
    dropout: float = 0.5                    # before conv10
    conv10_padding: int = 0                 # 1 = Caffe-exact v1.0 (the released weights need it)
    in_channels: int = 3                    # input channels
    batch_norm: bool = False                # BatchNorm after every conv but conv10 (not in the paper)

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ConfigError(f"stem={self.stem!r}: must be one of {', '.join(STEMS)}")
        if self.bypass not in BYPASS:
            raise ConfigError(f"bypass={self.bypass!r}: must be one of {', '.join(BYPASS)}")
        if self.num_classes < 1:
            raise ConfigError(f"num_classes={self.num_classes!r}: must be >= 1")
        if not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout={self.dropout!r}: must be in [0, 1)")
        if self.conv10_padding not in (0, 1):
            raise ConfigError(f"conv10_padding={self.conv10_padding!r}: must be 0 or 1")
        object.__setattr__(self, "fires", tuple(tuple(int(v) for v in f) for f in self.fires))
        object.__setattr__(self, "pool_after", tuple(int(v) for v in self.pool_after))
        for i, f in enumerate(self.fires):
            if len(f) != 3 or min(f) < 1:
                raise ConfigError(f"fires[{i}]={f!r}: needs three filter counts >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fires"] = [list(f) for f in self.fires]
        d["pool_after"] = list(self.pool_after)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SqueezeNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        if "fires" in d:
            d["fires"] = tuple(tuple(f) for f in d["fires"])
        if "pool_after" in d:
            d["pool_after"] = tuple(d["pool_after"])
        return cls(**d)

    def replace(self, **kw) -> "SqueezeNetConfig":
        return dataclasses.replace(self, **kw)


def fire_bypass_kinds(config: SqueezeNetConfig) -> list[str]:
    """Per Fire module: "none", "identity" or "conv", following the paper's definition.

    Simple bypass adds identity shortcuts around the modules whose input and output channel
    counts match (fire3/5/7/9 in SqueezeNet); complex bypass adds 1x1-conv shortcuts around
    the others as well.
    """
    kinds = []
    cin = STEMS[config.stem][0]
    for s, e1, e3 in config.fires:
        out = e1 + e3
        if config.bypass == "none":
            kinds.append("none")
        elif cin == out:
            kinds.append("identity")
        else:
            kinds.append("conv" if config.bypass == "complex" else "none")
        cin = out
    return kinds


class SqueezeNet(nn.Module):
    """A SqueezeNet built from a :class:`SqueezeNetConfig`.

    ``classes`` and ``preprocess`` travel with the model (checkpoints store them) so that
    ``eval`` and ``predict`` need no extra flags.

    >>> m = SqueezeNet(SqueezeNetConfig(num_classes=10))
    >>> m(torch.zeros(2, 3, 227, 227)).shape
    torch.Size([2, 10])
    """

    def __init__(self, config: SqueezeNetConfig | None = None, init: str = "paper") -> None:
        super().__init__()
        self.config = config = config or SqueezeNetConfig()
        self.num_classes = config.num_classes
        self.classes: list[str] | None = None
        self.preprocess: str | None = None
        self.metadata: dict[str, Any] = {}
        c1, k, stride, pad = STEMS[config.stem]
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, c1, kernel_size=k, stride=stride, padding=pad),
            *([nn.BatchNorm2d(c1)] if config.batch_norm else []),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        ]
        cin = c1
        for i, ((s, e1, e3), kind) in enumerate(zip(config.fires, fire_bypass_kinds(config))):
            layers.append(Fire(cin, s, e1, e3, bypass=kind, batch_norm=config.batch_norm))
            cin = e1 + e3
            if i in config.pool_after:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(cin, config.num_classes, kernel_size=1,
                               padding=config.conv10_padding)
        self.classifier = nn.Sequential(
            nn.Dropout(p=config.dropout), final_conv, nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)))
        self.reset_parameters(init)

    @property
    def final_conv(self) -> nn.Conv2d:
        """conv10 (``classifier.1``), kept out of the state_dict under this name."""
        return self.classifier[1]

    def reset_parameters(self, init: str = "paper") -> None:
        """``paper``: Caffe's "xavier" filler (uniform, fan-in) for every conv and Gaussian
        std 0.01 for conv10, biases 0 (paper section 7). ``torchvision``: kaiming-uniform."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is self.final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                elif init == "paper":
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    bound = math.sqrt(3.0 / fan_in)
                    nn.init.uniform_(m.weight, -bound, bound)
                elif init == "torchvision":
                    nn.init.kaiming_uniform_(m.weight)
                else:
                    raise ConfigError(f"init={init!r}: must be paper or torchvision")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def reset_classifier(self, num_classes: int, keep_rows=None) -> "SqueezeNet":
        """Give the model a new conv10 with ``num_classes`` outputs; every other weight stays.

        The one way a model gets a new head (timm's ``reset_classifier``). Without
        ``keep_rows`` conv10 is initialised as in :meth:`reset_parameters` (Gaussian std 0.01,
        bias 0). With ``keep_rows`` (indices of the old outputs, one per new class) the new
        conv10 starts as those rows of the old one, so the model scores those classes exactly
        as before. ``config.num_classes`` follows; ``classes`` becomes the kept rows' names
        (or None for a fresh head: the caller names the new classes). Returns ``self``.

        >>> m = SqueezeNet(SqueezeNetConfig(num_classes=10))
        >>> m.reset_classifier(3, keep_rows=[7, 0, 2]).config.num_classes
        3
        """
        old = self.final_conv
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes={num_classes!r}: must be an integer >= 1")
        rows = None
        if keep_rows is not None:
            rows = [int(r) for r in keep_rows]
            if len(rows) != num_classes:
                raise ConfigError(f"keep_rows has {len(rows)} rows for {num_classes} classes")
            bad = [r for r in rows if not 0 <= r < old.out_channels]
            if bad:
                raise ConfigError(f"keep_rows: row {bad[0]} is not an output of conv10 "
                                  f"(it has {old.out_channels})")
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1, padding=old.padding,
                        bias=old.bias is not None).to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            if rows is None:
                nn.init.normal_(new.weight, mean=0.0, std=0.01)
                if new.bias is not None:
                    nn.init.constant_(new.bias, 0)
            else:
                idx = torch.tensor(rows, dtype=torch.long, device=old.weight.device)
                new.weight.copy_(old.weight.index_select(0, idx))
                if new.bias is not None:
                    new.bias.copy_(old.bias.index_select(0, idx))
        new.train(old.training)
        self.classifier[1] = new
        self.config = self.config.replace(num_classes=num_classes)
        self.num_classes = num_classes
        old_classes = self.classes
        self.classes = ([old_classes[r] for r in rows]
                        if rows is not None and old_classes is not None and len(old_classes) == old.out_channels
                        else None)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)
