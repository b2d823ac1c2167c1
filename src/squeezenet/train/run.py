"""A training run as objects: the CLI parses flags into them, they run (torchtune's shape: the
CLI parses, a recipe runs). ``squeezenet train`` and ``squeezenet.finetune`` are a fill of these.

* :class:`FinetuneSetup`: fine-tuning a trained model on data of its user's classes. It checks
  the input, picks the data's classes and the model's head for them (new, kept rows or
  unchanged; :mod:`.finetune`), and the data's roles: the images that train, the images that
  choose ``best`` (:class:`Validation`) and the split that only scores. :meth:`~FinetuneSetup.prepare`
  gives a :class:`TrainRun`; :meth:`~FinetuneSetup.run` runs it.
* :class:`TrainRun`: a prepared model, its datasets and config. :meth:`~TrainRun.run` trains
  through the :class:`~squeezenet.train.Trainer`: every weight not frozen, or, when ``--freeze``
  leaves only conv10, conv10 alone on the frozen backbone's features computed once
  (:func:`~squeezenet.train.finetune.head_trainer`). When ``best`` was chosen on images held
  out of the train split, the test split scores ``last`` and ``best`` once at the end.
  Returns a :class:`RunResult`.
* :func:`data_roles`: the datasets that train and validate, and the :class:`Validation` record
  (stored with every checkpoint; a hold-out's images are listed in ``DIR/val_images.txt``).
  :func:`default_val_split`: a recipe's hold-out (``finetune``: 10 % of each class, so that
  ``best`` is never chosen on the split that scores) gives way to a given ``--val``/``--no-val``.

Every check of :meth:`FinetuneSetup.prepare` runs before any training work, each a one-line
:class:`~squeezenet.SqueezeNetError`. Progress and summary lines go to ``log`` (``print``;
``lambda s: None`` silences them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import VAL_LIST_FILE
from .config import TrainConfig

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------ data roles

@dataclass(frozen=True)
class Validation:
    """Which images validate a run, and so choose ``best.safetensors``: stored as data with every
    checkpoint (``validation`` in the sidecars and the training state, :meth:`to_dict`).

    ``on``: ``held_out`` (a share of each class held out of the train split; ``files`` names
    them, relative to the split's folder, and the run's folder lists them in
    :data:`VAL_LIST_FILE`), ``val`` (a given ``--val`` set), ``test`` (the data's test split: it
    then both chooses and scores) or ``none``. ``images``: how many; ``source``: where they are;
    ``fraction``: the share held out; ``per_class``: how many of each class."""

    on: str
    images: int = 0
    source: str | None = None
    fraction: float = 0.0
    per_class: dict = field(default_factory=dict)
    files: tuple = ()

    @property
    def chooses_on_test(self) -> bool:
        return self.on == "test"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on": self.on, "images": self.images, "source": self.source}
        if self.on == "held_out":
            out.update(fraction=self.fraction, per_class=dict(self.per_class), list=VAL_LIST_FILE)
        return out


def _counts(targets, classes) -> dict[str, int]:
    counts = {str(c): 0 for c in classes}
    for t in targets:
        counts[str(classes[int(t)])] += 1
    return counts


def _line(name: str) -> str:
    """``name`` as one line of :data:`VAL_LIST_FILE`: as it is, JSON-quoted when it holds a
    control character (a newline) or starts with a quote."""
    import json
    return json.dumps(name) if name.startswith('"') or any(ord(c) < 32 for c in name) else name


def _item_names(ds, indices) -> tuple:
    """What each item of ``ds`` at ``indices`` is: its file relative to the dataset's folder
    (``class/photo.jpg``), else ``#index`` (a built-in dataset)."""
    samples, root = getattr(ds, "samples", None), getattr(ds, "root", None)
    if samples is None:
        return tuple(f"#{i}" for i in indices)
    names = []
    for i in indices:
        path = Path(samples[i][0])
        try:
            names.append(path.relative_to(root).as_posix() if root is not None else path.as_posix())
        except ValueError:
            names.append(path.as_posix())
    return tuple(names)


def check_val_options(config: TrainConfig, val=None, no_val: bool = False) -> None:
    """``val_split`` holds validation images out of the train split: not with a ``val`` set
    or ``no_val`` (one line)."""
    from ..errors import SqueezeNetError
    if config.val_split and (val or no_val):
        raise SqueezeNetError("--val-split validates on images held out of the train split: not with "
                              f"{'--val' if val else '--no-val'}")


def val_dataset(spec, preset, classes, strict: bool, explicit: bool):
    """The validation set of ``spec``: a given ``--val`` (``explicit``: its errors are the
    user's), else the data's test split when it has one (None for a plain folder)."""
    from ..data import build_dataset
    from ..data.datasets import BUILTIN
    from ..errors import SqueezeNetError
    if not explicit and spec not in BUILTIN:
        p = Path(spec)
        has_split = p.is_dir() and any((p / n).exists() for n in ("test", "test.tar.gz", "test.tgz", "test.tar"))
        if not has_split:
            return None  # a plain folder: nothing held out
    try:
        return build_dataset(spec, "test", preset=preset, classes=classes, strict=strict)
    except SqueezeNetError:
        if explicit:
            raise
        return None


def default_val_split(config: TrainConfig, val=None, no_val: bool = False, explicit: bool = False) -> TrainConfig:
    """The config a run validates by. A recipe's default hold-out (``finetune`` holds 10 % of
    each class out of the train split, so that ``best`` is never chosen on the split that scores)
    gives way to a given ``val`` set or ``no_val``; a ``val_split`` given on purpose
    (``explicit``: a flag, a config file) does not (:func:`check_val_options` then refuses the pair).

    >>> from squeezenet.train.recipes import RECIPES
    >>> cfg = RECIPES["finetune"].train_config()
    >>> cfg.val_split, default_val_split(cfg, val="photos/val").val_split, default_val_split(cfg).val_split
    (0.1, 0.0, 0.1)
    """
    import dataclasses
    if config.val_split and (val or no_val) and not explicit:
        return dataclasses.replace(config, val_split=0.0)
    return config


def split_val(train_ds, data, preset, strict: bool, fraction: float):
    """``--val-split``: (the training images kept, the images held out to validate on,
    centre-cropped): the same share of each class, spread evenly over it, the same images on
    every run (:func:`~squeezenet.data.hold_out`)."""
    from ..data import build_dataset, check_training_split, dataset_label, hold_out, subset
    from ..errors import ConfigError
    keep, held = hold_out(train_ds.targets, fraction)
    if not held:
        raise ConfigError(f"--val-split {fraction:g}: holds out none of the {len(train_ds)} images of "
                          f"{dataset_label(data, 'train')} (too few a class); give a larger --val-split, "
                          f"--val DATA, or --val-split 0 to choose best on the test split")
    plain = build_dataset(data, "train", preset=preset, classes=list(train_ds.classes), strict=strict, augment=False)
    fit = subset(train_ds, keep)
    check_training_split(fit, data)     # every class keeps training images
    return fit, subset(plain, held)


def data_roles(train_ds, data, preset, classes, strict: bool, val_split: float, val=None, no_val: bool = False):
    """``(train, val, Validation)``: the images that train, those that choose ``best`` and
    what they are. ``val_split`` > 0 holds that share of each class out of ``train_ds``;
    else ``val`` (a dataset spec), else the data's test split unless ``no_val``."""
    from ..data import dataset_label
    if val_split:
        train_ds, val_ds = split_val(train_ds, data, preset, strict, val_split)
        return train_ds, val_ds, Validation("held_out", len(val_ds), dataset_label(data, "train"), val_split,
                                            _counts(val_ds.targets, val_ds.classes),
                                            _item_names(val_ds.dataset, val_ds.indices))
    if no_val:
        return train_ds, None, Validation("none")
    val_ds = val_dataset(val or data, preset, classes, strict, explicit=bool(val))
    if val_ds is None:
        return train_ds, None, Validation("none")
    return train_ds, val_ds, Validation("val" if val else "test", len(val_ds),
                                        str(val) if val else dataset_label(data, "test"))


def plain_subset(train_ds, plain):
    """``plain`` (the train split without augmentation) cut to the images ``train_ds`` trains on."""
    from ..data import subset
    indices = getattr(train_ds, "indices", None)
    return plain if indices is None else subset(plain, indices)


def best_epoch(history: list[dict]) -> dict:
    """The epoch row ``best.safetensors`` holds: the highest ``val_top1``, else the lowest
    training loss (the Trainer's rule)."""
    return max(history, key=lambda h: h.get("val_top1", -h["train_loss"]))


def score_on_test(out: Path, data, preset, classes, strict: bool, history: list[dict]) -> dict | None:
    """After a run whose ``best`` was chosen on held-out training images: top-1 of ``last`` and
    ``best`` on the data's test split, which chose nothing (None when the data has none)."""
    from ..data import dataset_label, make_loader
    from ..evaluate import evaluate
    from ..io import load
    test = val_dataset(data, preset, classes, strict, explicit=False)
    if test is None:
        return None
    loader = make_loader(test, 100)
    last = evaluate(load(out / "last.safetensors"), loader)
    scores: dict[str, Any] = {"split": dataset_label(data, "test"), "images": last["count"], "last_top1": last["top1"]}
    if (out / "best.safetensors").is_file():
        scores["best_epoch"] = best_epoch(history)["epoch"]
        scores["best_top1"] = evaluate(load(out / "best.safetensors"), loader)["top1"]
    return scores


# ------------------------------------------------------------------------------ the run

@dataclass
class RunResult:
    """What a :class:`TrainRun` did: one metrics row per epoch (``history``), the validation
    images that chose ``best`` (``validation``), the test split's one scoring of ``last`` and
    ``best`` after a held-out run (``test``: ``split``, ``images``, ``last_top1``, ``best_epoch``,
    ``best_top1``), the files written, and whether it was interrupted (Ctrl-C: saved, resumable)
    or ran on a process other than rank 0 (``is_main`` False: nothing reported)."""

    history: list[dict]
    validation: Validation
    test: dict | None = None
    written: list[str] = field(default_factory=list)
    interrupted: bool = False
    is_main: bool = True

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted and self.is_main else 0


@dataclass
class TrainRun:
    """A model, its datasets and config, ready to train into ``out``.

    ``frozen``: conv10 alone trains on the frozen backbone's features; None decides
    (:meth:`uses_frozen_path`). ``resume``: continue from
    ``out/train_state.safetensors``. ``run_info`` is stored with every checkpoint (how to find
    the data again on resume). ``note`` ends the run's first line (e.g. the recipe)."""

    model: nn.Module
    config: TrainConfig
    train_ds: Any
    val_ds: Any
    out: Path
    data: Any
    preset: str
    validation: Validation
    strict: bool = False
    run_info: dict = field(default_factory=dict)
    frozen: bool | None = None
    resume: bool = False
    note: str = ""
    log: Log = _print

    def uses_frozen_path(self) -> bool:
        """``frozen`` when set; else whether ``config.freeze`` covers the whole backbone. A resumed
        run continues on the path it began on (``run_info["cli"]["frozen_backbone"]``)."""
        if self.frozen is not None:
            return self.frozen
        if self.resume and not self.run_info.get("cli", {}).get("frozen_backbone"):
            return False
        from .params import freezes_backbone
        return bool(self.config.freeze) and freezes_backbone(self.model, self.config.freeze)

    def run(self) -> RunResult:
        self.out = Path(self.out)
        return self._run_frozen() if self.uses_frozen_path() else self._run_full()

    def _written(self) -> list[str]:
        from .checkpoint import METRICS_FILE
        return [str(self.out / n) for n in ("best.safetensors", "last.safetensors", METRICS_FILE, VAL_LIST_FILE)
                if (self.out / n).is_file()]

    def _fit(self, trainer) -> list[dict]:
        from . import distributed as D
        trainer.run_info.update(self.run_info)
        trainer.run_info["validation"] = self.validation.to_dict()
        if trainer.is_main and self.validation.files:   # which images choose best, one a line
            from ..io import atomic_write_text
            atomic_write_text(self.out / VAL_LIST_FILE, "".join(_line(f) + "\n" for f in self.validation.files))
        if self.resume:
            trainer.resume()
        try:
            return trainer.fit()
        finally:
            D.cleanup()

    def _score(self, history) -> dict | None:
        """The test split's one scoring, after a run that chose ``best`` on held-out images."""
        if self.validation.on != "held_out":
            return None
        scores = score_on_test(self.out, self.data, self.preset, list(self.train_ds.classes), self.strict, history)
        if scores is None:
            self.log("no test split in the data to score on: the val figures above chose best's epoch")
            return None
        line = (f"scored on {scores['split']} ({scores['images']} images, chose nothing): "
                f"last top-1 {scores['last_top1']:.4f}")
        if "best_top1" in scores:
            line += f", best (epoch {scores['best_epoch']}) {scores['best_top1']:.4f}"
        self.log(line)
        return scores

    def _run_full(self) -> RunResult:
        from .trainer import Trainer
        model, config, v = self.model, self.config, self.validation
        trainer = Trainer(model, config, self.train_ds, self.val_ds, out_dir=self.out)
        if trainer.is_main:
            from ..data import train_crop
            n_val = len(self.val_ds) if self.val_ds is not None else 0
            crop = train_crop(self.preset, config.train_size)   # what the transform really crops
            crop = f", training crops {crop} px" if crop else ""
            self.log(f"training {model.config.stem}/{model.config.bypass}{'/bn' if model.config.batch_norm else ''} "
                     f"({sum(p.numel() for p in model.parameters()):,} params) on {self.data}: {len(self.train_ds)} "
                     f"train / {n_val} val images, {len(self.train_ds.classes)} classes, preset {self.preset}; "
                     f"{trainer.total_steps()} steps of {config.effective_batch * trainer.world_size} images, "
                     f"lr {config.lr} {config.schedule}{self.note}{crop}, {trainer.world_size} process(es) on "
                     f"{trainer.device}")
        history = self._fit(trainer)
        if not trainer.is_main:
            return RunResult(history, v, is_main=False)
        if trainer.interrupted:
            return RunResult(history, v, interrupted=True)
        skipped = history[-1].get("skipped", 0) if history else 0
        if history:
            best = best_epoch(history)
            if "val_top1" in best:
                self.log(f"best val top-1 {best['val_top1']:.4f} (top-5 {best['val_top5']:.4f}) at epoch "
                         f"{best['epoch']}; last {history[-1]['val_top1']:.4f}"
                         + (f" (val: {v.source}, the split scores are read from: best's figure chose its epoch; "
                            f"report last's, or choose on --val-split)" if v.chooses_on_test else
                            f" (val: {v.images} images held out of the train split)" if v.on == "held_out" else ""))
            else:
                self.log(f"final train loss {history[-1]['train_loss']:.4f}")
        test = self._score(history)
        if skipped:
            self.log(f"skipped {skipped} unreadable image(s) (listed above)")
        written = self._written()
        if written:   # only what is there: a resumed run that had nothing left to do wrote nothing new
            self.log(f"wrote {', '.join(written)}")
        return RunResult(history, v, test, written)

    def _run_frozen(self) -> RunResult:
        """conv10 alone, on the backbone's features of the training photos (centre crops)
        computed once, trained by the Trainer (:func:`~squeezenet.train.finetune.head_trainer`),
        which writes what a run writes (checkpoints, training state, metrics.jsonl) and resumes
        (the features are computed again)."""
        from ..data import build_dataset
        from .checkpoint import STATE_FILE
        from .finetune import head_trainer
        model, config, v = self.model, self.config, self.validation
        t0 = time.perf_counter()
        if self.resume:   # the backbone the features come from is the run's
            from ..models.weights import load_state_dict_checked
            from .checkpoint import load_train_state
            groups, _ = load_train_state(self.out / STATE_FILE)
            load_state_dict_checked(model, groups["model"], self.out / STATE_FILE)
        plain = plain_subset(self.train_ds, build_dataset(self.data, "train", preset=self.preset,
                                                         classes=list(self.train_ds.classes), strict=self.strict,
                                                         augment=False))
        self.log(f"training conv10 alone ({sum(p.numel() for p in model.classifier.parameters()):,} params) on the "
                 f"frozen backbone's features of {len(plain)} train / "
                 f"{len(self.val_ds) if self.val_ds is not None else 0} val images, computed once; {config.epochs} "
                 f"epochs, lr {config.lr * config.head_lr_mult:g} {config.optimizer} {config.schedule}")
        torch.manual_seed(config.seed)
        trainer = head_trainer(model, config, plain, self.val_ds, progress=config.progress, out_dir=self.out)
        self.run_info.setdefault("cli", {})["frozen_backbone"] = True
        history = self._fit(trainer)
        model.eval()
        if not trainer.is_main:
            return RunResult(history, v, is_main=False)
        if trainer.interrupted:
            return RunResult(history, v, interrupted=True)
        seconds = time.perf_counter() - t0
        last = history[-1]
        if "val_top1" in last:
            self.log(f"val top-1 {last['val_top1']:.4f} (top-5 {last['val_top5']:.4f}) after {last['epoch']} epochs; "
                     f"{seconds:.1f} s in all ({last['features_s']:.1f} s of them computing features)")
        test = self._score(history)
        written = self._written()
        self.log(f"wrote {', '.join(written)}")
        return RunResult(history, v, test, written)


# ------------------------------------------------------------------------------ fine-tuning

@dataclass
class FinetuneSetup:
    """Fine-tuning ``model`` (a trained model, its ``classes`` and ``preprocess`` set, e.g. a
    loaded model file named ``source``) on ``data`` (a folder of class folders ``train/<class>/``,
    ``test/<class>/``, an archive, ``digits``...) with ``config`` (the ``finetune`` recipe's by
    default: :data:`~squeezenet.train.recipes.RECIPES`).

    ``classes``: a class-list file (its order when it lists the data's classes, its names;
    ``synset_words.txt`` lines map folder names to the model's ids). ``head``: ``auto``,
    ``new`` or ``keep`` (:func:`~squeezenet.train.finetune.plan_head`). ``val``: a validation
    set; ``no_val``: none; ``config.val_split``: a share of each class held out of train, which
    gives way to ``val`` or ``no_val`` unless ``explicit_val_split`` (:func:`default_val_split`).

    >>> import squeezenet, tempfile
    >>> from squeezenet.train.recipes import RECIPES
    >>> m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    >>> m.classes, m.preprocess = [str(i) for i in range(10)], "small"
    >>> setup = FinetuneSetup(m, "digits", RECIPES["finetune"].train_config(max_steps=2, warmup_steps=0,
    ...                                                  progress=False), no_val=True, log=lambda line: None)
    >>> result = setup.run(tempfile.mkdtemp())
    >>> len(result.history), result.validation.on
    (1, 'none')
    """

    model: nn.Module
    data: Any
    config: TrainConfig
    source: Any = "the model"
    preprocess: str | None = None
    classes: Any = None
    head: str | None = None
    val: Any = None
    no_val: bool = False
    strict: bool = False
    explicit_val_split: bool = False
    note: str = ""
    log: Log = _print

    def prepare(self, out) -> TrainRun:
        """Check the input, give the model its head for the data's classes (one line says
        which) and pick the data's roles; every check before any training work."""
        from ..data import (INPUT_SIZE, build_dataset, check_model_input, check_preset, check_training_split,
                            class_folder_names, preset_for)
        from ..data.datasets import read_class_names, read_labels
        from ..errors import ConfigError, FormatError
        from .finetune import mapping_from_labels, plan_head, resolve_freeze, sample_features, transfer_head
        data, model, preset, strict = self.data, self.model, self.preprocess, self.strict
        config = default_val_split(self.config, self.val, self.no_val, self.explicit_val_split)
        if preset:
            check_preset(preset)
        check_val_options(config, self.val, self.no_val)
        own = getattr(model, "preprocess", None)
        if preset and own in INPUT_SIZE and INPUT_SIZE[preset] != INPUT_SIZE[own]:
            raise FormatError(self.source, f"takes {INPUT_SIZE[own]}x{INPUT_SIZE[own]} input (preset {own}) but "
                                           f"--preprocess {preset} gives {INPUT_SIZE[preset]}x{INPUT_SIZE[preset]}; "
                                           f"drop --preprocess or give a preset of the model's input size")
        preset = preset or preset_for(model, data)
        check_model_input(model, preset, source=self.source)
        if config.freeze:
            resolve_freeze(model, config.freeze)
        folders = class_folder_names(data, "train")
        if len(folders) < 2:
            shown = f" ({folders[0]!r})" if folders else ""
            raise ConfigError(f"{data}: {len(folders)} class folder{'' if len(folders) == 1 else 's'}{shown}; "
                              f"training a classifier needs at least 2 (one folder of photos per class)")
        data_classes, names, mapping = sorted(folders), None, None
        if self.classes:
            ids, file_names = read_class_names(self.classes)
            if set(ids) == set(folders):        # the file lists the data's classes: its order, its names
                data_classes = list(ids)
            mapping = mapping_from_labels(read_labels(self.classes))
            if file_names:
                by_id = dict(zip(ids, file_names))
                names = [by_id.get(c, c) for c in data_classes]
        model_classes = getattr(model, "classes", None)
        if model_classes is not None and len(model_classes) != model.num_classes:
            model_classes = None
        head = self.head or "auto"
        plan = plan_head(model_classes, data_classes, head, mapping,   # errors before any work
                         num_outputs=model.num_classes)
        train_ds = build_dataset(data, "train", preset=preset, classes=data_classes, strict=strict,
                                 train_size=config.train_size)
        check_training_split(train_ds, data)
        train_ds, val_ds, validation = data_roles(train_ds, data, preset, data_classes, strict, config.val_split,
                                                  self.val, self.no_val)
        features = None
        if plan.kind == "new":   # imprint the new rows: class means of 50 centre-cropped photos a class
            plain = plain_subset(train_ds, build_dataset(data, "train", preset=preset, classes=data_classes,
                                                        strict=strict, augment=False))
            features = sample_features(model, plain, per_class=50, batch_size=config.eval_batch_size,
                                       seed=config.seed, progress=config.progress)
        plan = transfer_head(model, data_classes, head, mapping, features=features)
        self.log(plan.message)
        model.class_names = names
        model.preprocess = preset
        cli = {"data": str(data), "preprocess": preset, "classes": str(self.classes) if self.classes else None,
               "val": str(self.val) if self.val else None, "no_val": bool(self.no_val)}
        return TrainRun(model, config, train_ds, val_ds, Path(out), data, preset, validation, strict=strict,
                        run_info={"cli": cli}, note=self.note, log=self.log)

    def run(self, out) -> RunResult:
        """:meth:`prepare`, then train into ``out``: checkpoints, training state, metrics.jsonl."""
        torch.manual_seed(self.config.seed)
        return self.prepare(out).run()
