"""Fine-tune the released SqueezeNet 1.1 on your own classes, then compress and ship it: the
issue-12 path measured command by command on imagenet20. Prints JSON.

DIR must hold ``train/`` and ``test/`` with the SAME class folders under names of the user's
own (not wnids), e.g. symlinks ``DIR/train/my_tench -> imagenet20/train/n01440764``. Every step
is the CLI command a user types (run as a child process, its wall and CPU seconds recorded with
the load average):

1. ``train --model WEIGHTS --data DIR --out W/full`` (no other flag: recipe finetune, ``best``
   chosen on 10 % of each class held out of ``train/``; the README's figures were measured
   before that default, training on all of ``train/`` as ``--val-split 0`` does now)
2. ``train --model WEIGHTS --data DIR --out W/probe --freeze features`` (linear probe)
3. ``eval`` of both on ``DIR/test`` (the figure is ``last.safetensors``, which no validation
   chose)
4. ``compress W/full/last.safetensors --data DIR`` (retraining on the same labels) and its eval
5. ``export --int8`` of the fine-tuned model and of the ``.sqz``, and ``eval`` of each ONNX file
6. the baseline of the same run: the released model restricted to the 20 classes' logits
   (``--head keep`` on wnid folders: ``--classes`` maps DIR's names via ``--wnids``)

Settings were chosen on held-out train photos (see ``squeezenet/train/recipes.py``); ``test/``
only scores. A step whose output is already in W is not rerun (its figures are read back).

    OMP_NUM_THREADS=1 python benchmarks/finetune_imagenet20.py v11.safetensors --data DIR --work W \\
        --wnids WNID_DATA
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path


def child_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def baseline(weights: str, wnids: str) -> dict:
    """The released model on the wnid copy of the test photos: its 1000-way argmax, and its
    logits restricted to the data's classes (conv10 keeping those rows: ``--head keep``)."""
    import torch

    import squeezenet
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    from squeezenet.train.finetune import transfer_head
    w, c = time.perf_counter(), time.process_time()
    base = squeezenet.load(weights).eval()
    test = build_dataset(wnids, "test", preset=base.preprocess)
    loader = make_loader(test, 100)
    rows = torch.tensor([base.classes.index(k) for k in test.classes])
    hit = n = 0
    with torch.inference_mode():
        for x, y in loader:
            hit += int((base(x).argmax(1) == rows[y]).sum())
            n += len(y)
    transfer_head(base, test.classes, mode="keep")
    return {"restricted_top1": round(100 * evaluate(base, loader)["top1"], 2), "top1_1000way": round(100 * hit / n, 2),
            "images": n, "wall_s": round(time.perf_counter() - w, 1), "cpu_s": round(time.process_time() - c, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--data", required=True, help="folder with train/ and test/ class folders under user names")
    ap.add_argument("--wnids", default=None, help="the same data with wnid folders (for the restricted baseline)")
    ap.add_argument("--work", required=True, help="folder for the runs (steps already done are read back)")
    ap.add_argument("--compress-args", default="--target-size 290000 --optimizer adamw --lr 3e-4",
                    help="extra flags of the compress step")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: full,probe,compress,int8,baseline")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    py = [sys.executable, "-m", "squeezenet"]
    steps_file = work / "steps.json"
    steps = json.loads(steps_file.read_text()) if steps_file.is_file() else {}

    def step(name, cmd, done: Path | None = None):
        if name in steps and (done is None or done.exists()):
            return steps[name]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(map(str, cmd))}", file=sys.stderr, flush=True)
        load0 = os.getloadavg()
        w, c = time.perf_counter(), child_cpu_s()
        p = subprocess.run([str(x) for x in cmd], capture_output=True, text=True)
        rec = {"cmd": " ".join(map(str, cmd[2:])).replace(sys.executable, "python"), "rc": p.returncode,
               "wall_s": round(time.perf_counter() - w, 1), "cpu_s": round(child_cpu_s() - c, 1),
               "load_start": [round(x, 2) for x in load0], "load_end": [round(x, 2) for x in os.getloadavg()],
               "stdout_tail": p.stdout.strip().splitlines()[-6:]}
        if p.returncode:
            rec["stderr_tail"] = p.stderr.strip().splitlines()[-5:]
        steps[name] = rec
        steps_file.write_text(json.dumps(steps, indent=1))
        print(json.dumps({name: rec}), file=sys.stderr, flush=True)
        return rec

    def top1(rec) -> float | None:
        for line in rec.get("stdout_tail", []):
            m = re.search(r"top-1 (\d+(?:\.\d+)?) ?%", line)
            if m:
                return float(m.group(1))
        return None

    out = {"weights": args.weights, "data": args.data, "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
           "scored_on": "DIR/test (978 ImageNet validation photos); settings chosen on held-out train photos"}
    full, probe = work / "full", work / "probe"
    if "full" not in skip:
        r = step("train_full", [*py, "train", "--model", args.weights, "--data", args.data, "--out", full],
                 full / "last.safetensors")
        e = step("eval_full", [*py, "eval", full / "last.safetensors", "--data", args.data])
        out["finetune"] = {"train": r, "eval": e, "top1": top1(e)}
    if "probe" not in skip:
        r = step("train_probe", [*py, "train", "--model", args.weights, "--data", args.data, "--out", probe,
                                 "--freeze", "features"], probe / "last.safetensors")
        e = step("eval_probe", [*py, "eval", probe / "last.safetensors", "--data", args.data])
        out["probe"] = {"train": r, "eval": e, "top1": top1(e)}
    if "baseline" not in skip and args.wnids:
        out["released"] = steps.get("baseline") or baseline(args.weights, args.wnids)
        steps["baseline"] = out["released"]
        steps_file.write_text(json.dumps(steps, indent=1))
    if "compress" not in skip:
        sqz = work / "full.sqz"
        r = step("compress", [*py, "compress", full / "last.safetensors", "--data", args.data, "-o", sqz,
                              *args.compress_args.split()], sqz)
        e = step("eval_sqz", [*py, "eval", sqz, "--data", args.data])
        fp32 = (full / "last.safetensors").stat().st_size if (full / "last.safetensors").exists() else None
        out["compressed"] = {"compress": r, "eval": e, "top1": top1(e), "sqz_bytes": sqz.stat().st_size if sqz.exists() else None,
                             "fp32_safetensors_bytes": fp32}
    if "int8" not in skip:
        onnx = work / "full_int8.onnx"
        r = step("export_int8", [*py, "export", full / "last.safetensors", "-o", onnx, "--int8",
                                 "--unlabeled", args.data], onnx)
        e = step("eval_int8", [*py, "eval", onnx, "--data", args.data])
        out["int8"] = {"export": r, "eval": e, "top1": top1(e), "onnx_bytes": onnx.stat().st_size if onnx.exists() else None}
        sqz, onnx = work / "full.sqz", work / "full_sqz_int8.onnx"
        if sqz.exists():
            r = step("export_int8_sqz", [*py, "export", sqz, "-o", onnx, "--int8", "--unlabeled", args.data], onnx)
            e = step("eval_int8_sqz", [*py, "eval", onnx, "--data", args.data])
            out["sqz_int8"] = {"export": r, "eval": e, "top1": top1(e),
                               "onnx_bytes": onnx.stat().st_size if onnx.exists() else None}
    summary = {k: out[k]["top1"] for k in ("finetune", "probe", "compressed", "int8", "sqz_int8") if k in out}
    for k in ("finetune", "probe"):
        if k in out:
            summary[f"{k}_train_wall_s"] = out[k]["train"]["wall_s"]
            summary[f"{k}_train_cpu_s"] = out[k]["train"]["cpu_s"]
    if "released" in out:
        summary["released_restricted_top1"] = out["released"]["restricted_top1"]
        summary["released_1000way_top1"] = out["released"]["top1_1000way"]
    if "compressed" in out and out["compressed"]["sqz_bytes"]:
        import squeezenet
        n = sum(p.numel() for p in squeezenet.load(full / "last.safetensors").parameters())
        summary["fp32_bytes"] = 4 * n
        summary["sqz_bytes"] = out["compressed"]["sqz_bytes"]
        summary["sqz_ratio_vs_fp32"] = round(4 * n / out["compressed"]["sqz_bytes"], 2)
    out["summary"] = summary
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
