"""``squeezenet compress``: Deep Compression of a trained model into a ``.sqz`` file."""
from __future__ import annotations

from ..errors import MAX_THREADS
from ._common import add_out, add_parser, number, print_json

EXAMPLES = """  squeezenet compress runs/digits/best.safetensors --data digits -o digits.sqz
  squeezenet compress m.safetensors --data cifar10 --prune paper --bits 6 --json -o m.sqz
  squeezenet compress v11.safetensors --data ../shared/fixtures/imagenet_sample_dev \\
      --classes ../shared/fixtures/imagenet/synsets.txt \\
      --unlabeled ../shared/data/cifar10/train.tar.gz --target-size 660000 -o v11.sqz
  squeezenet compress m.safetensors --data cifar10 --device cuda -o m.sqz     # retrain on the GPU
  torchrun --nproc_per_node=2 -m squeezenet compress m.safetensors --data cifar10 -o m.sqz

--device runs the training loops (retraining, centroid tuning, distillation) there; the other
stages stay on the CPU. Under torchrun each process takes its share of every training batch
(DDP; --batch-size is the total, a multiple of the processes) and of the evaluation and
choosing passes; rank 0 writes the file and prints the report.
"""


#: Default distillation budget per retraining stage with --unlabeled (images).
UNLABELED_IMAGES = 2000


def register(sub) -> None:
    p = add_parser(sub, "compress", "prune, quantize and Huffman-code a model into a .sqz (paper Table 2)",
                   EXAMPLES)
    p.add_argument("weights", metavar="MODEL", help="model file (.safetensors, .sqz, ...)")
    p.add_argument("--data", required=True,
                   help="evaluation data (digits, cifar10, a folder or .tar.gz); its train split, "
                        "when it has one, is used for retraining")
    p.add_argument("--classes", default=None, help="class-list file fixing the class-index order")
    p.add_argument("--unlabeled", action="append", default=None, metavar="DATA",
                   help="images for retraining by distillation from the uncompressed model and for "
                        "calibration (labels unused): a folder of images, with or without class "
                        "folders, or a .tar.gz; repeat the flag for several sources (their images "
                        "are taken in turn, source by source and class folder by class folder, so "
                        "every pick draws on all of them)")
    p.add_argument("--prune", default="paper", help="paper | uniform:F | auto (sensitivity analysis)")
    p.add_argument("--bits", type=int, default=None, help="bits per weight for every layer (default 6)")
    p.add_argument("--gap-bits", type=int, default=4, help="bits of a sparse-position gap (default 4)")
    p.add_argument("--init", default="linear", choices=["linear", "density", "random"],
                   help="k-means initialisation (default linear)")
    p.add_argument("--target-size", type=int, default=None,
                   help="bytes: choose per-layer sparsity and bits so the .sqz fits (without --bits "
                        "and with --unlabeled images: bits and kept fraction per layer by a knapsack "
                        "over measured sensitivity, error-compensated rounding and straight-through "
                        "distillation, each kept only if it scores better on held-out --unlabeled images)")
    p.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                   help="find the smallest .sqz whose top-1 on --data stays within POINTS of the "
                        "uncompressed model's (needs --unlabeled; instead of --target-size)")
    p.add_argument("--distill-steps", type=int, default=300, metavar="N",
                   help="straight-through distillation steps (batch 32) of that path (default 300)")
    p.add_argument("--choose-images", type=int, default=500, metavar="N",
                   help="images held out to choose on, never calibrated or trained on: from --unlabeled, "
                        "else (with --target-size) from --data's train split (at most a fifth of it; "
                        "default 500; 0 = choose on --data)")
    p.add_argument("--finetune-epochs", type=float, default=1.0, help="retraining epochs per stage")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on optimizer steps per retraining stage (default with --unlabeled: "
                        f"{UNLABELED_IMAGES:,} images per stage, so a large unlabeled set does not "
                        "turn distillation into hours of training)")
    p.add_argument("--lr", type=float, default=None,
                   help="retraining learning rate (default 1e-3 with labels, 1e-4 when distilling "
                        "from --unlabeled images: out-of-domain images at a high rate hurt)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd",
                   help="retraining optimizer (default sgd, momentum 0.9 as in the paper; adamw suits "
                        "models trained with AdamW such as the small-image recipe)")
    p.add_argument("--centroid-lr", type=float, default=None,
                   help="Adam step for centroid fine-tuning (default --lr): about how far a "
                        "centroid moves per step")
    p.add_argument("--calibration-images", type=int, default=256, metavar="N",
                   help="images (from --unlabeled, else the train split; labels unused) for "
                        "error-compensated pruning and quantization (OBS / SparseGPT / GPTQ style), "
                        "each tried beside the plain method and kept if it scores better "
                        "(default 256; 0 = magnitude pruning and plain k-means only)")
    p.add_argument("--batch-size", type=int, default=64, help="retraining and evaluation batch size")
    p.add_argument("--svd", type=float, default=None, metavar="ENERGY",
                   help="also report an SVD low-rank row keeping this spectral energy")
    p.add_argument("--device", default="cpu",
                   help="where the training loops run: cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the training loops")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=None, help="torch CPU threads")
    p.add_argument("--limit", type=number(int, 1), default=None, metavar="N",
                   help="evaluate on only N images of --data spread evenly over its test split "
                        "(quicker, noisier figures)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (on stderr) while retraining")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_out(p, dest="output", folder=False, help="output .sqz file")
    p.add_argument("--overwrite", action="store_true",
                   help="allow -o to be the input model file (it is replaced by its compression)")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses
    import sys
    from pathlib import Path
    import torch
    from ..io import check_output
    from ..compress.pipeline import CompressConfig, compress_model
    from ..compress.report import format_report
    from ..compress.roles import DataRoles, format_roles, same_images
    from ..data import (build_dataset, build_unlabeled, classes_for_scoring, dataset_label, distill_transform, get_transform,
                        make_loader, preset_for, spread_subset)
    from ..errors import SqueezeNetError
    if Path(args.output).suffix.lower() != ".sqz":
        raise SqueezeNetError(f"-o {args.output}: the output must end in .sqz")
    # CompressConfig checks every option (a one-line ConfigError), before anything is loaded
    cfg = CompressConfig(prune=args.prune, bits=args.bits, init=args.init, gap_bits=args.gap_bits,
                         target_size=args.target_size, finetune_epochs=args.finetune_epochs,
                         max_steps=args.max_steps,
                         lr=args.lr if args.lr is not None else (1e-4 if args.unlabeled else 1e-3),
                         batch_size=args.batch_size, centroid_lr=args.centroid_lr, optimizer=args.optimizer,
                         svd_energy=args.svd, calibration_images=args.calibration_images,
                         distill_steps=args.distill_steps, choose_images=args.choose_images,
                         max_drop_points=args.max_drop, device=args.device, bf16=args.bf16,
                         progress=not args.no_progress)
    if args.max_drop is not None and not args.unlabeled:
        raise SqueezeNetError("--max-drop needs --unlabeled images (calibration and distillation)")
    from ..train import Trainer
    from ..train import distributed as D
    Trainer.pick_device(cfg.device)     # cuda on a machine without: one line, before any work
    check_output(args.output, inputs=[args.weights, args.classes], overwrite=args.overwrite)   # before the work
    if args.threads:
        torch.set_num_threads(args.threads)
    from ._common import load_model_file
    model = load_model_file(args.weights)
    preset = preset_for(model, args.data)
    classes = classes_for_scoring(args.data, "test", args.classes or getattr(model, "classes", None),
                                  model=str(args.weights))
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    val_all = build_dataset(args.data, "test", preset=preset, classes=classes)
    val = spread_subset(val_all, args.limit)
    val_loader = make_loader(val, args.batch_size)
    train = None
    if args.unlabeled is None:
        train = build_dataset(args.data, "train", preset=preset, classes=classes)
        if same_images(train, val_all) and (args.finetune_epochs > 0 or args.max_steps):
            raise SqueezeNetError(f"--data {args.data} has no separate train split: retraining on the "
                                  f"evaluation images would overstate accuracy; give --unlabeled DATA "
                                  f"or --finetune-epochs 0")
    unlabeled = unlabeled_eval = distill_data = None
    if args.unlabeled:
        unlabeled = build_unlabeled(args.unlabeled, preset=preset)
        # the same images in the same order: plain (calibration, choosing) and as distillation crops
        unlabeled_eval = _view(unlabeled, get_transform(preset)) or build_unlabeled(
            args.unlabeled, preset=preset, augment=False)
        distill_data = _view(unlabeled, distill_transform(preset)) or unlabeled
    if cfg.max_steps is None and unlabeled is not None and cfg.finetune_epochs > 0:
        images = min(len(unlabeled), int(UNLABELED_IMAGES * cfg.finetune_epochs))
        cfg = dataclasses.replace(cfg, max_steps=max(1, -(-images // cfg.batch_size)))
    scored = dataset_label(args.data, "test") + (f" ({len(val)} images)" if args.limit else "")
    # which images train, calibrate, choose and score: decided by the library, named here
    roles = DataRoles.build(
        val_loader, train, unlabeled, unlabeled_eval=unlabeled_eval, distill=distill_data,
        choose_images=cfg.choose_images, batch_size=args.batch_size, calibration_images=cfg.calibration_images,
        hold_out_labeled=bool(args.target_size), separate_train=not same_images(train, val_all),
        train_plain=lambda: _view(train, get_transform(preset)) or build_dataset(
            args.data, "train", preset=preset, classes=classes, augment=False),
        names={"data": scored, "train": dataset_label(args.data, "train"), "unlabeled": "--unlabeled"})
    try:
        report = compress_model(model, None, None, cfg, args.output, log=log, roles=roles)
    finally:
        rank = D.env_world()[0] if D.active() else 0
        D.cleanup()
    if rank != 0:      # torchrun: rank 0 reports
        return 0
    report["weights"] = str(args.weights)
    report["data"] = str(args.data)
    if unlabeled is not None:
        report["unlabeled_sources"] = [{"source": src, "images": n, "class_folders": k}
                                       for src, n, k in unlabeled.sources]
    train_ds = getattr(roles.train, "dataset", roles.train)   # a Subset when images were held out to choose on
    skipped = {name: len(getattr(ds, "skipped", None) or {}) for name, ds in (("--data", val), ("--data train", train_ds))}
    skipped["--unlabeled"] = len(set().union(*(getattr(ds, "skipped", None) or {}
                                               for ds in (unlabeled, unlabeled_eval, distill_data))))
    report["skipped"] = {k: v for k, v in skipped.items() if v}
    if args.json:
        report["fractions"] = {k: round(v, 4) for k, v in report["fractions"].items()}
        print_json(report)
    else:
        print(format_report(report, Path(args.weights).stem))
        print(f"chosen on: {report['chosen_on']}; scored on: {report['scored_on']}")
        print("data roles:\n" + "\n".join("  " + line for line in format_roles(report["data_roles"]).splitlines()))
        if report.get("unlabeled_sources"):
            print("--unlabeled: " + "; ".join(f"{u['source']}: {u['images']:,} images in {u['class_folders']} "
                                             f"class folder(s)" for u in report["unlabeled_sources"]))
        if report.get("size_search"):
            ss = report["size_search"]
            print(f"--max-drop {ss['max_drop_points']}: {ss['target']:,} B ({ss['answer']}), tried "
                  + ", ".join(f"{t['kind']} {t['target']:,} B -> {100 * t['top1']:.1f}%" for t in ss["trials"]))
        print(f"wrote {args.output} ({report['rows'][-1]['bytes']:,} bytes) in {report['seconds']:.0f} s")
    for where, n in report["skipped"].items():
        log(f"skipped {n} unreadable image(s) in {where} (listed above)")
    return 0


def _view(ds, transform):
    """``ds`` (a folder dataset) read through another transform: same images, same order, one
    record of unreadable ones (each named once); None for other datasets."""
    import copy
    from ..data import ImageFolderDataset
    if type(ds) is not ImageFolderDataset:
        return None
    v = copy.copy(ds)
    v.transform = transform
    return v
