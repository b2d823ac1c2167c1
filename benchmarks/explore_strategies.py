"""Compare the four search strategies on one space, size budget and trial budget.

For each strategy and seed, runs `explore search` into its own SQLite study, then prints JSON:
the best top-1 each run found, and how many trained trials it needed to get within 1 point
of that best and of the best any run found. Every trial trains with the explore default recipe
(the digits demo's: AdamW, poly decay over the budget, alive init, augmentation).

    python benchmarks/explore_strategies.py --space small --trials 20 --seeds 0,1 \
        --size-budget 120000 --epochs 2 --out /tmp/strategies \
        --train-args "--batch-size 32 --lr 3e-3 --no-augment --batch-norm"
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def trials_to_within(curve: list[float], target: float, points: float = 0.01) -> int | None:
    """1-based count of trained trials until one scores >= target - points."""
    for i, v in enumerate(curve, 1):
        if v >= target - points - 1e-12:
            return i
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="small")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--size-budget", type=int, default=120000)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--strategies", default="random,anneal,genetic,bayes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--train-args", default="",
                    help='extra training flags for every trial, e.g. "--batch-size 32 --lr 3e-3 --batch-norm"')
    args = ap.parse_args()
    import optuna
    from optuna.trial import TrialState
    from squeezenet.explore import open_storage
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for strategy in args.strategies.split(","):
        for seed in args.seeds.split(","):
            db = out / f"{strategy}_{seed}.db"
            cmd = [sys.executable, "-m", "squeezenet", "explore", "search", "--strategy", strategy,
                   "--trials", str(args.trials), "--storage", str(db), "--study", "cmp", "--space", args.space,
                   "--size-budget", str(args.size_budget), "--data", args.data, "--epochs", args.epochs,
                   "--seed", seed, "--threads", "1", *args.train_args.split()]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            study = optuna.load_study(study_name="cmp", storage=open_storage(str(db), heartbeat=None))
            done = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
            curve = [t.values[0] for t in done]
            best = max(done, key=lambda t: t.values[0])
            runs.append({"strategy": strategy, "seed": int(seed), "trained": len(done),
                         "proposed": len(study.trials), "pruned": sum(t.state == TrialState.PRUNED for t in study.trials),
                         "best_top1": round(best.values[0], 4), "best_size_bytes": best.user_attrs["size_bytes"],
                         "best_params": best.params, "curve": [round(v, 4) for v in curve],
                         "trials_to_1pt_of_own_best": trials_to_within(curve, best.values[0])})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    overall = max(r["best_top1"] for r in runs)
    for r in runs:
        r["trials_to_1pt_of_overall_best"] = trials_to_within(r["curve"], overall)
    print(json.dumps({"space": args.space, "data": args.data, "epochs": args.epochs, "trials": args.trials,
                      "train_args": args.train_args,
                      "size_budget": args.size_budget, "overall_best_top1": overall, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
