"""The offline demo: train the small-image SqueezeNet on scikit-learn's digits.

A run takes minutes on a CPU (``squeezenet demo`` runs it)::

    from squeezenet.train.demo import run_digits_demo
    run_digits_demo("runs/demo")["top1"] >= 0.97      # True
"""
from __future__ import annotations

import time
from pathlib import Path

from ..data.transforms import digits_train_transform
from .recipes import RECIPES

#: The digits demo's TrainConfig fields (:data:`squeezenet.train.recipes.RECIPES` ``["digits"]``).
DEMO_RECIPE = RECIPES["digits"].config


def run_digits_demo(out_dir: str | Path = "runs/demo", threads: int | None = None, progress: bool = True,
                    **overrides) -> dict:
    """Train ``squeezenet_small`` on digits, write checkpoints to ``out_dir``, return test metrics.

    Each demo starts clean: an earlier run's checkpoints and ``metrics.jsonl`` in ``out_dir``
    are replaced (nothing else there is touched), so metrics never list an epoch twice.

    Returns ``top1``, ``top5`` (fractions, on the 360 held-out digits), ``count``, ``epochs``,
    ``seconds`` (wall time of training + evaluation), ``checkpoint`` (the final model file).
    """
    import torch

    from ..data import build_dataset, make_loader
    from ..evaluate import evaluate
    from ..io import check_output, load
    from ..models import create_model
    from .checkpoint import clear_run
    from .init import init_weights
    from .trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = check_output(out_dir, folder=True)   # writable, before the work
    clear_run(out)
    recipe = RECIPES["digits"]
    cfg = recipe.train_config(**{"progress": progress, **overrides})
    torch.manual_seed(cfg.seed)
    train, test = build_dataset("digits", "train", transform=digits_train_transform()), build_dataset("digits", "test")
    model = create_model("squeezenet_small", num_classes=10)
    model.classes, model.preprocess = list(train.classes), "small"
    init_weights(model, recipe.init)
    print(f"SqueezeNet (small, {sum(p.numel() for p in model.parameters()):,} params) on scikit-learn digits: "
          f"{len(train)} train / {len(test)} test images at 32x32, {cfg.epochs} epochs, "
          f"{cfg.optimizer} lr {cfg.lr}, {torch.get_num_threads()} thread(s)", flush=True)
    # no graceful stop: the demo cannot resume, so a signal ends the whole job (the CLI says so)
    Trainer(model, cfg, train, test, out_dir=out, stop_on_signal=False).fit()
    # The final model, not the best epoch: picking by test accuracy would flatter the figure.
    final = load(out / "last.safetensors")
    r = evaluate(final, make_loader(test, 360))
    result = {"top1": r["top1"], "top5": r["top5"], "count": r["count"], "epochs": cfg.epochs,
              "seconds": time.perf_counter() - t0, "checkpoint": str(out / "last.safetensors")}
    print(f"digits test top-1 {100 * r['top1']:.2f} % (top-5 {100 * r['top5']:.2f} %) on {r['count']} images; "
          f"{result['seconds']:.0f} s; model {result['checkpoint']}", flush=True)
    return result
