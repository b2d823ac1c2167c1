"""Export a SqueezeNet to ONNX for deployment (ONNX Runtime and any other ONNX consumer).

The exported graph is the model in eval mode (dropout off), opset 17 by default, with one
input ``input`` (N, C, H, W; N dynamic) and one output ``logits`` (N, classes). The
model's preprocessing and class list travel in ``metadata_props`` so a consumer outside
Python can prepare images and name predictions:

=====================  ===============================================================
key                    value
=====================  ===============================================================
``format``             ``squeezenet``
``squeezenet_version`` the toolkit version that wrote the file
``config``             JSON of :class:`squeezenet.SqueezeNetConfig`
``classes``            JSON list of class ids (or ``null``)
``class_names``        JSON list of their human-readable names (or ``null``)
``preprocess``         JSON: ``{"preset": name, ...}`` with the resize (short side, or
                       [h, w])/crop/scale/mean/std/channel order of a known preset
``input_size``         the square input side the graph was exported for (``[h, w]`` if not
                       square); default :func:`squeezenet.data.input_size_for` the model
``source``, ``license`` where the weights come from and their license (plain strings), when
                       the model's data config records them
=====================  ===============================================================

The legacy TorchScript exporter (``dynamo=False``) is used: on torch 2.14 it still works for
this all-convolution network, takes about a second, and needs no onnxscript.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import input_size_for
from ..data.transforms import PRESETS
from ..errors import SqueezeNetError, first_line
from ..models.utils import dense_eval_copy

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

#: What each preprocessing preset does, spelled out for consumers outside Python (from the
#: one preset table, :data:`squeezenet.data.transforms.PRESETS`).
PREPROCESS_SPECS: dict[str, dict[str, Any]] = {name: p.spec() for name, p in PRESETS.items()}


def onnx_metadata(model: nn.Module, input_size) -> dict[str, str]:
    """The ``metadata_props`` written into an exported model."""
    from .. import __version__
    from ..models.data_config import data_config
    config = getattr(model, "config", None)
    cfg = data_config(model)
    preset = cfg.preset
    pre: dict[str, Any] = {"preset": preset}
    if preset in PREPROCESS_SPECS:
        pre.update(PREPROCESS_SPECS[preset])
    return {
        "format": "squeezenet",
        "squeezenet_version": __version__,
        "config": json.dumps(config.to_dict() if hasattr(config, "to_dict") else None),
        "classes": json.dumps(list(cfg.classes) if cfg.classes is not None else None),
        "class_names": json.dumps(list(cfg.class_names) if cfg.class_names is not None else None),
        "preprocess": json.dumps(pre),
        "input_size": json.dumps(input_size),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        # the rest of the data config, where the model records it
        **{k: v for k, v in (("source", cfg.source), ("license", cfg.license)) if v is not None},
    }


def to_onnx_bytes(model: nn.Module, input_size: int | tuple[int, int] | None = None,
                  opset: int = DEFAULT_OPSET,
                  in_channels: int | None = None, metadata: bool = True) -> bytes:
    """Serialize ``model`` (eval mode, dense) to ONNX bytes with a dynamic batch dimension.

    >>> import squeezenet, onnx
    >>> b = to_onnx_bytes(squeezenet.create_model("squeezenet_small"))
    >>> [i.name for i in onnx.load_from_string(b).graph.input]
    ['input']
    """
    import onnx
    if opset < 17:
        raise SqueezeNetError(f"--opset {opset}: this exporter writes opset 17 or newer")
    size = input_size or input_size_for(model)[1:]   # the one input-size rule
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    from ..models.registry import MAX_INPUT_SIZE
    if min(h, w) < 8 or max(h, w) > MAX_INPUT_SIZE:
        raise SqueezeNetError(f"input size {h}x{w}: each side must be in 8..{MAX_INPUT_SIZE}")
    m = dense_eval_copy(model)
    c = in_channels or getattr(getattr(model, "config", None), "in_channels", 3)
    x = torch.zeros(1, c, h, w)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the legacy exporter is deprecated in favour of dynamo but still exact here (see module doc)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              do_constant_folding=True)
        except RuntimeError as e:
            raise SqueezeNetError(f"cannot export at {h}x{w}: {first_line(e)}") from None
    proto = onnx.load_from_string(buf.getvalue())
    if metadata:
        del proto.metadata_props[:]
        for k, v in onnx_metadata(model, h if h == w else [h, w]).items():
            proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "squeezenet"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(model: nn.Module, path: str | os.PathLike, input_size: int | None = None,
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as an ONNX file (atomically); returns the path.

    >>> import squeezenet, tempfile, os, onnxruntime as ort, numpy as np
    >>> p = export_onnx(squeezenet.create_model("squeezenet_small"), os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    >>> s.run(None, {"input": np.zeros((2, 3, 32, 32), np.float32)})[0].shape
    (2, 10)
    """
    from ..io import atomic_write
    data = to_onnx_bytes(model, input_size=input_size, opset=opset)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return Path(path)


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata_props`` of an ONNX file, JSON values decoded.

    Reads only the protobuf, never executes anything from the file.
    """
    import onnx
    from ..errors import FormatError
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise FormatError(path, f"not a readable ONNX file ({first_line(e, 120)})") from None
    from ..io import parse_json
    out: dict[str, Any] = {}
    for p in proto.metadata_props:
        try:   # bounded nesting, like every JSON read from a file
            out[p.key] = parse_json(p.value, path, f"metadata {p.key!r}")
        except FormatError:
            out[p.key] = p.value
    return out
