"""Deployment runtimes side by side: one JSON line per runtime x precision x batch.

The real SqueezeNet 1.1 (ONNX-zoo weights) exported to each runtime's format by
``squeezenet export``'s code (fp32, and int8 calibrated on every 10th photo of the ImageNet dev
sample), each file loaded the way ``eval``/``predict``/``bench`` load it, and timed
interleaved round by round in one process against torch eager (the shared baseline), with the
same thread count: ONNX Runtime, OpenVINO (fp32 under ``INFERENCE_PRECISION_HINT=f32``), ncnn
(fp32, and int8 written from the same calibration: ``runtime.ncnn_model.ncnn_int8``), LiteRT
(our ONNX -> .tflite translation, fp32 and int8, in LiteRT's interpreter with XNNPACK) and ours
``auto``, measured afresh (``remeasure``) at batch 1 and 32: fp32 ``auto`` is
``compile_model(model, "auto")`` (what ``eval m.safetensors`` runs: ONNX Runtime, OpenVINO and
the torch engines), ``auto_onnx`` fp32 and ``auto`` int8 are ``compile_file`` of the exported
``.onnx`` file (what ``eval m.onnx`` runs under ``--engine auto``: ONNX Runtime, OpenVINO or LiteRT per
batch size). Each line says which precision the runtime really used (for ``auto``: the
engine it ran at that batch) and ``vs_torch`` = torch eager p50 / this p50 at that batch
(higher is faster); one ``auto_vs_fastest`` line per precision x batch gives the fastest
other runtime's p50 / auto's p50 (>= 1: auto is at least as fast), whether auto ran that
same runtime, and the quartiles over rounds of the ratio taken within each round (paired).
Each round gives each runtime as many untimed calls as timed ones first (the steady state of
a loop of calls). Compare ratios, not absolute times: the machine may be shared, and on this
2-core VM two rows of the very same session differed by up to 6 % at 30 rounds (2-12 % at 8).

    python benchmarks/runtimes.py --threads 2 --rounds 30 > runtimes.jsonl   # about 3.5 min
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def ort_precision(data: bytes, threads: int) -> str:
    """What ONNX Runtime really runs: the op types of its optimized graph (int8 QDQ files
    become QLinearConv / ConvInteger kernels, fp32 stays Conv)."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    int8 = sum(o in ("QLinearConv", "ConvInteger", "QLinearMatMul") for o in ops)
    conv = sum(o in ("Conv", "FusedConv") for o in ops)
    return "f32" if not int8 else f"u8s8 ({int8} int8 convs, {conv} float)"


def paired_ratios(other: list[float], auto: list[float], per: int) -> tuple[float, float, float]:
    """The 25/50/75 % quantiles over rounds of (other's median / auto's median in that round):
    the two were timed within one round, so slow drifts of the machine's load cancel, and the
    spread says how far a ratio of 1 is from noise.

    >>> paired_ratios([2, 2, 4, 4, 3, 3, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2], 2)
    (0.875, 1.25, 1.625)
    """
    import numpy as np
    r = [statistics.median(other[i:i + per]) / statistics.median(auto[i:i + per])
         for i in range(0, min(len(other), len(auto)) - per + 1, per)]
    lo, mid, hi = np.quantile(r, [0.25, 0.5, 0.75])
    return float(lo), float(mid), float(hi)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    ap.add_argument("--iters", type=int, default=5,
                    help="timed calls per runtime per round at batch 1, after as many untimed (a third at 32)")
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args(argv)

    import torch

    from squeezenet.data import read_class_list, shared_dir
    from squeezenet.interop.onnx_export import to_onnx_bytes
    from squeezenet.runtime import compile_model, cpu_model, time_callables
    from squeezenet.runtime.exported import FORMATS, export_to, load_exported
    from squeezenet.runtime.images import batches, image_dataset
    from squeezenet.runtime.onnx_model import load_onnx
    from squeezenet.runtime.quantize import quantize_int8
    from squeezenet.runtime.reference import onnx_zoo_squeezenet1_1

    import os
    load_start = list(os.getloadavg())
    torch.set_num_threads(args.threads)
    sh = shared_dir()
    classes = read_class_list(sh / "fixtures/imagenet/synsets.txt")
    model = onnx_zoo_squeezenet1_1(classes=classes).eval()
    ds = image_dataset(sh / "fixtures/imagenet_sample_dev", preset="torchvision", classes=classes)
    fp32 = to_onnx_bytes(model)
    int8 = quantize_int8(fp32, (x for x, _ in batches(ds, list(range(0, len(ds), 10)), 25)))
    runners: dict[tuple[str, str], object] = {}
    used: dict[tuple[str, str], str] = {}
    skipped: list[dict] = []

    def eager(x):
        with torch.inference_mode():
            return model(x)
    runners[("torch_eager", "fp32")], used[("torch_eager", "fp32")] = eager, "f32"
    with tempfile.TemporaryDirectory(prefix="sqz-runtimes-") as tmp:
        for prec, data in (("fp32", fp32), ("int8", int8)):
            p = Path(tmp) / f"m-{prec}.onnx"
            p.write_bytes(data)
            runners[("onnxruntime", prec)] = load_onnx(p, threads=args.threads)
            used[("onnxruntime", prec)] = ort_precision(data, args.threads)
            for fmt, (suffix, _, _) in FORMATS.items():
                try:
                    f = export_to(fmt, data, Path(tmp) / f"m-{prec}{suffix}",
                                  fp32_bytes=fp32 if prec == "int8" else None)[0]
                    e = load_exported(f, threads=args.threads)
                except Exception as err:   # a runtime not installed is a line, not a crash
                    skipped.append({"runtime": fmt, "precision": prec, "skipped": str(err)[:200]})
                    continue
                runners[(fmt, prec)], used[(fmt, prec)] = e, e.precision
        auto = compile_model(model, "auto", threads=args.threads, remeasure=True)
        runners[("auto", "fp32")] = auto
        # what eval/predict run an .onnx file with under --engine auto (cli._infer.forward_for),
        # on the very session of the onnxruntime row: where auto runs ONNX Runtime the two rows
        # time the same thing (a second session would add a second pool of spinning threads)
        from squeezenet.runtime import compile_file
        for name, prec in (("auto_onnx", "fp32"), ("auto", "int8")):
            runners[(name, prec)] = compile_file(runners[("onnxruntime", prec)], threads=args.threads,
                                                 remeasure=True)
        autos = {k: f for k, f in runners.items() if k[0].startswith("auto")}
        for k, f in autos.items():
            print(json.dumps({"runtime": k[0], "precision": k[1], "picks": {str(b): e for b, e in f.picks.items()},
                              "measured_p50_ms_batch1": {e: round(v, 3) for e, v in f.timings_ms.items()},
                              "precision_used": f.precision}), flush=True)

        def used_by(r, p, b):
            f = runners[(r, p)]
            if r not in ("auto", "auto_onnx"):
                return used[(r, p)]
            e = f.engine_for(b)
            # OpenVINO: its runtimePrecision in auto's own compile; ONNX Runtime: its optimized graph's ops
            real = used.get((e, p)) if e == "onnxruntime" else f.precision.get(e)
            return f"{real} via {e}"

        g = torch.Generator().manual_seed(0)
        for b in [int(v) for v in args.batches.split(",")]:
            x = torch.randn(b, 3, 224, 224, generator=g)
            fns = {f"{r}/{p}": fn for (r, p), fn in runners.items()}
            per = args.iters if b == 1 else max(1, args.iters // 3)
            times = time_callables(fns, x, rounds=args.rounds, per_round=per, warmup=1, rewarm=per)
            base = statistics.median(times["torch_eager/fp32"])
            p50s = {}
            for key, ts in times.items():
                r, p = key.split("/")
                p50 = p50s[(r, p)] = statistics.median(ts)
                print(json.dumps({"runtime": r, "precision": p, "precision_used": used_by(r, p, b), "batch": b,
                                  "p50_ms": round(p50 * 1e3, 3), "images_per_s": round(b / p50, 1),
                                  "vs_torch": round(base / p50, 3), "samples": len(ts), "threads": args.threads}),
                      flush=True)
            for (r, p), f in autos.items():
                others = {k: v for k, v in p50s.items() if k[1] == p and not k[0].startswith("auto")}
                fastest = min(others, key=others.get)
                ratio = others[fastest] / p50s[(r, p)]
                lo, mid, hi = paired_ratios(times[f"{fastest[0]}/{p}"], times[f"{r}/{p}"], per)
                verdict = "faster" if ratio >= 1 else "tie" if hi >= 1 else "slower"
                print(json.dumps({"auto_vs_fastest": round(ratio, 3), "auto": r, "precision": p, "batch": b,
                                  "auto_ran": f.engine_for(b), "fastest_other": fastest[0],
                                  "same_engine": f.engine_for(b) == fastest[0],
                                  "paired_round_ratio_p25_p50_p75": [round(lo, 3), round(mid, 3), round(hi, 3)],
                                  "verdict": verdict}), flush=True)
    for s in skipped:
        print(json.dumps(s))
    print(json.dumps({"cpu": cpu_model(), "torch": torch.__version__, "threads": args.threads,
                      "load_average_start": load_start, "load_average": list(os.getloadavg()), "note": "shared machine: compare ratios"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
