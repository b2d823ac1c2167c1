"""Loading weights into a model: the strict state_dict check with one-line errors, and
torchvision's published SqueezeNet weights (``create_model(name, weights=...)``).

torchvision ``.pth`` files are read with ``torch.load(weights_only=True)``: a file from
elsewhere is never unpickled beyond plain tensors. Before that, a zip-format file must store
its records uncompressed (as ``torch.save`` does), so every byte torch reads is in the file
(no zip bomb); storages are memory-mapped, not read; every tensor's size is bounded before
anything is materialised, and the shapes are checked against the model before one is built.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import FormatError, SqueezeNetError, first_line, open_input
from .squeezenet import MAX_PARAMS

#: the largest .pth file read (SqueezeNet's are 5 MB; the biggest model config allowed is 256 MiB)
MAX_PTH_BYTES = 1 << 30
MAX_PTH_RECORDS = 10_000

#: the preprocessing preset torchvision's ImageNet weights were trained with
IMAGENET_PREPROCESS = "torchvision"


def check_shapes(have: dict[str, tuple], need: dict[str, tuple], path) -> None:
    """A one-line :class:`FormatError` naming the file and the key unless the tensors in a file
    (name -> shape) are exactly those a model needs; called before the model is built where the
    reader can (see :func:`squeezenet.models.squeezenet.state_shapes`)."""
    missing = [k for k in need if k not in have]
    unexpected = [k for k in have if k not in need]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(map(str, unexpected[:3]))}{'...' if len(unexpected) > 3 else ''}")
        raise FormatError(path, "weights do not fit the model: " + "; ".join(parts))
    for k, shape in need.items():
        if tuple(have[k]) != tuple(shape):
            raise FormatError(path, f"{k}: shape {tuple(have[k])} in file, model needs {tuple(shape)}")


def check_finite(tensors: dict[str, torch.Tensor], path) -> None:
    """A one-line :class:`FormatError` naming the first tensor holding NaN or infinity."""
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise FormatError(path, f"{k}: non-finite values (NaN or infinity)")


def load_state_dict_checked(model: nn.Module, tensors: dict[str, torch.Tensor], path) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the file and the key."""
    own = model.state_dict()
    check_shapes({k: tuple(t.shape) for k, t in tensors.items()}, {k: tuple(v.shape) for k, v in own.items()}, path)
    model.load_state_dict({k: t.to(own[k].dtype) for k, t in tensors.items()}, strict=True)


def read_torchvision_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict of a ``.pth`` file: bounded (see the module docstring), never unpickled
    beyond plain tensors, finite; every problem a one-line :class:`FormatError`."""
    import zipfile
    path = Path(path)
    with open_input(path, "torchvision checkpoint") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_PTH_BYTES:
            raise FormatError(path, f"{size:,} bytes: over the {MAX_PTH_BYTES:,}-byte limit for a .pth file")
        if zipfile.is_zipfile(f):
            try:
                with zipfile.ZipFile(f) as z:
                    infos = z.infolist()
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
                raise FormatError(path, f"not a readable torchvision checkpoint ({first_line(e, 200)})") from None
            if len(infos) > MAX_PTH_RECORDS:
                raise FormatError(path, f"{len(infos):,} records: over the {MAX_PTH_RECORDS:,} limit")
            for i in infos:
                if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size:
                    raise FormatError(path, f"record {i.filename[:80]!r} is compressed (torch.save stores "
                                            f"records uncompressed; refusing a possible zip bomb)")
            if sum(i.file_size for i in infos) > size:
                raise FormatError(path, "records larger than the file (corrupt zip directory)")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:   # UnpicklingError, RuntimeError, MemoryError, EOFError ...
        raise FormatError(path, f"not a readable torchvision checkpoint ({first_line(e, 200)})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise FormatError(path, "not a state_dict of tensors")
    for k, v in sd.items():
        if v.numel() > MAX_PARAMS:
            raise FormatError(path, f"{k}: shape {tuple(v.shape)}, {v.numel():,} values (over the {MAX_PARAMS:,} "
                                    f"limit of a model)")
        stored = v.untyped_storage().nbytes() // max(1, v.element_size())
        if v.numel() > stored:   # an expanded view: the values are not in the file
            raise FormatError(path, f"{k}: shape {tuple(v.shape)} views {stored:,} stored values (a repeating view, "
                                    f"not a saved tensor)")
    return sd


def load_torchvision_weights(model: nn.Module, arch: str, weights, progress: bool = True) -> None:
    """``weights``: a path to a ``.pth`` state_dict, or ``"torchvision"`` / ``"DEFAULT"`` to
    fetch torchvision's ImageNet weights through torchvision (needs network access)."""
    if isinstance(weights, (str, os.PathLike)) and Path(weights).suffix == ".pth":
        sd = read_torchvision_checkpoint(weights)
        load_state_dict_checked(model, sd, weights)
        check_finite(model.state_dict(), weights)
        model.preprocess = IMAGENET_PREPROCESS
        return
    if str(weights).lower() not in ("torchvision", "default", "imagenet1k_v1"):
        raise SqueezeNetError(f"weights={weights!r}: give a .pth file or 'torchvision'")
    base = {"squeezenet1_0": "squeezenet1_0", "squeezenet1_0_caffe": None,
            "squeezenet1_1": "squeezenet1_1"}.get(arch)
    if base is None:
        raise SqueezeNetError(f"torchvision publishes no weights for {arch}")
    import torchvision.models as tvm
    enum = getattr(tvm, {"squeezenet1_0": "SqueezeNet1_0_Weights",
                         "squeezenet1_1": "SqueezeNet1_1_Weights"}[base]).IMAGENET1K_V1
    try:
        sd = enum.get_state_dict(progress=progress)
    except Exception as e:  # URLError, OSError, HTTPError ...
        raise SqueezeNetError(
            f"cannot download torchvision's {base} weights ({first_line(e, 160)}); offline, download "
            f"{enum.url} elsewhere and pass the .pth file instead") from None
    load_state_dict_checked(model, sd, enum.url)
    model.classes = None
    model.preprocess = IMAGENET_PREPROCESS
