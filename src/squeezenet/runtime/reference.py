"""The real SqueezeNet 1.1 ImageNet weights from the ONNX-zoo fixture, for benchmarks and tests
(through :func:`squeezenet.interop.onnx_zoo.import_onnx_zoo`)."""
from __future__ import annotations

import os
from pathlib import Path


def onnx_zoo_squeezenet1_1(weights_dir: str | os.PathLike | None = None, classes=None):
    """``squeezenet1_1`` with the ONNX-zoo ImageNet weights (eval mode, torchvision preprocessing);
    ``weights_dir`` defaults to the shared fixture (:func:`squeezenet.data.shared_dir`)."""
    from ..data import shared_dir
    from ..interop.onnx_zoo import import_onnx_zoo
    wd = Path(weights_dir or shared_dir() / "fixtures/onnx_zoo_squeezenet1.1/weights")
    return import_onnx_zoo(wd, classes=classes).eval()
