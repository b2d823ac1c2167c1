"""Study report: the best trials and the Pareto front (top-1 vs size), as text, CSV and PNG.

>>> import tempfile, os
>>> from squeezenet.explore import Budget, report, search
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "s.db")
>>> tiny = {"version": 1, "params": {"base_e": {"values": [8, 16]}, "incr_e": {"values": [0]}}}
>>> _ = search("demo", url, "random", trials=2, space=tiny,
...            budget=Budget("digits", max_steps=1, batch_size=32, test_subset=64))
>>> out = tempfile.mkdtemp()
>>> text = report(url, "demo", out)
>>> text.splitlines()[1], sorted(os.listdir(out))
('trials: 2 complete', ['pareto.csv', 'pareto.png', 'trials.csv'])
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from .sweeps import scatter_png

CSV_COLUMNS = ["number", "top1", "size_bytes", "params", "macs", "seconds"]


def _fmt(r: dict, names: list[str]) -> str:
    ps = " ".join(f"{n}={r.get(n)}" for n in names)
    return (f"#{r['number']:<4} top1 {100 * r['top1']:6.2f}%  size {r['size_bytes']:>11,} B  "
            f"MACs {r['macs']:>12,}  {r['seconds']:6.1f} s  {ps}")


def report(storage: str, study_name: str, out_dir: str | Path | None, top: int = 5) -> str:
    """Text report of a study; writes ``pareto.csv``, ``pareto.png`` and ``trials.csv``."""
    from ..io import atomic_write_files, check_output
    from .study import load_existing_study, open_storage, pareto_front, trials_table   # Optuna: when used
    if out_dir is not None:
        check_output(out_dir, folder=True)   # a file given as --out: one line, before the study is read
    st = open_storage(storage, heartbeat=None)
    study = load_existing_study(st, study_name)
    rows = trials_table(study)
    names = list(study.user_attrs.get("space_def", {}).get("params", {})) or sorted(
        {k for t in study.get_trials(deepcopy=False) for k in t.params})
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("top1") is not None]
    front = pareto_front(rows)
    states = Counter(r["state"] for r in rows)
    a = study.user_attrs
    lines = [f"study {study_name!r}: objective {a.get('objective')}, model {a.get('model')}, "
             f"size budget {a.get('size_budget')}, budget {a.get('budget')}",
             "trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())),
             f"best {min(top, len(done))} by top-1:"]
    lines += ["  " + _fmt(r, names) for r in sorted(done, key=lambda r: (-r["top1"], r["size_bytes"]))[:top]]
    lines.append(f"Pareto front (top-1 up, size down), {len(front)} trials:")
    lines += ["  " + _fmt(r, names) for r in front]
    if out_dir is not None:
        out = Path(out_dir)
        cols = CSV_COLUMNS + names
        files = {}
        for fname, data in (("pareto.csv", front), ("trials.csv", rows)):
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=cols + (["state", "note"] if fname == "trials.csv" else []),
                               extrasaction="ignore")
            w.writeheader()
            w.writerows(data)
            files[fname] = buf.getvalue()
        files["pareto.png"] = scatter_png(
            front, "number", f"study {study_name}: {len(done)} trained trials, Pareto front in red",
            label_fmt=lambda r: f"#{r['number']}", line=True, background=done)
        atomic_write_files(out, files)
        lines.append(f"wrote {out / 'pareto.csv'}, {out / 'pareto.png'}, {out / 'trials.csv'}")
    return "\n".join(lines)
