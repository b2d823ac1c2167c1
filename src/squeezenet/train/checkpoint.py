"""Checkpoints: model files (``last``/``best``) and the training-state file, all atomic.

``DIR/last.safetensors`` and ``DIR/best.safetensors`` are ordinary model files
(:func:`squeezenet.save`) with a JSON sidecar (model config, classes, preprocessing preset,
epoch, step, metrics). ``DIR/train_state.safetensors`` holds everything ``--resume`` needs in
ONE atomically written file, so a kill can never leave weights and optimizer out of step:
the weights (``model.*``), the optimizer buffers (``optim.*``), each rank's RNG states
(``rng.<rank>.*``) as tensors, and a JSON header (step, epoch, position in the epoch,
schedule, optimizer hyper-parameters, Python/NumPy RNG states, the train config).
Nothing is pickled.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import FormatError
from ..io import atomic_write, atomic_write_safetensors, atomic_write_text, parse_json, save

STATE_FORMAT = "squeezenet-train-state"
STATE_VERSION = "1"
STATE_FILE = "train_state.safetensors"
METRICS_FILE = "metrics.jsonl"
#: The images held out of the train split to choose ``best`` by (``--val-split``), one a line.
VAL_LIST_FILE = "val_images.txt"
#: Every file a training run writes into its folder (and ``train --overwrite`` removes).
RUN_FILES = ("best.safetensors", "best.json", "last.safetensors", "last.json", STATE_FILE, METRICS_FILE,
             VAL_LIST_FILE)


def clear_run(out_dir: Path) -> list[str]:
    """Remove the files of an earlier run from ``out_dir`` (:data:`RUN_FILES` and their stale
    temps), nothing else; returns the names removed."""
    from ..io import clean_stale_temps
    from ..errors import OutputError
    removed = []
    for name in RUN_FILES:
        p = Path(out_dir) / name
        clean_stale_temps(p)
        try:
            if p.is_file() or p.is_symlink():
                p.unlink()
                removed.append(name)
        except OSError as e:
            raise OutputError(p, f"cannot remove ({e.strerror or e})") from None
    return removed


def save_model_checkpoint(model, out_dir: Path, name: str, info: dict[str, Any]) -> Path:
    """``out_dir/name.safetensors`` (+ ``name.json``): weights, config, classes, preset, info."""
    path = Path(out_dir) / f"{name}.safetensors"
    save(model, path, extra={"checkpoint": info})
    side = {
        "format": "squeezenet", "format_version": "1",
        "config": model.config.to_dict(), "classes": getattr(model, "classes", None),
        "preprocess": getattr(model, "preprocess", None), **info,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(side, indent=2, default=float) + "\n")
    return path


# ------------------------------------------------------------------------------------ RNG

def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states: torch (CPU, CUDA) as tensors, Python and NumPy as JSON."""
    import numpy as np
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    ver, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64))
    meta = {"python": [ver, list(internal), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import numpy as np
    torch.set_rng_state(tensors["torch"].to(torch.uint8))
    cuda = sorted(k for k in tensors if k.startswith("cuda"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8) for k in cuda])
    ver, internal, gauss = meta["python"]
    random.setstate((ver, tuple(internal), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))


# ------------------------------------------------------------------------------ optimizer

def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, state_meta = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                state_meta[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "state": state_meta}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(meta.get("state", {}).items()):
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# ---------------------------------------------------------------------------- state file

def save_train_state(path: Path, model, optimizer, rngs: list, info: dict[str, Any]) -> None:
    """Write the one-file training state (see the module docstring)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_t, opt_meta = optimizer_to_flat(optimizer)
    tensors.update({f"optim.{k}": v for k, v in opt_t.items()})
    rng_meta = []
    for rank, (t, m) in enumerate(rngs):
        tensors.update({f"rng.{rank}.{k}": v.contiguous() for k, v in t.items()})
        rng_meta.append(m)
    header = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
              "state": json.dumps({**info, "optimizer": opt_meta, "rng": rng_meta}, default=float)}
    atomic_write_safetensors(path, tensors, header)


def load_train_state(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """``({"model": ..., "optim": ..., "rng": {rank: {...}}}, info)`` from a state file."""
    from ..io import read_safetensors
    tensors, meta = read_safetensors(path)
    if meta.get("format") != STATE_FORMAT:
        raise FormatError(path, "not a squeezenet training-state file")
    if meta.get("format_version") != STATE_VERSION:
        raise FormatError(path, f"training-state version {meta.get('format_version')!r} is not supported")
    if not isinstance(meta.get("state"), str):
        raise FormatError(path, "bad training-state header (no state)")
    info = parse_json(meta["state"], path, "training-state header")
    if not isinstance(info, dict):
        raise FormatError(path, "bad training-state header (not a JSON object)")
    check_state_header(info, path)
    groups: dict[str, Any] = {"model": {}, "optim": {}, "rng": {}}
    for k, v in tensors.items():
        head, _, rest = k.partition(".")
        if head == "rng":
            rank, _, name = rest.partition(".")
            if not (rank.isdigit() and int(rank) < len(info["rng"]) and name in ("torch", "numpy")
                    or rank.isdigit() and name.startswith("cuda")):
                raise FormatError(path, f"unexpected tensor {k!r} in a training-state file")
            groups["rng"].setdefault(int(rank), {})[name] = v
        elif head == "optim":
            idx, _, name = rest.partition(".")
            if not (idx.isdigit() and name):
                raise FormatError(path, f"unexpected tensor {k!r} in a training-state file")
            groups["optim"][rest] = v
        elif head == "model" and rest:
            groups["model"][rest] = v
        else:
            raise FormatError(path, f"unexpected tensor {k!r} in a training-state file")
    for rank, t in groups["rng"].items():
        if "torch" not in t or "numpy" not in t or t["numpy"].numel() != 624 or t["torch"].dim() != 1:
            raise FormatError(path, f"bad RNG state of process {rank} in the training state")
    return groups, info


def _nat(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62


def _num(v) -> bool:
    import math
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _rng_meta(v) -> bool:
    if not (isinstance(v, dict) and isinstance(v.get("python"), list) and isinstance(v.get("numpy"), list)):
        return False
    py, npy = v["python"], v["numpy"]
    return (len(py) == 3 and _nat(py[0]) and isinstance(py[1], list) and len(py[1]) == 625
            and all(_nat(x) and x < 2**32 for x in py[1]) and (py[2] is None or _num(py[2]))
            and len(npy) == 4 and npy[0] == "MT19937" and _nat(npy[1]) and npy[1] <= 624 and _nat(npy[2])
            and _num(npy[3]))


#: The header fields a training state must hold, each with the check its value must pass.
_STATE_FIELDS = {
    "train_config": lambda v: isinstance(v, dict),
    "step": _nat, "epoch": _nat, "pos": _nat,
    "sums": lambda v: isinstance(v, list) and len(v) == 3 and all(_num(x) for x in v),
    "train_seconds": _num, "lr": _num,
    "best": lambda v: v is None or _num(v),
    "history": lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v),
    "world_size": lambda v: _nat(v) and v >= 1,
    "optimizer": lambda v: (isinstance(v, dict) and isinstance(v.get("param_groups"), list) and v["param_groups"]
                            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in v["param_groups"])
                            and isinstance(v.get("state", {}), dict)
                            and all(k.partition(".")[0].isdigit() for k in v.get("state", {}))),
    "rng": lambda v: isinstance(v, list) and all(_rng_meta(m) for m in v),
    "model": lambda v: (isinstance(v, dict) and "config" in v
                        and (v["config"] is None or isinstance(v["config"], dict))
                        and (v.get("classes") is None or isinstance(v["classes"], list))
                        and (v.get("preprocess") is None or isinstance(v["preprocess"], str))),
}


def check_state_header(info: dict[str, Any], path) -> None:
    """The checked reading of a training state's JSON header (like a model file's): every field
    ``--resume`` uses is present and of its type, or a one-line :class:`FormatError` names the
    file and the field; nothing of a hand-edited or damaged file reaches the optimizer or the
    RNGs unchecked."""
    for name, ok in _STATE_FIELDS.items():
        if name not in info:
            raise FormatError(path, f"damaged training state: no {name!r} in its header")
        if not ok(info[name]):
            raise FormatError(path, f"damaged training state: bad {name!r} in its header")
