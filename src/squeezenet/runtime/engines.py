"""The inference engines: each turns a model into a callable ``x -> logits`` that agrees with
eager PyTorch (``torch.allclose(rtol=RTOL, atol=ATOL)``). Picking the fastest is
:mod:`squeezenet.runtime.auto`'s job.
"""
from __future__ import annotations

import os
import random
import time
from typing import Callable

import torch
from torch import nn

from ..errors import SqueezeNetError
from ..data import input_size_for

ENGINES = ("eager", "channels_last", "torchscript", "compile", "onnxruntime", "openvino")
RTOL, ATOL = 1e-5, 1e-4


class CompiledModel:
    """A callable ``x -> logits`` produced by :func:`compile_model`; ``engine`` names what runs
    (``auto``: which engine at which batch sizes when they differ, ``picks`` batch -> engine),
    ``precision`` engine -> what it really computes in (``auto`` only)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], engine: str,
                 timings_ms: dict | None = None, picks: dict | None = None,
                 precision: dict | None = None) -> None:
        self._fn = fn
        self.engine = engine
        self.timings_ms = timings_ms or {}   # auto: p50 ms per candidate at batch 1 (when measured now or cached)
        self.picks = dict(picks or {})
        self.precision = dict(precision or {})

    def engine_for(self, n: int) -> str:
        """The engine a call of batch ``n`` runs."""
        fn = getattr(self._fn, "engine_for", None)
        return fn(n) if fn is not None else self.engine

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


def input_shape(model: nn.Module, input_size=None) -> tuple[int, int, int]:
    """(C, H, W) of one input: ``input_size`` (a side or (H, W)), default
    :func:`squeezenet.data.input_size_for` the model (the one input-size rule)."""
    c = getattr(getattr(model, "config", None), "in_channels", 3)
    if input_size is None:
        c, *input_size = input_size_for(model)
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    from ..models.registry import MAX_INPUT_SIZE
    if not all(1 <= int(v) <= MAX_INPUT_SIZE for v in (h, w)):
        raise SqueezeNetError(f"input size {h}x{w}: each side must be an integer in 1..{MAX_INPUT_SIZE}")
    return int(c), int(h), int(w)


def build_engine(model: nn.Module, engine: str, shape: tuple[int, int, int], threads: int | None):
    """The callable of one explicit engine for inputs of ``shape`` (C, H, W); ``model`` must be
    a private eval copy (engines may change its memory format)."""
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
    if engine == "openvino":   # optional: pip install 'squeezenet[openvino]'
        from ..interop.onnx_export import to_onnx_bytes
        from .exported_model import require
        from .openvino_model import OpenVinoRunner, ov_model_from_onnx
        require("openvino")
        run = OpenVinoRunner(ov_model_from_onnx(to_onnx_bytes(model, input_size=tuple(shape[1:]), metadata=False)),
                             threads)
        run(torch.zeros(1, *shape))   # compile for the usual shape now, not on the first image
        return run
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


def time_callables(fns: dict[str, Callable], x: torch.Tensor, rounds: int = 5, per_round: int = 3,
                   warmup: int = 2, budget_s: float | None = None,
                   drop_slower_than: float | None = None, settle_s: float = 0.02,
                   rewarm: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each callable, interleaved round by round so that load from other
    processes hits every candidate alike (each round in a new seeded order, so none always runs
    right after the same other one: a runtime's threads may still spin, or hold the caches,
    when the next starts); stops after 2 rounds once ``budget_s`` is spent, and
    from round 2 on stops timing candidates slower than ``drop_slower_than`` x the fastest.
    Before each candidate's calls the process sleeps ``settle_s`` (several candidates only):
    ONNX Runtime, OpenVINO and XNNPACK keep their worker threads spinning for a while after a
    call, and on few cores whichever runtime is timed next would pay for it (measured on 2
    cores: the same ONNX Runtime session 2-3x slower right after another session's call); then
    it makes ``rewarm`` untimed calls, so the timed ones are the steady state a loop of calls
    sees (measured on 2 cores at batch 1: the first call after a pause 1.6-2.3x slower than
    back-to-back calls, and by how much differs between runtimes, enough to swap their order).
    The lists hold ``per_round`` timings per round, in round order."""
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
        names = list(live)
        if r:   # a new order each round (seeded): a rotation would keep every runtime's predecessor
            random.Random(r).shuffle(names)
        for k in names:
            f = live[k]
            if settle_s and len(names) > 1:
                time.sleep(settle_s)
            for _ in range(rewarm if len(names) > 1 else 0):
                f(x)
            for _ in range(per_round):
                t = time.perf_counter()
                f(x)
                out[k].append(time.perf_counter() - t)
    return out
