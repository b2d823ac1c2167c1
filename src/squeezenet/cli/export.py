"""``squeezenet export``: a model file (or registered name) to ONNX, OpenVINO, ncnn or LiteRT, optionally int8."""
from __future__ import annotations

from ._common import add_out, add_parser, hide_aliases, input_size, number

EXAMPLES = """  squeezenet export runs/imagenet/best.safetensors -o m.onnx
  squeezenet export model.sqz -o m.onnx                       # compressed models export dense
  squeezenet export m.safetensors -o m-int8.onnx --int8 --unlabeled photos/
  squeezenet export squeezenet_small -o small.onnx            # a registered name (random weights)
  squeezenet export m.safetensors --to openvino -o m.xml       # OpenVINO IR (m.xml + m.bin)
  squeezenet export m.safetensors --to ncnn -o m.ncnn.param    # ncnn (m.ncnn.param + .bin + .json)
  squeezenet export m.safetensors --to litert -o m.tflite      # LiteRT/TFLite (metadata inside)
  squeezenet export m.safetensors -o m-int8.onnx --int8 --unlabeled photos/ --max-drop 0.5 \
      --accuracy-data labelled/     # keeps the most sensitive layers in float until within 0.5 points
"""

#: the output suffix of each --to format (= squeezenet.runtime.exported.FORMATS, spelled out so
#: that --help imports no runtime)
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "ncnn": ".param", "litert": ".tflite"}


def register(sub) -> None:
    p = add_parser(sub, "export", "export a model to ONNX (opset 17, dynamic batch, metadata), OpenVINO, "
                                  "ncnn or LiteRT, optionally int8", EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="a model file (.safetensors, .sqz, ...) or a registered model name")
    add_out(p, dest="output", folder=False, help="output file (.onnx; .xml for openvino, .param for ncnn, .tflite for litert)")
    p.add_argument("--to", choices=list(SUFFIXES), default="onnx",
                   help="format: onnx (default, ONNX Runtime), openvino (IR, pip install 'squeezenet[openvino]'), "
                        "ncnn (fp32 or int8, pip install 'squeezenet[ncnn]'), litert (.tflite, pip install "
                        "'squeezenet[litert]'); preset and classes travel in the file's metadata (ncnn: a side .json)")
    p.add_argument("--opset", type=number(int, 17), default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="square input side the graph is built for (default: the model's own)")
    p.add_argument("--int8", action="store_true",
                   help="static int8 quantization (QDQ, per-channel weights); needs --unlabeled")
    hide_aliases(p.add_argument("--unlabeled", "--calibration", dest="calibration", default=None, metavar="DATA",
                                help="images for int8 calibration (labels unused): a folder of images, with or "
                                     "without class folders, a .tar.gz or a dataset spec (as compress "
                                     "--unlabeled)"), "--calibration")
    hide_aliases(p.add_argument("--calibration-images", "--calibration-count", dest="calibration_count",
                                type=number(int, 1), default=100, metavar="N",
                                help="how many of them to calibrate on (spread over the set, default 100)"),
                 "--calibration-count")
    p.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="how activation ranges are set (default minmax)")
    p.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                   help="accuracy-controlled int8: keep the most sensitive layers in float until top-1 on "
                        "--accuracy-data is at most POINTS percentage points below fp32")
    p.add_argument("--accuracy-data", default=None,
                   help="labelled photos (class folders or a dataset spec) that --max-drop scores on "
                        "(default: --unlabeled when it has class folders)")
    p.add_argument("--accuracy-count", type=number(int, 1), default=500,
                   help="how many --accuracy-data photos to score on (spread over the set, default 500)")
    p.add_argument("--full-range", action="store_true",
                   help="8-bit weights instead of 7 (only for CPUs with VNNI: AVX2-only CPUs saturate)")
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help="caffe | torchvision | small: the preset the file's metadata records, for a model "
                        "that stores none (default: the model's own)")
    p.add_argument("--force-preprocess", action="store_true",
                   help="record --preprocess even where it contradicts the model file's stored preset")
    p.add_argument("--overwrite", action="store_true", help="allow -o to be the input file")
    p.add_argument("--check", action="store_true",
                   help="run the exported file with ONNX Runtime and compare with PyTorch")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path
    from ..errors import SqueezeNetError
    from ._common import model_or_file
    if args.int8 and not args.calibration:
        raise SqueezeNetError("--int8 needs --unlabeled DATA (calibration images like those the model will see)")
    if args.full_range and not args.int8:
        raise SqueezeNetError("--full-range is only used with --int8")
    if args.calibration and not args.int8:
        raise SqueezeNetError("--unlabeled (calibration images) is only used with --int8")
    if args.max_drop is not None and not args.int8:
        raise SqueezeNetError("--max-drop is only used with --int8")
    if args.max_drop is not None and not args.max_drop >= 0:
        raise SqueezeNetError(f"--max-drop {args.max_drop}: give points >= 0")
    if args.accuracy_data and args.max_drop is None:
        raise SqueezeNetError("--accuracy-data is only used with --max-drop")
    want = SUFFIXES[args.to]
    if Path(args.output).suffix.lower() != want:
        raise SqueezeNetError(f"-o {args.output}: give a path ending in {want} for --to {args.to}")
    if args.to != "onnx":
        from ..runtime.exported import require
        require(args.to)   # not installed: say how, before the work
    from ..io import atomic_write_bytes, check_output
    outputs = [args.output]
    if args.to != "onnx":
        from ..runtime.exported import output_files
        outputs = output_files(args.to, args.output)
    for out in outputs:
        check_output(out, inputs=[args.model], overwrite=args.overwrite)   # before the work
    if args.max_drop is not None and not (args.accuracy_data or _has_class_folders(args.calibration)):
        raise SqueezeNetError("--max-drop needs labelled photos: give --accuracy-data DATA (class folders)")
    model, name = model_or_file(args.model)
    if args.preprocess:   # choose_preset: the one place a contradiction with the stored preset is refused
        import sys
        from ..data import choose_preset
        model.preprocess = choose_preset(getattr(model, "preprocess", None), args.preprocess, args.model,
                                         args.force_preprocess,
                                         lambda m: print(f"squeezenet: warning: {m}", file=sys.stderr))
    from ..interop.onnx_export import to_onnx_bytes
    from ..data import input_size_for
    h, w = (args.input_size,) * 2 if args.input_size else input_size_for(model)[1:]   # the one input-size rule
    data = fp32_data = to_onnx_bytes(model, input_size=(h, w), opset=args.opset)
    note = ""
    if args.int8:
        from ..data import preset_for
        from ..runtime.images import batches, image_dataset, take
        from ..runtime.quantize import quantize_int8
        ds = image_dataset(args.calibration, preset=preset_for(model),
                           classes=getattr(model, "classes", None) if _has_class_folders(args.calibration) else None)
        if len(ds) == 0:
            raise SqueezeNetError(f"{args.calibration}: no images found for calibration")
        idx = take(ds, args.calibration_count)
        fp32_size = len(data)
        seen = []

        def calib():
            for x, _ in batches(ds, idx, 16):
                if not seen:
                    seen.append(x[:8])  # kept for --check: int8 is judged on real images
                yield x
        if args.max_drop is None:
            data = quantize_int8(data, calib(), method=args.calibration_method,
                                 reduce_range=not args.full_range)
        else:
            data, report, scored = _within(args, model, data, calib())
        from ..data import base_dataset
        owner = base_dataset(ds)
        picked = {owner.samples[i][0] for i in idx} if hasattr(owner, "samples") else set()
        bad = len(picked & set(getattr(owner, "skipped", {})))
        note = (f", int8 from {len(idx) - bad} calibration images"
                f"{f' ({bad} unreadable skipped)' if bad else ''} ({fp32_size:,} bytes as fp32)")
        if args.max_drop is not None:
            kept = report["float_layers"]
            note += (f"; top-1 {report['int8_top1']:.2f} % vs fp32 {report['fp32_top1']:.2f} % on "
                     f"{report['images']} photos (drop {report['drop_points']:.2f} points, bound {args.max_drop}"
                     f"{'' if report['within'] else ', NOT reached with every layer in float'}), "
                     f"{len(kept)} of {report['layers']} layers kept in float"
                     + (f": {', '.join(kept)}" if kept else ""))
    if args.to == "onnx":
        atomic_write_bytes(args.output, data)
        written = f"{len(data):,} bytes"
    else:
        from ..runtime.exported import export_to
        files = export_to(args.to, data, args.output, fp32_bytes=fp32_data if args.int8 else None)
        written = (f"{sum(f.stat().st_size for f in files):,} bytes in {', '.join(f.name for f in files)} "
                   f"({args.to}, from {len(data):,} bytes of ONNX)")
    if args.max_drop is not None and args.to != "onnx":   # the bound was met in ONNX Runtime: say what this runtime gives
        note += _runtime_drop(args, scored, report)
    print(f"wrote {args.output}: {name} at {h}x{w}, {written}{note}")
    if args.check:
        import torch
        from ..runtime import ort_session
        if args.int8:
            x, what = seen[0], f"{len(seen[0])} calibration images"
        else:
            x = torch.randn(2, getattr(model.config, "in_channels", 3), h, w,
                            generator=torch.Generator().manual_seed(0))
            what = "2 random inputs"
        with torch.no_grad():
            ref = model.eval()(x)
        if args.to == "onnx":
            out, runtime = torch.from_numpy(ort_session(data).run(None, {"input": x.numpy()})[0]), "onnxruntime"
        else:
            from ..runtime.exported import load_exported
            out, runtime = load_exported(args.output, need_preprocess=False)(x), args.to
        print(f"check: max |{runtime} - pytorch| = {float((out - ref).abs().max()):.3g}, "
              f"top-1 agreement {float((out.argmax(1) == ref.argmax(1)).float().mean()):.2f} on {what}")
    return 0


def _within(args, model, fp32: bytes, calibration):
    """Accuracy-controlled int8 (``--max-drop``) scored on the labelled ``--accuracy-data``."""
    import sys

    import torch

    from ..data import preset_for
    from ..errors import SqueezeNetError
    from ..runtime.images import batches, image_dataset, take
    from ..runtime.quantize import quantize_within
    spec = args.accuracy_data or args.calibration
    ds = image_dataset(spec, preset=preset_for(model), classes=getattr(model, "classes", None))
    xs, ys = [], []
    for x, y in batches(ds, take(ds, args.accuracy_count), 32):
        xs.append(x)
        ys.append(y)
    if not xs:
        raise SqueezeNetError(f"{spec}: no readable labelled photos for --max-drop")
    x, y = torch.cat(xs), torch.cat(ys)
    data, report = quantize_within(fp32, calibration, x, y, args.max_drop,
                                   method=args.calibration_method, reduce_range=not args.full_range,
                                   log=lambda m: print(m, file=sys.stderr, flush=True))
    return data, report, (x, y)


def _runtime_drop(args, scored, report) -> str:
    """``--max-drop`` chooses the float layers in ONNX Runtime; the written OpenVINO, ncnn or
    LiteRT file rounds its own way: its top-1 on the same photos, and its drop from fp32."""
    import torch

    from ..runtime.exported import load_exported
    from ..runtime.quantize import batched_logits, top1_percent
    x, y = scored
    with torch.no_grad():
        top1 = top1_percent(batched_logits(load_exported(args.output, need_preprocess=False), x, 32), y)
    return (f"; in {args.to} itself: top-1 {top1:.2f} % on the same photos "
            f"(drop {report['fp32_top1'] - top1:.2f} points)")


def _has_class_folders(spec) -> bool:
    from pathlib import Path
    if spec is None:
        return False
    p = Path(spec)
    return p.is_dir() and any(d.is_dir() for d in p.iterdir())
