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

from ..errors import Range, SqueezeNetError, check_fields
from ..train.config import MAX_SEED
from ..train.recipes import RECIPES

#: The recipe trials train with (``optimizer="adamw"``): the digits demo's.
RECIPE = RECIPES["digits"]
#: TrainConfig fields a trial takes from the recipe (its epochs, seed and checkpointing are the
#: budget's business).
RECIPE_FIELDS = ("optimizer", "lr", "weight_decay", "schedule", "warmup_steps", "label_smoothing", "channels_last")


@dataclass(frozen=True)
class Budget:
    """The fixed training budget every trial of a study or sweep gets.

    The default recipe is the digits demo's (``squeezenet.train.recipes.RECIPES["digits"]``:
    AdamW, poly decay to 0, label smoothing, ``alive`` init, affine augmentation on digits),
    which trains the small SqueezeNets within a few epochs; ``optimizer="sgd"`` is the paper's
    recipe (the Trainer's defaults). The budget itself (``epochs`` / ``max_steps``) is the knob.
    """

    data: str = "digits"              # dataset spec for squeezenet.data.build_dataset
    epochs: float = 1.0               # passes over the (sub)set of training images
    max_steps: int | None = None      # stop after this many optimizer steps (None: epochs decide)
    batch_size: int = RECIPE.config["batch_size"]
    optimizer: str = RECIPE.config["optimizer"]  # adamw (the demo recipe) | sgd (the paper's recipe)
    lr: float | None = None           # learning rate (None: the recipe's)
    init: str = RECIPE.init           # squeezenet.train.init_weights scheme
    dropout: float = RECIPE.config["dropout"]  # before conv10
    augment: bool = True              # training augmentation (digits: the demo's affine warp)
    train_subset: int | None = None   # train on this many images (a fixed random subset)
    test_subset: int | None = None    # evaluate on this many images
    seed: int = 0                     # weight init, data order and subset choice
    batch_norm: bool = False          # networks with BatchNorm (not the paper's; trains faster)

    def __post_init__(self) -> None:
        check_fields(self, "budget", BUDGET_RANGES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The accepted range of every numeric field of :class:`Budget` (checked when it is made).
BUDGET_RANGES = {
    "epochs": Range(0, lo_open=True),
    "max_steps": Range(1, integer=True, optional=True),
    "batch_size": Range(1, integer=True),
    "lr": Range(0, lo_open=True, optional=True),
    "dropout": Range(0, 1, hi_open=True),
    "train_subset": Range(1, integer=True, optional=True),
    "test_subset": Range(1, integer=True, optional=True),
    "seed": Range(0, MAX_SEED, integer=True),
}


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
        augment = budget.augment and split == "train"
        if augment and budget.data == "digits":
            from ..data import digits_train_transform
            ds = build_dataset(budget.data, split=split, transform=digits_train_transform())
        else:
            ds = build_dataset(budget.data, split=split, augment=augment)
        n = key[2]
        if n is not None and n < len(ds):
            g = torch.Generator().manual_seed(1000 + budget.seed)
            idx = torch.randperm(len(ds), generator=g)[:n].tolist()
            classes = ds.classes
            ds = torch.utils.data.Subset(ds, idx)
            ds.classes = classes
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]


def train_config(budget: Budget, steps_per_epoch: int, progress: bool = False):
    """The :class:`squeezenet.train.TrainConfig` of a trial: the budget's recipe and length.

    >>> train_config(Budget(epochs=2), steps_per_epoch=23).optimizer, train_config(Budget(epochs=2), 23).max_steps
    ('adamw', 46)
    """
    import math

    from ..train import TrainConfig
    if budget.optimizer == "adamw":
        kw = {k: RECIPE.config[k] for k in RECIPE_FIELDS}
    elif budget.optimizer == "sgd":
        kw = {}
    else:
        raise SqueezeNetError(f"optimizer {budget.optimizer!r}: must be adamw or sgd")
    if budget.lr is not None:
        kw["lr"] = budget.lr
    # fractional epochs become a step limit, which is also the poly schedule's length; one
    # micro-batch per step (no accumulation) so short budgets still take many steps; dropout
    # stays the model's (Budget.dropout)
    max_steps = budget.max_steps or max(1, round(budget.epochs * steps_per_epoch))
    return TrainConfig(**{**kw, "epochs": max(1, math.ceil(budget.epochs)), "batch_size": budget.batch_size,
                          "accum_steps": 1, "seed": budget.seed, "max_steps": max_steps, "dropout": None,
                          "progress": progress, "device": "cpu"})


def train_and_eval(model, train_data, test_data, budget: Budget, progress: bool = False) -> float:
    """Train ``model`` with :class:`squeezenet.train.Trainer` for ``budget``; return test top-1.
    ``progress``: the Trainer's bar on stderr (steps, time left)."""
    import math

    from ..data import make_loader
    from ..evaluate import evaluate
    from ..train import Trainer
    cfg = train_config(budget, math.ceil(len(train_data) / budget.batch_size), progress)
    Trainer(model, cfg, train_data).fit()
    model.eval()
    return float(evaluate(model, make_loader(test_data, 256))["top1"])


def measure(model, input_size: int) -> dict[str, int]:
    """params, fp32 size in bytes and MACs of ``model`` at ``input_size``."""
    from ..models import summary
    s = summary(model, input_size)
    return {"params": int(s.params), "size_bytes": int(s.size_bytes), "macs": int(s.macs)}


def build_point(space, params: dict[str, Any], num_classes: int, init: str = "alive",
                dropout: float = 0.0, data=None, batch_norm: bool = False):
    """The network for one point, initialised by :func:`squeezenet.train.init_weights` (``data``
    for ``lsuv``); raises ConfigError when the metaparameters are invalid."""
    from ..models import create_model
    from ..train.init import init_weights
    meta, bypass = space.to_meta(params)
    extra = {"batch_norm": True} if batch_norm else {}
    model = create_model(space.model, meta=meta, bypass=bypass, num_classes=num_classes, dropout=dropout, **extra)
    return init_weights(model, init, data=data)


def run_point(space, params: dict[str, Any], budget: Budget, size_budget: int | None = None,
              on_measured=None, progress: bool = False) -> TrialResult:
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
                        dropout=budget.dropout, data=train, batch_norm=budget.batch_norm)
    m = measure(model, get_model_entry(space.model).input_size)
    if on_measured is not None:
        on_measured(m)
    if size_budget is not None and m["size_bytes"] > size_budget:
        raise OverBudget(f"{m['size_bytes']:,} bytes > size budget {size_budget:,}")
    max_params = space.constraints.get("max_params")
    if max_params is not None and m["params"] > max_params:
        raise OverBudget(f"{m['params']:,} parameters > max_params {max_params:,}")
    top1 = train_and_eval(model, train, test, budget, progress)
    return TrialResult(top1=top1, seconds=time.perf_counter() - t0, **m)
