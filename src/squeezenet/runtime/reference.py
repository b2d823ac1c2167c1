"""The real SqueezeNet 1.1 ImageNet weights from the ONNX-zoo fixture, for benchmarks and tests.

Uses :func:`squeezenet.interop.onnx_zoo.import_onnx_zoo` when that importer is present; until
then it reads ``squeezenet0_conv{i}_{weight,bias}.npy`` (``allow_pickle=False``), whose forward
order is the state_dict order of ``squeezenet1_1``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError


def shared_dir() -> Path:
    """``$SQUEEZENET_SHARED`` or ``../shared`` next to the repository."""
    env = os.environ.get("SQUEEZENET_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared"


def onnx_zoo_squeezenet1_1(weights_dir: str | os.PathLike | None = None, classes=None):
    """``squeezenet1_1`` with the ONNX-zoo ImageNet weights (eval mode, torchvision preprocessing)."""
    from .. import create_model
    wd = Path(weights_dir or shared_dir() / "fixtures/onnx_zoo_squeezenet1.1/weights")
    try:
        from ..interop.onnx_zoo import import_onnx_zoo
    except ImportError:
        import_onnx_zoo = None
    if import_onnx_zoo is not None:
        m = import_onnx_zoo(wd, classes=classes)
        return m.eval()
    m = create_model("squeezenet1_1")
    sd = m.state_dict()
    keys = list(sd)
    new = {}
    for i in range(len(keys) // 2):
        for j, kind in enumerate(("weight", "bias")):
            p = wd / f"squeezenet0_conv{i}_{kind}.npy"
            if not p.is_file():
                raise FormatError(p, "no such file")
            a = np.load(p, allow_pickle=False)
            k = keys[2 * i + j]
            if tuple(a.shape) != tuple(sd[k].shape):
                raise FormatError(p, f"shape {a.shape}, {k} needs {tuple(sd[k].shape)}")
            new[k] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    m.load_state_dict(new)
    m.classes = list(classes) if classes else None
    m.preprocess = "torchvision"
    m.metadata = {"source": "onnx-zoo squeezenet1.1"}
    return m.eval()
