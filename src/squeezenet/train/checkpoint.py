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
#: Every file a training run writes into its folder (and ``train --overwrite`` removes).
RUN_FILES = ("best.safetensors", "best.json", "last.safetensors", "last.json", STATE_FILE, METRICS_FILE)


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
    groups: dict[str, Any] = {"model": {}, "optim": {}, "rng": {}}
    for k, v in tensors.items():
        head, rest = k.split(".", 1)
        if head == "rng":
            rank, name = rest.split(".", 1)
            groups["rng"].setdefault(int(rank), {})[name] = v
        elif head in groups:
            groups[head][rest] = v
    return groups, info
