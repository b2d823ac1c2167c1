"""``squeezenet export``: a model file (or registered name) to ONNX, optionally int8."""
from __future__ import annotations

from ._common import add_out, add_parser, hide_aliases, input_size, number

EXAMPLES = """  squeezenet export runs/imagenet/best.safetensors -o m.onnx
  squeezenet export model.sqz -o m.onnx                       # compressed models export dense
  squeezenet export m.safetensors -o m-int8.onnx --int8 --unlabeled photos/
  squeezenet export squeezenet_small -o small.onnx            # a registered name (random weights)
"""


def register(sub) -> None:
    p = add_parser(sub, "export", "export a model to ONNX (opset 17, dynamic batch, metadata), optionally int8",
                   EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="a model file (.safetensors, .sqz, ...) or a registered model name")
    add_out(p, dest="output", folder=False, help="output file (.onnx)")
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
    if Path(args.output).suffix.lower() != ".onnx":
        raise SqueezeNetError(f"-o {args.output}: give a path ending in .onnx")
    from ..io import atomic_write_bytes, check_output
    check_output(args.output, inputs=[args.model], overwrite=args.overwrite)   # before the work
    model, name = model_or_file(args.model)
    if args.preprocess:   # choose_preset: the one place a contradiction with the stored preset is refused
        import sys
        from ..data import choose_preset
        model.preprocess = choose_preset(getattr(model, "preprocess", None), args.preprocess, args.model,
                                         args.force_preprocess,
                                         lambda m: print(f"squeezenet: warning: {m}", file=sys.stderr))
    from ..interop.onnx_export import to_onnx_bytes
    from ..models import default_input_size
    size = args.input_size or default_input_size(model)
    data = to_onnx_bytes(model, input_size=size, opset=args.opset)
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
        data = quantize_int8(data, calib(), method=args.calibration_method,
                             reduce_range=not args.full_range)
        from ..data import base_dataset
        owner = base_dataset(ds)
        picked = {owner.samples[i][0] for i in idx} if hasattr(owner, "samples") else set()
        bad = len(picked & set(getattr(owner, "skipped", {})))
        note = (f", int8 from {len(idx) - bad} calibration images"
                f"{f' ({bad} unreadable skipped)' if bad else ''} ({fp32_size:,} bytes as fp32)")
    atomic_write_bytes(args.output, data)
    print(f"wrote {args.output}: {name} at {size}x{size}, {len(data):,} bytes{note}")
    if args.check:
        import torch
        from ..runtime import ort_session
        if args.int8:
            x, what = seen[0], f"{len(seen[0])} calibration images"
        else:
            x = torch.randn(2, getattr(model.config, "in_channels", 3), size, size,
                            generator=torch.Generator().manual_seed(0))
            what = "2 random inputs"
        with torch.no_grad():
            ref = model.eval()(x)
        out = torch.from_numpy(ort_session(data).run(None, {"input": x.numpy()})[0])
        print(f"check: max |onnxruntime - pytorch| = {float((out - ref).abs().max()):.3g}, "
              f"top-1 agreement {float((out.argmax(1) == ref.argmax(1)).float().mean()):.2f} on {what}")
    return 0


def _has_class_folders(spec) -> bool:
    from pathlib import Path
    p = Path(spec)
    return p.is_dir() and any(d.is_dir() for d in p.iterdir())
