"""Inference benchmark: speed of every engine against torchvision eager, and int8 accuracy.

Prints JSON. Speed (default): the real SqueezeNet 1.1 (ONNX-zoo weights) through
``squeezenet.runtime.bench.run_benchmark``: batch-1 latency p50/p90, batch-32 throughput,
peak memory, for torchvision eager (the peer), our eager, our fast path (``auto``), ONNX
Runtime fp32 and int8, all with the same threads in the same run, ratios vs the peer, and
each engine's distance from the compute floor (MACs x 2 / p50 against a measured sgemm).

``--accuracy``: top-1/top-5 of fp32 vs int8 (ONNX Runtime, static QDQ per-channel) on the dev
set (fixtures/imagenet_sample_dev, classes fixtures/imagenet/synsets.txt, torchvision
preprocessing). Calibration uses every 5th dev image (100); accuracy is reported on the 400
held-out images and on all 500.

    nice -n -5 python benchmarks/inference.py --threads 2 > speed.json
    nice -n 10 python benchmarks/inference.py --accuracy > int8.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def accuracy(args) -> dict:
    import numpy as np
    import torch
    from squeezenet.data import read_class_list, shared_dir
    from squeezenet.interop.onnx_export import to_onnx_bytes
    from squeezenet.runtime import ort_session
    from squeezenet.runtime.images import batches, image_dataset
    from squeezenet.runtime.quantize import quantize_int8
    from squeezenet.runtime.reference import onnx_zoo_squeezenet1_1

    torch.set_num_threads(args.threads)
    sh = shared_dir()
    classes = read_class_list(sh / "fixtures/imagenet/synsets.txt")
    model = onnx_zoo_squeezenet1_1(classes=classes)
    ds = image_dataset(sh / "fixtures/imagenet_sample_dev", preset="torchvision", classes=classes)
    n = len(ds)
    calib_idx = [i for i in range(n) if i % 5 == 0]
    fp32 = to_onnx_bytes(model)
    t = time.time()
    results = {}
    for method in args.methods.split(","):
        q = quantize_int8(fp32, (x for x, _ in batches(ds, calib_idx, 20)), method=method)
        results[method] = {"bytes": len(q), "quantize_s": round(time.time() - t, 1), "session": ort_session(q, args.threads)}
        t = time.time()
    s32 = ort_session(fp32, args.threads)
    logits = {"fp32": [], **{m: [] for m in results}}
    labels = []
    with torch.inference_mode():
        for x, y in batches(ds, list(range(n)), 25):
            a = x.numpy()
            logits["fp32"].append(s32.run(None, {"input": a})[0])
            for m, r in results.items():
                logits[m].append(r["session"].run(None, {"input": a})[0])
            labels.append(y.numpy())
    labels = np.concatenate(labels)
    held = np.array([i % 5 != 0 for i in range(n)])

    def scores(lg, mask):
        top5 = np.argsort(-lg[mask], axis=1)[:, :5]
        lab = labels[mask]
        return {"top1": float((top5[:, 0] == lab).mean()), "top5": float((top5 == lab[:, None]).any(1).mean()),
                "count": int(mask.sum())}

    out = {"model": "squeezenet1_1 (ONNX-zoo ImageNet weights)", "dev_set": str(sh / "fixtures/imagenet_sample_dev"),
           "calibration": f"{len(calib_idx)} dev images (every 5th)", "fp32_bytes": len(fp32), "engines": {}}
    allmask = np.ones(n, bool)
    for k, lg in logits.items():
        lg = np.concatenate(lg)
        out["engines"][k] = {"all": scores(lg, allmask), "held_out": scores(lg, held)}
        if k != "fp32":
            ref = np.concatenate(logits["fp32"])
            out["engines"][k].update(bytes=results[k]["bytes"], quantize_s=results[k]["quantize_s"],
                                     top1_agreement_with_fp32=float((lg.argmax(1) == ref.argmax(1)).mean()))
    f = out["engines"]["fp32"]
    for k in results:
        e = out["engines"][k]
        e["top1_change_points_all"] = round(100 * (e["all"]["top1"] - f["all"]["top1"]), 2)
        e["top1_change_points_held_out"] = round(100 * (e["held_out"]["top1"] - f["held_out"]["top1"]), 2)
    return out


def speed(args) -> dict:
    import torch
    from squeezenet.data import shared_dir
    from squeezenet.runtime.bench import DEFAULT_ENGINES, run_benchmark
    from squeezenet.runtime.images import batches, image_dataset
    from squeezenet.runtime.reference import onnx_zoo_squeezenet1_1
    torch.set_num_threads(args.threads)
    model = onnx_zoo_squeezenet1_1()
    # int8 calibrated on real photos (every 10th of the dev sample), not bench's random images
    ds = image_dataset(shared_dir() / "fixtures/imagenet_sample_dev", preset="torchvision")
    calib = [x for x, _ in batches(ds, list(range(0, len(ds), 10)), 25)]
    return run_benchmark(model, "squeezenet1_1 (ONNX-zoo weights)", batches=(1, 32), threads=args.threads,
                         engines=DEFAULT_ENGINES + ("onnxruntime_int8",), calibration=calib,
                         rounds=args.rounds, iters=args.iters, memory=args.memory)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accuracy", action="store_true", help="int8 vs fp32 top-1 on the dev set instead of speed")
    p.add_argument("--methods", default="minmax", help="calibration methods for --accuracy (minmax,entropy,percentile)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--iters", type=int, default=6, help="batch-1 calls per engine per round")
    p.add_argument("--memory", choices=["subprocess", "inprocess"], default="subprocess")
    args = p.parse_args(argv)
    res = accuracy(args) if args.accuracy else speed(args)
    json.dump(res, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
