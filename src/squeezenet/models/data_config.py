"""A model's data config: what its inputs and outputs mean (timm's ``pretrained_cfg`` shape).

One frozen :class:`DataConfig` travels with a model as ``model.data_config``: the input size
``(C, H, W)`` where one was recorded, the preprocessing preset's name (its numbers live in
:data:`squeezenet.data.PRESETS`), the class ids and their human-readable names, where the
weights come from (``source``) and under which ``license``. ``model.classes``,
``model.preprocess`` and ``model.class_names`` read and write through it.

Every model file stores it: ``classes`` and ``preprocess`` in their own header fields (as
before), ``source``, ``class_names``, ``license`` and ``input_size`` in the file's free-form
metadata (:func:`file_metadata` writes them, :func:`split_metadata` reads them back), so files
written before the config existed read as they did.

The one rule for a model's input size (config, then preset, then the architecture's default)
is :func:`squeezenet.data.input_size_for`: the preset table lives in the data layer.

>>> cfg = DataConfig(preset="small", classes=("cat", "dog"), license="MIT")
>>> cfg.num_classes, cfg.replace(classes=None).class_names
(2, None)
>>> meta = file_metadata(cfg.replace(source="mine"), {"arch": "x"})
>>> meta
{'source': 'mine', 'arch': 'x', 'license': 'MIT'}
>>> split_metadata(meta)
({'source': 'mine', 'license': 'MIT'}, {'arch': 'x'})
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: The keys of a file's free-form metadata that hold data-config fields, in the order
#: :func:`file_metadata` writes them after the rest (``source`` is written first).
META_KEYS = ("source", "class_names", "license", "input_size")
_MAX_TEXT = 1000


@dataclass(frozen=True)
class DataConfig:
    """What a model's inputs and outputs mean (see the module docstring). Every field may be
    None (unknown); ``class_names`` is kept only while it has one name per class id."""

    input_size: tuple[int, int, int] | None = None   # (C, H, W) recorded for the model
    preset: str | None = None                        # preprocessing (squeezenet.data.PRESETS)
    classes: tuple[str, ...] | None = None           # class ids in output order
    class_names: tuple[str, ...] | None = None       # their human-readable names
    source: str | None = None                        # where the weights come from
    license: str | None = None

    def __post_init__(self) -> None:
        fix = lambda name, v: object.__setattr__(self, name, v)   # noqa: E731 (frozen)
        if self.input_size is not None:
            fix("input_size", check_input_size(self.input_size))
        for name in ("preset", "source", "license"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v or len(v) > _MAX_TEXT):
                raise ConfigError(f"data config: {name} must be a non-empty string, not {str(v)[:40]!r}")
        for name in ("classes", "class_names"):
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, (list, tuple)) or not all(isinstance(c, str) for c in v):
                    raise ConfigError(f"data config: {name} must be a list of strings")
                fix(name, tuple(v))
        if self.class_names is not None and (self.classes is None or len(self.class_names) != len(self.classes)):
            fix("class_names", None)   # names of other ids mean nothing

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None

    def replace(self, **kw) -> "DataConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists for tuples), every field."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataConfig":
        """The inverse of :meth:`to_dict`; a :class:`ConfigError` for unknown keys or bad values."""
        if not isinstance(d, dict):
            raise ConfigError("data config must be a JSON object")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown data config keys: {', '.join(sorted(unknown)[:5])}")
        return cls(**d)


def check_input_size(v) -> tuple[int, int, int]:
    """``(C, H, W)`` from a side, ``(H, W)`` or ``(C, H, W)``; a :class:`ConfigError` otherwise."""
    from .registry import MAX_INPUT_SIZE
    if isinstance(v, int) and not isinstance(v, bool):
        v = (3, v, v)
    elif isinstance(v, (list, tuple)) and len(v) == 2:
        v = (3, *v)
    if (not isinstance(v, (list, tuple)) or len(v) != 3
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            or not 1 <= v[0] <= 64 or not all(1 <= x <= MAX_INPUT_SIZE for x in v[1:])):
        raise ConfigError(f"data config: input_size must be (C, H, W) with sides in 1..{MAX_INPUT_SIZE}, "
                          f"not {str(v)[:40]}")
    return tuple(int(x) for x in v)


def split_metadata(meta: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the data-config fields, the rest) of a file's free-form metadata: the inverse of
    :func:`file_metadata`. Fields are returned as stored (check them with :class:`DataConfig`)."""
    meta = dict(meta or {})
    return {k: meta.pop(k) for k in META_KEYS if k in meta}, meta


def file_metadata(cfg: DataConfig, rest: dict[str, Any] | None = None) -> dict[str, Any]:
    """A file's free-form metadata: ``source``, then ``rest`` in its order, then the class
    names, license and input size; fields that are None are left out (so a model without them
    writes the bytes it wrote before they existed)."""
    out: dict[str, Any] = {}
    if cfg.source is not None:
        out["source"] = cfg.source
    out.update({k: v for k, v in (rest or {}).items() if k not in META_KEYS})
    if cfg.class_names is not None:
        out["class_names"] = list(cfg.class_names)
    if cfg.license is not None:
        out["license"] = cfg.license
    if cfg.input_size is not None:
        out["input_size"] = list(cfg.input_size)
    return out


def config_from_metadata(fields: dict[str, Any], classes=None, preset: str | None = None) -> DataConfig:
    """A :class:`DataConfig` from a file's ``classes`` and ``preprocess`` fields and the
    data-config fields of its metadata (:func:`split_metadata`); a :class:`ConfigError` names
    a bad one."""
    return DataConfig(preset=preset, classes=tuple(classes) if classes is not None else None,
                      **{k: (tuple(v) if k == "class_names" and isinstance(v, list) else v)
                         for k, v in fields.items()})


def data_config(model: Any) -> DataConfig:
    """The data config of any model: ``model.data_config`` where it has one (a
    :class:`~squeezenet.models.SqueezeNet`, an exported-model wrapper), else one built from
    the loose attributes it has (``classes``, ``class_names``, ``preprocess``)."""
    cfg = getattr(model, "data_config", None)
    if isinstance(cfg, DataConfig):
        return cfg
    classes = getattr(model, "classes", None)
    names = getattr(model, "class_names", None)
    return DataConfig(preset=getattr(model, "preprocess", None) or None,
                      classes=tuple(classes) if classes is not None else None,
                      class_names=tuple(names) if names is not None else None)


class CarriesDataConfig:
    """Mixin: ``classes``, ``class_names`` and ``preprocess`` read and write through
    ``self.data_config`` (one frozen :class:`DataConfig`)."""

    data_config: DataConfig

    def _set(self, **kw) -> None:
        self.data_config = self.data_config.replace(**kw)

    @property
    def classes(self) -> list[str] | None:
        c = self.data_config.classes
        return list(c) if c is not None else None

    @classes.setter
    def classes(self, classes) -> None:
        classes = tuple(classes) if classes is not None else None
        names = self.data_config.class_names
        if names is not None and (classes is None or len(classes) != len(names)):
            names = None
        self._set(classes=classes, class_names=names)

    @property
    def class_names(self) -> list[str] | None:
        """Human-readable names parallel to ``classes`` (``"Egyptian cat"`` for
        ``n02124075``); None when unknown or when they do not match ``classes``."""
        n = self.data_config.class_names
        return list(n) if n is not None else None

    @class_names.setter
    def class_names(self, names) -> None:
        self._set(class_names=tuple(str(n) for n in names) if names is not None else None)

    @property
    def preprocess(self) -> str | None:
        return self.data_config.preset

    @preprocess.setter
    def preprocess(self, preset: str | None) -> None:
        self._set(preset=preset or None)
