"""``auto``: measure the engines once for this CPU and model, keep the fastest that agrees with
eager, and cache the choice in ``$SQUEEZENET_CACHE/runtime_auto.json``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..data.archive import cache_dir
from ..errors import SqueezeNetError, first_line
from ..models.utils import dense_eval_copy
from .engines import ATOL, ENGINES, RTOL, CompiledModel, build_engine, input_shape, time_callables

#: openvino is measured where it is installed (an optional extra); elsewhere it is skipped
AUTO_CANDIDATES = ("onnxruntime", "openvino", "channels_last", "torchscript", "eager")
CACHE_FILE = "runtime_auto.json"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), the key of what is fastest."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _config_key(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return json.dumps(config.to_dict(), sort_keys=True)
    shapes = [list(p.shape) for p in model.state_dict().values()]
    return type(model).__name__ + json.dumps(shapes)


def _auto_key(model, shape, threads, candidates) -> str:
    try:
        import onnxruntime
        ort_v = onnxruntime.__version__
    except ImportError:
        ort_v = None
    try:
        import openvino
        ov_v = openvino.__version__
    except ImportError:
        ov_v = None
    parts = {"cpu": cpu_model(), "torch": torch.__version__, "onnxruntime": ort_v, "openvino": ov_v,
             "config": _config_key(model), "input": list(shape), "threads": threads,
             "candidates": list(candidates)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _read_cache() -> dict:
    p = cache_dir() / CACHE_FILE
    from ..errors import FormatError
    from ..io import read_json
    try:   # bounded like every reader: a broken or hostile cache file is measured again, not trusted
        d = read_json(p, "engine cache")
        return d if isinstance(d, dict) else {}
    except (OSError, FormatError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    from ..data.archive import cache_write_failed, writable_cache_dir
    from ..io import atomic_write_text
    if writable_cache_dir() is None:
        return   # a read-only home must not stop inference (warned once); we measure again next time
    d = _read_cache()
    d[key] = entry
    try:
        atomic_write_text(cache_dir() / CACHE_FILE, json.dumps(d, indent=1, sort_keys=True))
    except OSError as e:
        cache_write_failed(cache_dir() / CACHE_FILE, e)


def choose_engine(model: nn.Module, shape, threads, candidates: Sequence[str],
                  rounds: int = 5, per_round: int = 3) -> tuple[str, dict[str, float], dict]:
    """Measure ``candidates`` at batch 1 on ``shape``; return (fastest agreeing engine,
    p50 ms per engine, built callables)."""
    import statistics
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, *shape, generator=gen)
    ref = build_engine(copy.deepcopy(model), "eager", shape, threads)(x)
    from ..evaluate import check_finite
    check_finite(ref)   # a model of NaN weights: one plain line, not "eager disagrees with eager by nan"
    built, rejected = {}, {}
    for e in candidates:
        try:
            fn = build_engine(copy.deepcopy(model), e, shape, threads)
            y = fn(x)
        except Exception as err:  # an engine that cannot run here is simply not chosen
            rejected[e] = f"failed: {type(err).__name__}" + (f": {first_line(err, 100)}" if str(err).strip() else "")
            continue
        if not torch.allclose(y, ref, rtol=RTOL, atol=ATOL):
            rejected[e] = f"disagrees with eager by {float((y - ref).abs().max()):.3g}"
            continue
        built[e] = fn
    if not built:
        raise SqueezeNetError("no inference engine could run this model: " + "; ".join(f"{k} {v}" for k, v in rejected.items()))
    times = time_callables(built, x, rounds=rounds, per_round=per_round, warmup=1, budget_s=8.0,
                           drop_slower_than=3.0)
    p50 = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    best = min(p50, key=p50.get)
    return best, p50, {"built": built, "rejected": rejected}


def compile_model(model: nn.Module, engine: str = "auto", threads: int | None = None,
                  input_size: int | tuple[int, int] | None = None,
                  candidates: Iterable[str] = AUTO_CANDIDATES, remeasure: bool = False,
                  log: Callable[[str], None] | None = None) -> CompiledModel:
    """The model as a fast callable ``x -> logits`` (eval mode; ``model`` is not modified).

    ``threads`` sets torch's thread count (process-wide) and ONNX Runtime's intra-op threads;
    ``input_size`` (default: the model's documented size) is the shape ``auto`` measures and
    ``torchscript``/``compile`` prepare for; other sizes still work. ``log(message)`` hears
    when ``auto`` measures (seconds, once per CPU, model and input shape).

    >>> import squeezenet, torch
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> f = compile_model(m, "onnxruntime")
    >>> torch.allclose(f(torch.ones(2, 3, 32, 32)), m.eval()(torch.ones(2, 3, 32, 32)), atol=1e-4)
    True
    """
    if engine not in ENGINES + ("auto",):
        import difflib
        close = difflib.get_close_matches(str(engine), ENGINES + ("auto",), n=2, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SqueezeNetError(f"unknown engine {engine!r}: choose auto, {', '.join(ENGINES)}{hint}")
    if threads is not None:
        if int(threads) < 1:
            raise SqueezeNetError(f"threads={threads}: must be >= 1")
        torch.set_num_threads(int(threads))
    base = dense_eval_copy(model)
    shape = input_shape(base, input_size)
    if engine != "auto":
        return CompiledModel(build_engine(base, engine, shape, threads), engine)
    candidates = tuple(c for c in candidates if c != "openvino" or _installed("openvino"))
    bad = [c for c in candidates if c not in ENGINES]
    if bad:
        raise SqueezeNetError(f"unknown candidate engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    n_threads = int(threads or torch.get_num_threads())
    key = _auto_key(base, shape, n_threads, candidates)
    entry = None if remeasure else _read_cache().get(key)
    if entry and entry.get("engine") in candidates:
        try:
            return CompiledModel(build_engine(base, entry["engine"], shape, threads), entry["engine"],
                                 entry.get("p50_ms"))
        except Exception:
            pass  # the cached engine no longer runs here (e.g. ORT uninstalled): measure again
    if log is not None:
        log(f"measuring the inference engines ({', '.join(candidates)}) on this CPU for this model, "
            f"once (cached in {cache_dir() / CACHE_FILE})...")
    best, p50, info = choose_engine(base, shape, threads, candidates)
    _write_cache(key, {"engine": best, "p50_ms": {k: round(v, 3) for k, v in p50.items()},
                       "rejected": info["rejected"], "cpu": cpu_model(), "torch": torch.__version__,
                       "input": list(shape), "threads": n_threads,
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return CompiledModel(info["built"][best], best, p50)
