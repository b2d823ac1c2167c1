"""Deep Compression end to end: prune -> retrain -> quantize -> retrain centroids -> Huffman.

:func:`compress_model` runs :data:`STAGES`, an ordered list of small functions over one
:class:`CompressState`, on a trained SqueezeNet. The state has rooms: the fixed
:class:`Inputs` (config, :class:`~.roles.DataRoles`, the uncompressed model), which no stage
changes; the :class:`Artefact` the stages build (model, kept fractions, per-layer bits,
masks, quantized layers); the :class:`Report` they add rows and metrics to; and what is
:class:`Measured` once (calibration batches, sensitivities). The stages that
make a row evaluate their result on the evaluation data, so the report is Table 2 of the paper
(see :mod:`squeezenet.compress.report`). Sizes and the ``.sqz`` writer are in
:mod:`squeezenet.compress.sizing`.

Where a stage has several ways to go (magnitude or error-compensated pruning, plain or
error-compensated k-means on the retrained or the pruned-only weights, tuned or untuned
centroids, one bit width or another under a size budget), each way is a :class:`Candidate`
and :func:`keep_better` keeps the one that scores best.

With a target size, no fixed bits and calibration images, the *mixed* path is one more
candidate of the size-budget stage (:func:`fit_size_budget`): bits and kept fraction per layer
by a knapsack over measured sensitivity with exact ``.sqz`` sizes (:mod:`.mixed`); when it
wins, :func:`round_compensated` (GPTQ-style rounding on the calibration images) and
:func:`distill_ste` (straight-through distillation from the uncompressed model) replace
prune / retrain / quantize / centroids, each kept only where it scores better. With
``unlabeled`` images, candidates are scored on a part of them held out of calibration and
retraining (agreement with the uncompressed model's top-1), never on the evaluation data the
report gives; which images trained, calibrated, chose and scored is decided in one place
(:class:`~.roles.DataRoles`) and reported as data (``data_roles``; in words, ``chosen_on``).
``max_drop_points``
(:func:`search_size`) searches the smallest size within a top-1 drop: a driver that runs the
trial stages on copies of the artefact (:func:`run_on_copy`).

Retraining uses :class:`squeezenet.train.Trainer` (callbacks ``on_step_end`` keep the pruning
masks); with unlabeled data it distills the uncompressed model (no labels needed). A
``--batch-norm`` model is folded (BatchNorm into its convs) once, when the state is made:
every stage sees the folded network, the one stored, and only :func:`retrain_masked` runs on
the BatchNorm network (its statistics then follow the pruned weights) and folds it again.

>>> import tempfile, torch
>>> from pathlib import Path
>>> from squeezenet.data import make_loader
>>> from squeezenet.models import SqueezeNet, SqueezeNetConfig
>>> _ = torch.manual_seed(0)
>>> model = SqueezeNet(SqueezeNetConfig(stem="small", fires=((8, 16, 16),), pool_after=(),
...                                     num_classes=3))
>>> data = torch.utils.data.TensorDataset(torch.randn(32, 3, 16, 16), torch.randint(0, 3, (32,)))
>>> cfg = CompressConfig(prune="uniform:0.5", bits=4, finetune_epochs=0)
>>> with tempfile.TemporaryDirectory() as d:
...     report = compress_model(model, None, make_loader(data, 32), cfg, Path(d) / "m.sqz",
...                             log=lambda *a: None)
...     written = (Path(d) / "m.sqz").stat().st_size
>>> [r["stage"] for r in report["rows"]], report["rows"][-1]["bytes"] == written
(['dense', 'pruned', 'quantized', 'huffman (.sqz)'], True)
>>> CompressConfig(bits=40)
Traceback (most recent call last):
squeezenet.errors.ConfigError: compress config bits=40: must be an integer in 1..16 or a {layer: bits} mapping
"""
from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MAX_BATCH_SIZE, MAX_LR, ConfigError, Range, check_fields
from ..train import distributed as D
from ..train.config import DEVICE_RE, MAX_SEED, OPTIMIZERS
from . import prune as P
from . import quantize as Q
from . import sizing as S
from .compensate import calibration_batches, compensate_model
from .report import ALEXNET_BYTES, bits_label, table_row
from .roles import DataRoles

#: Refits by dropping shared weights when the final file is over --target-size, at most.
MAX_REFITS = 12


#: A kept fraction (of a layer's weights, of the spectral energy): in (0, 1].
KEPT = Range(0, 1, lo_open=True)
_BITS = Range(1, 16, integer=True)

#: The accepted range of every numeric field of :class:`CompressConfig` (checked when it is made).
RANGES = {
    "gap_bits": Range(1, 8, integer=True),
    "target_size": Range(1000, integer=True, optional=True, note="bytes (a model needs more)"),
    "finetune_epochs": Range(0),
    "max_steps": Range(1, integer=True, optional=True, note="(None: no cap)"),
    "lr": Range(0, MAX_LR, lo_open=True),
    "temperature": Range(0, lo_open=True),
    "centroid_lr": Range(0, lo_open=True, optional=True, note="(None: lr)"),
    "batch_size": Range(1, MAX_BATCH_SIZE, integer=True),
    "weight_decay": Range(0),
    "max_drop": Range(0, 1, note="(a top-1 fraction)"),
    "svd_energy": Range(0, 1, lo_open=True, optional=True, note="(a spectral energy fraction)"),
    "seed": Range(0, MAX_SEED, integer=True),
    "calibration_images": Range(0, integer=True, note="(0: no error compensation)"),
    "choose_images": Range(0, integer=True, note="(0: choose on the evaluation data)"),
    "distill_steps": Range(0, integer=True),
    "distill_lr": Range(0, lo_open=True),
    "max_drop_points": Range(0, 100, optional=True, note="top-1 points"),
}


def _kept_ok(v) -> bool:
    return KEPT.problem(v) is None


@dataclass
class CompressConfig:
    """Options of the Deep Compression pipeline (one commented field per line).

    Every field is checked when the config is made (a one-line :class:`ConfigError` naming
    the field), so library callers and the CLI get the same errors.

    >>> CompressConfig(prune="uniform:0.5", bits=5).bits
    5
    >>> CompressConfig(lr=float("nan"))
    Traceback (most recent call last):
    squeezenet.errors.ConfigError: compress config lr=nan: must be a finite number in (0, 10000]
    """

    prune: Any = "paper"            # paper | uniform:F | auto | {key: kept fraction}
    bits: Any = None                # bits per layer (int or {key: bits}); 2**bits centroids;
                                    # None: 6, or the best of 5/6/7/8 for a target size
    init: str = "linear"            # k-means init: linear | density | random
    gap_bits: int = 4               # width of a relative sparse-position gap (fillers beyond)
    target_size: int | None = None  # bytes: choose sparsity scale and bits to fit
    finetune_epochs: float = 1.0    # retraining epochs after pruning and after quantization
    max_steps: int | None = None    # cap on optimizer steps per retraining stage
    lr: float = 1e-3                # retraining learning rate
    optimizer: str = "sgd"          # retraining optimizer: sgd (momentum 0.9, the paper's) | adamw
    centroid_lr: float | None = None  # Adam step of centroid fine-tuning (default lr)
    batch_size: int = 64            # retraining batch size
    weight_decay: float = 0.0       # retraining weight decay (masks keep pruned weights at 0)
    temperature: float = 2.0        # distillation temperature with unlabeled data
    max_drop: float = 0.01          # auto pruning: allowed top-1 drop per layer
    svd_energy: float | None = None  # also report an SVD row keeping this energy
    seed: int = 0                   # seed for data order and k-means random init
    calibration_images: int = 256   # images (labels unused) for error-compensated quantization
                                    # (GPTQ-style, a scored alternative to plain k-means); 0 = off
    progress: bool = True           # tqdm bars (stderr) while retraining
    mixed: bool = True              # with target_size and no bits: per-layer bits and kept
                                    # fractions by knapsack over measured sensitivity (scored
                                    # against the uniform-bits way; the better one goes on)
    choose_images: int = 500        # unlabeled images held out to choose on (agreement with the
                                    # uncompressed model's top-1); never calibrated or trained on
    distill_steps: int = 300        # mixed path: straight-through distillation steps (batch 32)
    distill_lr: float = 1e-4        # mixed path: Adam step of that distillation
    max_drop_points: float | None = None  # the smallest file whose top-1 on the evaluation data
                                    # is within this many points of the uncompressed model's
    device: str = "cpu"             # where the training loops run: cpu | cuda | cuda:N | mps | auto
                                    # (the other stages stay on the CPU)
    bf16: bool = False              # bfloat16 autocast in the training loops

    def __post_init__(self) -> None:
        def bad(name, why):
            raise ConfigError(f"compress config {name}={getattr(self, name)!r}: {why}")

        if not _prune_spec_ok(self.prune):
            bad("prune", "use paper, uniform:F or a {layer: F} mapping (F, the kept fraction, "
                         "in (0, 1]), or auto")
        b = self.bits
        if not (b is None or _BITS.problem(b) is None
                or (isinstance(b, Mapping) and b and all(_BITS.problem(v) is None for v in b.values()))):
            bad("bits", "must be an integer in 1..16 or a {layer: bits} mapping")
        if self.init not in Q.INITS:
            bad("init", f"must be one of {', '.join(Q.INITS)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        check_fields(self, "compress config", RANGES)
        if not (isinstance(self.device, str) and re.fullmatch(DEVICE_RE, self.device)):
            bad("device", "must be auto, cpu, cuda, cuda:N or mps")
        for name in ("progress", "mixed", "bf16"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be True or False")
        if self.max_drop_points is not None and (self.target_size or self.bits is not None or not self.mixed):
            bad("max_drop_points", "searches the size itself: give it without target_size, bits or mixed=False")


def _prune_spec_ok(spec) -> bool:
    """What :func:`~.prune.prune_fractions` can accept (layer names are checked there, on
    the model)."""
    if isinstance(spec, Mapping):
        return all(isinstance(k, str) for k in spec) and all(_kept_ok(v) for v in spec.values())
    if isinstance(spec, str):
        if spec in ("paper", "auto"):
            return True
        if spec.startswith("uniform:"):
            try:
                return _kept_ok(float(spec.split(":", 1)[1]))
            except ValueError:
                return False
        return False
    return _kept_ok(spec)


# ----------------------------------------------------------------------------- training

class distill_loss:
    """``loss_fn(model, images, targets)``: KL to the teacher's softened outputs (labels unused).
    ``teacher`` is an attribute, so that a loop on another device can take it along."""

    def __init__(self, teacher: nn.Module, temperature: float = 2.0) -> None:
        self.teacher, self.temperature = teacher.eval(), temperature

    def __call__(self, model, images, targets):
        with torch.no_grad():
            t = self.teacher(images)
        s = model(images)
        T = self.temperature
        return F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), log_target=True,
                        reduction="batchmean") * T * T


def world_size() -> int:
    """Processes sharing the work (torchrun), 1 without."""
    import torch.distributed as dist
    return dist.get_world_size() if D.active() else 1


def retrain(model: nn.Module, train_data, cfg: CompressConfig, callbacks=(), loss_fn=None,
            lr: float | None = None) -> list[dict]:
    """One retraining stage with ``squeezenet.train.Trainer`` (``cfg.optimizer``, poly lr), on
    ``cfg.device``; the model (and a distillation loss's teacher) come back where they were.
    Under torchrun each of N processes takes ``batch_size / N`` images a step (DDP), so the
    steps are those of one process.

    Only parameters with ``requires_grad`` move (the centroid stage freezes the rest).
    """
    from ..train import TrainConfig, Trainer
    if train_data is None or (cfg.finetune_epochs <= 0 and not cfg.max_steps):
        return []
    steps = stage_steps(cfg, train_data)
    tc = TrainConfig(epochs=max(1, math.ceil(cfg.finetune_epochs)), batch_size=cfg.batch_size // world_size(),
                     accum_steps=1, lr=cfg.lr if lr is None else lr, momentum=0.9, optimizer=cfg.optimizer,
                     weight_decay=cfg.weight_decay, dropout=None, seed=cfg.seed, max_steps=steps,
                     progress=cfg.progress, device=cfg.device, bf16=cfg.bf16)
    dev0 = next(model.parameters()).device
    teacher = getattr(loss_fn, "teacher", None)
    try:
        trainer = Trainer(model, tc, train_data, callbacks=list(callbacks), loss_fn=loss_fn, log_epochs=False)
        if teacher is not None:
            teacher.to(trainer.device)
        out = trainer.fit()
    finally:
        model.to(dev0)
        if teacher is not None:
            teacher.to(dev0)
    model.eval()
    return out


def stage_steps(cfg: CompressConfig, data) -> int:
    """Optimizer steps of one retraining stage: ``max_steps``, else ``finetune_epochs`` epochs."""
    if cfg.max_steps:
        return int(cfg.max_steps)
    return max(1, math.ceil(cfg.finetune_epochs * math.ceil(len(data) / cfg.batch_size)))


# ----------------------------------------------------------------------------- state

class _Images:
    """A re-iterable of the image batches of a loader (labels dropped)."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __iter__(self):
        for item in self.loader:
            if isinstance(item, (tuple, list)) and len(item) == 0:
                continue
            x = item[0] if isinstance(item, (tuple, list)) else item
            yield x.contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class Inputs:
    """The fixed inputs of a run: made once by :meth:`CompressState.start`, never changed by a
    stage (a size-search trial shares them)."""

    cfg: CompressConfig
    out_path: str | os.PathLike       # the .sqz to write
    roles: DataRoles                  # train / calibrate / choose / score data
    teacher: nn.Module                # the uncompressed (folded) model
    keys: list[str]                   # compressed layers (conv/linear weights)
    n_params: int                     # parameters of the uncompressed model
    keymap: dict[str, str] = field(default_factory=dict)   # folded weight key -> BN-network key
    loss_fn: Callable | None = None   # retraining loss: distillation from teacher with unlabeled data
    choose_targets: list | None = None  # the uncompressed model's top-1 on each choosing batch
    log: Callable = print
    started: float = field(default_factory=time.time)


@dataclass
class Measured:
    """What is measured once from the inputs, the first time a stage asks, and shared by every
    copy of the artefact (a size-search trial reuses it)."""

    calibration: list | None = None   # calibration image batches
    fisher: dict | None = None        # mixed: per-weight curvature (Fisher diagonal)
    options: dict | None = None       # mixed: every layer's (bits, kept, bytes, distortion) options


@dataclass
class Artefact:
    """The compressed model as the stages build it: what a size-search trial copies."""

    model: nn.Module                  # the network compressed and stored (BatchNorm folded)
    bits: dict[str, int]              # bits per layer
    target_size: int | None = None    # bytes the file must fit (the config's, or the size search's answer)
    bn_model: nn.Module | None = None  # the BatchNorm network retraining runs on (None: no BN)
    folded_changed: bool = False      # folded weights changed beyond zeros: unfold before retraining
    fractions: dict[str, float] = field(default_factory=dict)   # kept fraction per layer
    masks: dict[str, torch.Tensor] = field(default_factory=dict)   # kept weights per layer
    prune_method: str = "magnitude"   # the pruning candidate kept
    unretrained: nn.Module | None = None   # the pruned model before retraining (a quantize source)
    history: list[dict] = field(default_factory=list)       # the pruned model's retraining log
    layers: dict[str, Q.QuantLayer] = field(default_factory=dict)   # codebooks and codes per layer
    plan: str | None = None           # "mixed" (knapsack allocation) or "uniform" (one width); None: not yet chosen
    choice: dict | None = None        # mixed: the option allocated to each layer
    budget: int | None = None         # mixed: bytes for the layers' payload (target - overhead)
    refits: int = 0                   # size refits after the final encode
    from_search: bool = False         # made by the --max-drop size search: sized, rounded and
                                      # distilled there (only the encode stage goes on)

    def copy(self) -> "Artefact":
        """An independent copy (models, masks and layers included)."""
        return copy.deepcopy(self)


@dataclass
class Report:
    """What the run reports: Table 2's rows, metrics per stage, timings, the size search."""

    rows: list[dict] = field(default_factory=list)          # the report's rows
    metrics: dict[str, dict] = field(default_factory=dict)  # stage -> metrics on the evaluation data
    timings: dict[str, float] = field(default_factory=dict)  # seconds per timing key
    written: dict | None = None       # write_sqz's info of the final file
    size_search: dict | None = None   # --max-drop: the search's trials and answer


@dataclass
class CompressState:
    """What the stages share, in rooms: the fixed :class:`Inputs`, the :class:`Artefact` they
    build, the :class:`Report` they add to, and what is :class:`Measured` once. Made by
    :meth:`start`.

    ``evaluate_rows`` and ``paths`` are the driver's: a size-search trial
    (:func:`run_on_copy`) runs with rows not evaluated and only the knapsack path."""

    inputs: Inputs
    art: Artefact
    report: Report = field(default_factory=Report)
    measured: Measured = field(default_factory=Measured)
    evaluate_rows: bool = True        # rows measured on the evaluation data (False in a size-search trial)
    paths: tuple[str, ...] = ("mixed", "uniform")   # what the size budget may choose

    @classmethod
    def start(cls, model: nn.Module, roles: DataRoles, cfg: CompressConfig, out_path,
              log: Callable = print) -> "CompressState":
        """Seed, fold BatchNorm (the one place it is folded) and take the data roles; with a
        choosing split of unlabeled images, the uncompressed model's top-1 on each."""
        started = time.time()
        torch.manual_seed(cfg.seed)
        model.eval()
        bn_model, keymap = None, {}
        if getattr(getattr(model, "config", None), "batch_norm", False):
            from ..models.fold import fold_batch_norm, folded_key_map
            bn_model = model
            model = fold_batch_norm(bn_model).eval()
            keymap = folded_key_map(bn_model, model)
            log("BatchNorm folded into the convolutions for storage")
        teacher = copy.deepcopy(model).eval()
        loss_fn = distill_loss(teacher, cfg.temperature) if roles.unlabeled is not None else None
        keys = list(P.prunable(model))
        bits = dict(cfg.bits) if isinstance(cfg.bits, Mapping) else {k: int(cfg.bits or 6) for k in keys}
        targets, choose = None, roles.choose_batches()    # read here, after seeding, as always
        if choose:
            with torch.no_grad():
                targets = [teacher(x).argmax(1) for x in choose]
        inputs = Inputs(cfg=cfg, out_path=out_path, roles=roles, teacher=teacher, keys=keys,
                        n_params=sum(p.numel() for p in model.parameters()), keymap=keymap, loss_fn=loss_fn,
                        choose_targets=targets, log=log, started=started)
        return cls(inputs, Artefact(model=model, bits=bits, target_size=cfg.target_size, bn_model=bn_model))

    @property
    def cfg(self) -> CompressConfig:
        return self.inputs.cfg

    @property
    def log(self) -> Callable:
        return self.inputs.log

    @property
    def roles(self) -> DataRoles:
        return self.inputs.roles

    @property
    def fp32(self) -> int:
        """Bytes of the uncompressed model in float32."""
        return self.inputs.n_params * 4

    @property
    def choose(self) -> list | None:
        """The held-out unlabeled image batches candidates are scored on (None: a loader scores)."""
        return self.roles.choose_batches() or None

    @property
    def score_loader(self):
        """The labeled data candidates are scored on without a choosing split."""
        return self.roles.choose_loader if self.roles.choose_loader is not None else self.roles.score

    @property
    def retrains(self) -> bool:
        """Whether the retraining stages run (data, and epochs or steps to run)."""
        return self.roles.retrain is not None and (self.cfg.finetune_epochs > 0 or bool(self.cfg.max_steps))

    @property
    def calibrates(self) -> bool:
        """Whether error-compensated candidates are tried (calibration images and score data)."""
        return self.cfg.calibration_images > 0 and self.roles.calibrate is not None and self.can_score

    @property
    def can_score(self) -> bool:
        """Whether candidates can be scored (a choosing split, or score data)."""
        return self.choose is not None or self.score_loader is not None

    @property
    def mixed_wanted(self) -> bool:
        """Whether the knapsack allocation is tried: a target size, no fixed bits, calibration
        images (for the sensitivity) and something to score on."""
        return bool(self.cfg.mixed and self.art.target_size and self.cfg.bits is None and self.calibrates)

    def calibration(self) -> list[torch.Tensor]:
        """The calibration image batches (drawn once, the first time a stage asks)."""
        if self.measured.calibration is None:
            self.measured.calibration = calibration_batches(self.roles.calibrate, self.cfg.calibration_images,
                                                            32, self.cfg.seed)
        return self.measured.calibration

    def evaluate(self, model: nn.Module) -> dict:
        """Metrics on the evaluation data (``{}`` without it): what the rows report. Under
        torchrun each process scores its share of the batches and the counts are summed."""
        return sharded_evaluate(model, self.roles.score) if self.roles.score is not None else {}

    def score(self, model: nn.Module) -> float:
        """What candidates are compared on: agreement with the uncompressed model's top-1 on
        the held-out unlabeled images when there are some, else top-1 on the score data
        (sharded over processes under torchrun, like :meth:`evaluate`)."""
        if self.choose is not None:
            model.eval()
            rank, world = (D.env_world()[0], world_size()) if D.active() else (0, 1)
            pairs = list(zip(self.choose, self.inputs.choose_targets))[rank::world]
            with torch.no_grad():
                hits = sum(int((model(x).argmax(1) == t).sum()) for x, t in pairs)
            hits, n = D.all_reduce([float(hits), float(sum(len(t) for _, t in pairs))], "sum")
            return hits / n
        if self.score_loader is None:
            raise ConfigError("compress: choosing between candidates needs evaluation or score data")
        return sharded_evaluate(model, self.score_loader)["top1"]

    def add_row(self, stage: str, approach: str, bits, size: int, metrics: dict | None, **extra) -> dict:
        row = table_row(stage, approach, bits, size, self.fp32, metrics, **extra)
        self.report.rows.append(row)
        return row

    def chosen_on(self) -> str:
        """What chose, in words: the data roles' choosing split (and, after the size search,
        that the evaluation data chose the size)."""
        text = self.roles.chosen_on()
        if self.report.size_search is not None:
            text = (f"size: top-1 drop on the evaluation data (the scored split: the drop is within "
                    f"the limit by construction); each step: {text}")
        return text

    def summary(self) -> dict:
        """The run's report (JSON-ready): rows, sizes, fractions, bits, config, timings, the
        data roles (as data, and ``chosen_on`` / ``scored_on`` in words)."""
        a, r = self.art, self.report
        return {"rows": r.rows, "out": str(self.inputs.out_path), "params": self.inputs.n_params,
                "fp32_bytes": self.fp32, "alexnet_bytes": ALEXNET_BYTES, "fractions": a.fractions, "bits": a.bits,
                "config": {k: v for k, v in self.cfg.__dict__.items()}, "seconds": time.time() - self.inputs.started,
                "timings": r.timings, "cpu_seconds": time.process_time(), "size_search": r.size_search,
                "method": a.plan or "uniform", "chosen_on": self.chosen_on(), "scored_on": self.roles.scored_on(),
                "data_roles": self.roles.info}


def sharded_evaluate(model: nn.Module, loader) -> dict:
    """:func:`squeezenet.evaluate.evaluate`; under torchrun each process scores every N-th
    batch and the counts are summed (the same figures as one process)."""
    from ..evaluate import evaluate
    if not D.active():
        return evaluate(model, loader)
    import torch.distributed as dist
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = [b for i, b in enumerate(loader) if i % world == rank]
    r = evaluate(model, mine) if mine else {"count": 0, "top1": 0.0, "top5": 0.0, "seconds": 0.0}
    owner = getattr(loader, "dataset", None)
    from ..data import base_dataset
    skipped = len(getattr(base_dataset(owner), "skipped", {}) or {}) if owner is not None else 0
    c1, c5, n = D.all_reduce([round(r["top1"] * r["count"]), round(r["top5"] * r["count"]), r["count"]], "sum")
    seconds = D.all_reduce([r["seconds"]], "max")[0]
    n = int(n)
    return {"top1": c1 / n if n else 0.0, "top5": c5 / n if n else 0.0, "count": n, "skipped": skipped,
            "seconds": seconds, "images_per_s": n / seconds if seconds > 0 else 0.0}


@dataclass
class Candidate:
    """One way of doing a stage; :func:`keep_better` compares candidates by ``score``."""

    name: str
    score: float | None = None
    model: nn.Module | None = None
    layers: dict[str, Q.QuantLayer] | None = None
    info: dict = field(default_factory=dict)


def keep_better(cands: Sequence[Candidate]) -> Candidate:
    """The candidate with the highest score; a tie keeps the earlier one, and a single
    candidate wins unscored.

    >>> keep_better([Candidate("a", 0.5), Candidate("b", 0.7), Candidate("c", 0.7)]).name
    'b'
    """
    if len(cands) == 1:
        return cands[0]
    return max(cands, key=lambda c: c.score)


def retrain_masked(s: CompressState, masks: dict[str, torch.Tensor]) -> list[dict]:
    """Retrain ``s.art.model`` with ``masks`` held at zero; returns the training log ([] if no
    retraining ran).

    A BatchNorm model is retrained as the BatchNorm network (same zeros: folding scales whole
    output channels; weights changed beyond zeros are unfolded first) and folded again, so the
    stages only ever see the folded one.
    """
    if s.art.bn_model is None:
        hist = retrain(s.art.model, s.roles.retrain, s.cfg, callbacks=[P.MaskCallback(masks)], loss_fn=s.inputs.loss_fn)
    else:
        from ..models.fold import fold_batch_norm, unfold_weights
        bn_masks = {s.inputs.keymap[k]: m for k, m in masks.items()}
        if s.art.folded_changed:
            unfold_weights(s.art.bn_model, s.art.model)
            s.art.folded_changed = False
        P.apply_masks(s.art.bn_model, bn_masks)
        hist = retrain(s.art.bn_model, s.roles.retrain, s.cfg, callbacks=[P.MaskCallback(bn_masks)],
                       loss_fn=s.inputs.loss_fn)
        P.apply_masks(s.art.bn_model, bn_masks)
        if hist:
            s.art.model = fold_batch_norm(s.art.bn_model).eval()
    P.apply_masks(s.art.model, masks)
    return hist


# ----------------------------------------------------------------------------- stages

def measure_dense(s: CompressState) -> None:
    """The uncompressed model's row."""
    dense = s.report.metrics["dense"] = s.evaluate(s.art.model)
    s.add_row("dense", "none", 32, s.fp32, dense)
    s.log(f"dense: {s.fp32:,} B top-1 {dense.get('top1', float('nan')):.4f}")


def choose_fractions(s: CompressState) -> None:
    """Kept fraction per layer: the ``prune`` preset, or per-layer sensitivity (``auto``)."""
    cfg = s.cfg
    if cfg.prune == "auto":
        base_top1 = s.score(s.art.model)
        sens = P.sensitivity(s.art.model, s.score)
        s.art.fractions = P.choose_fractions(sens, cfg.max_drop)
        s.log(f"auto pruning (base top-1 {base_top1:.4f}, max drop {cfg.max_drop}): "
              f"{sum(s.art.fractions.values()) / len(s.art.fractions):.2f} mean kept")
    else:
        s.art.fractions = P.prune_fractions(s.art.model, cfg.prune)


def bits_candidates(s: CompressState) -> list[dict[str, int]]:
    """Per-layer bit allocations tried under a size budget: the configured one, or one
    width for all layers out of 5..8."""
    if isinstance(s.cfg.bits, Mapping):
        return [dict(s.cfg.bits)]
    widths = [5, 6, 7, 8] if s.cfg.bits is None else [int(s.cfg.bits)]
    return [{k: b for k in s.inputs.keys} for b in widths]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(s: CompressState, total: int, desc: str, unit: str = "step"):
    """A tqdm bar on stderr for one phase of a stage (``--no-progress``: none)."""
    if not s.cfg.progress:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def _sensitivity(s: CompressState) -> None:
    """Per-weight sensitivity (Fisher diagonal of the logits on the calibration images) and
    every layer's options with their exact ``.sqz`` bytes (:func:`~.mixed.layer_options`);
    measured once on the uncompressed model, whatever the budget."""
    from . import mixed as M
    if s.measured.options is not None:
        return
    batches = s.calibration()
    bar = _bar(s, len(batches), "sensitivity", "batch")
    try:
        s.measured.fisher = M.fisher_diagonal(s.inputs.teacher, batches, s.inputs.keys, target="logits",
                                              progress=lambda i: bar.update(1))
    finally:
        bar.close()
    s.log(f"  sensitivity measured on {sum(len(b) for b in batches)} calibration images")
    bar = _bar(s, len(s.inputs.keys), "layer options", "layer")
    try:
        s.measured.options = {}
        for k in s.inputs.keys:
            s.measured.options[k] = M.layer_options(k, s.inputs.teacher.get_parameter(k), s.measured.fisher[k],
                                                    family="both",
                                           gap_bits=s.cfg.gap_bits, keep_layers=False)
            bar.update(1)
    finally:
        bar.close()


def _nearest_allocation(s: CompressState, target: int):
    """The knapsack allocation for a ``target``-byte file, nearest-rounded: ``(choice, layers,
    model, budget, overhead)``; ``budget`` is what the layers may spend (the file's header and
    float32 biases, measured on a first encode, come off the target)."""
    from . import mixed as M

    def nearest(budget):
        choice = M.allocate(s.measured.options, budget)
        layers = {k: M.realize(o, s.inputs.teacher.get_parameter(k).detach(), s.measured.fisher[k])
                  for k, o in choice.items()}
        m = copy.deepcopy(s.inputs.teacher)
        M.apply_layers(m, layers)
        return choice, layers, m

    n_bias = sum(p.numel() for n, p in s.inputs.teacher.named_parameters() if n not in s.inputs.keys)
    guess = target - 4 * n_bias - 4096
    if guess <= 0:
        raise ConfigError(f"--target-size {target:,}: the unquantized parameters alone need {4 * n_bias:,} B")
    choice, layers, m = nearest(guess)
    total = S.quantized_size(m, layers, s.cfg.gap_bits)["bytes"]
    overhead = total - sum(M.layer_bytes(q.codes, q.codebook.size, s.cfg.gap_bits) for q in layers.values()) + 64
    choice, layers, m = nearest(target - overhead)
    return choice, layers, m, target - overhead, overhead


def _mixed_candidate(s: CompressState) -> Candidate:
    """The knapsack allocation at the target size (:func:`_sensitivity`,
    :func:`_nearest_allocation`): one option per layer by :func:`~.mixed.allocate`, the
    layers nearest-rounded."""
    _sensitivity(s)
    choice, layers, m, s.art.budget, overhead = _nearest_allocation(s, s.art.target_size)
    s.log(f"  mixed precision: {sum(o.bytes for o in choice.values()):,} B of layers "
          f"(+{overhead:,} B header and biases), bits {bits_label({k: q.bits for k, q in layers.items()})}, "
          f"kept {S.kept_fraction(m, s.inputs.keys):.3f} of weights")
    return Candidate("mixed precision (knapsack)", s.score(m), model=m, layers=layers,
                     info={"choice": choice, "bits": {k: q.bits for k, q in layers.items()}})


def fit_size_budget(s: CompressState) -> None:
    """Scale the kept fractions so the file fits ``target_size``, for each bit allocation;
    keep the allocation whose quick (pruned + k-means, not retrained) model scores best.

    With :attr:`CompressState.mixed_wanted`, the knapsack allocation (:func:`_mixed_candidate`)
    is one more candidate; when it wins, the mixed stages (GPTQ rounding, straight-through
    distillation) run instead of prune / retrain / quantize / centroids."""
    cfg = s.cfg
    cands = []
    if s.mixed_wanted:
        mc = _mixed_candidate(s)
        s.log(f"  mixed precision (knapsack): quick score {mc.score:.4f}")
        cands.append(mc)
        if "uniform" not in s.paths:     # a --max-drop trial: the size is what varies
            return _keep_mixed(s, mc)
    # what follows moves the weights and so the code histogram: fit under the target
    fit_size = int(s.art.target_size * (1 - S.fit_margin(s.retrains, s.calibrates)))
    widths = bits_candidates(s)
    bar = _bar(s, len(widths), "uniform-bit fits", "fit") if len(widths) > 1 else _NoBar()
    for bits in widths:
        fr, _, _ = S.fit_target(s.art.model, s.art.fractions, bits, cfg.gap_bits, fit_size, cfg.init, s.log)
        m = copy.deepcopy(s.art.model)
        P.apply_masks(m, P.magnitude_masks(m, fr))
        Q.quantize_model(m, bits, cfg.init)
        score = s.score(m) if s.can_score else 0.0
        s.log(f"  {bits_label(bits)} bits: kept {S.kept_fraction(m, s.inputs.keys):.3f} of weights, "
              f"quick score {score:.4f}")
        cands.append(Candidate(f"{bits_label(bits)} bits", score, info={"bits": bits, "fractions": fr}))
        bar.update(1)
    bar.close()
    best = keep_better(cands)
    s.art.bits = best.info["bits"]
    if best.layers is None:
        s.art.plan, s.art.fractions = "uniform", best.info["fractions"]
        return
    _keep_mixed(s, best)


def _keep_mixed(s: CompressState, best: Candidate) -> None:
    s.art.bits = best.info["bits"]
    s.art.plan, s.art.choice, s.art.layers = "mixed", best.info["choice"], best.layers
    s.art.model.load_state_dict(best.model.state_dict())
    s.art.fractions = {k: float(np.count_nonzero(q.codes)) / q.codes.size for k, q in s.art.layers.items()}
    s.art.masks = {k: torch.from_numpy(q.codes.reshape(q.shape) != 0) for k, q in s.art.layers.items()}
    s.log(f"  kept: {best.name} (chosen on {s.chosen_on()})")
    _mixed_row(s, "mixed precision", "knapsack bits + sparsity", score=best.score)


def _mixed_row(s: CompressState, stage: str, approach: str, **extra) -> None:
    """A report row of the mixed path: the current layers' exact file size, evaluated."""
    size = _size(s)["bytes"]
    met = s.report.metrics[stage] = s.evaluate(s.art.model) if s.evaluate_rows else {}
    s.add_row(stage, approach, bits_label(s.art.bits), size, met, kept=S.kept_fraction(s.art.model, s.inputs.keys),
              **extra)
    s.log(f"{stage}: {size:,} B" + (f" top-1 {met['top1']:.4f}" if "top1" in met else ""))


def round_compensated(s: CompressState) -> None:
    """GPTQ-style rounding of the allocated layers on the calibration images, in forward
    order with sequential re-allocation (:func:`~.mixed.round_sequential`); kept only if it
    scores better than nearest rounding on the choosing split. The "rounded" row."""
    from . import mixed as M
    before = s.score(s.art.model)
    qm = copy.deepcopy(s.inputs.teacher)
    bar = _bar(s, len(s.art.choice), "rounding", "layer")
    try:
        layers, choice = M.round_sequential(qm, s.inputs.teacher, s.measured.options, s.art.choice, s.art.budget,
                                            s.measured.fisher,
                                            s.calibration(), s.cfg.gap_bits, progress=lambda: bar.update(1))
    finally:
        bar.close()
    after = s.score(qm)
    s.log(f"  nearest rounding {before:.4f}, error-compensated rounding {after:.4f} on the choosing split")
    best = keep_better([Candidate("nearest", before), Candidate("GPTQ", after, model=qm, layers=layers)])
    if best.layers is not None:
        s.art.model.load_state_dict(qm.state_dict())
        s.art.layers, s.art.choice = layers, choice
        s.art.bits = {k: q.bits for k, q in layers.items()}
    _mixed_row(s, "rounded", "error-compensated rounding", method=best.name, score=best.score,
               scores={"nearest": before, "GPTQ": after})


def distill_ste(s: CompressState) -> None:
    """Distillation from the uncompressed model on the unlabeled images (their augmented
    crops), weights moving between their layer's centroids through a straight-through
    estimator, codebooks and biases trained, zeros kept (:func:`~.distill.distill_quantized`);
    the final codes fit the byte budget exactly. Kept only if it scores better on the
    choosing split. The "distilled" row."""
    from ..data import make_loader
    from .distill import distill_quantized
    cfg = s.cfg
    before = s.score(s.art.model)
    qm = copy.deepcopy(s.art.model).to(memory_format=torch.channels_last)
    teacher = copy.deepcopy(s.inputs.teacher).to(memory_format=torch.channels_last)
    batches = _Images(make_loader(s.roles.distill, 32, shuffle=True, seed=cfg.seed, drop_last=True))
    from ..train import TrainingDiverged
    try:
        layers, hist = distill_quantized(qm, teacher, s.art.layers, batches, cfg.distill_steps, cfg.distill_lr,
                                         mode="ste", loss="kl", temperature=cfg.temperature,
                                         max_bytes=s.art.budget, importance=s.measured.fisher, log=s.log,
                                         device=cfg.device,
                                         bf16=cfg.bf16, progress=cfg.progress)
    except TrainingDiverged as e:     # scores as not distilled, which a tie keeps
        s.log(f"  distillation stopped: {e}")
        qm, layers, hist = copy.deepcopy(s.art.model), s.art.layers, []
    qm = qm.to(memory_format=torch.contiguous_format)
    after = s.score(qm)
    s.log(f"  before distillation {before:.4f}, after {after:.4f} on the choosing split")
    best = keep_better([Candidate("not distilled", before), Candidate("distilled", after, layers=layers)])
    if best.layers is not None:
        s.art.model.load_state_dict(qm.state_dict())
        s.art.layers = layers
    _mixed_row(s, "distilled", "straight-through distillation", method=best.name, score=best.score,
               scores={"before": before, "after": after}, steps=cfg.distill_steps,
               loss_first=hist[0] if hist else None, loss_last=hist[-1] if hist else None)


def prune(s: CompressState) -> None:
    """Prune to the kept fractions. With calibration images, magnitude pruning and
    error-compensated (OBS / SparseGPT-style) pruning are both tried; the one scoring better
    on the score data (before retraining) goes on."""
    cands = [Candidate("magnitude", model=s.art.model)]
    if s.calibrates:
        obs = copy.deepcopy(s.art.model)
        compensate_model(obs, s.calibration(), s.inputs.keys, fractions=s.art.fractions)
        cands.append(Candidate("error-compensated (OBS)", model=obs))
    masks = P.magnitude_masks(s.art.model, s.art.fractions)
    P.apply_masks(s.art.model, masks)
    if len(cands) > 1:
        for c in cands:
            c.score = s.score(c.model)
        s.log(f"  pruned by magnitude: top-1 {cands[0].score:.4f}, with error compensation: "
              f"{cands[1].score:.4f} on the score data")
    best = keep_better(cands)
    if best is not cands[0]:
        s.art.model.load_state_dict(best.model.state_dict())
        sd = s.art.model.state_dict()
        masks = {k: sd[k] != 0 for k in s.inputs.keys}
        s.art.folded_changed = True
    s.art.prune_method, s.art.masks = best.name, masks


def retrain_pruned(s: CompressState) -> None:
    """Retrain with the masks held (a copy of the pruned-only model is kept as a quantization
    source); the "pruned" row."""
    s.art.unretrained = copy.deepcopy(s.art.model) if s.retrains else None
    s.art.history = retrain_masked(s, s.art.masks)
    pruned = s.report.metrics["pruned"] = s.evaluate(s.art.model)
    kept = S.kept_fraction(s.art.model, s.inputs.keys)
    s.add_row("pruned", "network pruning", 32, S.sparse_sizes(s.art.model, s.cfg.gap_bits), pruned,
              kept=kept, retrain=s.art.history[-1] if s.art.history else None, method=s.art.prune_method)
    s.log(f"pruned ({kept:.3f} kept): top-1 {pruned.get('top1', float('nan')):.4f}")


def _kmeans(s: CompressState, model: nn.Module) -> dict[str, Q.QuantLayer]:
    return Q.quantize_model(model, s.art.bits, s.cfg.init, s.inputs.keys)


def _kmeans_compensated(s: CompressState, model: nn.Module) -> dict[str, Q.QuantLayer]:
    # k-means codebooks, assignment minimising each layer's output error (compensate.py)
    return compensate_model(model, s.calibration(), s.inputs.keys, bits=s.art.bits, init=s.cfg.init)


def quantizers(s: CompressState) -> list[tuple[str, Callable]]:
    """The quantization methods tried: ``(name, fn(state, model) -> layers)``, in place."""
    return [("k-means", _kmeans)] + ([("k-means + error compensation", _kmeans_compensated)]
                                     if s.calibrates else [])


def quantize(s: CompressState) -> None:
    """Quantize with each method of :func:`quantizers`, on the retrained and on the
    pruned-only weights (retraining with few steps or on other images can leave weights that
    cluster worse); the candidate scoring best on the score data goes on. The "quantized" row."""
    sources = [("retrained", s.art.model)]
    if s.art.history and s.art.unretrained is not None and s.can_score:
        sources.append(("pruned-only", s.art.unretrained))
    methods = quantizers(s)
    scored = len(sources) * len(methods) > 1
    cands = []
    for src_name, src in sources:
        for method, fn in methods:
            m = copy.deepcopy(src)
            c = Candidate(method, model=m, layers=fn(s, m), info={"source": src_name})
            if scored:
                c.score = s.score(m)
                s.log(f"  quantized {src_name} weights with {method}: top-1 {c.score:.4f} on the score data")
            cands.append(c)
    best = keep_better(cands)
    s.art.model.load_state_dict(best.model.state_dict())
    s.art.layers, s.art.unretrained = best.layers, None
    quant = s.report.metrics["quantized"] = s.evaluate(s.art.model)
    s.add_row("quantized", "k-means weight sharing", bits_label(s.art.bits),
              S.sparse_sizes(s.art.model, s.cfg.gap_bits, s.art.bits), quant,
              from_retrained=best.info["source"] == "retrained", method=best.name)
    s.log(f"quantized: top-1 {quant.get('top1', float('nan')):.4f}")


def tune_centroids(s: CompressState) -> None:
    """Centroid fine-tuning (Adam on the summed member gradients); the better of tuned and
    untuned on the evaluation data is kept (a tie keeps the tuned), so this stage never makes
    the reported accuracy worse. The "centroids tuned" row."""
    cfg = s.cfg
    steps = stage_steps(cfg, s.roles.retrain)
    quant = s.report.metrics["quantized"]
    by_choice = s.choose is not None    # else the evaluation data chooses (as before)
    untuned = Candidate("untuned", s.score(s.art.model) if by_choice else quant.get("top1", 0),
                        layers={k: copy.deepcopy(q) for k, q in s.art.layers.items()})
    from ..train import Trainer, TrainingDiverged
    teacher = getattr(s.inputs.loss_fn, "teacher", None)
    if teacher is not None:
        teacher.to(Trainer.pick_device(cfg.device))
    try:
        layers = Q.tune_centroids(s.art.model, s.art.layers, s.roles.retrain, steps, cfg.centroid_lr or cfg.lr,
                                  cfg.batch_size, s.inputs.loss_fn, cfg.seed, progress=cfg.progress, device=cfg.device,
                                  bf16=cfg.bf16)
    except TrainingDiverged as e:     # the untuned codebooks go on
        s.log(f"  centroid tuning stopped: {e}")
        layers = {k: copy.deepcopy(q) for k, q in untuned.layers.items()}
        Q.load_layers(s.art.model, layers)
    finally:
        if teacher is not None:
            teacher.to("cpu")
    tuned_metrics = s.evaluate(s.art.model)
    tuned = Candidate("tuned", s.score(s.art.model) if by_choice else tuned_metrics.get("top1", 0), layers=layers)
    best = keep_better([tuned, untuned])
    s.art.layers = best.layers
    if best is untuned:
        Q.load_layers(s.art.model, s.art.layers)
    kept_tuned = best is tuned
    s.report.metrics["centroids tuned"] = tuned_metrics if kept_tuned else quant
    s.add_row("centroids tuned", "trained quantization", bits_label(s.art.bits),
              S.sparse_sizes(s.art.model, cfg.gap_bits, s.art.bits), s.report.metrics["centroids tuned"],
              tuned_top1=tuned_metrics.get("top1"), kept_tuned=kept_tuned, steps=steps)
    s.log(f"centroids tuned: top-1 {tuned_metrics.get('top1', float('nan')):.4f}"
          + ("" if kept_tuned else " (worse: kept the untuned codebooks)"))


def _write(s: CompressState) -> dict:
    return S.save_quantized(s.art.model, s.art.layers, s.inputs.out_path, s.cfg.gap_bits,
                            metadata={"compressed_from_params": s.inputs.n_params})


def _size(s: CompressState) -> dict:
    """What :func:`_write` would return (the file's exact bytes and parts), writing nothing."""
    return S.quantized_size(s.art.model, s.art.layers, s.cfg.gap_bits,
                            metadata={"compressed_from_params": s.inputs.n_params})


def encode(s: CompressState) -> None:
    """Huffman-code the model into the ``.sqz``; over ``target_size`` (the size was estimated
    before retraining), drop the smallest shared weights and write again; reload the file from
    disk and evaluate it. The "huffman (.sqz)" row.

    Refits under a target size are measured exactly without writing: the output path is written
    once, with the file that fits, so a failure leaves whatever was there before untouched."""
    from ..io.sqz import load_sqz
    target = s.art.target_size
    if target:
        info = _size(s)
        while info["bytes"] > target:
            if s.art.refits >= MAX_REFITS:
                raise ConfigError(f"--target-size {target}: the encoded model is still "
                                  f"{info['bytes']:,} B after {s.art.refits} refits; use a larger target or "
                                  f"fewer --bits")
            s.art.layers = S.prune_more(s.art.layers, target / info["bytes"])
            Q.load_layers(s.art.model, s.art.layers)
            s.art.refits += 1
            info = _size(s)
            s.log(f"  refit {s.art.refits}: {info['bytes']:,} B (target {target:,})")
    if D.active() and D.env_world()[0] != 0:   # torchrun: rank 0 writes the file, the others decode it in memory
        data, info = S.quantized_bytes(s.art.model, s.art.layers, s.cfg.gap_bits,
                                       metadata={"compressed_from_params": s.inputs.n_params})
        written = load_sqz(f"{s.inputs.out_path} (rank copy)", data)
    else:
        info = _write(s)
        written = load_sqz(s.inputs.out_path)
    s.report.written = info
    final = s.report.metrics["huffman (.sqz)"] = s.evaluate(written)
    s.add_row("huffman (.sqz)", "Deep Compression", bits_label(s.art.bits), info["bytes"], final,
              parts=info["parts"], refits=s.art.refits)
    s.log(f".sqz: {info['bytes']:,} B top-1 {final.get('top1', float('nan')):.4f}")


def svd_baseline(s: CompressState) -> None:
    """The paper's SVD row: the uncompressed model factored to ``svd_energy`` and retrained
    (second row of the report)."""
    from .svd import svd_factorize
    m = copy.deepcopy(s.inputs.teacher)
    info = svd_factorize(m, energy=s.cfg.svd_energy)
    retrain(m, s.roles.retrain, s.cfg, loss_fn=s.inputs.loss_fn)
    n_svd = sum(p.numel() for p in m.parameters())
    s.report.rows.insert(1, table_row("svd", "SVD", 32, n_svd * 4, s.fp32, s.evaluate(m), layers=len(info)))


#: --max-drop: bisection steps of the cheap proxy (nearest-rounded allocation) over the size,
#: and the first full trial's size as a fraction of the proxy's answer (the full method --
#: rounding and distillation -- recovers most of the proxy's drop: on SqueezeNet 1.1 the
#: proxy loses 3.8 points of dev top-1 at 560 KB where the full method loses none).
SEARCH_STEPS = 6
FIRST_TRIAL = 0.8


def run_on_copy(s: CompressState, stages: Sequence[Stage], art: Artefact, **mode) -> CompressState:
    """Run ``stages`` (their ``run`` only: no counter lines, no timings) on ``art`` -- a copy,
    so ``s`` is untouched -- with the same inputs and measurements as ``s`` and a report of
    its own; ``mode``: the driver's :class:`CompressState` settings (``evaluate_rows``,
    ``paths``). Returns the state the stages left."""
    sub = CompressState(s.inputs, art, Report(), s.measured, **mode)
    for st in stages:
        st.run(sub)
    return sub


#: The stages of one size-search trial: the full mixed method at one size.
TRIAL_STAGES = ("size budget", "round", "distill")


def _trial(s: CompressState, target: int) -> dict:
    """The full mixed method (allocation, rounding, distillation) at one file size, from the
    uncompressed model, on a copy of the artefact; returns the trial (its top-1 on the
    evaluation data and the state it left, to adopt if it is the answer)."""
    art = s.art.copy()
    art.model, art.target_size = copy.deepcopy(s.inputs.teacher), int(target)
    art.plan, art.layers, art.choice = None, {}, None
    stages = [st for st in STAGES if st.name in TRIAL_STAGES
              and (st.name != "distill" or (s.cfg.distill_steps > 0 and s.roles.distill is not None))]
    sub = run_on_copy(s, stages, art, evaluate_rows=False, paths=("mixed",))
    top1 = s.evaluate(sub.art.model).get("top1", 0.0)
    s.log(f"  full method at {target:,} B: top-1 {top1:.4f} on the evaluation data")
    return {"target": int(target), "top1": top1, "kind": "full", "state": sub}


def search_size(s: CompressState) -> None:
    """``--max-drop``: the smallest ``.sqz`` whose top-1 on the evaluation data stays within
    ``max_drop_points`` of the uncompressed model's.

    1. The proxy (the knapsack allocation nearest-rounded, seconds per size) is bisected over
       the size on the evaluation data: the smallest size ``P`` where the proxy alone keeps
       the accuracy (a safe answer, its layers kept as the fallback).
    2. The full method runs at ``FIRST_TRIAL * P``; if it keeps the accuracy a second trial
       goes 10 % smaller, else half way back to ``P``. The smallest passing trial is the
       answer (the proxy's at ``P`` if none passes), continued by the encode stage.
    The size is chosen on the evaluation data (it is the constraint); the steps inside each
    trial are still chosen on the held-out unlabeled images."""
    cfg = s.cfg
    if not s.calibrates or "top1" not in s.report.metrics.get("dense", {}):
        raise ConfigError("--max-drop needs calibration images (--unlabeled, --calibration-images > 0) "
                          "and labeled evaluation data")
    base = s.report.metrics["dense"]["top1"]
    need = base - cfg.max_drop_points / 100
    _sensitivity(s)
    n_bias = sum(p.numel() for n, p in s.inputs.teacher.named_parameters() if n not in s.inputs.keys)
    lo, hi = 4 * n_bias + 8192, s.fp32 // 2
    trials, proxy = [], None

    def proxy_at(t):
        choice, layers, m, budget, _ = _nearest_allocation(s, int(t))
        top1 = s.evaluate(m).get("top1", 0.0)
        trials.append({"target": int(t), "top1": top1, "kind": "proxy"})
        s.log(f"  proxy at {int(t):,} B: top-1 {top1:.4f} (need {need:.4f})")
        return top1, (choice, layers, m, budget)

    top1, got = proxy_at(hi)
    if top1 < need:
        raise ConfigError(f"--max-drop {cfg.max_drop_points}: even a {hi:,} B file loses more "
                          f"(top-1 {top1:.4f} vs {base:.4f} uncompressed)")
    proxy = (hi, got)
    for _ in range(SEARCH_STEPS):
        mid = int(math.sqrt(lo * hi))
        try:
            top1, got = proxy_at(mid)
        except ConfigError:          # the layers' smallest options do not fit
            lo = mid
            continue
        if top1 >= need:
            hi, proxy = mid, (mid, got)
        else:
            lo = mid
    P_size = proxy[0]
    passing = []
    t1 = _trial(s, int(FIRST_TRIAL * P_size))
    trials.append({k: v for k, v in t1.items() if k != "state"})
    if t1["top1"] >= need:
        passing.append(t1)
        t2 = _trial(s, int(0.9 * t1["target"]))
    else:
        t2 = _trial(s, int((t1["target"] + P_size) / 2))
    trials.append({k: v for k, v in t2.items() if k != "state"})
    if t2["top1"] >= need:
        passing.append(t2)
    if passing:
        best = min(passing, key=lambda t: t["target"])
        s.art = best["state"].art               # the trial's artefact and its rows
        s.report.rows.extend(best["state"].report.rows)
    else:       # the proxy's answer: its layers as they are
        choice, layers, m, budget = proxy[1]
        best = {"target": P_size, "kind": "proxy"}
        s.art.model, s.art.layers, s.art.choice, s.art.budget = m, layers, choice, budget
        s.art.bits = {k: q.bits for k, q in layers.items()}
        s.art.fractions = {k: float(np.count_nonzero(q.codes)) / q.codes.size for k, q in layers.items()}
        _mixed_row(s, "mixed precision", "knapsack bits + sparsity (proxy)")
    s.art.target_size, s.art.plan, s.art.from_search = best["target"], "mixed", True
    s.report.size_search = {"max_drop_points": cfg.max_drop_points, "dense_top1": base, "need_top1": need,
                            "target": best["target"], "answer": best["kind"], "trials": trials}
    s.log(f"  smallest within {cfg.max_drop_points} points: {best['target']:,} B ({best['kind']})")


def _uniform(s: CompressState) -> bool:
    return s.art.plan != "mixed"


def _mixed(s: CompressState) -> bool:
    """The mixed stages: possible before the size budget is chosen, run when it chose them."""
    return s.art.plan == "mixed" or (s.art.plan is None and (s.mixed_wanted or s.cfg.max_drop_points is not None))


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``run(state)`` when ``when(state)`` holds; its seconds add
    up under ``timing`` in the report (several stages may share one key). ``doing`` is the
    line logged as it starts."""

    name: str
    run: Callable[[CompressState], None]
    timing: str
    when: Callable[[CompressState], bool] | None = None
    doing: str = ""


#: The pipeline, in order. A new step is a function over :class:`CompressState` slotted in here
#: (or passed to :func:`compress_model` as ``stages``).
STAGES: tuple[Stage, ...] = (
    Stage("dense", measure_dense, "dense_eval", doing="evaluating the uncompressed model"),
    Stage("fractions", choose_fractions, "choose", doing="choosing the kept fraction of each layer"),
    Stage("size search", search_size, "choose", when=lambda s: s.cfg.max_drop_points is not None,
          doing="searching the smallest size within --max-drop"),
    Stage("size budget", fit_size_budget, "choose", when=lambda s: bool(s.art.target_size) and not s.art.from_search,
          doing="choosing sparsity and bits that fit the target size"),
    Stage("prune", prune, "prune_retrain", when=_uniform, doing="pruning the smallest weights"),
    Stage("retrain", retrain_pruned, "prune_retrain", when=_uniform, doing="retraining under the pruning masks"),
    Stage("quantize", quantize, "quantize", when=_uniform, doing="k-means weight sharing"),
    Stage("centroids", tune_centroids, "quantize", when=lambda s: _uniform(s) and s.retrains,
          doing="fine-tuning the shared centroids"),
    Stage("round", round_compensated, "round", when=lambda s: _mixed(s) and not s.art.from_search,
          doing="error-compensated rounding on the calibration images"),
    Stage("distill", distill_ste, "distill",
          when=lambda s: (_mixed(s) and s.cfg.distill_steps > 0 and s.roles.distill is not None
                          and not s.art.from_search),
          doing="straight-through distillation from the uncompressed model"),
    Stage("encode", encode, "huffman", doing="Huffman coding into the .sqz, reloading and evaluating it"),
    Stage("svd", svd_baseline, "svd", when=lambda s: bool(s.cfg.svd_energy), doing="the SVD low-rank row"),
)


def _stages_left(s: CompressState, rest: Sequence[Stage], done: int) -> str:
    """The stage count shown as ``[done/total]``: while the size budget has not yet chosen
    between the uniform and the mixed path, both totals (``6 or 8``), so that the count
    never jumps when the choice is made."""
    def total() -> int:
        return done + sum(1 for t in rest if t.when is None or t.when(s))
    if s.art.plan is not None or not (_mixed(s) and _uniform(s)):
        return str(total())
    totals = set()
    for plan in ("uniform", "mixed"):
        s.art.plan = plan
        try:
            totals.add(total())
        finally:
            s.art.plan = None
    return " or ".join(str(t) for t in sorted(totals))


def run_stages(s: CompressState, stages: Sequence[Stage] = STAGES) -> CompressState:
    """Run ``stages`` in order over ``s``, timing each; one log line as each starts."""
    todo = [st for st in stages if st.when is None or st.when(s)]
    done = 0
    for j, st in enumerate(todo):
        if st.when is not None and not st.when(s):
            continue
        done += 1
        s.log(f"[{done}/{_stages_left(s, todo[j + 1:], done)}] {st.name}: {st.doing or st.name}...")
        t = time.time()
        st.run(s)
        s.report.timings[st.timing] = s.report.timings.get(st.timing, 0.0) + time.time() - t
    return s


def _quiet(*args, **kwargs) -> None:
    """The log of processes other than rank 0."""


def compress_model(model: nn.Module, train_data, val_loader, cfg: CompressConfig,
                   out_path: str | os.PathLike, unlabeled=None, score_loader=None,
                   log: Callable = print, stages: Sequence[Stage] = STAGES, unlabeled_eval=None,
                   distill_data=None, roles: DataRoles | None = None) -> dict:
    """Run the pipeline on ``model`` (modified in place); write ``out_path`` (.sqz).

    ``train_data``: labeled retraining data (or None); ``unlabeled``: data for distillation
    from the uncompressed model (used instead of labels when given); ``val_loader``: the
    evaluation data for every row; ``score_loader``: a small loader to choose between
    candidates, e.g. bits for a target size (default ``val_loader``; with ``unlabeled``
    images a held-out part of them chooses instead). ``roles``: the data roles made by
    :meth:`~.roles.DataRoles.build` (then the data arguments before are unused); without,
    they are built from those arguments (see there for ``unlabeled_eval`` and
    ``distill_data``). Returns the report: ``rows`` (Table 2), ``fractions``, ``bits``,
    ``config``, ``timings``, ``data_roles``...

    Under ``torchrun`` every process runs the pipeline: the training loops as DDP (each
    process a share of every batch), the evaluation and choosing passes sharded and summed;
    rank 0 alone logs and writes ``out_path``, and every process returns the report.
    """
    from ..train import Trainer
    D.setup(Trainer.pick_device(cfg.device))     # an unavailable device: one line, before any work
    if D.active():
        if cfg.batch_size % world_size():
            raise ConfigError(f"compress config batch_size={cfg.batch_size}: under torchrun it must be a "
                              f"multiple of the {world_size()} processes (each takes its share of a batch)")
        if D.env_world()[0] != 0:
            log = _quiet
    if roles is None:
        roles = DataRoles.build(val_loader, train_data, unlabeled, unlabeled_eval=unlabeled_eval,
                                distill=distill_data, choose_loader=score_loader, choose_images=cfg.choose_images,
                                batch_size=cfg.batch_size, calibration_images=cfg.calibration_images)
    s = CompressState.start(model, roles, cfg, out_path, log=log)
    return run_stages(s, stages).summary()
