"""``squeezenet bench``: inference speed of every engine against torchvision eager."""
from __future__ import annotations

from ..errors import MAX_ITERATIONS, MAX_SGEMM_SIZE, MAX_THREADS
from ._common import add_parser, input_size, number

EXAMPLES = """  squeezenet bench                                  # squeezenet1_1, batch 1 and 32, 2 threads
  squeezenet bench --model squeezenet1_0 --threads 1 --json
  squeezenet bench runs/imagenet/best.safetensors --batch 1,8
  squeezenet bench --engines torchvision,eager,channels_last,torchscript,onnxruntime
  squeezenet bench m-int8.onnx --batch 1,8     # an exported file (ONNX Runtime) vs torchvision
  squeezenet bench m-int8.xml --batch 1,32     # an OpenVINO file (export --to openvino)

An exported file is timed as it is, in its runtime (engine "onnx_file", "openvino_file", "litert_file" or
"ncnn_file"), against torchvision eager of the architecture its metadata names (squeezenet
export writes it; the peer's weights are random).
"""


def _batches(value: str) -> list[int]:
    import argparse
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: give batch sizes like 1,32") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: batch sizes must be >= 1")
    from ..runtime.bench import MAX_BATCH
    if max(out) > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"{value!r}: batch sizes must be <= {MAX_BATCH:,}")
    return out


#: = squeezenet.runtime.bench.DEFAULT_ENGINES, spelled out so that --help needs no torch import
DEFAULT_ENGINES = ("torchvision", "eager", "auto", "onnxruntime")


def register(sub) -> None:
    p = add_parser(sub, "bench", "latency, throughput, memory and distance from the compute floor of "
                                 "each inference engine vs torchvision", EXAMPLES)
    p.add_argument("weights", nargs="?", metavar="MODEL", default=None, help="a model file or an exported .onnx (default: --model)")
    p.add_argument("--model", default=None, help="registered model name (default squeezenet1_1)")
    p.add_argument("--batch", type=_batches, default=[1, 32], help="batch sizes, e.g. 1,32 (latency at the "
                   "smallest)")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=2, help="threads for every engine (default 2)")
    p.add_argument("--input-size", type=input_size, default=None, help="input side (default: the model's own)")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                   help="comma list from torchvision, eager, auto, onnxruntime, channels_last, torchscript, "
                        "compile, openvino, onnxruntime_int8 (quantized here on random images: speed only; "
                        "time an exported int8 file instead)")
    p.add_argument("--rounds", type=number(int, 1, MAX_ITERATIONS), default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--iters", type=number(int, 1, MAX_ITERATIONS), default=6, help="calls per engine per round at the smallest batch")
    p.add_argument("--sgemm-size", type=number(int, 16, MAX_SGEMM_SIZE), default=2048, help="side of the sgemm that measures the floor")
    p.add_argument("--memory", choices=["subprocess", "inprocess"], default="subprocess",
                   help="peak memory per engine in its own process (default) or cheaply in this one")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr) over the phases")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import SqueezeNetError
    from ..runtime.bench import DEFAULT_ENGINES, EXTRA_ENGINES, run_benchmark
    from ._common import model_or_file, print_json
    from ._infer import is_exported, is_onnx
    if args.weights and args.model:
        raise SqueezeNetError("give a model file or --model NAME, not both")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    known = DEFAULT_ENGINES + EXTRA_ENGINES
    bad = [e for e in engines if e not in known]
    if bad or not engines:
        import difflib
        hint = [c for b in bad for c in difflib.get_close_matches(b, known, n=1, cutoff=0.4)]
        raise SqueezeNetError(f"--engines: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(known)}"
                              + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    extra = None
    if args.weights and (is_onnx(args.weights) or is_exported(args.weights)):
        model, name, extra = _onnx_file(args, engines)
        engines = [e for e in engines if e in ("torchvision", "eager")]
    elif args.weights:
        model, name = model_or_file(args.weights)
    else:
        model, name = model_or_file(args.model or "squeezenet1_1")
    r = run_benchmark(model, name, batches=args.batch, threads=args.threads, engines=engines,
                      input_size=args.input_size, rounds=args.rounds, iters=args.iters,
                      sgemm_n=args.sgemm_size, memory=args.memory, extra=extra, progress=not args.no_progress)
    if args.json:
        print_json(r)
        return 0
    print(f"{r['model']} at {r['input'][1]}x{r['input'][2]}, {r['threads']} threads, {r['cpu']}, "
          f"load average {', '.join(f'{v:.2f}' for v in r['load_average'] or [])}")
    print(f"sgemm {r['sgemm_gflops']} GFLOP/s -> floor {r['floor_ms_batch1']} ms at batch 1 "
          f"({(r['macs'] or 0) / 1e9:.3f} GMACs)")
    print(f"{'engine':<18}{'batch':>6}{'p50 ms':>10}{'p90 ms':>10}{'img/s':>10}{'peak MiB':>10}"
          f"{'floor':>8}{'vs tv':>8}")
    for row in r["results"]:
        sp = r["speedup_vs_torchvision"].get(row["engine"]) if row["batch"] == min(r["batches"]) else None
        mem = row.get("peak_extra_rss_mib")
        print(f"{row['engine']:<18}{row['batch']:>6}{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}"
              f"{row['images_per_s']:>10.1f}{'' if mem is None else f'{mem:.1f}':>10}"
              f"{row.get('floor_fraction', 0):>8.2f}{'' if sp is None else f'{sp:.2f}x':>8}")
    mem = {e: m["memory"] for e, m in r["engines"].items() if "memory" in m}
    if mem:
        print(f"peak RSS at batch {max(r['batches'])}, each engine in its own process (MiB, total / over the loaded model): "
              + ", ".join(f"{e} {m.get('peak_rss_mib')} / {m.get('extra_mib')}" for e, m in mem.items()))
    if "auto" in r["engines"]:
        print(f"auto picked: {r['engines']['auto'].get('picked')}")
    return 0


def _onnx_file(args, engines):
    """(peer-shaped model, name, {"<runtime>_file": callable}) for ``bench FILE`` (an exported
    .onnx, OpenVINO .xml, ncnn .param or LiteRT .tflite, run as it is in its runtime)."""
    from pathlib import Path

    from ..errors import FormatError, SqueezeNetError
    from ..models import SqueezeNet
    from ._infer import load_model
    onnx_model = load_model(args.weights, threads=args.threads, need_preprocess=False)
    if onnx_model.config is None:
        raise FormatError(args.weights, "no squeezenet config in its metadata (not written by 'squeezenet export'); "
                                        "bench times it against torchvision's SqueezeNet of that config")
    side = onnx_model.input_shape[2] if len(onnx_model.input_shape) == 4 else None
    if args.input_size is None and isinstance(side, int):
        args.input_size = side
    bad = [e for e in engines if e not in ("torchvision", "eager")]
    if args.engines != ",".join(DEFAULT_ENGINES) and bad:
        raise SqueezeNetError(f"--engines {','.join(bad)}: with an exported file only torchvision and eager "
                              f"(random weights, for timing) run beside the file")
    label = "onnx_file" if onnx_model.engine == "onnxruntime" else f"{onnx_model.engine}_file"
    return SqueezeNet(onnx_model.config).eval(), Path(args.weights).name, {label: onnx_model}
