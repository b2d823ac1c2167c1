"""One trial: build the network for a point of the space, measure it, train it on a fixed budget,
evaluate it.

>>> from squeezenet.explore import Budget, load_space, run_point
>>> space = load_space()
>>> r = run_point(space, {"base_e": 8, "incr_e": 0, "sr": 0.5}, Budget("digits", max_steps=2))
>>> sorted(r.to_attrs())                                   # doctest: +NORMALIZE_WHITESPACE
['macs', 'params', 'seconds', 'size_bytes', 'top1']
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import SqueezeNetError


@dataclass(frozen=True)
class Budget:
    """The fixed training budget every trial of a study or sweep gets."""

    data: str = "digits"              # dataset spec for squeezenet.data.build_dataset
    epochs: float = 1.0               # passes over the (sub)set of training images
    max_steps: int | None = None      # stop after this many optimizer steps (None: epochs decide)
    batch_size: int = 64
    optimizer: str = "adam"           # adam | sgd (sgd: the paper's recipe, the Trainer's own)
    lr: float | None = None           # learning rate (None: 1e-3 for adam, the Trainer's for sgd)
    init: str = "torchvision"         # weight init; "paper"'s xavier vanishes in short budgets
    dropout: float = 0.0              # before conv10; short budgets learn faster without it
    augment: bool = False             # training augmentation of the dataset's preset
    train_subset: int | None = None   # train on this many images (a fixed random subset)
    test_subset: int | None = None    # evaluate on this many images
    seed: int = 0                     # weight init, data order and subset choice

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OverBudget(SqueezeNetError):
    """The network is larger than the size budget or a space constraint; it is not trained."""


@dataclass
class TrialResult:
    top1: float | None                # fraction 0..1 on the test split (None: not trained)
    params: int
    size_bytes: int                   # fp32 weights
    macs: int                         # at the model's input size, batch 1
    seconds: float                    # build + train + evaluate

    def to_attrs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_DATA_CACHE: dict[tuple, Any] = {}


def load_data(budget: Budget, split: str):
    """The train or test dataset of ``budget`` (cached per process), subset if asked."""
    key = (budget.data, split, budget.train_subset if split == "train" else budget.test_subset,
           budget.seed)
    if key not in _DATA_CACHE:
        import torch
        from ..data import build_dataset
        ds = build_dataset(budget.data, split=split, augment=budget.augment and split == "train")
        n = key[2]
        if n is not None and n < len(ds):
            g = torch.Generator().manual_seed(1000 + budget.seed)
            idx = torch.randperm(len(ds), generator=g)[:n].tolist()
            classes = ds.classes
            ds = torch.utils.data.Subset(ds, idx)
            ds.classes = classes
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]


def train_and_eval(model, train_data, test_data, budget: Budget) -> float:
    """Train ``model`` with :class:`squeezenet.train.Trainer` for ``budget``; return test top-1."""
    import math

    import torch
    from ..data import make_loader
    from ..evaluate import evaluate
    from ..train import Trainer, TrainConfig
    kw = {} if budget.lr is None else {"lr": budget.lr}
    if budget.optimizer == "adam":
        # Why Adam: without batch norm, small SqueezeNets stay at chance for the first epochs
        # under SGD (measured on digits: SGD lr 0.01-0.1, 3-4 epochs -> 10 %; Adam 1e-3 -> 37 %
        # after 2 epochs), and a search budget is a few epochs.
        kw = {"lr": budget.lr or 1e-3, "weight_decay": 0.0, "schedule": "constant"}
    elif budget.optimizer != "sgd":
        raise SqueezeNetError(f"optimizer {budget.optimizer!r}: must be adam or sgd")
    steps_per_epoch = math.ceil(len(train_data) / budget.batch_size)
    # fractional epochs become a step limit; one micro-batch per step (no accumulation) so
    # short budgets still take many steps; dropout stays the model's (Budget.dropout)
    max_steps = budget.max_steps or max(1, round(budget.epochs * steps_per_epoch))
    cfg = TrainConfig(epochs=max(1, math.ceil(budget.epochs)), batch_size=budget.batch_size, accum_steps=1,
                      seed=budget.seed, max_steps=max_steps, dropout=None, progress=False, device="cpu", **kw)
    trainer = Trainer(model, cfg, train_data)
    if budget.optimizer == "adam":  # the Trainer's schedule sets lr on whatever optimizer it holds
        trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=cfg.lr)
    trainer.fit()
    model.eval()
    return float(evaluate(model, make_loader(test_data, 256))["top1"])


def measure(model, input_size: int) -> dict[str, int]:
    """params, fp32 size in bytes and MACs of ``model`` at ``input_size``."""
    from ..models import summary
    s = summary(model, input_size)
    return {"params": int(s.params), "size_bytes": int(s.size_bytes), "macs": int(s.macs)}


def build_point(space, params: dict[str, Any], num_classes: int, init: str = "torchvision",
                dropout: float = 0.0):
    """The network for one point; raises ConfigError when the metaparameters are invalid."""
    from ..models import create_model
    meta, bypass = space.to_meta(params)
    return create_model(space.model, meta=meta, bypass=bypass, num_classes=num_classes, init=init,
                        dropout=dropout)


def run_point(space, params: dict[str, Any], budget: Budget, size_budget: int | None = None,
              on_measured=None) -> TrialResult:
    """Build, measure, (maybe) train and evaluate one point of ``space``.

    Raises ConfigError for invalid metaparameters and :class:`OverBudget` (before any training)
    when the network exceeds ``size_budget`` bytes or the space's ``max_params``.
    ``on_measured(dict)`` is called with params/size/MACs before training starts.
    """
    import torch
    from ..models import get_model_entry
    t0 = time.perf_counter()
    train = load_data(budget, "train")
    test = load_data(budget, "test")
    torch.manual_seed(budget.seed)
    model = build_point(space, params, num_classes=len(train.classes), init=budget.init,
                        dropout=budget.dropout)
    m = measure(model, get_model_entry(space.model).input_size)
    if on_measured is not None:
        on_measured(m)
    if size_budget is not None and m["size_bytes"] > size_budget:
        raise OverBudget(f"{m['size_bytes']:,} bytes > size budget {size_budget:,}")
    max_params = space.constraints.get("max_params")
    if max_params is not None and m["params"] > max_params:
        raise OverBudget(f"{m['params']:,} parameters > max_params {max_params:,}")
    top1 = train_and_eval(model, train, test, budget)
    return TrialResult(top1=top1, seconds=time.perf_counter() - t0, **m)
