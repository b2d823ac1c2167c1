"""What every exported-file runtime shares: :class:`ExportedModel` (the callable ``eval``,
``predict`` and ``bench`` run), the metadata rules and the runtimes' pip extras
(:mod:`squeezenet.runtime.exported` picks the runtime)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import FormatError, SqueezeNetError, first_line
from ..models.data_config import CarriesDataConfig, DataConfig

#: format -> (suffix of the file named on the command line, Python module, pip extra)
FORMATS: dict[str, tuple[str, str, str]] = {
    "openvino": (".xml", "openvino", "openvino"),
    "ncnn": (".param", "ncnn", "ncnn"),
    "litert": (".tflite", "ai_edge_litert.interpreter", "litert"),
}


def require(fmt: str):
    """Import the runtime module of ``fmt``, or a one-line error saying how to install it."""
    import importlib
    _, module, extra = FORMATS[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SqueezeNetError(f"{fmt} is not installed: pip install 'squeezenet[{extra}]'") from None


def onnx_props(onnx_bytes: bytes) -> dict[str, str]:
    """The ``metadata_props`` of ONNX bytes (strings as written)."""
    import onnx
    return {p.key: p.value for p in onnx.load_from_string(onnx_bytes).metadata_props}


def decode_props(props: dict[str, str], source) -> dict[str, Any]:
    """Metadata strings -> values (each JSON-decoded, bounded; a non-JSON string stays a string)."""
    from ..io import parse_json
    out: dict[str, Any] = {}
    for k, v in props.items():
        try:
            out[k] = parse_json(v, source, f"metadata {k!r}")
        except FormatError:
            out[k] = v
    return out


class ExportedModel(CarriesDataConfig):
    """A callable ``x (N, C, H, W float tensor) -> logits tensor`` running an exported file in
    its runtime, with the attributes ``eval``/``predict`` read from a model (``classes``,
    ``class_names``, ``preprocess``, ``num_classes``, ``config``, ``metadata``), ``engine``
    (the runtime), ``int8`` and ``precision`` (what the runtime really computes in)."""

    def __init__(self, path, engine: str, run: Callable[[torch.Tensor], torch.Tensor], meta: dict,
                 preprocess: str | None, classes, class_names, config, num_classes, int8: bool,
                 precision: str, input_shape: tuple = (), data_config: DataConfig | None = None) -> None:
        self.path, self.engine, self._run, self.metadata = Path(path), engine, run, meta
        # the data config (model_facts gives it; classes, class_names, preprocess read through it)
        self.data_config = data_config or DataConfig()
        self.preprocess, self.classes, self.config, self.num_classes = preprocess, classes, config, num_classes
        self.class_names = class_names if class_names and classes and len(class_names) == len(classes) else None
        self.int8, self.precision, self.input_shape = int8, precision, input_shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._run(x)
        except SqueezeNetError:
            raise
        except Exception as e:   # the runtime's own errors (wrong input size, ...) as one line
            raise SqueezeNetError(f"{self.path}: {self.engine} could not run a batch of shape "
                                  f"{tuple(x.shape)} ({first_line(e, 200)})") from None

    def eval(self) -> "ExportedModel":
        return self

    def __repr__(self) -> str:
        return f"ExportedModel({str(self.path)!r}, engine={self.engine!r}, int8={self.int8}, precision={self.precision!r})"


def model_facts(path, meta: dict, preprocess: str | None, classes, need_preprocess: bool,
                no_preset: str = "its metadata has no preprocessing preset") -> dict:
    """Preset, classes, names and config of an exported file (ONNX, OpenVINO, ncnn, LiteRT) from its
    metadata and the caller's overrides: the one place these rules live. ``preprocess`` and
    ``classes`` (a list or a class-list file) override the metadata and are required where it
    is missing (``no_preset`` says what is missing; ``need_preprocess=False``: timing needs no
    images)."""
    from ..data import check_preset, read_class_names
    from ..models import SqueezeNetConfig
    pre = meta.get("preprocess") if isinstance(meta.get("preprocess"), dict) else {}
    preset = preprocess or pre.get("preset")
    if not preset and need_preprocess:
        raise FormatError(path, f"{no_preset}, so how to prepare images is unknown; give --preprocess "
                                f"torchvision|caffe|small (and --classes FILE to name or score classes)")
    if preset:
        check_preset(preset)
    names = None
    if classes is not None:
        if isinstance(classes, (str, os.PathLike)):
            classes, names = read_class_names(classes)
        else:
            classes = [str(c) for c in classes]
    else:
        classes = meta.get("classes") if _str_list(meta.get("classes")) else None
        names = meta.get("class_names") if _str_list(meta.get("class_names")) else None
    config = None
    if isinstance(meta.get("config"), dict):
        try:
            config = SqueezeNetConfig.from_dict(meta["config"])
        except (SqueezeNetError, TypeError, ValueError, KeyError):
            config = None
    num_classes = config.num_classes if config is not None else None
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise SqueezeNetError(f"{path}: {len(classes)} classes in the class list, the model has {num_classes} outputs")
    return {"preprocess": preset, "classes": classes, "class_names": names, "config": config,
            "num_classes": num_classes, "int8": "quantization" in meta,
            "data_config": exported_data_config(meta, preset, classes, names, config)}


def exported_data_config(meta: dict, preset, classes, names, config):
    """The :class:`~squeezenet.models.DataConfig` of an exported file: the preset, classes and
    names :func:`model_facts` chose, the ``source`` and ``license`` its metadata records and
    the input size it was exported for (``input_size``: a side or ``[h, w]``). A malformed
    optional field is left out, as the other optional metadata is."""
    from ..errors import ConfigError
    from ..models.data_config import DataConfig, check_input_size
    c = getattr(config, "in_channels", 3)
    size = meta.get("input_size")
    try:
        size = check_input_size((c, size, size) if isinstance(size, int) and not isinstance(size, bool)
                                else (c, *size) if isinstance(size, list) and len(size) == 2 else None)
    except ConfigError:
        size = None
    text = {k: meta[k] for k in ("source", "license")
            if isinstance(meta.get(k), str) and 0 < len(meta[k]) <= 1000}
    return DataConfig(input_size=size, preset=preset, classes=tuple(classes) if classes else None,
                      class_names=tuple(names) if names else None, **text)


def _str_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(c, str) for c in v)


def write_side_json(path: Path, props: dict[str, str]) -> None:
    from ..io import atomic_write_text
    atomic_write_text(path, json.dumps(decode_props(props, path), indent=1))
