"""Model files: save and load SqueezeNets with their config, classes and preprocessing.

The native format is a safetensors file whose header metadata holds
``{"format": "squeezenet", "format_version": "1", "config": <json>, "classes": <json>,
"preprocess": <name>, "extra": <json>}``. Nothing is ever unpickled.

:func:`load` is the one loader behind every command: it dispatches on the file suffix
(``.safetensors``, ``.sqz``, ...) through :data:`LOADERS`, so that checkpoints, imported
and compressed files work everywhere.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import ConfigError, FormatError, SqueezeNetError, first_line, open_input, read_input
from .models.weights import check_shapes, load_state_dict_checked

FORMAT = "squeezenet"
FORMAT_VERSION = "1"

#: suffix -> "module:function" taking a path and returning a model (imported lazily).
LOADERS: dict[str, str] = {
    ".safetensors": "squeezenet.io:load_safetensors",
    ".sqz": "squeezenet.compress.sqz:load_sqz",
}


#: Limits of the small readers (headers, sidecars, configs, class lists), checked before parsing.
MAX_JSON_DEPTH = 64            # nesting of any JSON value read from a file
MAX_TEXT_BYTES = 16 << 20      # a text file (class list, labels, JSON sidecar, JSON config)
MAX_YAML_BYTES = 1 << 20       # a YAML file (design space, train config)
MAX_YAML_NODES = 100_000       # scalars, lists and mappings in one YAML file
MAX_YAML_DEPTH = 32            # nesting of a YAML file


def parse_json(data: str | bytes, source, what: str = "JSON") -> Any:
    """A JSON value from ``data`` (read from ``source``), nested at most :data:`MAX_JSON_DEPTH`
    deep; anything else (bad syntax, bad UTF-8, nesting deep enough to exhaust the parser's
    stack) is a one-line :class:`FormatError` naming ``source``.

    >>> parse_json('{"a": [1, 2]}', "x.json")
    {'a': [1, 2]}
    >>> parse_json("[" * 100 + "]" * 100, "x.json")
    Traceback (most recent call last):
    ...
    squeezenet.errors.FormatError: x.json: bad JSON (nested over 64 levels deep)
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        value = json.loads(text)
    except RecursionError:
        raise FormatError(source, f"bad {what} (nested over {MAX_JSON_DEPTH} levels deep)") from None
    except (ValueError, TypeError) as e:   # JSONDecodeError, UnicodeDecodeError
        raise FormatError(source, f"bad {what} ({first_line(e, 200)})") from None
    stack = [(value, 1)]
    while stack:   # iterative: the check itself cannot exhaust the stack
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise FormatError(source, f"bad {what} (nested over {MAX_JSON_DEPTH} levels deep)")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return value


def read_text(path: str | os.PathLike, what: str = "text file", limit: int = MAX_TEXT_BYTES) -> str:
    """A regular UTF-8 text file of at most ``limit`` bytes (a binary, oversized or special
    file is a one-line :class:`FormatError`)."""
    data = read_input(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"{what} is not UTF-8 text (byte {e.start})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """:func:`parse_json` of a file read by :func:`read_text`."""
    return parse_json(read_text(path, what), path, what)


def read_yaml(path: str | os.PathLike | None = None, text: str | bytes | None = None, source=None) -> Any:
    """A YAML document (a file, or ``text`` read from ``source``) parsed with PyYAML's safe
    loader, bounded: at most :data:`MAX_YAML_BYTES` of UTF-8, :data:`MAX_YAML_NODES` nodes
    nested :data:`MAX_YAML_DEPTH` deep, and no aliases (``*ref``, the "billion laughs" bomb);
    any problem is a one-line :class:`FormatError` naming the file.

    >>> read_yaml(text="a: [1, 2.5, x]", source="s.yaml")
    {'a': [1, 2.5, 'x']}
    >>> read_yaml(text="a: &x [1]\\nb: *x", source="s.yaml")
    Traceback (most recent call last):
    ...
    squeezenet.errors.FormatError: s.yaml: not valid YAML: line 2: aliases (*x) are not allowed
    """
    import yaml
    source = source if source is not None else path
    if text is None:
        text = read_input(path, "YAML file", MAX_YAML_BYTES)
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    if len(text) > MAX_YAML_BYTES:
        raise FormatError(source, f"YAML file of {len(text):,} bytes is over the {MAX_YAML_BYTES:,}-byte limit")
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(source, f"not UTF-8 text (byte {e.start})") from None
    loader = None
    try:
        loader = _bounded_loader()(text)   # checks the characters already
        return loader.get_single_data()
    except _YamlRefused as e:
        raise FormatError(source, f"not valid YAML: {e}") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as e:
        raise FormatError(source, f"not valid YAML: {first_line(e, 200)}") from None
    finally:
        if loader is not None:
            loader.dispose()


class _YamlRefused(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _bounded_loader():
    """The loader class, built on first use (PyYAML is imported lazily)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """PyYAML's pure-Python safe loader that refuses aliases and counts nodes and depth
        while composing (before anything is built)."""

        def __init__(self, stream):
            super().__init__(stream)
            self._nodes = 0
            self._depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _YamlRefused(f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are not allowed")
            self._nodes += 1
            if self._nodes > MAX_YAML_NODES:
                raise _YamlRefused(f"over {MAX_YAML_NODES:,} values")
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise _YamlRefused(f"line {self.peek_event().start_mark.line + 1}: nested over "
                                       f"{MAX_YAML_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
    return BoundedLoader


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


def header_fields(meta: dict[str, Any], path: str | os.PathLike, encoded: bool = True) -> dict[str, Any]:
    """The checked fields of a model header written by :func:`model_metadata` (``encoded``:
    each value a JSON string, as in a safetensors header) or of a ``.json`` sidecar (plain
    JSON values): ``config`` (a :class:`~squeezenet.models.SqueezeNetConfig`, checked, size
    bound included), ``classes`` (checked by the one class-list check), ``preprocess`` and
    ``extra``. Every problem is a one-line :class:`FormatError` naming ``path``; nothing is
    built."""
    from .models import SqueezeNetConfig
    from .models.classes import check_classes
    if meta.get("format") != FORMAT:
        raise FormatError(path, "not a squeezenet model file (no 'format: squeezenet' in its header)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FormatError(path, f"format version {str(meta.get('format_version'))[:20]!r} is not supported "
                                f"(this version reads {FORMAT_VERSION})")

    def field(key: str, default: Any) -> Any:
        if key not in meta:
            return default
        v = meta[key]
        if not encoded:
            return v
        if not isinstance(v, str):
            raise FormatError(path, f"bad model header: {key!r} is not a JSON string")
        return parse_json(v, path, f"{key!r} in the header")

    if "config" not in meta:
        raise FormatError(path, "no model config in its header (and no .json sidecar beside it)")
    try:
        config = SqueezeNetConfig.from_dict(field("config", None))
    except ConfigError as e:
        raise FormatError(path, f"bad model config ({first_line(e)})") from None
    classes = field("classes", None)
    if classes is not None:
        try:
            classes = check_classes(classes, config.num_classes)
        except ConfigError as e:
            raise FormatError(path, f"bad class list ({first_line(e)})") from None
    preprocess = field("preprocess", None)
    if preprocess is not None and (not isinstance(preprocess, str) or not preprocess or len(preprocess) > 100):
        raise FormatError(path, f"bad model header: preprocess must be a preset name, not {str(preprocess)[:40]!r}")
    extra = field("extra", None)
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise FormatError(path, "bad model header: extra must be a JSON object")
    return {"config": config, "classes": classes, "preprocess": preprocess, "extra": extra}


def model_from_metadata(meta: dict[str, str], path: str | os.PathLike) -> nn.Module:
    """Build an (untrained) model from header metadata written by :func:`model_metadata`."""
    from .models import SqueezeNet
    h = header_fields(meta, path)
    model = SqueezeNet(h["config"])
    model.classes, model.preprocess, model.metadata = h["classes"], h["preprocess"], h["extra"]
    return model


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with one-line errors for bad files."""
    from safetensors import safe_open
    path = Path(path)
    open_input(path, "safetensors file").close()   # a regular file (safetensors would block on a FIFO)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise FormatError(path, f"not a readable safetensors file ({first_line(e)})") from None
    return tensors, meta


def _sidecar(path: Path) -> dict[str, Any] | None:
    """The ``.json`` sidecar beside a safetensors file without a header config, or None."""
    side = path.with_suffix(".json")
    if not side.exists():
        return None
    meta = read_json(side, "JSON sidecar")
    if not isinstance(meta, dict):
        raise FormatError(side, f"a model sidecar must be a JSON object, not {type(meta).__name__}")
    meta.setdefault("format", FORMAT)
    meta.setdefault("format_version", FORMAT_VERSION)
    return meta


def load_safetensors(path: str | os.PathLike) -> nn.Module:
    """A model from a safetensors file: the header (or ``.json`` sidecar) is checked, then
    every tensor's name and shape against the config, all before a model is allocated; so
    memory follows what the file holds, never what its header claims."""
    from safetensors import safe_open
    from .models import SqueezeNet
    from .models.squeezenet import state_shapes
    path = Path(path)
    open_input(path, "safetensors file").close()   # a regular file (safetensors would block on a FIFO)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise FormatError(path, f"not a readable safetensors file ({first_line(e)})") from None
    source, encoded = path, True
    if "config" not in meta:
        side = _sidecar(path)
        if side is not None:
            meta, source, encoded = {**side, **meta}, path.with_suffix(".json"), False
    h = header_fields(meta, source, encoded)
    check_shapes(shapes, state_shapes(h["config"]), path)
    tensors, _ = read_safetensors(path)
    model = SqueezeNet(h["config"])
    model.classes, model.preprocess, model.metadata = h["classes"], h["preprocess"], h["extra"]
    load_state_dict_checked(model, tensors, path)
    return model.eval()


def load(path: str | os.PathLike) -> nn.Module:
    """Load any model file this toolkit knows into a runnable model in eval mode.

    The model carries ``classes`` and ``preprocess`` from the file.
    """
    path = Path(path)
    open_input(path, "file").close()   # exists, and is a regular file (not a FIFO or device)
    target = LOADERS.get(path.suffix.lower())
    if target is None:
        raise FormatError(path, f"unknown model file type {path.suffix!r} "
                                f"(known: {', '.join(sorted(LOADERS))}; use 'squeezenet import' for Caffe, "
                                f"Deep-Compression, ONNX-zoo and torchvision files)")
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)(path)
