"""The compression half of ``make demo``: digits model -> .sqz -> reload -> evaluate."""
from __future__ import annotations

import os
from pathlib import Path


def compress_demo(weights_path: str | os.PathLike, out_dir: str | os.PathLike, log=print,
                  bits: int = 5, prune: str = "paper", finetune_epochs: float = 8.0,
                  lr: float = 1e-3, optimizer: str = "sgd", max_steps: int | None = None) -> dict:
    """Compress a digits-trained ``squeezenet_small`` and check the reloaded ``.sqz``.

    Returns the pipeline report plus ``sqz`` (path), ``reloaded`` (metrics of the model
    loaded back from disk), ``ratio_vs_fp32`` and ``top1_loss`` (points). After
    ``make demo``, ``compress_demo("runs/digits/best.safetensors", "runs/digits")`` gives a
    ``ratio_vs_fp32`` of 10 or more (``tests/test_compress.py::test_compress_demo_ratio``).
    ``max_steps`` caps each retraining stage (a quick look); ``log`` hears each stage start.
    """
    from ..data import build_dataset, make_loader, preset_for
    from ..evaluate import evaluate
    from ..io import load
    from .pipeline import CompressConfig, compress_model
    from .report import format_report
    model = load(weights_path)
    preset = preset_for(model, "digits")
    train = build_dataset("digits", "train", preset=preset)
    test = make_loader(build_dataset("digits", "test", preset=preset), 128)
    out = Path(out_dir) / (Path(weights_path).stem + ".sqz")
    cfg = CompressConfig(prune=prune, bits=bits, finetune_epochs=finetune_epochs, lr=lr,
                         batch_size=64, optimizer=optimizer, max_steps=max_steps)
    report = compress_model(model, train, test, cfg, out, log=log)
    reloaded = evaluate(load(out), test)
    dense = report["rows"][0]
    report.update(sqz=str(out), reloaded=reloaded,
                  ratio_vs_fp32=dense["bytes"] / out.stat().st_size,
                  top1_loss=100 * (dense["top1"] - reloaded["top1"]))
    log(format_report(report, "digits"))
    log(f"{out}: {out.stat().st_size:,} bytes, {report['ratio_vs_fp32']:.1f}x smaller than fp32; "
        f"reloaded top-1 {100 * reloaded['top1']:.1f}% ({-report['top1_loss']:+.1f} points vs the dense model)")
    return report
