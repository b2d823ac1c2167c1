"""The published accuracy of the imported real weights on the 500-image ImageNet dev sample
(one photo per even class index). Slow: each evaluation runs 500 images on the CPU."""
from __future__ import annotations

import pytest
import torch

import squeezenet
from conftest import shared_path

pytestmark = pytest.mark.slow
TOL = 0.004 + 1e-9   # +-0.4 percentage points (2 of 500 images), float-safe


def _evaluate(model):
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    ds = build_dataset(shared_path("fixtures/imagenet_sample_dev"), split="test", preset=model.preprocess,
                       classes=model.classes, strict=True)
    assert len(ds) == 500
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = evaluate(model, make_loader(ds, batch_size=50))
    finally:
        torch.set_num_threads(threads)
    print(f"dev set: top-1 {r['top1']:.3f} top-5 {r['top5']:.3f} ({r['count']} images, {r['seconds']:.1f} s)")
    return r


def test_onnx_zoo_dev_set_accuracy(onnx_zoo_file):
    r = _evaluate(squeezenet.load(onnx_zoo_file))   # import_to_file's output, made once a run
    assert r["count"] == 500
    assert abs(r["top1"] - 0.598) <= TOL and abs(r["top5"] - 0.810) <= TOL

# The Deep-Compression .net dev-set figure is checked in tests/test_deep_compression.py.
