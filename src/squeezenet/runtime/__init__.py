"""Fast inference: one call turns a SqueezeNet into the fastest callable the CPU at hand allows.

``compile_model(model, engine)`` returns a :class:`CompiledModel`, a callable
``x (N, C, H, W float32 tensor) -> logits (N, classes) tensor`` whose outputs agree with
eager PyTorch (checked with ``torch.allclose(rtol=1e-5, atol=1e-4)``: logits of real
ImageNet weights reach ~300, where float32 spacing is 3e-5, so any kernel that reorders
sums differs from eager by a few units in the last place).

Engines:

* ``eager``: the model as is, under ``torch.inference_mode``.
* ``channels_last``: NHWC memory format (oneDNN's preferred layout on x86).
* ``torchscript``: traced, frozen, ``torch.jit.optimize_for_inference`` (conv+ReLU fusion).
* ``compile``: ``torch.compile`` (inductor); the first call compiles (a minute on a 2-core
  machine), inductor's on-disk cache makes later processes faster.
* ``onnxruntime``: exported to ONNX in memory, run by ONNX Runtime's CPU provider.
* ``auto``: measures :data:`AUTO_CANDIDATES` once for this CPU, torch/ORT versions, model
  config, input shape and thread count, keeps the fastest whose outputs agree with eager,
  and caches the choice in ``$SQUEEZENET_CACHE/runtime_auto.json`` (default
  ``~/.cache/squeezenet``). ``compile`` is not a default candidate: its compile cost would
  be paid on every first use and it is slower than ONNX Runtime on the CPUs measured.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import SqueezeNetError, first_line

ENGINES = ("eager", "channels_last", "torchscript", "compile", "onnxruntime")
AUTO_CANDIDATES = ("onnxruntime", "channels_last", "torchscript", "eager")
RTOL, ATOL = 1e-5, 1e-4
CACHE_FILE = "runtime_auto.json"

__all__ = ["compile_model", "CompiledModel", "ENGINES", "AUTO_CANDIDATES", "cache_dir",
           "cpu_model", "ort_session", "choose_engine"]


def cache_dir() -> Path:
    """``$SQUEEZENET_CACHE`` or ``~/.cache/squeezenet`` (outside the repository)."""
    return Path(os.environ.get("SQUEEZENET_CACHE") or Path.home() / ".cache" / "squeezenet")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), the key of what is fastest."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CompiledModel:
    """A callable ``x -> logits`` produced by :func:`compile_model`; ``engine`` names what runs."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], engine: str,
                 timings_ms: dict | None = None) -> None:
        self._fn = fn
        self.engine = engine
        self.timings_ms = timings_ms or {}   # auto: p50 ms per candidate (when measured now or cached)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)

    def __repr__(self) -> str:
        return f"CompiledModel(engine={self.engine!r})"


def ort_session(model_bytes_or_path, threads: int | None = None):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (default: torch's)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = str(model_bytes_or_path) if isinstance(model_bytes_or_path, (str, os.PathLike)) else model_bytes_or_path
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _input_shape(model: nn.Module, input_size) -> tuple[int, int, int]:
    from ..interop.onnx_export import default_input_size
    c = getattr(getattr(model, "config", None), "in_channels", 3)
    if input_size is None:
        input_size = default_input_size(model)
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return int(c), int(h), int(w)


def _build(model: nn.Module, engine: str, shape: tuple[int, int, int], threads: int | None):
    """Callable for one explicit engine; ``model`` is already a private eval copy."""
    if engine == "eager":
        def run(x):
            with torch.inference_mode():
                return model(x)
        return run
    if engine == "channels_last":
        m = model.to(memory_format=torch.channels_last)

        def run(x):
            with torch.inference_mode():
                return m(x.contiguous(memory_format=torch.channels_last))
        return run
    if engine == "torchscript":
        import warnings
        example = torch.zeros(1, *shape)
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.compile but still the cheapest way
            # to get oneDNN conv+ReLU fusion without a compiler toolchain
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            ts = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

        def run(x):
            with torch.no_grad():
                return ts(x)
        return run
    if engine == "compile":
        c = torch.compile(model)
        with torch.inference_mode():
            c(torch.zeros(1, *shape))   # pay the compile cost now, not on the first image

        def run(x):
            with torch.inference_mode():
                return c(x)
        return run
    if engine == "onnxruntime":
        return _OrtRunner(model, shape, threads)
    raise SqueezeNetError(f"unknown engine {engine!r}; choose auto, {', '.join(ENGINES)}")


class _OrtRunner:
    """Exports once per input (H, W) (batch is dynamic) and runs ONNX Runtime."""

    def __init__(self, model: nn.Module, shape, threads) -> None:
        self.model, self.threads = model, threads
        self.sessions: dict[tuple[int, int], object] = {}
        self._session(shape[1:])

    def _session(self, hw):
        s = self.sessions.get(tuple(hw))
        if s is None:
            from ..interop.onnx_export import to_onnx_bytes
            s = ort_session(to_onnx_bytes(self.model, input_size=tuple(hw), metadata=False), self.threads)
            self.sessions[tuple(hw)] = s
        return s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self._session(a.shape[2:]).run(None, {"input": a})[0]
        return torch.from_numpy(out)


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
    parts = {"cpu": cpu_model(), "torch": torch.__version__, "onnxruntime": ort_v,
             "config": _config_key(model), "input": list(shape), "threads": threads,
             "candidates": list(candidates)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache() -> dict:
    p = cache_dir() / CACHE_FILE
    try:
        d = json.loads(p.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    from ..io import atomic_write_text
    d = _read_cache()
    d[key] = entry
    try:
        atomic_write_text(cache_dir() / CACHE_FILE, json.dumps(d, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only home must not stop inference; we just measure again next time


def time_callables(fns: dict[str, Callable], x: torch.Tensor, rounds: int = 5, per_round: int = 3,
                   warmup: int = 2, budget_s: float | None = None,
                   drop_slower_than: float | None = None) -> dict[str, list[float]]:
    """Seconds per call of each callable, interleaved round by round so that load from other
    processes hits every candidate alike; stops after 2 rounds once ``budget_s`` is spent, and
    from round 2 on stops timing candidates slower than ``drop_slower_than`` x the fastest."""
    import statistics
    for f in fns.values():
        for _ in range(warmup):
            f(x)
    out: dict[str, list[float]] = {k: [] for k in fns}
    live = dict(fns)
    start = time.perf_counter()
    for r in range(rounds):
        if budget_s is not None and r >= 2 and time.perf_counter() - start > budget_s:
            break
        if drop_slower_than and r >= 1:
            med = {k: statistics.median(out[k]) for k in live}
            best = min(med.values())
            live = {k: f for k, f in live.items() if med[k] <= drop_slower_than * best}
        for k, f in live.items():
            for _ in range(per_round):
                t = time.perf_counter()
                f(x)
                out[k].append(time.perf_counter() - t)
    return out


def choose_engine(model: nn.Module, shape, threads, candidates: Sequence[str],
                  rounds: int = 5, per_round: int = 3) -> tuple[str, dict[str, float], dict]:
    """Measure ``candidates`` at batch 1 on ``shape``; return (fastest agreeing engine,
    p50 ms per engine, built callables)."""
    import statistics
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, *shape, generator=gen)
    ref = _build(copy.deepcopy(model), "eager", shape, threads)(x)
    built, rejected = {}, {}
    for e in candidates:
        try:
            fn = _build(copy.deepcopy(model), e, shape, threads)
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
                  candidates: Iterable[str] = AUTO_CANDIDATES, remeasure: bool = False) -> CompiledModel:
    """The model as a fast callable ``x -> logits`` (eval mode; ``model`` is not modified).

    ``threads`` sets torch's thread count (process-wide) and ONNX Runtime's intra-op threads;
    ``input_size`` (default: the model's documented size) is the shape ``auto`` measures and
    ``torchscript``/``compile`` prepare for; other sizes still work.

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
    from ..interop.onnx_export import dense_eval_copy
    base = dense_eval_copy(model)
    shape = _input_shape(base, input_size)
    if engine != "auto":
        return CompiledModel(_build(base, engine, shape, threads), engine)
    candidates = tuple(candidates)
    bad = [c for c in candidates if c not in ENGINES]
    if bad:
        raise SqueezeNetError(f"unknown candidate engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    n_threads = int(threads or torch.get_num_threads())
    key = _auto_key(base, shape, n_threads, candidates)
    entry = None if remeasure else _read_cache().get(key)
    if entry and entry.get("engine") in candidates:
        try:
            return CompiledModel(_build(base, entry["engine"], shape, threads), entry["engine"],
                                 entry.get("p50_ms"))
        except Exception:
            pass  # the cached engine no longer runs here (e.g. ORT uninstalled): measure again
    best, p50, info = choose_engine(base, shape, threads, candidates)
    _write_cache(key, {"engine": best, "p50_ms": {k: round(v, 3) for k, v in p50.items()},
                       "rejected": info["rejected"], "cpu": cpu_model(), "torch": torch.__version__,
                       "input": list(shape), "threads": n_threads,
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return CompiledModel(info["built"][best], best, p50)
