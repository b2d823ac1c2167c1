"""Load-to-runnable-model time of a .sqz vs the same model as fp32 safetensors, and the
Huffman decoder's throughput. Prints JSON; the ratio is measured in one run.

    python benchmarks/sqz_decode.py [--net PATH] [--repeats N] [--threads T]

Default model: the released Deep-Compression SqueezeNet (../shared/fixtures/deep_compression),
converted losslessly to .sqz; the safetensors copy holds the identical decoded weights.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _time(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    shared = Path(os.environ.get("SQUEEZENET_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default=str(shared / "fixtures/deep_compression/compressed_SqueezeNet.net"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import squeezenet
    from squeezenet.compress import huffman
    from squeezenet.interop.deep_compression import net_to_sqz, read_net
    with tempfile.TemporaryDirectory() as d:
        sqz_path, st_path = Path(d) / "dc.sqz", Path(d) / "dc.safetensors"
        info = net_to_sqz(args.net, sqz_path)
        model = squeezenet.load(sqz_path)
        squeezenet.save(model, st_path)
        x = torch.zeros(1, 3, 227, 227)

        def run(p):   # load and run one image: "load to runnable"
            with torch.inference_mode():
                squeezenet.load(p)(x)
        run(sqz_path), run(st_path)
        t_sqz = _time(lambda: run(sqz_path), args.repeats)
        t_st = _time(lambda: run(st_path), args.repeats)
        t_sqz_load = _time(lambda: squeezenet.load(sqz_path), args.repeats)
        t_st_load = _time(lambda: squeezenet.load(st_path), args.repeats)
        identical = all(torch.equal(a, b) for a, b in zip(squeezenet.load(sqz_path).state_dict().values(),
                                                           squeezenet.load(st_path).state_dict().values()))
        sizes = {"sqz": sqz_path.stat().st_size, "safetensors": st_path.stat().st_size,
                 "net": Path(args.net).stat().st_size}
    # Huffman decoder throughput on the .net's real code stream (all layers, one stream)
    codes = np.concatenate([l.codes for l in read_net(args.net)]).astype(np.int64)
    lengths = huffman.code_lengths(np.bincount(codes, minlength=256))
    data, nbits = huffman.encode(codes, lengths)
    buf = np.frombuffer(data, dtype=np.uint8)
    t_dec = _time(lambda: huffman.decode(buf, nbits, codes.size, lengths), args.repeats)
    assert np.array_equal(huffman.decode(buf, nbits, codes.size, lengths), codes)
    print(json.dumps({
        "model": "Deep-Compression SqueezeNet v1.0 (.net converted losslessly)",
        "bytes": sizes, "weights_identical": identical,
        "load_and_run_s": {"sqz": round(t_sqz, 4), "safetensors": round(t_st, 4)},
        "load_s": {"sqz": round(t_sqz_load, 4), "safetensors": round(t_st_load, 4)},
        "sqz_over_safetensors_load_ratio": round(t_sqz_load / t_st_load, 2),
        "sqz_over_safetensors_load_and_run_ratio": round(t_sqz / t_st, 2),
        "huffman_decode": {"symbols": int(codes.size), "bits": int(nbits), "seconds": round(t_dec, 4),
                           "symbols_per_s": round(codes.size / t_dec)},
        "threads": args.threads, "repeats": args.repeats, "sqz_parts": info["parts"]}, indent=2))


if __name__ == "__main__":
    main()
