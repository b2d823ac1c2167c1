"""``squeezenet eval``: top-1 / top-5 accuracy of any model file on a dataset."""
from __future__ import annotations

from ..errors import MAX_BATCH_SIZE, MAX_THREADS, MAX_WORKERS
from ._common import add_parser, number, print_json
from ._infer import ENGINES_HELP

EXAMPLES = """  squeezenet eval runs/digits/best.safetensors --data digits
  squeezenet eval runs/c10/best.safetensors --data cifar10 --json
  squeezenet eval squeezenet1_1.safetensors --data ../shared/fixtures/imagenet_sample_dev \\
      --classes ../shared/fixtures/imagenet/synsets.txt --preprocess torchvision
  squeezenet eval m-int8.onnx --data ../shared/fixtures/imagenet_sample_dev   # ONNX Runtime
  squeezenet eval m.xml --data ../shared/fixtures/imagenet_sample_dev          # OpenVINO (export --to openvino)

The class order and preprocessing stored in the model file (or an exported .onnx file's
metadata) are the defaults; --classes maps folder names to the model's output indices (a
folder may hold any subset of the classes). A model without a class list is scored on class
folders only when they are named by output index (0, 1, ...); otherwise give --classes.
"""


def register(sub) -> None:
    p = add_parser(sub, "eval", "top-1/top-5 accuracy of a model file on a dataset", EXAMPLES)
    p.add_argument("weights", metavar="MODEL", help="model file (.safetensors, .sqz, ... anything squeezenet.load reads) "
                                   "or an exported .onnx (fp32 or int8), OpenVINO .xml, ncnn .param or LiteRT .tflite")
    p.add_argument("--data", required=True, help="digits | cifar10 | folder of class folders | .tar.gz")
    p.add_argument("--split", choices=["train", "test"], default="test", help="split of --data (default test)")
    p.add_argument("--classes", default=None, help="class list file (model index order), e.g. synsets.txt")
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help="caffe | torchvision | small: for a file that stores none (default: the model's own)")
    p.add_argument("--force-preprocess", action="store_true",
                   help="run --preprocess even where it contradicts the preset stored in the model file "
                        "(refused otherwise: the figures would be wrong)")
    p.add_argument("--limit", type=number(int, 1), default=None, metavar="N",
                   help="score only N images spread evenly over the set (a quick look)")
    p.add_argument("--batch-size", type=number(int, 1, MAX_BATCH_SIZE), default=100, help="images per batch (default 100)")
    p.add_argument("--workers", type=number(int, 0, MAX_WORKERS), default=0, help="data-loading processes (default 0)")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=None, help="torch CPU threads")
    p.add_argument("--engine", default="auto", help=ENGINES_HELP)
    p.add_argument("--strict", action="store_true", help="an unreadable image is an error, not skipped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")
    p.add_argument("--json", action="store_true", help="print JSON (keys top1, top5, count, engine, images_per_s, ...)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    import torch

    from ..data import (build_dataset, check_model_input, check_preset, classes_for_scoring, dataset_label,
                        make_loader, preset_for, spread_subset)
    from ..errors import SqueezeNetError
    from ..evaluate import evaluate
    from ._infer import engine_used, forward_for, load_model

    if args.batch_size < 1:
        raise SqueezeNetError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.preprocess:
        check_preset(args.preprocess)
    model = load_model(args.weights, preprocess=args.preprocess, classes=args.classes,
                       force_preprocess=args.force_preprocess, threads=args.threads)
    preset = preset_for(model, args.data)
    check_model_input(model, preset, args.weights)
    classes = classes_for_scoring(args.data, args.split, args.classes or getattr(model, "classes", None),
                                  model=str(args.weights))
    ds = build_dataset(args.data, args.split, preset=preset, classes=classes, strict=args.strict)
    n_out = getattr(model, "num_classes", None)
    if n_out is not None and len(ds.classes) > n_out:
        raise SqueezeNetError(f"the data has {len(ds.classes)} classes but {args.weights} has {n_out} outputs; "
                              f"pass the model's class list with --classes")
    ds = spread_subset(ds, args.limit)
    loader = make_loader(ds, args.batch_size, workers=args.workers)
    fwd = forward_for(model, args.engine, log=lambda m: print(m, file=sys.stderr, flush=True))
    r = evaluate(model if isinstance(model, torch.nn.Module) else None, loader, forward=fwd,
                 progress=not args.no_progress)
    where = dataset_label(args.data, args.split)
    r.update({"model": str(args.weights), "data": str(args.data), "split": args.split, "preprocess": preset,
              "engine": engine_used(fwd, min(args.batch_size, len(ds)) or 1)})
    if args.json:
        print_json(r)
    else:
        print(f"top-1 {100 * r['top1']:.2f} %  top-5 {100 * r['top5']:.2f} %  images {r['count']}  "
              f"{r['images_per_s']:.1f} images/s  ({args.weights} on {where}, {preset}, {r['engine']})")
        if r["skipped"]:
            print(f"skipped {r['skipped']} unreadable image(s) (listed above)")
    return 0
