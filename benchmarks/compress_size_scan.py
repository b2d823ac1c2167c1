"""Accuracy vs .sqz size of a model compressed without retraining: for each target size and
bit width, the pipeline's own target fit (paper pruning fractions scaled to fit, k-means
weight sharing, Huffman) is applied and the result evaluated. Prints JSON: per target, the
best bit width, its real encoded size and top-1; and the smallest target whose top-1 stays
within --points of the dense model. This is how to find "the smallest size within 1 point"
before spending retraining time on it.

    python benchmarks/compress_size_scan.py v11.safetensors --data ../shared/fixtures/imagenet_sample_dev \\
        --classes ../shared/fixtures/imagenet/synsets.txt --targets 660000,800000,900000,1000000 --bits 6,7,8
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--classes", default=None)
    ap.add_argument("--targets", required=True, help="comma-separated sizes in bytes")
    ap.add_argument("--bits", default="6,7,8")
    ap.add_argument("--prune", default="paper")
    ap.add_argument("--points", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=50)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    import squeezenet
    from squeezenet.compress import prune as P
    from squeezenet.compress.sizing import plain_at_size
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    model = squeezenet.load(args.weights).eval()
    val = make_loader(build_dataset(args.data, "test", preset=model.preprocess,
                                    classes=args.classes or model.classes), args.batch_size)
    t0 = time.time()
    dense = evaluate(model, val)["top1"]
    base = P.prune_fractions(model, args.prune)
    rows = []
    for target in [int(t) for t in args.targets.split(",")]:
        for b in [int(x) for x in args.bits.split(",")]:
            try:
                loaded, size, kept = plain_at_size(model, base, b, target)
            except squeezenet.SqueezeNetError as e:
                rows.append({"target": target, "bits": b, "error": str(e)})
                continue
            top1 = evaluate(loaded, val)["top1"]
            rows.append({"target": target, "bits": b, "bytes": size, "kept": round(kept, 4), "top1": top1})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    ok = [r for r in rows if "top1" in r and r["top1"] >= dense - args.points / 100 - 1e-9]
    best = min(ok, key=lambda r: r["bytes"]) if ok else None
    print(json.dumps({"weights": args.weights, "dense_top1": dense, "prune": args.prune, "rows": rows,
                      "smallest_within_points": best, "points": args.points,
                      "retraining": "none", "seconds": round(time.time() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
