"""The design space: SqueezeNet metaparameters as discrete grids, read from a versioned YAML file.

A space file names the base model, one grid per metaparameter (``values: [...]`` or
``low``/``high``/``step``) and a few constraints. Every parameter is discrete so that every
strategy (random, annealing, genetic, Bayesian) searches the same finite set of networks.

>>> space = load_space()                 # the paper's space (package data)
>>> space.model, space.names()
('squeezenet_small', ['base_e', 'incr_e', 'pct_3x3', 'freq', 'sr', 'bypass'])
>>> meta, bypass = space.to_meta({"base_e": 128, "incr_e": 128, "pct_3x3": 0.5, "freq": 2,
...                               "sr": 0.125, "bypass": "none"})
>>> meta.fires()[0], bypass
((16, 64, 64), 'none')
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FormatError

SPACE_VERSION = 1
#: metaparameter -> type of its values; `bypass` is a choice, the others numbers.
PARAM_TYPES: dict[str, type] = {"base_e": int, "incr_e": int, "pct_3x3": float, "freq": int,
                                "sr": float, "bypass": str}
#: the value a parameter takes when the space file leaves it out (SqueezeNet v1.0).
DEFAULTS: dict[str, Any] = {"base_e": 128, "incr_e": 128, "pct_3x3": 0.5, "freq": 2,
                            "sr": 0.125, "bypass": "none"}
CONSTRAINTS = {"squeeze_le_expand": bool, "max_params": int}
DEFAULT_SPACE = "paper"
#: no grid value is larger (a network's size is bounded by its config: SqueezeNetConfig)
MAX_VALUE = 1e9


@dataclass(frozen=True)
class Param:
    """One metaparameter's grid. ``ordered`` grids have neighbours (index +-1)."""

    name: str
    values: tuple                 # the grid, in order
    step: float | None = None     # set when the grid came from low/high/step

    @property
    def ordered(self) -> bool:
        return PARAM_TYPES[self.name] is not str

    def index(self, value) -> int:
        for i, v in enumerate(self.values):
            if v == value or (isinstance(v, float) and math.isclose(v, value)):
                return i
        raise ConfigError(f"{self.name}={value!r} is not on the grid {list(self.values)}")


@dataclass
class Space:
    """A parsed, validated design space."""

    params: dict[str, Param]
    model: str = "squeezenet_small"
    constraints: dict[str, Any] = field(default_factory=dict)
    version: int = SPACE_VERSION
    source: str = "<memory>"

    def names(self) -> list[str]:
        return list(self.params)

    def size(self) -> int:
        """Number of grid points (valid or not)."""
        return math.prod(len(p.values) for p in self.params.values())

    def full(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` completed with the v1.0 defaults for metaparameters the space leaves out."""
        return {**DEFAULTS, **params}

    def to_meta(self, params: dict[str, Any]):
        """(MetaParams, bypass) for one point; raises ConfigError for an invalid network."""
        from ..models import MetaParams
        p = self.full(params)
        meta = MetaParams(base_e=int(p["base_e"]), incr_e=int(p["incr_e"]),
                          pct_3x3=float(p["pct_3x3"]), freq=int(p["freq"]), sr=float(p["sr"]))
        if self.constraints.get("squeeze_le_expand", True):
            for i, (s, e1, e3) in enumerate(meta.fires()):
                if s > e1 + e3:
                    raise ConfigError(f"metaparameter SR={meta.sr}: fire{i + 2} squeezes to {s} "
                                      f"> {e1 + e3} expand filters (constraint squeeze_le_expand)")
        return meta, str(p["bypass"])

    def fingerprint(self) -> str:
        """Short hash of the grids and constraints: workers of one study must agree on it."""
        d = {"model": self.model, "constraints": self.constraints,
             "params": {n: list(p.values) for n, p in self.params.items()}}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "model": self.model, "constraints": dict(self.constraints),
                "params": {n: {"values": list(p.values)} for n, p in self.params.items()}}


def _grid(path: str, name: str, spec: Any) -> Param:
    key = f"params.{name}"
    if not isinstance(spec, dict):
        raise FormatError(path, f"{key}: expected a mapping with 'values' or 'low'/'high'/'step'")
    typ = PARAM_TYPES[name]
    unknown = set(spec) - {"values", "low", "high", "step"}
    if unknown:
        raise FormatError(path, f"{key}.{sorted(unknown)[0]}: unknown key (use values, or low/high/step)")
    if "values" in spec:
        if set(spec) != {"values"}:
            raise FormatError(path, f"{key}: give either 'values' or 'low'/'high'/'step', not both")
        vals = spec["values"]
        if not isinstance(vals, list) or not vals:
            raise FormatError(path, f"{key}.values: expected a non-empty list")
        out = []
        for v in vals:
            out.append(_typed(path, f"{key}.values", typ, v))
        if len(set(out)) != len(out):
            raise FormatError(path, f"{key}.values: duplicate values")
        if typ is not str:
            out.sort()
        return Param(name, tuple(out))
    if typ is str:
        raise FormatError(path, f"{key}: a choice needs 'values: [...]'")
    for k in ("low", "high", "step"):
        if k not in spec:
            raise FormatError(path, f"{key}.{k}: missing (or give 'values: [...]')")
    low, high, step = (_typed(path, f"{key}.{k}", typ, spec[k]) for k in ("low", "high", "step"))
    if step <= 0:
        raise FormatError(path, f"{key}.step: must be > 0, got {step}")
    if high < low:
        raise FormatError(path, f"{key}.high: {high} is below low {low}")
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    if n > 10_000:
        raise FormatError(path, f"{key}: {n} grid points; use a larger step")
    vals = tuple(typ(low + i * step) if typ is int else round(low + i * step, 10) for i in range(n))
    return Param(name, vals, step=step)


def _typed(path: str, key: str, typ: type, v: Any):
    if typ is str:
        if not isinstance(v, str):
            raise FormatError(path, f"{key}: expected a name, got {str(v)[:40]!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FormatError(path, f"{key}: expected a number, got {str(v)[:40]!r}")
    if not math.isfinite(v) or abs(v) > MAX_VALUE:
        raise FormatError(path, f"{key}: {v!r} is not a finite number within +-{MAX_VALUE:g}")
    if typ is int:
        if float(v) != int(v):
            raise FormatError(path, f"{key}: expected an integer, got {v!r}")
        return int(v)
    return float(v)


def parse_space(data: Any, source: str = "<memory>") -> Space:
    """Validate a space given as a dict (the parsed YAML); errors name the offending key."""
    from ..models import list_models
    from ..models.squeezenet import BYPASS
    if not isinstance(data, dict):
        raise FormatError(source, "expected a mapping with 'version' and 'params'")
    unknown = set(data) - {"version", "model", "params", "constraints"}
    if unknown:
        raise FormatError(source, f"{sorted(unknown)[0]}: unknown top-level key "
                                  "(expected version, model, params, constraints)")
    if "version" not in data:
        raise FormatError(source, "version: missing (this toolkit reads version 1)")
    if data["version"] != SPACE_VERSION:
        raise FormatError(source, f"version: {data['version']!r} is not supported (expected {SPACE_VERSION})")
    model = data.get("model", "squeezenet_small")
    if model not in list_models():
        raise FormatError(source, f"model: unknown model {model!r} (known: {', '.join(list_models())})")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise FormatError(source, "params: missing or empty (a mapping of metaparameter -> grid)")
    grids: dict[str, Param] = {}
    for name, spec in params.items():
        if name not in PARAM_TYPES:
            raise FormatError(source, f"params.{name}: unknown metaparameter "
                                      f"(expected one of {', '.join(PARAM_TYPES)})")
        grids[name] = _grid(source, name, spec)
    if "bypass" in grids:
        for v in grids["bypass"].values:
            if v not in BYPASS:
                raise FormatError(source, f"params.bypass.values: {v!r} is not one of {', '.join(BYPASS)}")
    for name in ("pct_3x3",):
        if name in grids and not all(0 < v < 1 for v in grids[name].values):
            raise FormatError(source, f"params.{name}: values must lie in (0, 1)")
    for name in ("sr",):
        if name in grids and not all(v > 0 for v in grids[name].values):
            raise FormatError(source, f"params.{name}: values must be > 0")
    for name in ("base_e", "freq"):
        if name in grids and not all(v >= 1 for v in grids[name].values):
            raise FormatError(source, f"params.{name}: values must be >= 1")
    if "incr_e" in grids and not all(v >= 0 for v in grids["incr_e"].values):
        raise FormatError(source, "params.incr_e: values must be >= 0")
    cons = data.get("constraints") or {}
    if not isinstance(cons, dict):
        raise FormatError(source, "constraints: expected a mapping")
    out_cons: dict[str, Any] = {"squeeze_le_expand": True, "max_params": None}
    for k, v in cons.items():
        if k not in CONSTRAINTS:
            raise FormatError(source, f"constraints.{k}: unknown constraint (expected one of "
                                      f"{', '.join(CONSTRAINTS)})")
        if v is not None and (isinstance(v, bool) != (CONSTRAINTS[k] is bool) or not isinstance(v, CONSTRAINTS[k])):
            raise FormatError(source, f"constraints.{k}: expected {CONSTRAINTS[k].__name__}, got {v!r}")
        out_cons[k] = v
    return Space(grids, model=model, constraints=out_cons, version=SPACE_VERSION, source=source)


def load_space(path: str | Path | None = None) -> Space:
    """Read a space file (YAML); ``None`` or a bare name like ``"paper"`` reads package data."""
    from ..io import read_yaml
    if path is None or (isinstance(path, str) and "/" not in path and not path.endswith((".yaml", ".yml"))):
        name = path or DEFAULT_SPACE
        ref = resources.files(__package__) / "spaces" / f"{name}.yaml"
        if not ref.is_file():
            raise FormatError(name, "no such built-in space (give a .yaml file)")
        data = read_yaml(text=ref.read_bytes(), source=f"{name}.yaml")
    else:
        p = Path(path)
        if not p.exists():
            raise FormatError(p, "space file not found")
        # bounded: size, UTF-8, nesting, node count, no aliases (see squeezenet.io.read_yaml)
        data, source = read_yaml(p), str(p)
        return parse_space(data, source)
    return parse_space(data, f"{name}.yaml")
