"""``squeezenet demo``: the main job on the built-in default (scikit-learn's digits).

Trains the small-image SqueezeNet on digits, compresses it with Deep Compression into a
``.sqz`` file, reloads that file, evaluates it and prints the Table-2 style report.
"""
from __future__ import annotations

from ..errors import MAX_THREADS
from ._common import add_out, add_parser, number

EXAMPLES = """  squeezenet demo                       # writes runs/demo/
  squeezenet demo -o /tmp/demo --skip-compress
  squeezenet demo --max-steps 20        # a quick look: 20 steps of training and of each retraining
  squeezenet demo --overwrite           # again into runs/demo: replaces the earlier demo's files

A non-empty output folder is refused (an earlier demo's checkpoints are kept): --overwrite
replaces the files the demo writes there (nothing else), or give another -o.
Ctrl-C (or SIGTERM) ends the whole job with exit status 130; run it again with --overwrite.
"""


def register(sub) -> None:
    p = add_parser(sub, "demo", "train on the built-in digits, compress to .sqz, reload and evaluate",
                   EXAMPLES)
    add_out(p, default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--overwrite", action="store_true",
                   help="the output folder holds an earlier demo: replace its checkpoints, metrics and .sqz "
                        "(nothing else)")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=None, help="torch threads (default: all cores)")
    p.add_argument("--skip-compress", action="store_true", help="only train and evaluate")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop training, and each compression retraining stage, after N steps (a quick look)")
    p.set_defaults(func=run, run_folder="out")


def run(args) -> int:
    import signal

    from ..errors import SqueezeNetError
    if args.max_steps is not None and args.max_steps < 1:
        raise SqueezeNetError(f"--max-steps {args.max_steps}: must be >= 1")
    from ._common import output_folder
    output_folder(args.out, overwrite=args.overwrite, clear=_clear_demo)   # before any work

    def stop(signum, frame):   # SIGTERM as Ctrl-C: the CLI ends the job with one line, exit 130
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, stop)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, old)


def _clear_demo(out) -> list[str]:
    """What a demo writes in its folder: the run's files and the .sqz of its last checkpoint."""
    from ..train.checkpoint import clear_run
    removed = clear_run(out)
    sqz = out / "last.sqz"
    if sqz.is_file():
        sqz.unlink()
        removed.append(sqz.name)
    return removed


def _run(args) -> int:
    from ..train.demo import run_digits_demo
    print("== 1/2 train: squeezenet_small on scikit-learn digits", flush=True)
    steps = {"max_steps": args.max_steps} if args.max_steps else {}
    r = run_digits_demo(args.out, threads=args.threads, **steps)
    if args.skip_compress:
        return 0
    print("\n== 2/2 compress: prune -> retrain -> k-means quantize -> retrain centroids -> Huffman",
          flush=True)
    from ..compress.demo import compress_demo
    c = compress_demo(r["checkpoint"], args.out, max_steps=args.max_steps)
    print(f"\nsummary: digits top-1 {100 * r['top1']:.2f} % dense ({r['seconds']:.0f} s training); "
          f"{c['sqz']} is {c['ratio_vs_fp32']:.1f}x smaller than fp32 with top-1 "
          f"{100 * c['reloaded']['top1']:.2f} % after reloading", flush=True)
    return 0
