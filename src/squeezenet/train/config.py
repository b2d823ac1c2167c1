"""Training configuration: the paper's recipe as defaults (spec section 7)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (MAX_BATCH_SIZE, MAX_LR, MAX_SEED, MAX_WORKERS, ConfigError, FormatError, Range,
                      check_fields, first_line)

SCHEDULES = ("poly", "cosine", "constant")
OPTIMIZERS = ("sgd", "adamw")
#: The largest seed (MAX_SEED, from errors): seeds feed torch, NumPy (32-bit) and per-epoch generators.
#: The accepted range of every numeric field of :class:`TrainConfig` (checked when it is made).
RANGES = {
    "epochs": Range(1, integer=True),
    "batch_size": Range(1, MAX_BATCH_SIZE, integer=True),
    "accum_steps": Range(1, 65536, integer=True),
    "eval_batch_size": Range(1, MAX_BATCH_SIZE, integer=True),
    "lr": Range(0, MAX_LR, lo_open=True),
    "momentum": Range(0, 1, hi_open=True),
    "weight_decay": Range(0),
    "power": Range(0, lo_open=True),
    "warmup_steps": Range(0, integer=True),
    "dropout": Range(0, 1, hi_open=True, optional=True),
    "label_smoothing": Range(0, 1, hi_open=True),
    "head_lr_mult": Range(0, MAX_LR, lo_open=True),
    "train_size": Range(16, 1024, integer=True, optional=True, note="(None: the preset's input size)"),
    "val_split": Range(0, 0.5, note="(0: validate on --val or the data's test split)"),
    "grad_clip": Range(0, lo_open=True, optional=True, note="(None: no clipping)"),
    "seed": Range(0, MAX_SEED, integer=True),
    "max_steps": Range(1, integer=True, optional=True),
    "workers": Range(0, MAX_WORKERS, integer=True),
    "checkpoint_every": Range(0, integer=True, note="(0: epoch ends only)"),
    "checkpoint_minutes": Range(0),
}
#: ``device``: auto, cpu, cuda, cuda:N or mps (whether this machine has it: Trainer.pick_device).
DEVICE_RE = r"auto|cpu|mps|cuda(:\d+)?"


@dataclass
class TrainConfig:
    """Everything that shapes a training run; stored in every training-state file.

    Defaults are the paper's Caffe solver: SGD momentum 0.9, weight decay 2e-4, base lr 0.04
    decreased linearly to 0 per iteration ("poly", power 1), an effective batch of 512 as
    32 x 16 gradient-accumulation steps, dropout 0.5.

    >>> TrainConfig().effective_batch
    512
    >>> TrainConfig.from_dict({"lr": 0.01, "epochs": 3}).lr
    0.01
    """

    epochs: int = 10                  # passes over the training data
    batch_size: int = 32              # micro-batch per process
    accum_steps: int = 16             # micro-batches per optimizer step (paper: 32 x 16 = 512)
    lr: float = 0.04                  # base learning rate
    optimizer: str = "sgd"            # sgd (the paper's) | adamw (robust from scratch on few classes)
    momentum: float = 0.9             # SGD momentum
    weight_decay: float = 2e-4        # L2 weight decay
    schedule: str = "poly"            # poly | cosine | constant, per optimizer step
    power: float = 1.0                # poly power (1 = linear to 0)
    warmup_steps: int = 0             # linear warm-up from 0 over this many optimizer steps
    dropout: float | None = 0.5       # dropout before conv10 (None keeps the model's)
    label_smoothing: float = 0.0      # cross-entropy label smoothing
    freeze: str | None = None         # comma-separated layers kept fixed (features, conv1, fire2..fire9, ...)
    head_lr_mult: float = 1.0         # conv10's lr = lr x this (fine-tuning: a new head learns faster)
    train_size: int | None = None     # side of the training crops (None: the preset's; scoring stays at it)
    val_split: float = 0.0            # hold this fraction of the train split out to validate on (choose best)
    nesterov: bool = False            # Nesterov momentum
    grad_clip: float | None = None    # clip the gradient norm to this value
    channels_last: bool = False       # NHWC memory format (faster convolutions on CPU)
    bf16: bool = False                # bfloat16 autocast for forward and loss
    seed: int = 0                     # seeds shuffling, augmentation and dropout
    max_steps: int | None = None      # stop after this many optimizer steps (the schedule's length)
    workers: int = 0                  # data-loading worker processes
    checkpoint_every: int = 0         # also checkpoint every N optimizer steps (0: epoch ends only)
    checkpoint_minutes: float = 10.0  # also checkpoint when this long passed since the last one
    eval_batch_size: int = 256        # batch for validation passes
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    progress: bool = True             # tqdm progress bar on stderr (rank 0)

    def __post_init__(self) -> None:
        import re

        def bad(name, why):
            raise ConfigError(f"train config {name}={getattr(self, name)!r}: {why}")
        check_fields(self, "train config", RANGES)
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.freeze is not None and not isinstance(self.freeze, str):
            bad("freeze", "must be a comma-separated string of layer names")
        if not (isinstance(self.device, str) and re.fullmatch(DEVICE_RE, self.device)):
            bad("device", "must be auto, cpu, cuda, cuda:N or mps")
        for name in ("nesterov", "channels_last", "bf16", "progress"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.accum_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            import difflib
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown train config key {unknown[0]!r}{hint}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Read a YAML or JSON mapping of fields; ``overrides`` (non-None) win."""
        from ..io import read_json, read_yaml
        path = Path(path)
        if not path.exists():
            raise FormatError(path, "config file not found")
        try:   # the bounded readers: size, nesting, aliases and UTF-8 checked
            data = read_json(path, "JSON") if path.suffix.lower() == ".json" else read_yaml(path)
        except FormatError as e:
            raise FormatError(path, f"cannot parse config ({e.problem})") from None
        data = data or {}
        if not isinstance(data, dict):
            raise FormatError(path, "config must be a mapping of field: value")
        if isinstance(data.get("train"), dict):
            data = data["train"]
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(data)
        except TypeError as e:
            raise FormatError(path, str(e)) from None


#: The longest warm-up, as a share of the run: a recipe's 50 warm-up steps on a 30-step run
#: would leave the whole run warming up.
MAX_WARMUP_SHARE = 0.1


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """The warm-up that runs: ``config.warmup_steps``, scaled down to at most
    :data:`MAX_WARMUP_SHARE` of the run's ``total_steps`` (the one place that decides).

    >>> warmup_steps(TrainConfig(warmup_steps=50), 30), warmup_steps(TrainConfig(warmup_steps=50), 750)
    (3, 50)
    """
    if not config.warmup_steps:
        return 0
    return min(config.warmup_steps, max(1, int(MAX_WARMUP_SHARE * total_steps)))


def warmup_note(config: TrainConfig, total_steps: int) -> str | None:
    """One line when :func:`warmup_steps` scaled the warm-up to the run, else None.

    >>> warmup_note(TrainConfig(warmup_steps=50), 30)
    'warm-up scaled to the run: 3 steps (10 % of 30), not 50'
    """
    w = warmup_steps(config, total_steps)
    if w == config.warmup_steps:
        return None
    return (f"warm-up scaled to the run: {w} steps ({100 * MAX_WARMUP_SHARE:.0f} % of {total_steps}), "
            f"not {config.warmup_steps}")


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    >>> c = TrainConfig(lr=0.04)
    >>> [round(lr_at(c, s, 4), 3) for s in range(4)]
    [0.04, 0.03, 0.02, 0.01]
    """
    import math
    base = config.lr
    w = warmup_steps(config, total_steps)
    if w and step < w:
        return base * (step + 1) / w
    frac = min(1.0, max(0.0, (step - w) / max(1, total_steps - w)))
    if config.schedule == "poly":
        return base * (1.0 - frac) ** config.power
    if config.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * frac))
    return base
