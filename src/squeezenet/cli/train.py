"""``squeezenet train``: train a SqueezeNet with the paper's recipe (resumable, multi-process)."""
from __future__ import annotations

import argparse

from ..train.recipes import INITS, RECIPES
from ..errors import MAX_THREADS
from ._common import add_out, add_parser, number

EXAMPLES = """  squeezenet train --data digits --out runs/digits --recipe small --epochs 20
  squeezenet train --data cifar10 --out runs/c10 --batch-norm --epochs 15 --batch-size 128 --lr 2e-3 \\
      --schedule cosine --warmup-steps 300 --channels-last      # 81.1 % in 47 min on 2 CPU cores
  squeezenet train --data photos/ --classes classes.txt --model squeezenet1_1 --out runs/p --config recipe.yaml
  squeezenet train --out runs/c10 --resume              # continue exactly where it stopped
  torchrun --nproc_per_node=2 -m squeezenet train --data digits --out runs/ddp
  squeezenet train --model v11.safetensors --data photos/ --out runs/mine   # fine-tune on your classes
  squeezenet train --model v11.safetensors --data photos/ --out runs/probe --freeze features
  squeezenet train --model v11.safetensors --data photos/ --out runs/v --val-split 0   # best chosen on photos/test

Fine-tuning (--model is a model file): the recipe is finetune unless --recipe says otherwise.
When the data's classes are not the model's, conv10 is rebuilt for them (its rows start from the
class means of the training photos' features); when they are a subset of the model's classes
(its ids, or names mapped to ids by a --classes file such as synset_words.txt), conv10 keeps
their rows. One line says which; --head new|keep forces one. The output records the new
class list (and the names of a --classes file). Unless --val or --no-val is given, best.safetensors
is chosen on 10 % of each class held out of the train split (--val-split 0.1, the finetune
recipe's; listed in DIR/val_images.txt), and the test split scores last and best once at the end.

Defaults come from the recipe that runs, which depends on the data and the model (each
option above lists them per recipe): finetune when --model is a model file; small for
squeezenet_small, the default model for 32x32 data (digits, cifar10, --preprocess small);
else paper (SGD momentum 0.9, weight decay 2e-4, lr 0.04 linear to 0, batch 32 x 16 = 512).
The run's first line names the recipe, lr and steps. A config file (YAML/JSON, fields of
TrainConfig) sets any of them; flags win over the file.
Writes DIR/last.safetensors, DIR/best.safetensors (+ .json sidecars, which record the images that
validated), DIR/train_state.safetensors, DIR/metrics.jsonl and, with a --val-split,
DIR/val_images.txt. Ctrl-C saves and exits; --resume continues. A non-empty DIR is refused
unless --resume continues its run or --overwrite starts again (removing those files only).
DIR is locked while a run writes it: a second command writing the same DIR is refused.
"""

# flag -> (TrainConfig field, type, help)
CONFIG_FLAGS = [
    ("--epochs", "epochs", int, "passes over the training data (default 10)"),
    ("--batch-size", "batch_size", int, "micro-batch per process (default 32)"),
    ("--accum-steps", "accum_steps", int, "micro-batches per optimizer step (default 16)"),
    ("--lr", "lr", float, "base learning rate (default 0.04)"),
    ("--optimizer", "optimizer", str, "sgd | adamw (default sgd, the paper's)"),
    ("--momentum", "momentum", float, "SGD momentum (default 0.9)"),
    ("--weight-decay", "weight_decay", float, "weight decay (default 2e-4)"),
    ("--schedule", "schedule", str, "poly | cosine | constant (default poly)"),
    ("--power", "power", float, "poly power (default 1: linear to 0)"),
    ("--warmup-steps", "warmup_steps", int, "linear warm-up steps (default 0)"),
    ("--dropout", "dropout", float, "dropout before conv10 (default 0.5)"),
    ("--label-smoothing", "label_smoothing", float, "cross-entropy label smoothing (default 0)"),
    ("--grad-clip", "grad_clip", float, "clip the gradient norm (default off)"),
    ("--seed", "seed", int, "seed for init, shuffling, augmentation (default 0)"),
    ("--max-steps", "max_steps", int, "stop after N optimizer steps (the schedule's length)"),
    ("--workers", "workers", int, "data-loading processes (default 0)"),
    ("--checkpoint-every", "checkpoint_every", int, "also checkpoint every N steps (default: epoch ends)"),
    ("--checkpoint-minutes", "checkpoint_minutes", float, "also checkpoint after this many minutes (default 10)"),
    ("--device", "device", str, "auto | cpu | cuda | cuda:N (default auto)"),
    ("--freeze", "freeze", str, "comma-separated layers kept fixed: features, conv1, fire2..fire9, conv10 or "
                                "module paths (features: only conv10 trains, on features computed once)"),
    ("--head-lr-mult", "head_lr_mult", float, "conv10's lr = lr x this (default 1; finetune recipe 10)"),
    ("--val-split", "val_split", float, "hold this fraction of the train split out (the same share of each class, "
                                        "the same images every run; listed in DIR/val_images.txt) to validate on "
                                        "and choose best.safetensors by; the test split then only scores, at the "
                                        "end. 0: validate on --val or the test split. A recipe's hold-out gives way "
                                        "to --val or --no-val (default 0)"),
    ("--train-size", "train_size", int, "side of the training crops (default: the preset's input size; "
                                        "finetune recipe 160); scoring stays at the preset's"),
]
BOOL_FLAGS = [("--channels-last", "channels_last", "NHWC memory format"),
              ("--bf16", "bf16", "bfloat16 autocast"),
              ("--nesterov", "nesterov", "Nesterov momentum")]


def _per_recipe(field: str, hlp: str) -> str:
    """``hlp`` with its default spelled out per recipe (the recipe that runs depends on the data
    and the model), from :data:`RECIPES`: one source of the figures."""
    import re

    from ..train.config import TrainConfig
    hlp = re.sub(r"\s*\(default[^)]*\)$", "", hlp)
    by_value: dict = {}
    for r in RECIPES.values():
        v = getattr(r.train_config(), field, None)
        by_value.setdefault(v, []).append(r.name)
    if len(by_value) == 1:
        v = next(iter(by_value))
        if v is None or v is False:
            return hlp
        return f"{hlp} (default {v:g})" if isinstance(v, float) else f"{hlp} (default {v})"
    if field not in {f.name for f in __import__("dataclasses").fields(TrainConfig)}:
        return hlp

    def show(v):
        return "off" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
    return f"{hlp} (default by recipe: " + ", ".join(f"{'/'.join(n)} {show(v)}" for v, n in by_value.items()) + ")"


def register(sub) -> None:
    from ..models.registry import list_models
    p = add_parser(sub, "train", "train or fine-tune a SqueezeNet (recipe by data and model; resumable; "
                                 "torchrun-ready)", EXAMPLES)
    p.add_argument("--data", help="digits | cifar10 | folder of class folders | .tar.gz of them")
    add_out(p, help="output folder for checkpoints and metrics")
    p.add_argument("--model", default=None,
                   help=f"model name ({', '.join(list_models())}) or a model file to fine-tune; "
                        "default squeezenet_small for 32x32 data, else squeezenet1_1")
    p.add_argument("--bypass", choices=["none", "simple", "complex"], default=None, help="paper Table 3 variant")
    p.add_argument("--batch-norm", action="store_true",
                   help="BatchNorm after every conv but conv10 (not in the paper; trains much faster "
                        "from scratch, e.g. on CIFAR-10)")
    p.add_argument("--preprocess", default=None, help="caffe | torchvision | small (default by data/model)")
    p.add_argument("--classes", default=None, help="class list file fixing the class-index order")
    p.add_argument("--val", default=None, help="validation data (default: the test split of --data, if any)")
    p.add_argument("--no-val", action="store_true", help="train without validation")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="starting point, flags win: " + "; ".join(f"{r.name}: {r.help}" for r in RECIPES.values()))
    p.add_argument("--init", choices=INITS, default=None,
                   help="weight init of a new model: paper (Xavier, conv10 N(0, 0.01)), torchvision "
                        "(kaiming), alive (kaiming + conv10 bias 1: keeps conv10's ReLU alive on few-class "
                        "data), lsuv (unit variance on a real batch)")
    p.add_argument("--head", choices=["auto", "new", "keep"], default=None,
                   help="fine-tuning a model file: new (a fresh conv10 for the data's classes), keep (the "
                        "data's classes are the model's: conv10 keeps their rows) or auto (default: keep "
                        "when every class matches, else new)")
    p.add_argument("--config", default=None, help="YAML/JSON file of TrainConfig fields")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors")
    p.add_argument("--overwrite", action="store_true",
                   help="OUT holds an earlier run: remove its checkpoints, sidecars and metrics.jsonl "
                        "(nothing else) and start again")
    p.add_argument("--strict", action="store_true", help="an unreadable image is an error, not skipped")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for flag, field, typ, hlp in CONFIG_FLAGS:
        p.add_argument(flag, dest=field, type=typ, default=None, help=_per_recipe(field, hlp).replace("%", "%%"))
    for flag, field, hlp in BOOL_FLAGS:
        p.add_argument(flag, dest=field, action="store_true", default=None, help=hlp)
    p.set_defaults(func=run, run_folder="out")   # locked while it runs (cli._folder_lock)


def _config_overrides(args) -> dict:
    fields = [f for _, f, _, _ in CONFIG_FLAGS] + [f for _, f, _ in BOOL_FLAGS]
    out = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if args.no_progress:
        out["progress"] = False
    return out


def run(args: argparse.Namespace) -> int:
    """Fill the library's run objects from the flags (:class:`~squeezenet.train.run.FinetuneSetup`
    for a model file, else a :class:`~squeezenet.train.run.TrainRun` of a new or resumed model)
    and run them; what runs, checks and reports is theirs."""
    from pathlib import Path

    import torch

    from ..data import check_preset
    from ..errors import SqueezeNetError
    from ..io import check_output
    from ..train import STATE_FILE, TrainConfig, Trainer, load_train_state
    from ..train.run import FinetuneSetup, check_val_options, default_val_split

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.resume and args.overwrite:
        raise SqueezeNetError("--resume continues the run in --out, --overwrite starts it again: give one")
    overrides = _config_overrides(args)
    saved = None
    if args.resume:
        state_path = out / STATE_FILE
        if not state_path.is_file():
            raise SqueezeNetError(f"{state_path}: nothing to resume (no training state in --out)")
        _, saved = load_train_state(state_path)
        cfg_dict = dict(saved["train_config"])
        cfg_dict.update(overrides)
        config = TrainConfig.from_dict(cfg_dict)
        run_args = saved.get("cli", {})
        data = args.data or run_args.get("data")
        preset = args.preprocess or run_args.get("preprocess")
        classes = args.classes or run_args.get("classes")
        val_spec = args.val or run_args.get("val")
        no_val = args.no_val or run_args.get("no_val", False)
    else:
        if not args.data:
            raise SqueezeNetError("--data is required (digits, cifar10, a folder or a .tar.gz)")
        if args.recipe is None:
            args.recipe = ("finetune" if _is_file(args.model) else
                           "small" if _default_model_name(args, args.data) == "squeezenet_small" else "paper")
        recipe = RECIPES[args.recipe]
        config = TrainConfig.from_file(args.config, **overrides) if args.config else recipe.train_config(**overrides)
        data, preset, classes = args.data, args.preprocess, args.classes
        val_spec, no_val = args.val, args.no_val
    if data is None:
        raise SqueezeNetError("--data is required")
    if preset:
        check_preset(preset)
    if saved is None:   # a recipe's hold-out gives way to --val / --no-val; a --val-split flag does not
        config = default_val_split(config, val_spec, no_val, explicit="val_split" in overrides or bool(args.config))
    check_val_options(config, val_spec, no_val)
    if args.head and not (saved is None and _is_file(args.model)):
        raise SqueezeNetError("--head applies when fine-tuning a model file (--model FILE)")
    Trainer.pick_device(config.device)     # cuda:99 on this machine: refused before any work
    _check_out(out, args)
    existed = out.exists()
    check_output(out, folder=True)        # writable, before any data is read
    note = _recipe_note(args, saved, config)
    try:
        torch.manual_seed(config.seed)
        if saved is None and _is_file(args.model):
            setup = FinetuneSetup(_build_model(args, None, data, preset), data, config, source=args.model,
                                  preprocess=preset, classes=classes, head=args.head, val=val_spec, no_val=no_val,
                                  strict=args.strict, note=note)
            job = setup.prepare(out)
        else:
            job = _setup(args, config, saved, data, preset, classes, val_spec, no_val, out, note)
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()   # bad input: leave nothing behind
        raise
    return job.run().exit_code


def _recipe_note(args, saved, config) -> str:
    if saved is not None or args.config:
        return ""
    return f" (recipe {args.recipe})"


def _is_file(model) -> bool:
    from pathlib import Path
    return bool(model and Path(model).suffix)


def _setup(args, config, saved, data, preset, classes, val_spec, no_val, out, note):
    """The :class:`~squeezenet.train.run.TrainRun` of a model from scratch (or a resumed one)."""
    from pathlib import Path

    from ..data import build_dataset, check_training_split, preset_for
    from ..errors import SqueezeNetError
    from ..train.run import TrainRun, data_roles
    model = _build_model(args, saved, data, preset)
    preset = preset or preset_for(model, data)
    wanted = model.classes if saved is not None else (classes or model.classes)   # a resumed run: its own
    train_ds = build_dataset(data, "train", preset=preset, classes=wanted, strict=args.strict,
                             train_size=config.train_size)
    check_training_split(train_ds, data)
    train_ds, val_ds, validation = data_roles(train_ds, data, preset, train_ds.classes, args.strict,
                                              config.val_split, val_spec, no_val)
    if saved is None:
        if model.num_classes != len(train_ds.classes):
            if args.model and Path(args.model).suffix:
                raise SqueezeNetError(f"{args.model} has {model.num_classes} outputs but the data has "
                                      f"{len(train_ds.classes)} classes")
            model = _build_model(args, None, data, preset, num_classes=len(train_ds.classes))
        if model.classes != list(train_ds.classes):
            model.class_names = None   # names of other ids
        model.classes, model.preprocess = list(train_ds.classes), preset
        if classes and not isinstance(classes, list):   # a class-list file: keep its names too
            from ..data import read_class_names
            ids, names = read_class_names(classes)
            if names and ids == model.classes:
                model.class_names = names
        from ..train.init import init_weights
        init_weights(model, args.init or RECIPES[args.recipe].init, train_ds)
    if config.freeze:
        from ..train.finetune import resolve_freeze
        resolve_freeze(model, config.freeze)   # a name matching nothing: one line, before any work
    cli = {"data": str(data), "preprocess": preset, "classes": str(classes) if classes else None,
           "val": str(val_spec) if val_spec else None, "no_val": bool(no_val)}
    if saved is not None and saved.get("cli", {}).get("frozen_backbone"):
        cli["frozen_backbone"] = True
    return TrainRun(model, config, train_ds, val_ds, out, data, preset, validation, strict=args.strict,
                    run_info={"cli": cli}, resume=saved is not None, note=note)


def _check_out(out, args) -> None:
    """A non-empty --out belongs to an earlier run (or to someone else): continue it with
    --resume, or start again with --overwrite, which removes only the files training writes
    (``_common.output_folder``, the rule of every command that writes a folder)."""
    from pathlib import Path

    from ..errors import SqueezeNetError
    from ..train import distributed as D
    from ..train.checkpoint import RUN_FILES, clear_run
    from ._common import output_folder
    model = Path(args.model).resolve() if _is_file(args.model) else None
    if (args.overwrite and not args.resume and model is not None and model.name in RUN_FILES
            and model.parent == out.resolve()):
        raise SqueezeNetError(f"--model {args.model} is a file of the run in {out}, which --overwrite would remove "
                              f"before it is read; copy it out of {out} first, or give another --out")
    rank0 = D.env_world()[0] == 0   # under torchrun, rank 0 alone clears the folder
    output_folder(out, overwrite=args.overwrite, resume=args.resume, clear=clear_run if rank0 else None)


def _default_model_name(args, data, preset=None) -> str | None:
    """The model ``train`` builds when --model is not a file: squeezenet_small for 32x32 data."""
    from pathlib import Path

    from ..data.datasets import BUILTIN
    if args.model:
        return None if Path(args.model).suffix else args.model
    return "squeezenet_small" if (data in BUILTIN or (preset or args.preprocess) == "small") else "squeezenet1_1"


def _build_model(args, saved, data, preset, num_classes=None):
    from pathlib import Path

    from ..models import SqueezeNet, SqueezeNetConfig, create_model
    if saved is not None:
        m = SqueezeNet(SqueezeNetConfig.from_dict(saved["model"]["config"]))
        m.classes, m.preprocess = saved["model"]["classes"], saved["model"]["preprocess"]
        m.class_names = saved["model"].get("class_names")
        if isinstance(saved["model"].get("data_config"), dict):   # states written before it lack it
            from ..models import DataConfig
            m.data_config = DataConfig.from_dict(saved["model"]["data_config"])
        return m
    kwargs = {}
    if args.bypass:
        kwargs["bypass"] = args.bypass
    if args.batch_norm:
        kwargs["batch_norm"] = True
    if num_classes:
        kwargs["num_classes"] = num_classes
    name = args.model
    if name and Path(name).suffix:
        if kwargs.get("bypass") or kwargs.get("batch_norm"):
            from ..errors import SqueezeNetError
            raise SqueezeNetError("--bypass and --batch-norm apply to named models, not to a model file")
        from ._common import load_model_file
        return load_model_file(name).train()
    if name is None:
        name = _default_model_name(args, data, preset)
    from ._common import model_name
    try:
        model_name(name)
    except argparse.ArgumentTypeError as e:
        from ..errors import SqueezeNetError
        raise SqueezeNetError(str(e)) from None
    return create_model(name, **kwargs)
