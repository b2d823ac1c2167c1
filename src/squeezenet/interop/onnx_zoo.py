"""ONNX-model-zoo SqueezeNet 1.1 weights (``squeezenet0_conv{i}_{weight,bias}.npy``).

The zoo model (exported from Gluon) stores its 26 convolutions in forward order: conv0 is
conv1, then (squeeze, expand1x1, expand3x3) for fire2..fire9, and conv25 is conv10; the
architecture equals torchvision's ``squeezenet1_1``, so the arrays map one to one onto our
state_dict. Preprocessing is torchvision's (RGB, /255, ImageNet mean/std, 224 crop).

``.npy`` files are read with a bounds-checked header parse (never pickles, never
allocates more than the file holds).
"""
from __future__ import annotations

import ast
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, SqueezeNetError, read_input

PREPROCESS = "torchvision"
ARCH = "squeezenet1_1"
PREFIX = "squeezenet0_conv"
NUM_CONVS = 26
_MAX_HEADER = 1 << 16
MAX_NPY_BYTES = 1 << 30


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A numeric array from a ``.npy`` file, with one-line :class:`FormatError` on bad input.

    The header's shape is checked against the file size before any array is allocated.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npy"); np.save(p, np.arange(3.0))
    >>> read_npy(p).tolist()
    [0.0, 1.0, 2.0]
    """
    path = Path(path)
    data = read_input(path, ".npy file", MAX_NPY_BYTES)
    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        raise FormatError(path, "not a .npy file (bad magic)")
    major = data[6]
    if major == 1:
        hlen, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        if len(data) < 12:
            raise FormatError(path, "truncated .npy header")
        hlen, start = int.from_bytes(data[8:12], "little"), 12
    else:
        raise FormatError(path, f".npy format version {major} is not supported")
    if hlen > _MAX_HEADER or start + hlen > len(data):
        raise FormatError(path, "truncated or corrupt .npy header")
    try:
        header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        dtype = np.dtype(descr)
    except Exception as e:  # SyntaxError, KeyError, TypeError, ValueError ...
        raise FormatError(path, f"corrupt .npy header ({type(e).__name__})") from None
    if not (isinstance(shape, tuple) and len(shape) <= 32
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < (1 << 40) for d in shape)):
        raise FormatError(path, f"corrupt .npy header (shape {shape!r})")
    if dtype.hasobject or dtype.kind not in "fiub" or not isinstance(fortran, bool):
        raise FormatError(path, f"unsupported .npy dtype {descr!r} (need a plain numeric array)")
    count = math.prod(shape)
    body = len(data) - start - hlen
    if count * dtype.itemsize != body:
        raise FormatError(path, f"shape {shape} of {dtype} needs {count * dtype.itemsize} bytes, "
                                f"the file holds {body}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=start + hlen)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def onnx_zoo_state_dict(weights_dir: str | os.PathLike, model) -> dict[str, torch.Tensor]:
    """The zoo arrays as a state_dict for ``model`` (our squeezenet1_1), shapes checked."""
    d = Path(weights_dir)
    if not d.is_dir():
        raise FormatError(d, "not a directory of squeezenet0_conv*_{weight,bias}.npy files")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != NUM_CONVS:  # pragma: no cover (our own model)
        raise SqueezeNetError(f"model has {len(convs)} convolutions, the zoo file set {NUM_CONVS}")
    extra = sorted(p.name for p in d.glob(f"{PREFIX}*.npy")
                   if p.stem not in {f"{PREFIX}{i}_{k}" for i in range(NUM_CONVS) for k in ("weight", "bias")})
    if extra:
        raise FormatError(d, f"unexpected file {extra[0]}: not the 26-convolution SqueezeNet 1.1")
    sd = {}
    for i, (name, conv) in enumerate(zip(names, convs)):
        for kind, param in (("weight", conv.weight), ("bias", conv.bias)):
            f = d / f"{PREFIX}{i}_{kind}.npy"
            if not f.is_file():
                raise FormatError(f, "missing (the zoo weights need conv0..conv25, weight and bias)")
            a = read_npy(f)
            if tuple(a.shape) != tuple(param.shape):
                raise FormatError(f, f"shape {tuple(a.shape)}, {name}.{kind} needs {tuple(param.shape)}")
            if not np.isfinite(a).all():
                raise FormatError(f, "non-finite values")
            sd[f"{name}.{kind}"] = torch.from_numpy(a.astype(np.float32))
    return sd


def import_onnx_zoo(weights_dir: str | os.PathLike, classes: list[str] | None = None):
    """ONNX-zoo SqueezeNet 1.1 weights -> our ``squeezenet1_1`` (torchvision preprocessing).

    ``weights_dir`` is the zoo's ``weights`` folder (or its parent holding ``weights/``), e.g.
    ``import_onnx_zoo("onnx_zoo_squeezenet1.1/weights", classes=synsets)``.
    """
    from ..models import create_model
    from ..models.weights import load_state_dict_checked
    d = Path(weights_dir)
    if d.is_dir() and not any(d.glob(f"{PREFIX}*.npy")) and (d / "weights").is_dir():
        d = d / "weights"
    model = create_model(ARCH)
    sd = onnx_zoo_state_dict(d, model)
    load_state_dict_checked(model, sd, d)
    model.classes = list(classes) if classes is not None else None
    model.preprocess = PREPROCESS
    model.metadata = {"source": "onnx-zoo", "arch": ARCH}
    return model.eval()
