"""SqueezeNet v1.0 / v1.1, bypass variants, the paper's design space, a small-image variant.

Variants are data: a :class:`SqueezeNetConfig` describes the stem, the Fire modules and where
the max-pools sit; :class:`SqueezeNet` builds any of them with torchvision's layout
(``features`` / ``classifier`` Sequentials), so torchvision state_dicts load with
``strict=True``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .data_config import CarriesDataConfig, DataConfig, split_metadata
from .fire import Fire

#: Stems: (out_channels, kernel, stride, padding) of conv1.
STEMS = {
    "v1.0": (96, 7, 2, 0),   # paper Table 1
    "v1.1": (64, 3, 2, 0),   # SqueezeNet v1.1 (DeepScale)
    "small": (64, 3, 1, 1),  # 32x32 inputs: keeps 32x32 after conv1
}
BYPASS = ("none", "simple", "complex")

# Bounds on a model config, checked by SqueezeNetConfig itself (so by every reader: .safetensors
# headers and sidecars, .sqz, imports, spaces and sweeps) before any network is built.
MAX_FIRES = 64                 # Fire modules
MAX_WIDTH = 1 << 20            # channels of any layer, num_classes, in_channels
MAX_PARAMS = 1 << 26           # parameters of the whole network (256 MiB as float32; v1.0 has 1.25 M)


def _count(name: str, v, hi: int = MAX_WIDTH, lo: int = 1) -> int:
    """``v`` as an int in ``lo..hi`` (ints only: not a bool, a float or a string)."""
    import numbers
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        raise ConfigError(f"{name}={v!r}: must be an integer in {lo}..{hi}")
    return int(v)


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

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not isinstance(self.freq, int) or isinstance(self.freq, bool) or self.freq < 1:
            bad("freq", self.freq, "must be an integer >= 1")
        if not number(self.pct_3x3) or not (0.0 < self.pct_3x3 < 1.0):
            bad("pct_3x3", self.pct_3x3, "must be in (0, 1)")
        if not number(self.sr) or not (0 < self.sr <= MAX_WIDTH):
            bad("SR", self.sr, "must be > 0")
        if not number(self.base_e) or not 1 <= self.base_e <= MAX_WIDTH:
            bad("base_e", self.base_e, f"must be in 1..{MAX_WIDTH}")
        if not number(self.incr_e) or not 0 <= self.incr_e <= MAX_WIDTH:
            bad("incr_e", self.incr_e, f"must be in 0..{MAX_WIDTH}")
        if not isinstance(self.num_fires, int) or isinstance(self.num_fires, bool) \
                or not 1 <= self.num_fires <= MAX_FIRES:
            bad("num_fires", self.num_fires, f"must be an integer in 1..{MAX_FIRES}")
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
        """Check every field's type and range, then the network's size (:data:`MAX_PARAMS`),
        from the numbers alone: nothing is built, so a hostile config costs nothing."""
        if not isinstance(self.stem, str) or self.stem not in STEMS:
            raise ConfigError(f"stem={self.stem!r}: must be one of {', '.join(STEMS)}")
        if not isinstance(self.bypass, str) or self.bypass not in BYPASS:
            raise ConfigError(f"bypass={self.bypass!r}: must be one of {', '.join(BYPASS)}")
        object.__setattr__(self, "num_classes", _count("num_classes", self.num_classes))
        object.__setattr__(self, "in_channels", _count("in_channels", self.in_channels))
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                or not (0.0 <= self.dropout < 1.0)):
            raise ConfigError(f"dropout={self.dropout!r}: must be in [0, 1)")
        if isinstance(self.conv10_padding, bool) or self.conv10_padding not in (0, 1):
            raise ConfigError(f"conv10_padding={self.conv10_padding!r}: must be 0 or 1")
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm={self.batch_norm!r}: must be true or false")
        if not isinstance(self.fires, (list, tuple)) or len(self.fires) > MAX_FIRES:
            raise ConfigError(f"fires: must be a list of at most {MAX_FIRES} Fire modules")
        for i, f in enumerate(self.fires):
            if not isinstance(f, (list, tuple)) or len(f) != 3:
                raise ConfigError(f"fires[{i}]={f!r}: needs three filter counts >= 1")
            for v in f:
                _count(f"fires[{i}]", v)
        if not isinstance(self.pool_after, (list, tuple)) or len(self.pool_after) > MAX_FIRES:
            raise ConfigError(f"pool_after: must be a list of at most {MAX_FIRES} Fire indices")
        pools = tuple(_count("pool_after", v, hi=MAX_FIRES, lo=0) for v in self.pool_after)
        object.__setattr__(self, "fires", tuple(tuple(int(v) for v in f) for f in self.fires))
        object.__setattr__(self, "pool_after", pools)
        n = self.num_params()
        if n > MAX_PARAMS:
            raise ConfigError(f"the network has {n:,} parameters, over the {MAX_PARAMS:,} limit")

    def num_params(self) -> int:
        """Parameters (weights and biases, BatchNorm's scale and shift) of the network, counted
        from the config alone.

        >>> SqueezeNetConfig().num_params(), SqueezeNetConfig(stem="v1.1", pool_after=(1, 3)).num_params()
        (1248424, 1235496)
        """
        bn = 2 if self.batch_norm else 0
        c1, k, _, _ = STEMS[self.stem]
        n = self.in_channels * c1 * k * k + c1 + bn * c1
        cin = c1
        for (s, e1, e3), kind in zip(self.fires, fire_bypass_kinds(self)):
            out = e1 + e3
            n += cin * s + s + s * e1 + e1 + 9 * s * e3 + e3 + bn * (s + e1 + e3)
            if kind == "conv":
                n += cin * out + out + bn * out
            cin = out
        return n + cin * self.num_classes + self.num_classes

    def output_side(self, input_size: int) -> int:
        """Side of conv10's output for a square ``input_size`` input; a :class:`ConfigError`
        when the stem or a max-pool shrinks it to nothing (PyTorch's size rules, no tensors).

        >>> SqueezeNetConfig().output_side(227)
        13
        >>> SqueezeNetConfig(pool_after=tuple(range(8))).output_side(64)
        Traceback (most recent call last):
        ...
        squeezenet.errors.ConfigError: a 64x64 input shrinks to nothing at the max-pool after fire5 (this network needs inputs of at least 1029x1029)
        """
        where, side = self._sides(_count("input size", input_size))
        if side >= 1:
            return side
        lo, hi = input_size, MAX_WIDTH          # the smallest input that fits (sides grow with it)
        if self._sides(hi)[1] < 1:
            need = f"more than {MAX_WIDTH}"
        else:
            while lo + 1 < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if self._sides(mid)[1] >= 1 else (mid, hi)
            need = f"at least {hi}x{hi}"
        raise ConfigError(f"a {input_size}x{input_size} input shrinks to nothing at {where} "
                          f"(this network needs inputs of {need})")

    def _sides(self, n: int) -> tuple[str, int]:
        """(the layer where the side first drops below 1, or "conv10"; the side there)."""
        def pool(n: int) -> int:   # MaxPool2d(3, stride 2, ceil_mode=True): ATen's pooling_output_shape
            out = (n - 3 + 1) // 2 + 1
            if (out - 1) * 2 >= n:
                out -= 1
            return out
        _, k, stride, pad = STEMS[self.stem]
        n = (n + 2 * pad - k) // stride + 1
        if n < 1:
            return "conv1", n
        n = pool(n)
        if n < 1:
            return "the max-pool after conv1", n
        for i in range(len(self.fires)):
            if i in self.pool_after:
                n = pool(n)
                if n < 1:
                    return f"the max-pool after fire{i + 2}", n
        return "conv10", n + 2 * self.conv10_padding

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fires"] = [list(f) for f in self.fires]
        d["pool_after"] = list(self.pool_after)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SqueezeNetConfig":
        """The config of a mapping read from a file (JSON header, sidecar, checkpoint); every
        problem is a one-line :class:`ConfigError` (a reader adds the file's name)."""
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a mapping, not {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [str(k) for k in d if k not in names]
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(sorted(unknown)[:5])}")
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


class SqueezeNet(CarriesDataConfig, nn.Module):
    """A SqueezeNet built from a :class:`SqueezeNetConfig`.

    Its data config (``data_config``: input size, preset, class ids and names, source,
    license; see :mod:`squeezenet.models.data_config`) travels with the model (every file
    stores it) so that ``eval`` and ``predict`` need no extra flags; ``classes``,
    ``class_names`` and ``preprocess`` read and write through it.

    >>> m = SqueezeNet(SqueezeNetConfig(num_classes=2))
    >>> m.classes, m.class_names = ["n1", "n2"], ["cat", "dog"]
    >>> m.data_config.class_names, m.class_names
    (('cat', 'dog'), ['cat', 'dog'])

    >>> m = SqueezeNet(SqueezeNetConfig(num_classes=10))
    >>> m(torch.zeros(2, 3, 227, 227)).shape
    torch.Size([2, 10])
    """

    def __init__(self, config: SqueezeNetConfig | None = None, init: str = "paper") -> None:
        super().__init__()
        self.config = config = config or SqueezeNetConfig()
        self.num_classes = config.num_classes
        self.data_config = DataConfig()
        self._metadata: dict[str, Any] = {}
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

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form facts about the model (``arch``, ``imported_from``, ...) besides its data
        config; assigning a dict moves its data-config keys (``source``, ``class_names``,
        ``license``, ``input_size``: :data:`~squeezenet.models.data_config.META_KEYS`) into
        ``data_config``, so a file's metadata, read back, lands where it was written from."""
        return self._metadata

    @metadata.setter
    def metadata(self, meta: dict[str, Any] | None) -> None:
        fields, rest = split_metadata(meta)
        if fields:
            if "input_size" in fields and isinstance(fields["input_size"], list):
                fields["input_size"] = tuple(fields["input_size"])
            if "class_names" in fields and fields["class_names"] is not None:
                fields["class_names"] = tuple(str(n) for n in fields["class_names"])
            self._set(**fields)
        self._metadata = rest

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
        cfg = self.data_config
        kept = rows is not None and cfg.classes is not None and len(cfg.classes) == old.out_channels
        self.data_config = cfg.replace(
            classes=tuple(cfg.classes[r] for r in rows) if kept else None,
            class_names=tuple(cfg.class_names[r] for r in rows) if kept and cfg.class_names else None)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and _to_nhwc(x):
            # NHWC on the CPU: PyTorch's max-pool kernel for contiguous NCHW tensors took 140 ms
            # where NHWC took 12 ms (16 x 64 x 111 x 111, one thread), 45 % of SqueezeNet 1.1's
            # eager forward; in NHWC the forward is 2.3x faster (481 -> 212 ms at batch 16, 224 px)
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def _to_nhwc(x: torch.Tensor) -> bool:
    """Whether the forward lays ``x`` out as NHWC: a 4-D CPU tensor, outside an ONNX export
    (the exported graph stays plain NCHW; its runtime lays memory out itself). A
    ``torch.jit.trace`` records the layout change, so a traced model keeps the speed."""
    return x.dim() == 4 and x.device.type == "cpu" and not torch.onnx.is_in_onnx_export()


def skeleton(config: SqueezeNetConfig, device: str = "meta") -> SqueezeNet:
    """The model of ``config`` with its ``torch.nn.init`` calls skipped (tensors uninitialised),
    for readers whose every tensor is about to come from a file.

    Initialising would be wasted work; worse, on the meta device ``normal_`` runs through a
    Python decomposition that imports ``torch._dynamo`` (about 1.5 s of CPU, once per process).
    On the CPU the tensors are allocated but never written (no memory is touched), which is
    quicker than the meta device's dispatch.
    """
    from torch.overrides import TorchFunctionMode

    class _SkipInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__module__", None) == "torch.nn.init":
                return args[0] if args else kwargs.get("tensor")
            return func(*args, **kwargs)

    if device == "cpu":
        with _SkipInit():
            return SqueezeNet(config)
    with torch.device(device), _SkipInit():
        return SqueezeNet(config)


@functools.lru_cache(maxsize=32)
def state_shapes(config: SqueezeNetConfig) -> dict[str, tuple]:
    """state_dict key -> tensor shape of ``config``'s model (built on the meta device: no
    memory, cached), so a reader can check a file's tensors before it allocates a model.

    >>> state_shapes(SqueezeNetConfig(num_classes=10))["classifier.1.weight"]
    (10, 512, 1, 1)
    """
    return {k: tuple(v.shape) for k, v in skeleton(config).state_dict().items()}
