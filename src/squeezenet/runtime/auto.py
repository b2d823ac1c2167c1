"""``auto``: measure the engines once for this CPU and model, keep the fastest that agrees with
eager, and cache the choice in ``$SQUEEZENET_CACHE/runtime_auto.json``.

The engines are measured at each of :data:`AUTO_BATCHES` (batch 1 and 32): the fastest engine
at one image is not always the fastest at many (on a 2-core AVX-512 VNNI Xeon OpenVINO was
1.2-1.9x slower than ONNX Runtime on fp32 at batch 1 in 8 of 9 runs, but 1.1-2x faster on int8 at batch 32).
A call of batch ``n`` runs the pick of the measured batch nearest to ``n`` (log scale:
1..5 -> batch 1, 6+ -> batch 32).
:func:`compile_file` does the same for an exported ``.onnx`` file (fp32 or int8), between
ONNX Runtime, OpenVINO and LiteRT (where installed).
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
#: the batch sizes ``auto`` measures; a call runs the pick of the nearest (log scale)
AUTO_BATCHES = (1, 32)
#: at the larger batches only engines within this factor of the fastest at the previous one
#: are measured again (eager at batch 32 costs seconds and never wins); OpenVINO's fixed cost
#: per call makes it up to ~6x slower than ONNX Runtime at batch 1 on a 32x32 model, 2x at 224
AUTO_KEEP_WITHIN = 4.0
#: an int8 file's runtimes round differently: one agrees with ONNX Runtime (the reference)
#: when no logit differs by more than this fraction of the logits' standard deviation
#: (measured: OpenVINO vs ONNX Runtime on SqueezeNet 1.1 int8, 0.27 / 3.7 = 0.07 on the 500
#: dev photos, where 99.4 % of top-1 answers agree and top-1 accuracy is the same)
INT8_REL_TOL = 0.25


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


#: how :func:`measure_picks` measures; a change re-measures choices cached by an older way
MEASURE_METHOD = 2
#: rounds and timed calls per round at batch 1 (as many untimed calls come first each round)
AUTO_ROUNDS, AUTO_PER_ROUND = 20, 5


def _auto_key(model, shape, threads, candidates, what: str | None = None) -> str:
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
    try:
        from importlib.metadata import version
        lt_v = version("ai-edge-litert")
    except Exception:
        lt_v = None
    parts = {"cpu": cpu_model(), "torch": torch.__version__, "onnxruntime": ort_v, "openvino": ov_v, "litert": lt_v,
             "config": _config_key(model) if what is None else what, "input": list(shape), "threads": threads,
             "candidates": list(candidates), "batches": list(AUTO_BATCHES), "method": MEASURE_METHOD}
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


def nearest_batch(n: int, measured: Sequence[int]) -> int:
    """The measured batch size nearest to ``n`` on a log scale (ties: the smaller).

    >>> [nearest_batch(n, (1, 32)) for n in (1, 5, 6, 100)]
    [1, 1, 32, 32]
    """
    import math
    return min(measured, key=lambda b: (abs(math.log(max(1, n)) - math.log(b)), b))


def describe_picks(picks: dict[int, str]) -> str:
    """One engine name when every measured batch size picked it, else which runs where.

    >>> describe_picks({1: "onnxruntime", 32: "onnxruntime"})
    'onnxruntime'
    >>> describe_picks({1: "onnxruntime", 32: "openvino"})
    'onnxruntime (batch 1-5), openvino (batch 6+)'
    """
    names = list(dict.fromkeys(picks.values()))
    if len(names) == 1:
        return names[0]
    bs = sorted(picks)
    edges = [next(n for n in range(b, 10 * bs[-1] + 2) if nearest_batch(n, bs) != b) for b in bs[:-1]]
    parts = []
    for i, b in enumerate(bs):
        lo = 1 if i == 0 else edges[i - 1]
        parts.append(f"{picks[b]} (batch {lo}-{edges[i] - 1})" if i < len(edges) else f"{picks[b]} (batch {lo}+)")
    return ", ".join(parts)


class BatchDispatch:
    """Runs each call with the engine picked for the nearest measured batch size."""

    def __init__(self, fns: dict[str, Callable], picks: dict[int, str]) -> None:
        self.fns, self.picks = fns, dict(picks)
        self.batches = tuple(sorted(picks))

    def engine_for(self, n: int) -> str:
        return self.picks[nearest_batch(n, self.batches)]

    def __call__(self, x):
        return self.fns[self.engine_for(int(x.shape[0]))](x)


def _low(ts: Sequence[float], q: float = 0.2) -> float:
    """The ``q`` quantile of timings (nearest rank): other processes only ever add time, so a
    low quantile ranks engines by their own speed on a busy machine better than the median.

    >>> _low([5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 8.0, 7.0, 6.0, 10.0])
    3.0
    """
    s = sorted(ts)
    return s[min(len(s) - 1, int(q * len(s)))]


def measure_picks(built: dict[str, Callable], shape, batches: Sequence[int] = AUTO_BATCHES,
                  rounds: int = AUTO_ROUNDS, per_round: int = AUTO_PER_ROUND, budget_s: float = 8.0,
                  seed: int = 0) -> tuple[dict[int, str], dict[int, dict[str, float]]]:
    """Time ``built`` (name -> callable) interleaved at each batch size; returns (the fastest
    per batch size by the 20 % quantile of its timings (:func:`_low`), one engine for all
    where that is a near tie (:func:`one_engine_if_close`); p50 ms per batch size and engine).
    At the smallest batch each round gives every engine ``per_round`` untimed calls and then
    ``per_round`` timed ones (the steady state of a loop of calls; 100 timings each by
    default: at batch 1 runtimes lie within 10-20 % of each other, and 18 timings picked
    differently from run to run); larger batches take 4 rounds of one warm call and one timed.
    At each larger batch only the engines within :data:`AUTO_KEEP_WITHIN` x the fastest at the
    previous one are timed again."""
    import statistics
    gen = torch.Generator().manual_seed(seed)
    picks, p50, lows = {}, {}, {}
    live = dict(built)
    for i, b in enumerate(sorted(set(int(v) for v in batches))):
        x = torch.randn(b, *shape, generator=gen)
        big = i > 0
        times = time_callables(live, x, rounds=rounds if not big else 4,
                               per_round=per_round if not big else 1, warmup=1, budget_s=budget_s,
                               drop_slower_than=3.0 if not big else 2.0,
                               rewarm=per_round if not big else 1)
        times = {k: v for k, v in times.items() if v}
        p50[b] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        low = lows[b] = {k: _low(v) for k, v in times.items()}
        picks[b] = min(low, key=low.get)
        live = {k: f for k, f in live.items() if k in low and low[k] <= AUTO_KEEP_WITHIN * low[picks[b]]}
    return one_engine_if_close(picks, lows), p50


#: picks that differ by batch size give way to one engine when it is within this factor of the
#: fastest at every measured size (closer than a busy machine lets a measurement tell apart)
AUTO_ONE_ENGINE_WITHIN = 1.05


def one_engine_if_close(picks: dict[int, str], scores: dict[int, dict[str, float]]) -> dict[int, str]:
    """One engine for every batch size where one is within :data:`AUTO_ONE_ENGINE_WITHIN` of
    the fastest at each (the one of the smallest worst ratio), else ``picks`` as they are.

    >>> one_engine_if_close({1: "a", 32: "b"}, {1: {"a": 1.0, "b": 1.05}, 32: {"a": 50.0, "b": 30.0}})
    {1: 'b', 32: 'b'}
    >>> one_engine_if_close({1: "a", 32: "b"}, {1: {"a": 1.0, "b": 1.5}, 32: {"a": 50.0, "b": 30.0}})
    {1: 'a', 32: 'b'}
    """
    if len(set(picks.values())) < 2:
        return dict(picks)
    common = set.intersection(*(set(d) for d in scores.values()))
    worst = {e: max(scores[b][e] / scores[b][picks[b]] for b in picks) for e in common}
    if worst:
        e = min(worst, key=worst.get)
        if worst[e] <= AUTO_ONE_ENGINE_WITHIN:
            return {b: e for b in picks}
    return dict(picks)


def choose_engine(model: nn.Module, shape, threads, candidates: Sequence[str],
                  rounds: int = AUTO_ROUNDS, per_round: int = AUTO_PER_ROUND,
                  batches: Sequence[int] = AUTO_BATCHES) -> tuple[str, dict[str, float], dict]:
    """Measure ``candidates`` at each of ``batches`` on ``shape``; return (fastest agreeing
    engine at the first batch size, its p50 ms per engine, info) where ``info`` holds the
    built callables (``built``), the engines refused (``rejected``), the pick per batch size
    (``picks``) and the p50 ms per batch size (``p50_ms_by_batch``)."""
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
    picks, p50 = measure_picks(built, shape, batches, rounds=rounds, per_round=per_round)
    first = min(picks)
    return picks[first], p50[first], {"built": built, "rejected": rejected, "picks": picks, "p50_ms_by_batch": p50}


def _precisions(fns: dict[str, Callable], default: str = "f32") -> dict[str, str]:
    """What each built engine really computes in: OpenVINO's ``runtimePrecision`` (f32 under
    its f32 hint, never bf16), else ``default`` (torch and ONNX Runtime run the graph's types)."""
    return {k: str(getattr(f, "precision", None) or default) for k, f in fns.items()}


def _cache_entry(picks, p50, rejected, shape, threads, precisions) -> dict:
    first = min(picks)
    return {"engine": describe_picks(picks), "picks": {str(b): e for b, e in picks.items()},
            "p50_ms": {k: round(v, 3) for k, v in p50[first].items()},
            "p50_ms_by_batch": {str(b): {k: round(v, 3) for k, v in d.items()} for b, d in p50.items()},
            "precision": precisions, "rejected": rejected, "cpu": cpu_model(), "torch": torch.__version__,
            "input": list(shape), "threads": threads,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _cached_picks(entry, candidates) -> dict[int, str] | None:
    try:
        picks = {int(b): str(e) for b, e in entry["picks"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    ok = picks and set(picks) == set(AUTO_BATCHES) and all(e in candidates for e in picks.values())
    return picks if ok else None


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
    picks = _cached_picks(entry, candidates) if isinstance(entry, dict) else None
    if picks:
        try:
            fns = {e: build_engine(copy.deepcopy(base), e, shape, threads) for e in set(picks.values())}
            return _compiled(fns, picks, entry.get("p50_ms"))
        except Exception:
            pass  # the cached engine no longer runs here (e.g. ORT uninstalled): measure again
    if log is not None:
        log(f"measuring the inference engines ({', '.join(candidates)}) on this CPU for this model at batch "
            f"{' and '.join(map(str, AUTO_BATCHES))}, once (cached in {cache_dir() / CACHE_FILE})...")
    best, p50, info = choose_engine(base, shape, threads, candidates)
    picks = info["picks"]
    fns = {e: info["built"][e] for e in set(picks.values())}
    _write_cache(key, _cache_entry(picks, info["p50_ms_by_batch"], info["rejected"], shape, n_threads,
                                   _precisions(fns)))
    return _compiled(fns, picks, p50)


def _compiled(fns: dict[str, Callable], picks: dict[int, str], timings) -> CompiledModel:
    names = set(picks.values())
    fn = fns[next(iter(names))] if len(names) == 1 else BatchDispatch(fns, picks)
    return CompiledModel(fn, describe_picks(picks), timings, picks=picks, precision=_precisions(fns))


class AutoFile:
    """An exported ``.onnx`` file run by the fastest runtime per batch size (``picks``), with
    the file's attributes (``classes``, ``preprocess``, ``metadata``, ``int8``, ...).
    ``engine`` says which runtime runs (and at which batch sizes when they differ),
    ``precision`` what each picked runtime really computes in."""

    def __init__(self, model, fns: dict[str, Callable], picks: dict[int, str], timings_ms=None,
                 precision: dict | None = None) -> None:
        self._model, self._fns, self.picks = model, fns, dict(picks)
        self.engine = describe_picks(picks)
        self.timings_ms = timings_ms or {}
        self._precision = dict(precision or {})
        self._dispatch = BatchDispatch(fns, picks)

    @property
    def precision(self) -> dict[str, str]:
        """runtime -> what it really computes in (OpenVINO's ``runtimePrecision`` once compiled)."""
        live = {e: str(f.precision) for e, f in self._fns.items()
                if e != "onnxruntime" and getattr(f, "precision", None)}
        return {**self._precision, **live}

    def engine_for(self, n: int) -> str:
        return self._dispatch.engine_for(n)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        name = self._dispatch.engine_for(int(x.shape[0]))
        if name == "onnxruntime":
            return self._model(x)   # the file's own session, its one-line errors
        try:
            return self._fns[name](x)
        except SqueezeNetError:
            raise
        except Exception as e:
            raise SqueezeNetError(f"{self._model.path}: {name} could not run a batch of shape "
                                  f"{tuple(x.shape)} ({first_line(e, 200)})") from None

    def __getattr__(self, name):   # the file's facts: classes, preprocess, metadata, int8, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._model, name)

    def eval(self) -> "AutoFile":
        return self

    def __repr__(self) -> str:
        return f"AutoFile({str(self._model.path)!r}, engine={self.engine!r})"


#: the runtimes :func:`compile_file` chooses among (openvino and litert where installed:
#: optional extras; LiteRT runs our own ONNX -> .tflite translation of the file)
FILE_CANDIDATES = ("onnxruntime", "openvino", "litert")


def _file_runtime_installed(name: str) -> bool:
    from .exported_model import FORMATS
    return name == "onnxruntime" or _installed(FORMATS[name][1].split(".")[0])


def _file_shape(model) -> tuple[int, int, int]:
    """(C, H, W) to measure a file at: its graph's static input dims, else the side in its
    metadata, else the documented size of its config's stem."""
    from ..models import default_input_size
    shape = tuple(getattr(model, "input_shape", ()) or ())
    c, h, w = shape[1:4] if len(shape) == 4 else (None, None, None)
    side = getattr(model, "metadata", {}).get("input_size")
    side = side if isinstance(side, int) and 1 <= side <= 4096 else default_input_size(model)
    return (c if isinstance(c, int) else getattr(getattr(model, "config", None), "in_channels", 3),
            h if isinstance(h, int) else side, w if isinstance(w, int) else side)


def _build_file_engine(model, name: str, threads: int | None):
    if name == "onnxruntime":
        return model
    if name == "openvino":
        from .exported_model import require
        from .openvino_model import OpenVinoRunner
        require("openvino")
        import openvino as ov
        return OpenVinoRunner(ov.convert_model(str(model.path)), threads)   # fp32 hint: f32 stays f32
    if name == "litert":
        from .exported_model import require
        from .litert_model import LiteRtRunner, tflite_bytes
        require("litert")
        fn = LiteRtRunner(tflite_bytes(Path(model.path).read_bytes()), threads)
        fn.precision = "i8" if getattr(model, "int8", False) else "f32"
        return fn
    raise SqueezeNetError(f"unknown runtime {name!r} for an .onnx file; choose {', '.join(FILE_CANDIDATES)}")


def _file_agrees(y: torch.Tensor, ref: torch.Tensor, int8: bool) -> str | None:
    """None when ``y`` agrees with the reference runtime's ``ref``, else why not."""
    if y.shape != ref.shape:
        return f"output shape {tuple(y.shape)}, ONNX Runtime's {tuple(ref.shape)}"
    diff = float((y - ref).abs().max())
    if not int8:
        return None if torch.allclose(y, ref, rtol=RTOL, atol=ATOL) else f"disagrees with onnxruntime by {diff:.3g}"
    tol = INT8_REL_TOL * float(ref.std()) + ATOL
    return None if diff <= tol else f"disagrees with onnxruntime by {diff:.3g} (int8 bound {tol:.3g})"


def compile_file(model, threads: int | None = None, candidates: Iterable[str] = FILE_CANDIDATES,
                 remeasure: bool = False, log: Callable[[str], None] | None = None):
    """An exported ``.onnx`` file (:class:`~squeezenet.runtime.onnx_model.OnnxModel`) run by
    the fastest of ``candidates`` that agrees with ONNX Runtime, per batch size of
    :data:`AUTO_BATCHES`, measured once per file content, CPU, versions and threads and cached
    like :func:`compile_model`. fp32 files must agree within ``rtol=RTOL, atol=ATOL``; int8
    files (whose runtimes round differently) within :data:`INT8_REL_TOL` x the logits' standard
    deviation. OpenVINO compiles fp32 files with ``INFERENCE_PRECISION_HINT=f32`` (no bf16),
    int8 files as int8 with float where the file is float. The model itself is returned where
    only ONNX Runtime can run it."""
    candidates = tuple(candidates)
    bad = [c for c in candidates if c not in FILE_CANDIDATES]
    if bad or not candidates:
        raise SqueezeNetError(f"runtime(s) {', '.join(bad) or 'none'} for an .onnx file; choose from "
                              f"{', '.join(FILE_CANDIDATES)}")
    if "onnxruntime" not in candidates:   # one runtime named: it runs, nothing to measure
        fn = _build_file_engine(model, candidates[0], threads)
        return AutoFile(model, {candidates[0]: fn}, {b: candidates[0] for b in AUTO_BATCHES})
    candidates = tuple(c for c in candidates if _file_runtime_installed(c))
    if candidates == ("onnxruntime",):
        return model
    n_threads = int(threads or torch.get_num_threads())
    shape = _file_shape(model)
    data = Path(model.path).read_bytes()
    what = "file:" + hashlib.sha256(data).hexdigest()
    key = _auto_key(None, shape, n_threads, candidates, what=what)
    int8 = bool(getattr(model, "int8", False))
    entry = None if remeasure else _read_cache().get(key)
    picks = _cached_picks(entry, candidates) if isinstance(entry, dict) else None
    if picks:
        try:
            fns = {e: _build_file_engine(model, e, threads) for e in set(picks.values())}
            return AutoFile(model, fns, picks, entry.get("p50_ms"), entry.get("precision"))
        except Exception:
            pass   # the cached runtime no longer runs here: measure again
    x = torch.randn(8, *shape, generator=torch.Generator().manual_seed(0))
    try:
        ref = model(x)
    except SqueezeNetError:
        ref = None
    if ref is None or not bool(torch.isfinite(ref).all()):
        return model   # nothing to agree with: ONNX Runtime runs it, and the caller's checks say what is wrong
    if log is not None and len(candidates) > 1:
        log(f"measuring {', '.join(candidates)} on this CPU for {Path(model.path).name} at batch "
            f"{' and '.join(map(str, AUTO_BATCHES))}, once (cached in {cache_dir() / CACHE_FILE})...")
    built, rejected = {}, {}
    for e in candidates:
        try:
            fn = _build_file_engine(model, e, threads)
            why = None if e == "onnxruntime" else _file_agrees(fn(x), ref, int8)
        except Exception as err:   # a runtime that cannot run the file here is simply not chosen
            why = f"failed: {type(err).__name__}" + (f": {first_line(err, 100)}" if str(err).strip() else "")
        if why:
            rejected[e] = why
        else:
            built[e] = fn
    if len(built) == 1 and "onnxruntime" in built:
        picks, p50 = {b: "onnxruntime" for b in AUTO_BATCHES}, {b: {} for b in AUTO_BATCHES}
    elif not built:
        raise SqueezeNetError(f"{model.path}: no runtime could run it: " + "; ".join(f"{k} {v}" for k, v in rejected.items()))
    else:
        picks, p50 = measure_picks(built, shape)
    fns = {e: built[e] for e in set(picks.values())}
    precision = _precisions({e: f for e, f in fns.items() if e != "onnxruntime"})
    if "onnxruntime" in fns:   # what ONNX Runtime runs is the file's own types
        precision["onnxruntime"] = "int8 (the file's QDQ)" if int8 else "f32"
    _write_cache(key, _cache_entry(picks, p50, rejected, shape, n_threads, precision))
    return AutoFile(model, fns, picks, p50[min(p50)], precision)
