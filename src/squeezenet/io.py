"""Model files: save and load SqueezeNets with their config, classes and preprocessing.

The native format is a safetensors file whose header metadata holds
``{"format": "squeezenet", "format_version": "1", "config": <json>, "classes": <json>,
"preprocess": <name>, "extra": <json>}``. Nothing is ever unpickled.

:func:`load` is the one loader behind every command: it dispatches on the file suffix
(``.safetensors``, ``.sqz``, ...) through :data:`LOADERS`, so that checkpoints, imported
and compressed files work everywhere.
"""
from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import FormatError, SqueezeNetError, first_line
from .models.weights import load_state_dict_checked

FORMAT = "squeezenet"
FORMAT_VERSION = "1"

#: suffix -> "module:function" taking a path and returning a model (imported lazily).
LOADERS: dict[str, str] = {
    ".safetensors": "squeezenet.io:load_safetensors",
    ".sqz": "squeezenet.compress.sqz:load_sqz",
}


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def w(tmp):
        Path(tmp).write_text(text)
    atomic_write(path, w)


def model_metadata(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The header metadata that lets :func:`load` rebuild ``model``."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise SqueezeNetError(f"cannot save {type(model).__name__}: it has no SqueezeNet config")
    meta = dict(getattr(model, "metadata", {}) or {})
    meta.update(extra or {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
        "classes": json.dumps(getattr(model, "classes", None)),
        "preprocess": json.dumps(getattr(model, "preprocess", None)),
        "extra": json.dumps(meta),
    }


def save(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (weights + config + classes + preprocessing) atomically as safetensors.

    >>> import squeezenet, tempfile, os
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> p = squeezenet.save(m, os.path.join(tempfile.mkdtemp(), "m.safetensors"))
    >>> squeezenet.load(p).config == m.config
    True
    """
    from safetensors.torch import save_file
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = model_metadata(model, extra)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return Path(path)


def model_from_metadata(meta: dict[str, str], path: str | os.PathLike) -> nn.Module:
    """Build an (untrained) model from header metadata written by :func:`model_metadata`."""
    from .models import SqueezeNet, SqueezeNetConfig
    try:
        if meta.get("format") != FORMAT:
            raise FormatError(path, "not a squeezenet model file (no 'format: squeezenet' in its header)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise FormatError(path, f"format version {meta.get('format_version')!r} is not supported "
                                    f"(this version reads {FORMAT_VERSION})")
        config = SqueezeNetConfig.from_dict(json.loads(meta["config"]))
        model = SqueezeNet(config)
        model.classes = json.loads(meta.get("classes", "null"))
        model.preprocess = json.loads(meta.get("preprocess", "null"))
        model.metadata = json.loads(meta.get("extra", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        if isinstance(e, SqueezeNetError):
            raise
        raise FormatError(path, f"bad model header: {e}") from None
    return model


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with one-line errors for bad files."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise FormatError(path, f"not a readable safetensors file ({first_line(e)})") from None
    return tensors, meta


def load_safetensors(path: str | os.PathLike) -> nn.Module:
    tensors, meta = read_safetensors(path)
    if "config" not in meta:
        side = Path(path).with_suffix(".json")
        if side.is_file():
            try:
                meta = {**json.loads(side.read_text()), **meta}
                meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()}
                meta.setdefault("format", FORMAT)
                meta.setdefault("format_version", FORMAT_VERSION)
            except ValueError as e:
                raise FormatError(side, f"bad JSON: {e}") from None
    model = model_from_metadata(meta, path)
    load_state_dict_checked(model, tensors, path)
    return model.eval()


def load(path: str | os.PathLike) -> nn.Module:
    """Load any model file this toolkit knows into a runnable model in eval mode.

    The model carries ``classes`` and ``preprocess`` from the file.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "no such file")
    target = LOADERS.get(path.suffix.lower())
    if target is None:
        raise FormatError(path, f"unknown model file type {path.suffix!r} "
                                f"(known: {', '.join(sorted(LOADERS))}; use 'squeezenet import' for Caffe, "
                                f"Deep-Compression, ONNX-zoo and torchvision files)")
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)(path)
