"""``squeezenet explore sweep|search|report``: design-space exploration (paper section 5)."""
from __future__ import annotations

import argparse

from ..errors import MAX_SEED, MAX_THREADS
from ._common import add_out, add_parser, number

EXAMPLES = """  squeezenet explore sweep --param SR --values 0.125,0.25,0.5,0.75,1.0 --data digits --epochs 8 --out runs/sr
  squeezenet explore sweep --param pct_3x3 --values 0.01,0.25,0.5,0.75,0.99 --data cifar10 --epochs 2 \\
      --train-subset 5000 --set base_e=32,incr_e=32 --out runs/pct
  squeezenet explore search --strategy anneal --trials 20 --data digits --epochs 1 \\
      --storage runs/explore.db --study small --size-budget 400000 --seed 0
  squeezenet explore search --strategy bayes --trials 100 --data cifar10 --epochs 2 \\
      --storage postgresql://me@dbhost/explore --study cifar      # run on many machines at once
  squeezenet explore report --storage runs/explore.db --study small --out runs/report
"""


def _budget_args(p, *, storage: bool) -> None:
    p.add_argument("--data", default="digits", help="dataset: digits, cifar10, a folder or .tar.gz (default digits)")
    p.add_argument("--epochs", type=float, default=1.0, help="training epochs per network (default 1)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each training after this many steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw",
                   help="adamw (default): the digits demo recipe (AdamW lr 1e-3, wd 5e-4, poly to 0, label "
                        "smoothing 0.1), trains in a few epochs; sgd: the paper's recipe")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--init", choices=["alive", "lsuv", "torchvision", "paper"], default="alive",
                   help="weight init (default alive: kaiming, conv10 bias 1)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="training augmentation (default on; digits: the demo's affine warp)")
    p.add_argument("--batch-norm", action="store_true",
                   help="networks with BatchNorm after every conv but conv10 (not the paper's; "
                        "short budgets then rank networks by more than how fast they start learning)")
    p.add_argument("--train-subset", type=int, default=None, metavar="N", help="train on N images (fixed subset)")
    p.add_argument("--test-subset", type=int, default=None, metavar="N", help="evaluate on N images")
    p.add_argument("--seed", type=number(int, 0, MAX_SEED), default=0,
                   help="strategy seed (search; give workers different ones) or training seed (sweep)")
    p.add_argument("--threads", type=number(int, 1, MAX_THREADS), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no bar (on stderr) while each network trains")


def register(sub) -> None:
    p = add_parser(sub, "explore", "design-space exploration: sweeps, searches, reports", EXAMPLES)
    esub = p.add_subparsers(dest="explore_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = add_parser(esub, "sweep", "train one network per value of SR or pct_3x3 (paper Figure 3)", EXAMPLES)
    s.add_argument("--param", required=True, help="SR, pct_3x3 (or base_e, incr_e, freq)")
    s.add_argument("--values", required=True, help="comma-separated values, e.g. 0.125,0.25,0.5,0.75,1.0")
    s.add_argument("--model", default="squeezenet_small", help="base network (default squeezenet_small)")
    s.add_argument("--set", default="", metavar="K=V,...",
                   help="fix other metaparameters, e.g. base_e=32,incr_e=32 (default: v1.0's)")
    add_out(s, help="folder for sweep_<param>.csv and .png (a non-empty one needs --overwrite)")
    s.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder, replacing "
                                                            "the sweep's files")
    _budget_args(s, storage=False)
    s.set_defaults(func=run_sweep, run_folder="out")

    q = add_parser(esub, "search", "search the space; many processes may share one --study", EXAMPLES)
    q.add_argument("--strategy", required=True, help="random, anneal, genetic or bayes")
    q.add_argument("--trials", type=number(int, 1), required=True, help="stop when the study holds N trained trials")
    q.add_argument("--storage", default="explore.db",
                   help="Optuna RDB URL (sqlite:///FILE, postgresql://...) or a SQLite file path")
    q.add_argument("--study", required=True, help="study name (workers with the same name share it)")
    q.add_argument("--space", default=None, help="space file (YAML; default: the paper's space)")
    q.add_argument("--size-budget", type=number(int, 1), default=None, metavar="BYTES",
                   help="networks larger than this are pruned untrained; objective becomes accuracy")
    q.add_argument("--objective", choices=["pareto", "accuracy"], default=None,
                   help="pareto: (top-1, size); accuracy: top-1 (default: accuracy with --size-budget)")
    q.add_argument("--train-seed", type=number(int, 0, MAX_SEED), default=0,
                   help="seed for weight init and data order of every trial (same for all workers)")
    q.add_argument("--heartbeat", type=number(float, 1, 86400), default=30.0, metavar="S",
                   help="seconds between heartbeats; a trial silent for 2x this is marked failed")
    _budget_args(q, storage=True)
    q.set_defaults(func=run_search)

    r = add_parser(esub, "report", "best trials and Pareto front of a study (pareto.csv, pareto.png)", EXAMPLES)
    r.add_argument("--storage", default="explore.db", help="Optuna RDB URL or SQLite file path")
    r.add_argument("--study", required=True)
    add_out(r, required=False, help="folder for pareto.csv, pareto.png, trials.csv (a non-empty one needs "
                                    "--overwrite)")
    r.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder, replacing "
                                                            "the report's files")
    r.add_argument("--top", type=number(int, 1), default=5, help="how many best trials to list")
    r.set_defaults(func=run_report, run_folder="out")


def _budget(args):
    from ..errors import SqueezeNetError
    from ..explore import Budget
    for name in ("epochs", "max_steps", "batch_size", "train_subset", "test_subset"):
        v = getattr(args, name)
        if v is not None and not v > 0:   # NaN too
            raise SqueezeNetError(f"--{name.replace('_', '-')} {v}: must be > 0")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return Budget(data=args.data, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                  optimizer=args.optimizer, lr=args.lr, init=args.init, augment=args.augment, train_subset=args.train_subset, test_subset=args.test_subset,
                  seed=getattr(args, "train_seed", args.seed), batch_norm=args.batch_norm)


def _log(msg: str) -> None:
    import sys
    print(msg, file=sys.stderr, flush=True)


def run_sweep(args) -> int:
    from ..errors import SqueezeNetError
    from ..explore.space import PARAM_TYPES
    from ..explore.sweeps import param_name, sweep
    from ..models import list_models
    param = param_name(args.param)
    try:
        values = [PARAM_TYPES[param](v) for v in args.values.split(",") if v.strip()]
    except ValueError:
        raise SqueezeNetError(f"--values {args.values!r}: expected comma-separated numbers") from None
    base = {}
    for kv in filter(None, (x.strip() for x in args.set.split(","))):
        k, eq, v = kv.partition("=")
        k = k.strip().lower()
        if not eq or k not in PARAM_TYPES:
            raise SqueezeNetError(f"--set {kv!r}: expected K=V with K one of {', '.join(PARAM_TYPES)}")
        try:
            base[k] = PARAM_TYPES[k](v)
        except ValueError:
            raise SqueezeNetError(f"--set {kv!r}: bad value for {k}") from None
    if args.model not in list_models():
        raise SqueezeNetError(f"--model {args.model!r}: unknown (see 'squeezenet list')")
    budget = _budget(args)
    from ..io import check_output
    from ._common import output_folder
    output_folder(args.out, overwrite=args.overwrite)   # an earlier sweep's folder: refused, not replaced
    from ..errors import require
    require("matplotlib")   # its .png: missing, one line naming the extra before any network trains
    check_output(args.out, folder=True)   # writable before the first network trains
    rows = sweep(param, values, budget, base=base, model=args.model, out_dir=args.out, log=_log,
                 progress=not args.no_progress)
    print(f"{'value':>8} {'top1 %':>7} {'params':>10} {'size bytes':>12} {'MACs':>12} {'s':>6}")
    for r in rows:
        if "top1" in r:
            print(f"{r['value']:>8} {100 * r['top1']:7.2f} {r['params']:>10,} {r['size_bytes']:>12,} "
                  f"{r['macs']:>12,} {r['seconds']:6.1f}")
        else:
            print(f"{r['value']:>8} {r['note']}")
    print(f"wrote {args.out}/sweep_{param}.csv and .png")
    return 0


def run_search(args) -> int:
    from ..explore import get_strategy, load_space, search
    from ..explore.study import trials_table
    get_strategy(args.strategy)          # bad input fails before the storage is touched
    space = load_space(args.space)
    budget = _budget(args)
    study = search(args.study, args.storage, args.strategy, trials=args.trials, budget=budget, space=space,
                   objective=args.objective, size_budget=args.size_budget, seed=args.seed,
                   heartbeat=args.heartbeat, log=_log, progress=not args.no_progress)
    rows = trials_table(study)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(done, key=lambda r: r["top1"], default=None)
    print(f"study {args.study!r}: {len(done)} trained, "
          f"{sum(r['state'] == 'PRUNED' for r in rows)} pruned, {sum(r['state'] == 'FAIL' for r in rows)} failed")
    if best:
        print(f"best top1 {100 * best['top1']:.2f}% (trial {best['number']}, {best['size_bytes']:,} bytes)")
    return 0


def run_report(args) -> int:
    from ..explore import report
    if args.out:
        from ._common import output_folder
        output_folder(args.out, overwrite=args.overwrite)
    print(report(args.storage, args.study, args.out, top=args.top))
    return 0
