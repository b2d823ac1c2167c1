"""One-parameter sweeps (the paper's Figure 3): vary SR or pct_3x3, train each network on the same
budget, write a CSV and an accuracy-vs-size plot with each point labelled by its value.

>>> from squeezenet.explore import Budget, sweep
>>> cheap = Budget("digits", max_steps=1, batch_size=32, test_subset=64)   # a smoke run
>>> rows = sweep("sr", [0.25, 0.5], cheap, base={"base_e": 8, "incr_e": 8}, out_dir=None)
>>> [(r["param"], r["value"]) for r in rows], all(r["size_bytes"] > 0 for r in rows)
([('sr', 0.25), ('sr', 0.5)], True)
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SqueezeNetError
from .space import DEFAULTS, PARAM_TYPES, Param, Space
from .trial import Budget, run_point

#: the paper's fixed values for each sweep: SR is swept at pct_3x3 = 0.5, pct_3x3 at SR = 0.5
SWEEP_BASE = {"sr": {"pct_3x3": 0.5}, "pct_3x3": {"sr": 0.5}}
COLUMNS = ["param", "value", "top1", "params", "size_bytes", "macs", "seconds", "note"]


def param_name(name: str) -> str:
    """Canonical metaparameter name (``SR`` -> ``sr``)."""
    n = name.strip().lower()
    if n not in PARAM_TYPES or n == "bypass":
        raise SqueezeNetError(f"--param {name!r}: choose from SR, pct_3x3, base_e, incr_e, freq")
    return n


def sweep(param: str, values: list, budget: Budget, base: dict[str, Any] | None = None,
          model: str = "squeezenet_small", out_dir: str | Path | None = None, log=None,
          progress: bool = False) -> list[dict]:
    """Train one network per value of ``param`` (others fixed: v1.0 defaults, the paper's sweep
    settings, then ``base``); writes ``sweep_<param>.csv``/``.png`` into ``out_dir`` as it goes.
    ``progress``: each network's training shows a bar (steps, time left) on stderr."""
    param = param_name(param)
    fixed = {**DEFAULTS, **SWEEP_BASE.get(param, {}), **(base or {})}
    if not values:
        raise SqueezeNetError("--values: give at least one value")
    space = Space({n: Param(n, (v,)) for n, v in fixed.items()}, model=model,
                  constraints={"squeeze_le_expand": False, "max_params": None})
    invalid = {}
    for v in values:   # say up front which values make no network at these settings
        try:
            space.to_meta({**fixed, param: PARAM_TYPES[param](v)})
        except ConfigError as e:
            invalid[v] = str(e)
    if len(invalid) == len(values):
        raise SqueezeNetError(f"no value of --values makes a network with {_fixed_text(fixed, param)}: "
                              f"{next(iter(invalid.values()))}")
    if invalid and log:
        log(f"{param}={', '.join(map(str, invalid))}: not a network with {_fixed_text(fixed, param)} "
            f"({next(iter(invalid.values()))}); these rows get a note instead of a figure")
    rows = []
    for v in values:
        point = {**fixed, param: PARAM_TYPES[param](v)}
        try:
            r = run_point(space, point, budget, progress=progress)
            rows.append({"param": param, "value": v, **r.to_attrs(), "note": ""})
        except ConfigError as e:  # an invalid value is a row with a note, not a crash
            rows.append({"param": param, "value": v, "note": str(e)})
        if log:
            row = rows[-1]
            log(f"{param}={v}: " + (f"top1 {row['top1']:.4f} size {row['size_bytes']:,} B "
                                    f"({row['seconds']:.0f} s)" if "top1" in row else row["note"]))
        if out_dir is not None:
            write_sweep(rows, out_dir, param, fixed, budget)
    return rows


def _fixed_text(fixed: dict, param: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in fixed.items() if k != param)


def write_sweep(rows: list[dict], out_dir, param: str, fixed: dict, budget: Budget) -> tuple[Path, Path]:
    """``sweep_<param>.csv`` and ``.png`` in ``out_dir``, written together as one set."""
    from ..io import atomic_write_files
    out = Path(out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    csv_path, png_path = out / f"sweep_{param}.csv", out / f"sweep_{param}.png"
    fixed_s = _fixed_text(fixed, param)
    title = (f"{param} sweep on {budget.data} ({fixed_s})\n"
             f"budget: {_budget_text(budget)}")
    png = scatter_png([r for r in rows if "top1" in r], "value", title,
                      label_fmt=lambda r: f"{param}={r['value']}", line=True)
    atomic_write_files(out, {csv_path.name: buf.getvalue(), png_path.name: png})
    return csv_path, png_path


def _budget_text(b: Budget) -> str:
    parts = [f"{b.max_steps} steps" if b.max_steps else f"{b.epochs:g} epoch(s)",
             f"batch {b.batch_size}", (f"{b.optimizer} lr {b.lr:g}" if b.lr is not None else f"{b.optimizer} " + (
                 "(demo recipe)" if b.optimizer == "adamw" else "(paper recipe)")),
             f"init {b.init}", "augment" if b.augment else "no augment"]
    if b.batch_norm:
        parts.append("BatchNorm")
    if b.train_subset:
        parts.append(f"{b.train_subset} train imgs")
    if b.test_subset:
        parts.append(f"{b.test_subset} test imgs")
    return ", ".join(parts)


def scatter_png(rows: list[dict], label_key: str, title: str, label_fmt=None, line: bool = False,
                background: list[dict] | None = None) -> bytes:
    """PNG bytes of top-1 (%) against model size (MB), points labelled (matplotlib Agg)."""
    from ..errors import require
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot()
    if background:
        ax.scatter([r["size_bytes"] / 1e6 for r in background], [100 * r["top1"] for r in background],
                   s=14, color="0.7", label="all trials")
    xs = [r["size_bytes"] / 1e6 for r in rows]
    ys = [100 * r["top1"] for r in rows]
    if line and rows:
        ax.plot(xs, ys, "-", color="tab:blue", alpha=0.5)
    ax.scatter(xs, ys, s=28, color="tab:red" if background else "tab:blue", zorder=3,
               label="Pareto front" if background else None)
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(label_fmt(r) if label_fmt else str(r[label_key]), (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xlabel("model size (MB, fp32 weights)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    if background:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
