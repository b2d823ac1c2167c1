"""Inference benchmark: every engine against torchvision eager, same threads, same run.

Per engine: batch-1 latency (p50/p90), batch-N throughput, extra resident memory at peak,
and the distance from the compute floor: ``MACs x 2 / p50`` as GFLOP/s against a square
sgemm (``torch.mm``) measured in the same run. Timings are interleaved round by round so that
load from other processes hits every engine alike; compare ratios, not absolute times.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import SqueezeNetError

DEFAULT_ENGINES = ("torchvision", "eager", "auto", "onnxruntime")
#: ``onnxruntime_int8`` quantizes the model here on 8 random images (for speed only, its
#: answers are not those of a calibrated file): time a file from ``export --int8`` instead
EXTRA_ENGINES = ("channels_last", "torchscript", "compile", "openvino", "onnxruntime_int8")
PEER = "torchvision"


def _proc_status(field: str) -> int | None:
    """A ``/proc/self/status`` size in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so each engine's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def sgemm_gflops(n: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of an n x n float32 ``torch.mm`` on the current torch threads.

    >>> sgemm_gflops(64, 2) > 0
    True
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def torchvision_peer(model: nn.Module) -> tuple[nn.Module, str]:
    """torchvision's SqueezeNet of the same version and class count (for the small-image stem:
    squeezenet1_1 with conv1 made 3x3/1 pad 1, which is that variant's layout), with our
    weights copied in when the layouts match, else randomly initialised."""
    import torchvision.models as tvm
    cfg = getattr(model, "config", None)
    stem = getattr(cfg, "stem", "v1.1")
    ctor = tvm.squeezenet1_0 if stem == "v1.0" else tvm.squeezenet1_1
    peer = ctor(weights=None, num_classes=getattr(cfg, "num_classes", 1000))
    if stem == "small":
        peer.features[0] = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1)
    same = (getattr(cfg, "bypass", "none") == "none" and getattr(cfg, "conv10_padding", 0) == 0
            and getattr(cfg, "in_channels", 3) == 3)
    how = "random weights (layouts differ)"
    if same:
        try:
            peer.load_state_dict(model.state_dict(), strict=True)
            how = "our weights"
        except RuntimeError:
            pass
    return peer.eval(), how


def _eager(m: nn.Module) -> Callable:
    def run(x):
        with torch.inference_mode():
            return m(x)
    return run


def build_engines(model: nn.Module, engines: Sequence[str], shape, threads: int,
                  calibration: Iterable | None = None) -> tuple[dict, dict]:
    """Callables for each engine name and facts about them (build time, memory, ...)."""
    from ..interop.onnx_export import to_onnx_bytes
    from .auto import compile_model
    from .engines import ort_session
    from .quantize import quantize_int8
    fns, info = {}, {}
    fp32_bytes = None
    for e in engines:
        rss0 = _proc_status("VmRSS")
        t = time.perf_counter()
        meta: dict = {}
        if e == PEER:
            peer, how = torchvision_peer(model)
            fn, meta["weights"] = _eager(peer), how
        elif e == "onnxruntime" or e == "onnxruntime_int8":
            if fp32_bytes is None:
                fp32_bytes = to_onnx_bytes(model, input_size=tuple(shape[1:]), metadata=False)
            data = fp32_bytes
            if e == "onnxruntime_int8":
                calib = calibration
                if calib is None:  # standard-normal images are what the torchvision preset produces on average
                    g = torch.Generator().manual_seed(0)
                    calib = [torch.randn(8, *shape, generator=g)]
                    meta["calibration"] = "8 random N(0,1) images"
                data = quantize_int8(fp32_bytes, calib)
            meta["model_bytes"] = len(data)
            sess = ort_session(data, threads)

            def fn(x, sess=sess):
                return torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
        elif e == "auto" or e in ("eager", "channels_last", "torchscript", "compile", "openvino"):
            c = compile_model(model, e, threads=threads, input_size=tuple(shape[1:]))
            fn = c
            if e == "openvino":
                meta["precision"] = getattr(c._fn, "precision", None)
            if e == "auto":
                meta["picked"] = c.engine
                meta["picks"] = {str(b): v for b, v in c.picks.items()}
                meta["precision"] = c.precision
                meta["candidates_p50_ms"] = {k: round(v, 3) for k, v in (c.timings_ms or {}).items()}
        else:
            raise SqueezeNetError(f"unknown engine {e!r}: choose from {', '.join(DEFAULT_ENGINES + EXTRA_ENGINES)}")
        meta["build_s"] = round(time.perf_counter() - t, 3)
        rss1 = _proc_status("VmRSS")
        if rss0 is not None and rss1 is not None:
            meta["build_rss_mib"] = round((rss1 - rss0) / 2**20, 2)
        fns[e], info[e] = fn, meta
    return fns, info


def _memory_child(model_path: str, engine: str, shape: list, batch: int, threads: int) -> None:
    """Run in a fresh interpreter: build one engine, run one batch twice, print peak RSS (JSON)."""
    import importlib
    import json
    import sys

    from ..io import load
    torch.set_num_threads(threads)
    # libraries are loaded before the baseline so only the engine itself is counted
    for lib in ("torchvision.models", "onnx", "onnxruntime", "onnxruntime.quantization",
                "squeezenet.interop.onnx_export", "squeezenet.runtime.quantize"):
        try:
            importlib.import_module(lib)
        except ImportError:
            pass
    model = load(model_path)
    base = _proc_status("VmRSS")
    ok = _reset_peak_rss()
    fns, _ = build_engines(model, [engine], tuple(shape), threads)
    x = torch.randn(batch, *shape)
    fns[engine](x)
    fns[engine](x)
    hwm = _proc_status("VmHWM") if ok else None
    sys.stdout.write(json.dumps({"peak_rss_mib": None if hwm is None else round(hwm / 2**20, 2),
                                 "extra_mib": None if hwm is None or base is None else round((hwm - base) / 2**20, 2)}) + "\n")


def isolated_memory(model: nn.Module, engines: Sequence[str], shape, batch: int, threads: int) -> dict:
    """Per engine, in its own process: peak RSS, and the peak over the process with the model
    loaded (engine build + weights copies + activations at ``batch``), in MiB."""
    import json
    import subprocess
    import sys
    import tempfile
    from ..io import save
    out = {}
    with tempfile.TemporaryDirectory(prefix="sqz-bench-") as tmp:
        path = save(model, os.path.join(tmp, "m.safetensors"))
        for e in engines:
            code = (f"from squeezenet.runtime.bench import _memory_child; "
                    f"_memory_child({str(path)!r}, {e!r}, {list(shape)!r}, {batch}, {threads})")
            try:
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
                out[e] = json.loads(r.stdout.strip().splitlines()[-1])
            except Exception as err:  # memory is informative; a failed child must not sink the benchmark
                out[e] = {"error": f"{type(err).__name__}"}
    return out


#: The largest batch a benchmark runs, and the most input pixels in one batch (1,024 images at
#: 224x224, ~0.6 GB of fp32 input before any activation): refused before a tensor is made.
MAX_BATCH = 1024
MAX_BATCH_PIXELS = 1024 * 224 * 224


def run_benchmark(model: nn.Module, name: str = "model", batches: Sequence[int] = (1, 32),
                  threads: int = 2, engines: Sequence[str] = DEFAULT_ENGINES,
                  input_size: int | tuple[int, int] | None = None, rounds: int = 5, iters: int = 6,
                  calibration: Iterable | None = None, sgemm_n: int = 2048,
                  memory: str = "inprocess", extra: dict[str, Callable] | None = None,
                  progress: bool = False) -> dict:
    """Benchmark ``engines`` on ``model``; returns a JSON-able dict with ``results`` (one row per
    engine and batch size) and ``speedup_vs_torchvision`` (engine -> peer p50 / engine p50 at
    the smallest batch).

    ``memory``: ``inprocess`` (cheap; each row's ``peak_extra_rss_mib`` is the rise of the
    process's peak RSS while that engine runs, which undercounts memory an earlier engine freed)
    or ``subprocess`` (each engine also built and run at the largest batch in its own
    interpreter: ``engines[e]["memory"]`` holds its peak RSS and its rise over the loaded model).
    ``extra``: more engines as ready callables (e.g. an exported ``.onnx`` file's session), timed
    like the others; their outputs are not compared with ``model``'s (the weights may differ)
    and their memory is measured in this process. ``progress``: a bar on stderr over the
    phases (floor, building the engines, each batch size, memory), with the time left.

    >>> import squeezenet
    >>> r = run_benchmark(squeezenet.create_model("squeezenet_small"), batches=(1,), threads=1,
    ...                   engines=("torchvision", "eager"), rounds=1, iters=1, sgemm_n=64)
    >>> sorted(r["speedup_vs_torchvision"])
    ['eager', 'torchvision']
    """
    from ..models import summary
    from ..models.utils import dense_eval_copy
    from .auto import cpu_model
    from .engines import input_shape, time_callables
    if threads < 1:
        raise SqueezeNetError(f"--threads {threads}: must be >= 1")
    if memory not in ("inprocess", "subprocess"):
        raise SqueezeNetError(f"memory={memory!r}: choose inprocess or subprocess")
    if not batches or min(batches) < 1:
        raise SqueezeNetError(f"batch sizes {list(batches)}: need one or more sizes >= 1")
    shape = input_shape(model, input_size)
    big = max(batches)
    if big > MAX_BATCH or big * shape[1] * shape[2] > MAX_BATCH_PIXELS:
        raise SqueezeNetError(f"batch {big} at {shape[1]}x{shape[2]}: over the benchmark's bound "
                              f"({MAX_BATCH:,} images, {MAX_BATCH_PIXELS:,} input pixels per batch); "
                              f"use a smaller --batch or --input-size")
    torch.set_num_threads(threads)
    phases = ["sgemm floor", "building engines", *(f"batch {b}" for b in sorted(set(int(v) for v in batches))),
              "sgemm again", *(["memory, a process per engine"] if memory == "subprocess" else [])]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(phases), desc="bench", unit="phase", leave=False, dynamic_ncols=True)

    def phase(i: int) -> None:
        if bar is not None:
            bar.n = i
            bar.set_description(f"bench: {phases[i]}")
    model = dense_eval_copy(model)
    shape = input_shape(model, input_size)
    try:
        macs = summary(model, tuple(shape[1:])).macs
    except Exception:
        macs = None
    phase(0)
    gflops_floor = sgemm_gflops(sgemm_n)
    phase(1)
    fns, info = build_engines(model, list(engines), shape, threads, calibration)
    for e, fn in (extra or {}).items():
        fns[e], info[e] = fn, {"external": True, "int8": getattr(fn, "int8", None),
                               "precision": getattr(fn, "precision", None)}

    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(1, *shape, generator=g)
    ref = fns["eager"](x1) if "eager" in fns else _eager(model)(x1)
    for e, fn in fns.items():
        info[e]["max_abs_diff_vs_eager"] = None if e in (extra or {}) else float((fn(x1) - ref).abs().max())

    rows = []
    for i, b in enumerate(sorted(set(int(v) for v in batches))):
        phase(2 + i)
        x = torch.randn(b, *shape, generator=g)
        # warm up one engine at a time to see its own peak memory at this batch size
        for e, fn in fns.items():
            base = _proc_status("VmRSS")
            ok = _reset_peak_rss()
            fn(x)
            fn(x)
            peak = _proc_status("VmHWM")
            if ok and base is not None and peak is not None:
                info[e].setdefault("peak_extra_rss_mib", {})[b] = round(max(0, peak - base) / 2**20, 2)
        n_round = iters if b == min(batches) else max(1, iters // 3)
        times = time_callables(fns, x, rounds=rounds, per_round=n_round, warmup=0)
        for e, ts in times.items():
            ts = sorted(ts)
            p50 = statistics.median(ts)
            p90 = ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]
            row = {"engine": e, "batch": b, "p50_ms": round(p50 * 1e3, 3), "p90_ms": round(p90 * 1e3, 3),
                   "images_per_s": round(b / p50, 2), "samples": len(ts),
                   "peak_extra_rss_mib": info[e].get("peak_extra_rss_mib", {}).get(b)}
            if macs:
                gf = macs * 2 * b / p50 / 1e9
                row["gflops"] = round(gf, 2)
                row["floor_fraction"] = round(gf / gflops_floor, 3)  # 1.0 = as fast as a big sgemm
            rows.append(row)
    # the sgemm again after the engines: the floor is the better of the two (load varies)
    phase(len(phases) - (2 if memory == "subprocess" else 1))
    sgemm_runs = [gflops_floor, sgemm_gflops(sgemm_n)]
    if sgemm_runs[1] > gflops_floor:
        gflops_floor = sgemm_runs[1]
        for row in rows:
            if "gflops" in row:
                row["floor_fraction"] = round(row["gflops"] / gflops_floor, 3)
    b0 = min(batches)
    p50_1 = {r["engine"]: r["p50_ms"] for r in rows if r["batch"] == b0}
    speedup = {e: round(p50_1[PEER] / v, 3) for e, v in p50_1.items()} if PEER in p50_1 else {}
    try:
        import onnxruntime
        ort_v = onnxruntime.__version__
    except ImportError:
        ort_v = None
    engines_info = {e: {k: v for k, v in m.items() if k != "peak_extra_rss_mib"} for e, m in info.items()}
    if memory == "subprocess":
        phase(len(phases) - 1)
        mem = isolated_memory(model, [e for e in fns if e not in (extra or {})], shape, max(batches), threads)
        for e, m in mem.items():
            engines_info[e]["memory"] = {**m, "batch": max(batches), "isolated": True}
    if bar is not None:
        bar.close()
    return {
        "model": name, "input": list(shape), "threads": threads, "batches": sorted(set(batches)),
        "cpu": cpu_model(), "torch": torch.__version__, "onnxruntime": ort_v,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "macs": macs, "sgemm_gflops": round(gflops_floor, 2), "sgemm_n": sgemm_n,
        "sgemm_gflops_start_end": [round(v, 2) for v in sgemm_runs],
        "floor_ms_batch1": round(macs * 2 / (gflops_floor * 1e9) * 1e3, 3) if macs else None,
        "results": rows, "speedup_vs_torchvision": speedup, "engines": engines_info,
    }
