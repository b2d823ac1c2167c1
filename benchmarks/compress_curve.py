"""Top-1 vs .sqz bytes of SqueezeNet 1.1, one line per method: plain k-means (Deep Compression
without retraining: the paper's pruning fractions scaled to fit, one bit width) and the mixed
path of ``squeezenet compress`` (knapsack bits and sparsity, error-compensated rounding,
straight-through distillation on --unlabeled photos). Writes CSV, JSON and PNG; prints the JSON.

    python benchmarks/compress_curve.py /work/runs/v11.safetensors \\
        --data ../shared/fixtures/imagenet_sample_dev --test-data ../shared/data/imagenet20/test.tar.gz \\
        --classes ../shared/fixtures/imagenet/synsets.txt --unlabeled ../shared/data/imagenet20/train.tar.gz \\
        --out benchmarks/results/compress_curve

Which split chose and which scored, per method:
* plain k-means: the bit width (of ``--plain-bits``) at each size is chosen on ``--data`` (dev);
  ``test_top1`` is scored on ``--test-data``, which chose nothing. ``dev_top1`` of this line is
  therefore the chosen width's (optimistic) figure.
* mixed: every step is chosen on held-out ``--unlabeled`` images (agreement with the dense
  model); both ``dev_top1`` and ``test_top1`` are scored on splits that chose nothing.
Each point is one ``squeezenet compress`` run (subprocess, ``--json``) at ``--target-size``
(the budget given is the ``target`` column, the file's size the ``bytes`` column), with its
wall and CPU seconds. Points accumulate in ``points.jsonl`` under ``--out``: a rerun skips the
points already there, so the (slow) mixed line can be filled in over several runs.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

PLAIN_TARGETS = (900_000, 800_000, 700_000, 620_000, 560_000, 500_000, 470_000, 400_000)
MIXED_TARGETS = (900_000, 700_000, 560_000, 470_000, 400_000)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--data", required=True, help="evaluation data of every run (dev)")
    ap.add_argument("--test-data", required=True, help="second scored split (chooses nothing)")
    ap.add_argument("--classes", default=None)
    ap.add_argument("--unlabeled", required=True)
    ap.add_argument("--plain-targets", default=",".join(map(str, PLAIN_TARGETS)))
    ap.add_argument("--mixed-targets", default=",".join(map(str, MIXED_TARGETS)))
    ap.add_argument("--plain-bits", default="5,6,7")
    ap.add_argument("--methods", default="plain,mixed")
    ap.add_argument("--out", default="benchmarks/results/compress_curve")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    import squeezenet
    from squeezenet.compress import prune as P
    from squeezenet.compress.sizing import plain_at_size
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pts_path = out / "points.jsonl"
    points = [json.loads(l) for l in pts_path.read_text().splitlines()] if pts_path.exists() else []
    done = {(p["method"], p["target"]) for p in points}

    def add(p):
        points.append(p)
        with open(pts_path, "a") as f:
            f.write(json.dumps(p) + "\n")
        print(json.dumps(p), file=sys.stderr, flush=True)

    model = squeezenet.load(args.weights).eval()
    classes = args.classes or model.classes
    dev = make_loader(build_dataset(args.data, "test", preset=model.preprocess, classes=classes), 50)
    test = make_loader(build_dataset(args.test_data, "test", preset=model.preprocess, classes=classes), 50)
    if ("dense", 0) not in done:
        add({"method": "dense", "target": 0, "bytes": Path(args.weights).stat().st_size,
             "dev_top1": evaluate(model, dev)["top1"], "test_top1": evaluate(model, test)["top1"]})
    dense = next(p for p in points if p["method"] == "dense")
    methods = args.methods.split(",")

    if "plain" in methods:
        base = P.prune_fractions(model, "paper")
        for target in [int(t) for t in args.plain_targets.split(",")]:
            if ("plain", target) in done:
                continue
            c0, w0 = time.process_time(), time.time()
            tried = []
            for b in [int(x) for x in args.plain_bits.split(",")]:
                try:
                    loaded, size, _ = plain_at_size(model, base, b, target)
                except squeezenet.SqueezeNetError:
                    continue
                tried.append({"bits": b, "bytes": size, "dev_top1": evaluate(loaded, dev)["top1"], "model": loaded})
            if not tried:
                continue
            best = max(tried, key=lambda t: t["dev_top1"])
            add({"method": "plain", "target": target, "bytes": best["bytes"], "bits": best["bits"],
                 "dev_top1": best["dev_top1"], "test_top1": evaluate(best["model"], test)["top1"],
                 "chosen_on": "dev (bit width)", "tried": [{k: v for k, v in t.items() if k != "model"} for t in tried],
                 "wall_s": round(time.time() - w0, 1), "cpu_s": round(time.process_time() - c0, 1)})

    if "mixed" in methods:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        for target in [int(t) for t in args.mixed_targets.split(",")]:
            if ("mixed", target) in done:
                continue
            sqz = out / f"mixed_{target}.sqz"
            cmd = [sys.executable, "-m", "squeezenet", "compress", args.weights, "--data", args.data,
                   "--unlabeled", args.unlabeled, "--target-size", str(target), "--json", "--no-progress",
                   "--threads", str(args.threads), "-o", str(sqz)] + (["--classes", args.classes] if args.classes else [])
            c0, w0 = _children_cpu(), time.time()
            with open(out / f"mixed_{target}.log", "w") as log:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            wall, cpu = time.time() - w0, _children_cpu() - c0
            if r.returncode != 0:
                add({"method": "mixed", "target": target, "error": f"exit {r.returncode} (see {log.name})"})
                continue
            rep = json.loads(r.stdout)
            final = rep["rows"][-1]
            loaded = squeezenet.load(sqz).eval()
            add({"method": "mixed", "target": target, "bytes": final["bytes"], "dev_top1": final["top1"],
                 "test_top1": evaluate(loaded, test)["top1"], "chosen_on": rep["chosen_on"],
                 "steps": {r_["stage"]: r_.get("method") for r_ in rep["rows"]}, "wall_s": round(wall, 1),
                 "cpu_s": round(cpu, 1), "load": os.getloadavg()[0]})

    rows = sorted((p for p in points if "bytes" in p and p["method"] != "dense"),
                  key=lambda p: (p["method"], -p["bytes"]))
    with open(out / "curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "target", "bytes", "dev_top1", "test_top1", "chosen_on", "wall_s", "cpu_s"])
        for p in rows:
            w.writerow([p["method"], p["target"], p["bytes"], p["dev_top1"], p["test_top1"], p.get("chosen_on", ""),
                        p.get("wall_s", ""), p.get("cpu_s", "")])
    summary = {"weights": args.weights, "dense": dense, "points": rows,
               "within_1_point_both": {m: min((p["bytes"] for p in rows if p["method"] == m
                                                and p["dev_top1"] >= dense["dev_top1"] - 0.01
                                                and p["test_top1"] >= dense["test_top1"] - 0.01), default=None)
                                       for m in ("plain", "mixed")}}
    (out / "curve.json").write_text(json.dumps(summary, indent=1))
    _plot(rows, dense, out / "curve.png")
    print(json.dumps(summary, indent=1))
    return 0


def _plot(rows, dense, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for ax, split in zip(axes, ("dev_top1", "test_top1")):
        for method, style in (("plain", "o--"), ("mixed", "s-")):
            ps = sorted((p for p in rows if p["method"] == method), key=lambda p: p["bytes"])
            if ps:
                ax.plot([p["bytes"] / 1000 for p in ps], [100 * p[split] for p in ps], style,
                        label="plain k-means" if method == "plain" else "mixed (knapsack + GPTQ + STE)")
        ax.axhline(100 * dense[split], color="gray", lw=0.8, label="dense fp32")
        ax.axhline(100 * dense[split] - 1, color="gray", lw=0.8, ls=":", label="dense - 1 point")
        ax.axvline(560, color="k", lw=0.5, ls=":")
        ax.invert_xaxis()
        ax.set_xlabel(".sqz size (KB)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title({"dev_top1": "imagenet_sample_dev (500)", "test_top1": "imagenet20/test (978)"}[split])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("SqueezeNet 1.1: top-1 vs compressed size (1000-way)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
