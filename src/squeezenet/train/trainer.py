"""The training loop: one readable file, extended through hooks.

Every optimisation loop of the package runs here (fine-tuning, the frozen-head fit on cached
features, retraining under pruning masks, centroid tuning, straight-through distillation), so
each gets checkpoints and resume (with an ``out_dir``), a progress bar, autocast, a device and
torchrun/DDP. The hooks: ``loss_fn`` (a custom step's loss), ``optimizer`` (parameter groups,
any optimizer; ``lr_mult`` per group follows the schedule), frozen parts (``config.freeze``, or
``requires_grad`` set by the caller), callbacks (``on_step_end``: re-apply masks, snap to
centroids...), ``batches`` (a custom data source, e.g. cached features or a teacher's stream),
``validate_fn`` and ``train_mode``.

>>> import squeezenet
>>> from squeezenet.data import build_dataset
>>> from squeezenet.train import Trainer, TrainConfig
>>> m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
>>> cfg = TrainConfig(epochs=1, batch_size=32, accum_steps=1, lr=0.01, max_steps=2, progress=False)
>>> hist = Trainer(m, cfg, build_dataset("digits", "train")).fit()
>>> hist[-1]["step"]
2
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Sampler

from ..errors import SqueezeNetError
from ..models.data_config import data_config
from . import distributed as D
from .checkpoint import (METRICS_FILE, STATE_FILE, load_train_state, optimizer_from_flat, rng_state,
                         save_model_checkpoint, save_train_state, set_rng_state)
from .config import TrainConfig, lr_at, warmup_note


class Callback:
    """Base class with no-op hooks; callbacks may also be plain objects with any subset."""

    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer") -> None: ...            # after every optimizer step
    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_train_end(self, trainer: "Trainer") -> None: ...


class TrainingDiverged(SqueezeNetError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ShardSampler(Sampler[int]):
    """Epoch-seeded (optionally shuffled) indices for one rank, resumable mid-epoch.

    The order depends only on (seed, epoch), so a resumed run sees exactly the samples the
    interrupted one would have; ``skip`` drops those already consumed. Like
    ``DistributedSampler``, indices are padded to a multiple of the world size.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch, self.skip = 0, 0
        self.per_rank = math.ceil(n / world)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order += order[: self.per_rank * self.world - self.n]
        return iter(order[self.rank::self.world][self.skip:])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip)


def default_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(model(images), targets, label_smoothing=label_smoothing)


def _call(callbacks, hook: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


class Trainer:
    """SGD training of a SqueezeNet with the paper's recipe (see :class:`TrainConfig`).

    ``train_data``/``val_data`` are datasets yielding ``(image, target)``. ``loss_fn(model,
    images, targets) -> loss`` replaces cross-entropy (e.g. distillation). ``callbacks`` get
    ``on_train_start``, ``on_step_end`` (after every optimizer step), ``on_epoch_end`` and
    ``on_train_end``. With ``out_dir``, rank 0 writes ``last``/``best`` checkpoints, the
    training state for :meth:`resume` and ``metrics.jsonl``.

    ``stop_on_signal`` (default: when there is an ``out_dir`` to resume from): SIGINT/SIGTERM
    finish the current step, save, and :meth:`fit` returns with ``interrupted`` set (a second
    signal aborts). Without it a signal raises ``KeyboardInterrupt`` at once, so that a
    caller with no way to resume (compression, a demo, a search trial) stops as a whole.
    ``log_epochs=False`` keeps the per-epoch metrics line off stdout (the progress bar of
    ``config.progress`` still shows, on stderr).

    Hooks for loops other than plain classification (all optional):

    * ``optimizer``: a built optimizer, or ``fn(model) -> optimizer`` called once the model is
      on its device (default: ``config.optimizer`` over :func:`~.finetune.param_groups`). A
      group's ``lr_mult`` scales the scheduled learning rate for it.
    * ``batches`` with ``batches_per_epoch``: ``fn(epoch) -> iterable`` of ``(inputs, targets)``
      micro-batches (``targets`` may be None), the same on every process, replacing
      ``train_data`` and its sampler: each of N processes takes its 1/N of every batch's rows.
      It must give the same batches again for the same epoch (a resume skips those consumed).
    * ``validate_fn(trainer) -> metrics`` replaces :meth:`validate` at each epoch end.
    * ``train_mode=False`` runs the forward passes in eval mode (dropout off, BatchNorm
      statistics fixed), e.g. for distillation.
    * ``reseed=False`` leaves the global random streams (dropout) as the caller set them, for
      a loop that seeds itself or keeps the stream it had (default: seeded by ``config.seed``
      and the rank).
    * ``wrap``: the part of the model that ``loss_fn`` runs through its first argument (default
      the whole model), e.g. conv10 alone on cached features; under DDP it is what is wrapped.
    * ``progress_desc``: the progress bar's label (default ``epoch E/N``), e.g. ``distill``.

    ``epoch_info`` (a dict) is merged into every epoch's metrics; ``last_loss`` is the loss of
    the latest optimizer step (for ``on_step_end`` callbacks).

    Public state: ``model`` (the unwrapped module), ``optimizer``, ``step`` (optimizer steps
    done), ``epoch`` (epochs completed), ``history``, ``rank``, ``world_size``.
    """

    def __init__(self, model: nn.Module, config: TrainConfig | None = None,
                 train_data: Dataset | None = None, val_data: Dataset | None = None,
                 out_dir: str | Path | None = None, callbacks: Iterable = (),
                 loss_fn: Callable | None = None, stop_on_signal: bool | None = None,
                 log_epochs: bool = True, optimizer: torch.optim.Optimizer | Callable | None = None,
                 batches: Callable[[int], Iterable] | None = None, batches_per_epoch: int | None = None,
                 validate_fn: Callable[["Trainer"], dict] | None = None, train_mode: bool = True,
                 wrap: nn.Module | None = None, reseed: bool = True, progress_desc: str | None = None) -> None:
        self.config = cfg = config or TrainConfig()
        self.progress_desc = progress_desc   # the bar's label (default "epoch E/N")
        self.device = self.pick_device(cfg.device)
        self.rank, self.world_size = D.setup(self.device)
        self.is_main = self.rank == 0
        self.train_data, self.val_data = train_data, val_data
        if batches is not None and not (isinstance(batches_per_epoch, int) and batches_per_epoch > 0):
            raise SqueezeNetError("Trainer(batches=...) needs batches_per_epoch, a positive integer")
        self.batches, self.batches_per_epoch = batches, batches_per_epoch
        self.validate_fn, self.train_mode = validate_fn, train_mode
        self.epoch_info: dict[str, Any] = {}
        self.last_loss = float("nan")
        self.out_dir = Path(out_dir) if out_dir else None
        self.stop_on_signal = self.out_dir is not None if stop_on_signal is None else bool(stop_on_signal)
        self.log_epochs = log_epochs
        if self.out_dir and self.is_main:
            from ..io import check_output
            check_output(self.out_dir, folder=True)   # a file in the way, read-only: one line, now
        self.callbacks = list(callbacks)
        self.loss_fn = loss_fn or (lambda m, x, y: default_loss(m, x, y, cfg.label_smoothing))
        self.run_info: dict[str, Any] = {}   # stored with checkpoints (e.g. the CLI's data spec)

        if reseed:
            torch.manual_seed(cfg.seed + self.rank)
            import random
            import numpy as np
            random.seed(cfg.seed + self.rank)
            np.random.seed((cfg.seed + self.rank) % 2**32)

        if cfg.dropout is not None:
            for m in model.modules():
                if isinstance(m, nn.Dropout):
                    m.p = cfg.dropout
            if hasattr(model, "config") and hasattr(model.config, "replace"):
                model.config = model.config.replace(dropout=cfg.dropout)
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = wrap if wrap is not None else self.model
        if D.active():
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DDP(self.net, device_ids=ids)
        from .params import freeze, make_optimizer
        self.frozen = freeze(self.model, cfg.freeze)    # --freeze: no gradient, BatchNorm stats fixed
        if optimizer is None:
            self.optimizer = make_optimizer(self.model, cfg)  # groups carry lr_mult (--head-lr-mult)
        elif isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        else:
            self.optimizer = optimizer(self.model)
        self.step = 0          # optimizer steps done
        self.epoch = 0         # epochs completed
        self.history: list[dict] = []
        self.best: float | None = None
        self.interrupted = False
        self.lr = lr_at(cfg, 0, 1)
        self._pos = 0          # micro-batches of the current epoch already consumed
        self._sums = [0.0, 0.0, 0.0]  # loss sum, micro-batches, images of the current epoch
        self._train_seconds = 0.0
        self._stop_requested = False
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ set-up helpers

    @staticmethod
    def pick_device(name: str) -> torch.device:
        """The torch device for ``TrainConfig.device``, checked against this machine: ``cuda``
        without CUDA, or ``cuda:N`` past the last GPU, is a one-line error before any work."""
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda", D.env_world()[2])
            return torch.device("cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise SqueezeNetError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
        if dev.type == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n == 0:
                raise SqueezeNetError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
            if dev.index is not None and dev.index >= n:
                raise SqueezeNetError(f"--device {name}: this machine has {n} CUDA device(s), "
                                      f"cuda:0..cuda:{n - 1}")
            if dev.index is None:    # plain cuda: this process's GPU (torchrun's LOCAL_RANK)
                dev = torch.device("cuda", D.env_world()[2] % n)
        elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise SqueezeNetError(f"--device {name}: MPS is not available on this machine (use cpu or auto)")
        return dev

    def micro_batches_per_epoch(self) -> int:
        if self.batches is not None:
            return self.batches_per_epoch
        if self.train_data is None:
            raise SqueezeNetError("Trainer has no train_data")
        return math.ceil(math.ceil(len(self.train_data) / self.world_size) / self.config.batch_size)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.micro_batches_per_epoch() / self.config.accum_steps)

    def total_steps(self) -> int:
        """The schedule's length: ``max_steps`` or ``epochs x steps_per_epoch``."""
        cfg = self.config
        return cfg.max_steps if cfg.max_steps is not None else cfg.epochs * self.steps_per_epoch()

    def _autocast(self):
        if self.config.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last and x.dim() == 4 else x

    def _shard(self, x):
        """This process's rows of a batch of a ``batches`` source (all of it for one process)."""
        if self.world_size == 1 or x is None:
            return x
        return x.tensor_split(self.world_size)[self.rank]

    def _epoch_batches(self, sampler: ShardSampler):
        """The micro-batches of the current epoch still to run (resume: those not consumed)."""
        cfg = self.config
        if self.batches is not None:
            import itertools
            items = itertools.islice(iter(self.batches(self.epoch)), self._pos, None)
            return ((self._shard(x), self._shard(y)) for x, y in items)
        sampler.set_epoch(self.epoch, skip=self._pos * cfg.batch_size)
        gen = torch.Generator()
        gen.manual_seed((cfg.seed * 1_000_003 + self.epoch) * 7919 + self.rank)
        from ..data import Loader
        from ..data.datasets import ReplaceUnreadable, collate_skipping
        # several processes: an unreadable image is replaced, not dropped, so that every rank's
        # batches keep the same shape (DDP steps in lockstep); one process skips and counts it
        data = ReplaceUnreadable(self.train_data) if self.world_size > 1 else self.train_data
        return Loader(data, batch_size=cfg.batch_size, sampler=sampler,
                      num_workers=cfg.workers, collate_fn=collate_skipping, generator=gen,
                      pin_memory=self.device.type == "cuda")

    # ------------------------------------------------------------------ the loop

    def fit(self) -> list[dict]:
        """Train until the schedule ends (or SIGINT); returns the per-epoch metrics."""
        cfg = self.config
        if self.batches is None and len(self.train_data or ()) == 0:
            raise SqueezeNetError("the training set is empty")
        total = self.total_steps()
        sampler = ShardSampler(len(self.train_data or ()), True, cfg.seed, self.rank, self.world_size)
        old_handlers = self._install_signal_handlers()
        try:
            if self.step == 0 and self._pos == 0:
                note = warmup_note(cfg, total)
                if note and self.is_main:
                    print(note, flush=True)
                _call(self.callbacks, "on_train_start", self)
            while self.step < total and not self._stop_requested:
                self._run_epoch(sampler, total)
                if self._stop_requested:
                    break
                if not self._sums[2]:   # every image skipped: an endless run of empty epochs
                    raise SqueezeNetError(f"none of the {len(self.train_data)} training images could be read "
                                          f"(listed above); nothing to train on")
                self._end_epoch()
        finally:
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        if self._stop_requested:
            self.interrupted = True
            self.save_checkpoint()
            if self.is_main:
                where = f"; saved {self.out_dir}/last.safetensors and {STATE_FILE}" if self.out_dir else ""
                print(f"interrupted at step {self.step} (epoch {self.epoch + 1}){where}; "
                      f"continue with --resume", flush=True)
            return self.history
        _call(self.callbacks, "on_train_end", self)
        return self.history

    def _run_epoch(self, sampler: ShardSampler, total: int) -> None:
        cfg = self.config
        M = self.micro_batches_per_epoch()
        accum = cfg.accum_steps
        loader = self._epoch_batches(sampler)
        bar = None
        if cfg.progress and self.is_main:
            from tqdm import tqdm
            n_ep = math.ceil(total / self.steps_per_epoch())
            # the micro-batches this epoch will really run: a --max-steps run stops early
            todo = min(M, self._pos + max(0, total - self.step) * accum)
            bar = tqdm(total=todo, initial=self._pos, desc=self.progress_desc or f"epoch {self.epoch + 1}/{n_ep}",
                       unit="batch", leave=False, dynamic_ncols=True)
        self.net.train(self.train_mode)
        pending = 0                    # micro-batches accumulated into the current step
        group_loss = torch.zeros((), device=self.device)
        t0 = time.perf_counter()
        for images, targets in loader:
            i = self._pos
            start = (i // accum) * accum
            size = min(accum, M - start)         # the epoch's last group may be shorter
            if pending == 0:
                self.lr = lr_at(cfg, self.step, total)
                for g in self.optimizer.param_groups:
                    g["lr"] = self.lr * g.get("lr_mult", 1.0)
            images = self._to_device(images)
            targets = targets.to(self.device, non_blocking=True) if targets is not None else None
            last = (i + 1 >= start + size)
            sync = last or not isinstance(self.net, torch.nn.parallel.DistributedDataParallel)
            with (contextlib.nullcontext() if sync else self.net.no_sync()):
                with self._autocast():
                    loss = self.loss_fn(self.net, images, targets)
                (loss.float() / size).backward()
            group_loss += loss.detach().float()
            pending += 1
            self._pos = i + 1
            self._sums[2] += images.shape[0]
            if bar is not None:
                bar.update(1)
            if last:
                self._optimizer_step(group_loss, pending)
                self._train_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                pending, group_loss = 0, torch.zeros((), device=self.device)
                if bar is not None:
                    bar.set_postfix(loss=f"{self._sums[0] / max(1, self._sums[1]):.4f}", lr=f"{self.lr:.4g}",
                                    img_s=f"{self._sums[2] * self.world_size / max(1e-9, self._train_seconds):.0f}")
                if self._after_step(total):
                    break
        else:
            if pending:  # a batch dropped as unreadable shortened the last group
                self._optimizer_step(group_loss, pending)
                self._after_step(total)
            self._train_seconds += time.perf_counter() - t0
        if bar is not None:
            bar.close()

    def _optimizer_step(self, group_loss: torch.Tensor, n: int) -> None:
        """The one place a step is taken: the loss is checked finite (all ranks agree) first."""
        value = float(group_loss) / n
        self.last_loss = value
        bad = not math.isfinite(value)
        if D.active():
            bad = D.all_reduce([float(bad)], "max")[0] > 0
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            keep = (f"; the last good checkpoint is {self.out_dir}/last.safetensors"
                    if self.out_dir and (self.out_dir / "last.safetensors").exists() else "")
            raise TrainingDiverged(
                f"loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}); training stopped"
                f"{keep}. Lower the learning rate (--lr, now {self.config.lr}) or add warm-up (--warmup-steps)")
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._sums[0] += value * n
        self._sums[1] += n
        _call(self.callbacks, "on_step_end", self)

    def _after_step(self, total: int) -> bool:
        """Periodic checkpoints and SIGINT, agreed by all ranks; True ends the epoch loop."""
        cfg = self.config
        due = bool(cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
        due = due or (time.monotonic() - self._last_save > cfg.checkpoint_minutes * 60)
        stop = self._stop_requested
        if D.active():
            stop_f, due_f = D.all_reduce([float(stop), float(due)], "max")
            stop, due = stop_f > 0, due_f > 0
            self._stop_requested = stop
        if stop:
            return True
        if due and self.step < total:
            self.save_checkpoint()
        return self.step >= total

    def _check_weights(self) -> None:
        """Non-finite weights are never saved nor logged (the last good checkpoint stays)."""
        bad = [k for k, v in self.model.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
        if bad:
            raise TrainingDiverged(f"{len(bad)} weight tensor(s) became NaN or infinite by step {self.step} "
                                   f"(first: {bad[0]}); training stopped, nothing saved. Lower the learning rate "
                                   f"(--lr, now {self.config.lr}) or add warm-up (--warmup-steps)")

    def _end_epoch(self) -> None:
        self._check_weights()
        cfg = self.config
        loss_sum, n, images = D.all_reduce(self._sums, "sum")
        metrics: dict[str, Any] = {
            "epoch": self.epoch + 1, "step": self.step, "lr": self.lr,
            "train_loss": loss_sum / n if n else float("nan"),
            "seconds": self._train_seconds, "images_per_s": images / self._train_seconds if self._train_seconds else 0.0,
        }
        metrics.update(self.epoch_info)
        if self.validate_fn is not None:
            metrics.update(self.validate_fn(self))
        elif self.val_data is not None:
            metrics.update(self.validate())
        from ..data import base_dataset
        owner = base_dataset(self.train_data) if self.train_data is not None else None
        skipped = list(getattr(owner, "skipped", {}) or {})
        metrics["skipped"] = len(set().union(*D.all_gather_object(skipped)))   # every rank's, once
        self.epoch += 1
        self._pos, self._sums, self._train_seconds = 0, [0.0, 0.0, 0.0], 0.0
        score = metrics.get("val_top1", -metrics["train_loss"])
        is_best = self.best is None or score > self.best
        if is_best:
            self.best = score
        self.history.append(metrics)
        if self.out_dir and self.is_main:
            from ..io import append_line
            append_line(self.out_dir / METRICS_FILE, json.dumps(metrics))   # whole line or none (a full disk)
        self.save_checkpoint(best=is_best, metrics=metrics)
        if self.is_main and self.config.progress and self.log_epochs:
            vals = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            print(vals, flush=True)
        _call(self.callbacks, "on_epoch_end", self, metrics)

    def validate(self) -> dict[str, float]:
        """Top-1/top-5 on ``val_data`` (sharded over ranks, summed)."""
        from torch.utils.data import Subset

        from ..data import make_loader
        from ..evaluate import count_correct
        ds = self.val_data
        if D.active():
            ds = Subset(ds, list(range(self.rank, len(ds), self.world_size)))
        loader = make_loader(ds, self.config.eval_batch_size)
        c1 = c5 = count = 0.0
        loss_sum = 0.0
        self.model.eval()
        with torch.inference_mode(), self._autocast():
            for images, targets in loader:
                images, targets = self._to_device(images), targets.to(self.device)
                logits = self.model(images).float()
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                hit1, hit5 = count_correct(logits, targets)
                c1 += hit1
                c5 += hit5
                count += targets.shape[0]
        self.model.train(self.train_mode)
        c1, c5, count, loss_sum = D.all_reduce([c1, c5, count, loss_sum], "sum")
        return {"val_top1": c1 / max(1, count), "val_top5": c5 / max(1, count),
                "val_loss": loss_sum / max(1, count), "val_count": int(count)}

    # ------------------------------------------------------------------ checkpoints

    def _info(self, metrics: dict | None = None) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "metrics": metrics or {},
                "train_config": self.config.to_dict(), **self.run_info}

    def save_checkpoint(self, best: bool = False, metrics: dict | None = None) -> None:
        """Write last (and best) model files, then the training state (rank 0; all ranks join).

        The state file is written last: it is the commit point of a checkpoint. A kill before
        it leaves model files one step ahead of the state, which a resume recomputes exactly;
        a kill after it leaves every file the state speaks of in place."""
        self._check_weights()
        rngs = D.all_gather_object(rng_state())
        self._last_save = time.monotonic()
        if not (self.out_dir and self.is_main):
            return
        info = self._info(metrics)
        state = {**info, "pos": self._pos, "sums": self._sums, "train_seconds": self._train_seconds,
                 "best": self.best, "history": self.history, "lr": self.lr, "world_size": self.world_size,
                 "total_steps": self.total_steps(),
                 "model": {"config": self.model.config.to_dict() if hasattr(self.model, "config") else None,
                           "classes": getattr(self.model, "classes", None),
                           "class_names": getattr(self.model, "class_names", None),
                           "preprocess": getattr(self.model, "preprocess", None),
                           "data_config": data_config(self.model).to_dict()}}
        if hasattr(self.model, "config"):
            if best:
                save_model_checkpoint(self.model, self.out_dir, "best", info)
            save_model_checkpoint(self.model, self.out_dir, "last", info)
        save_train_state(self.out_dir / STATE_FILE, self.model, self.optimizer, rngs, state)

    #: Config fields that change the sequence of steps or what a step computes (crop size, loss,
    #: dropout, clipping); a resume must not change them.
    SCHEDULE_FIELDS = ("epochs", "batch_size", "accum_steps", "lr", "optimizer", "schedule", "power", "warmup_steps",
                       "max_steps", "seed", "momentum", "weight_decay", "nesterov", "freeze", "head_lr_mult",
                       "train_size", "label_smoothing", "dropout", "grad_clip", "val_split")

    def resume(self, path: str | Path | None = None) -> "Trainer":
        """Continue exactly where the training-state file left off (default: out_dir's)."""
        path = Path(path) if path else (self.out_dir / STATE_FILE if self.out_dir else None)
        if path is None or not path.is_file():
            raise SqueezeNetError(f"nothing to resume: {path} not found")
        groups, info = load_train_state(path)
        saved = info.get("train_config", {})
        diff = [f"{k} {saved.get(k)!r} -> {getattr(self.config, k)!r}" for k in self.SCHEDULE_FIELDS
                if k in saved and saved.get(k) != getattr(self.config, k)]
        if diff:
            raise SqueezeNetError(f"{path}: cannot resume with a different schedule ({'; '.join(diff)})")
        if info.get("world_size", 1) != self.world_size:
            raise SqueezeNetError(f"{path}: saved with {info.get('world_size')} processes, now "
                                  f"{self.world_size}; resume with the same --nproc_per_node")
        from ..models.weights import load_state_dict_checked
        load_state_dict_checked(self.model, groups["model"], path)
        try:   # the header is checked (load_train_state); what torch still refuses is one line too
            optimizer_from_flat(self.optimizer, groups["optim"], info["optimizer"])
            if self.rank in groups["rng"] and self.rank < len(info["rng"]):
                set_rng_state(groups["rng"][self.rank], info["rng"][self.rank])
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
            from ..errors import FormatError, first_line
            raise FormatError(path, f"damaged training state ({first_line(e, 200)})") from None
        self.step, self.epoch, self._pos = info["step"], info["epoch"], info["pos"]
        self._sums, self._train_seconds = list(info["sums"]), info["train_seconds"]
        self.best, self.history, self.lr = info["best"], info["history"], info["lr"]
        if self.out_dir and self.is_main and path.parent == self.out_dir:
            self._sync_run_files()
        if self.is_main and self.config.progress:
            print(f"resumed from {path}: step {self.step}, epoch {self.epoch + 1}, "
                  f"{self._pos} micro-batches into it", flush=True)
        return self

    def _sync_run_files(self) -> None:
        """Make the run folder agree with the state just resumed: ``metrics.jsonl`` holds
        exactly the epochs of the state's history (a kill between appending an epoch's line and
        writing the state would otherwise repeat that epoch), and a best model the state
        counts on but the folder lacks is written again at the next epoch end."""
        from ..io import atomic_write_text
        lines = "".join(json.dumps(m) + "\n" for m in self.history)
        path = self.out_dir / METRICS_FILE
        if not path.is_file() or path.read_text() != lines:
            atomic_write_text(path, lines)
        if self.best is not None and not (self.out_dir / "best.safetensors").is_file():
            self.best = None

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> dict:
        if not self.stop_on_signal or threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, frame):
            if self._stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._stop_requested = True
            if self.is_main:
                print("\nstopping after this step (Ctrl-C again to abort)...", flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old
