"""Load time of a .sqz vs the same model as fp32 safetensors, cold and warm, and the Huffman
decoder's throughput. Prints JSON; every ratio is against a peer measured in the same run.

    python benchmarks/sqz_decode.py [--net PATH] [--repeats N] [--cold-repeats N] [--threads T]

Default model: the released Deep-Compression SqueezeNet (../shared/fixtures/deep_compression),
converted losslessly to .sqz; the safetensors copy holds the identical decoded weights (fp32).

* ``cold``: a fresh interpreter that has already imported torch (the common baseline: torch's
  own import is the same for both formats) runs ``import squeezenet`` and then
  ``squeezenet.load(path)``; CPU time (``time.process_time``) and wall time of each part,
  median over ``--cold-repeats`` fresh processes, the two formats interleaved.
  ``load_*`` includes every squeezenet import the load triggers; ``import_*`` is
  ``import squeezenet`` alone. Python byte-code is cached (as for an installed package:
  a private ``PYTHONPYCACHEPREFIX``, filled by an untimed first run);
  ``cold_no_bytecode_cache`` is the same with ``PYTHONDONTWRITEBYTECODE=1`` and no cache,
  so every project module is compiled at import.
* ``warm``: the second and later loads in one process (median of ``--repeats``).
* ``load_and_run_s``: warm load plus one 227x227 forward pass.
* ``decode_all_streams_cpu_s``: ``huffman.decode_many`` on the 35 streams of the file.
* ``targets``: cold .sqz load <= 0.3 s of CPU; warm .sqz load <= 2x safetensors' (CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

COLD = """
import sys, time, json
import torch
torch.set_num_threads({threads})
c0, w0 = time.process_time(), time.perf_counter()
import squeezenet
c1, w1 = time.process_time(), time.perf_counter()
m = squeezenet.load(sys.argv[1])
c2, w2 = time.process_time(), time.perf_counter()
assert not m.training
print(json.dumps({{"import_cpu": c1 - c0, "import_wall": w1 - w0,
                  "load_cpu": c2 - c1, "load_wall": w2 - w1}}))
"""


def _time(fn, repeats):
    """Median (CPU seconds, wall seconds) of ``fn()``."""
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)


def _cold(paths: dict, repeats: int, threads: int, pycache: str | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if pycache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    code = COLD.format(threads=threads)
    runs = {k: [] for k in paths}
    if pycache:   # fill the byte-code cache (untimed)
        for p in paths.values():
            subprocess.run([sys.executable, "-c", code, str(p)], env=env, check=True, capture_output=True)
    for _ in range(repeats):
        for k, p in paths.items():   # interleaved: machine load hits both formats alike
            out = subprocess.run([sys.executable, "-c", code, str(p)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            runs[k].append(json.loads(out.strip().splitlines()[-1]))
    return {k: {f: round(statistics.median(r[f] for r in rs), 4) for f in rs[0]} for k, rs in runs.items()}


def _streams(path) -> list:
    """Every Huffman stream of a .sqz, as huffman.decode_many takes them."""
    from squeezenet.io import huffman, sqz
    r = sqz._Reader(path)
    out = []
    for rec in r.header["layers"]:
        for key in ("codes", "positions"):
            s = rec[key]
            if s is not None:
                count = rec["count"] if key == "codes" else -(-rec["count"] // s["group"])
                lengths = huffman.unpack_lengths(np.frombuffer(r.part(s["lengths"], key), np.uint8),
                                                 s["alphabet"])
                out.append((np.frombuffer(r.part(s["data"], key), np.uint8), s["nbits"], count, lengths))
    return out


def main() -> None:
    shared = Path(os.environ.get("SQUEEZENET_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default=str(shared / "fixtures/deep_compression/compressed_SqueezeNet.net"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--cold-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import squeezenet
    from squeezenet.io import huffman
    from squeezenet.interop.deep_compression import net_to_sqz, read_net
    with tempfile.TemporaryDirectory() as d:
        sqz_path, st_path = Path(d) / "dc.sqz", Path(d) / "dc.safetensors"
        info = net_to_sqz(args.net, sqz_path)
        model = squeezenet.load(sqz_path)
        squeezenet.save(model, st_path)
        paths = {"sqz": sqz_path, "safetensors": st_path}
        cold = _cold(paths, args.cold_repeats, args.threads, str(Path(d) / "pycache"))
        cold_nocache = _cold(paths, args.cold_repeats, args.threads, None)
        x = torch.zeros(1, 3, 227, 227)

        def run(p):   # load and run one image: "load to runnable"
            with torch.inference_mode():
                squeezenet.load(p)(x)
        run(sqz_path), run(st_path)
        t_sqz = _time(lambda: run(sqz_path), args.repeats)
        t_st = _time(lambda: run(st_path), args.repeats)
        w_sqz = _time(lambda: squeezenet.load(sqz_path), args.repeats)
        w_st = _time(lambda: squeezenet.load(st_path), args.repeats)
        sd = squeezenet.load(sqz_path).state_dict()
        identical = all(torch.equal(a, b) for a, b in zip(sd.values(),
                                                           squeezenet.load(st_path).state_dict().values()))
        net = read_net(args.net)   # the .net reader: the reference decoding of the released file
        identical_to_net = all(np.array_equal(sd[l.name].numpy(), l.weight()) and
                               np.array_equal(sd[l.name[:-len("weight")] + "bias"].numpy(), l.bias)
                               for l in net)
        sizes = {"sqz": sqz_path.stat().st_size, "safetensors": st_path.stat().st_size,
                 "net": Path(args.net).stat().st_size}
        streams = _streams(sqz_path)
        many = getattr(huffman, "decode_many", lambda ss: [huffman.decode(*s) for s in ss])
        t_all = _time(lambda: many(streams), args.repeats)[0]
    # Huffman decoder throughput on the .net's real code stream (all layers, one stream)
    codes = np.concatenate([l.codes for l in net]).astype(np.int64)
    lengths = huffman.code_lengths(np.bincount(codes, minlength=256))
    data, nbits = huffman.encode(codes, lengths)
    buf = np.frombuffer(data, dtype=np.uint8)
    t_dec = _time(lambda: huffman.decode(buf, nbits, codes.size, lengths), args.repeats)[0]
    assert np.array_equal(huffman.decode(buf, nbits, codes.size, lengths), codes)
    r4 = lambda v: round(v, 4)  # noqa: E731
    print(json.dumps({
        "model": "Deep-Compression SqueezeNet v1.0 (.net converted losslessly)",
        "bytes": sizes, "weights_identical": identical, "weights_identical_to_net_reader": identical_to_net,
        "cold": cold,
        "cold_sqz_over_safetensors_load_cpu_ratio": round(cold["sqz"]["load_cpu"] / cold["safetensors"]["load_cpu"], 2),
        "cold_no_bytecode_cache": cold_nocache,
        "cold_no_bytecode_cache_sqz_over_safetensors_load_cpu_ratio":
            round(cold_nocache["sqz"]["load_cpu"] / cold_nocache["safetensors"]["load_cpu"], 2),
        "warm_load_cpu_s": {"sqz": r4(w_sqz[0]), "safetensors": r4(w_st[0])},
        "warm_load_s": {"sqz": r4(w_sqz[1]), "safetensors": r4(w_st[1])},
        "warm_sqz_over_safetensors_load_cpu_ratio": round(w_sqz[0] / w_st[0], 2),
        "warm_sqz_over_safetensors_load_ratio": round(w_sqz[1] / w_st[1], 2),
        "load_and_run_s": {"sqz": r4(t_sqz[1]), "safetensors": r4(t_st[1])},
        "sqz_over_safetensors_load_and_run_ratio": round(t_sqz[1] / t_st[1], 2),
        "decode_all_streams_cpu_s": r4(t_all),
        "huffman_decode": {"symbols": int(codes.size), "bits": int(nbits), "cpu_seconds": r4(t_dec),
                           "symbols_per_cpu_s": round(codes.size / t_dec)},
        "targets": {"cold_sqz_load_cpu_le_0.3s": cold["sqz"]["load_cpu"] <= 0.3,
                    "cold_sqz_load_cpu_le_0.3s_no_bytecode_cache": cold_nocache["sqz"]["load_cpu"] <= 0.3,
                    "warm_sqz_load_cpu_le_2x_safetensors": w_sqz[0] <= 2 * w_st[0]},
        "threads": args.threads, "repeats": args.repeats, "cold_repeats": args.cold_repeats,
        "sqz_parts": info["parts"]}, indent=2))


if __name__ == "__main__":
    main()
