"""Table-2 style report of a compression run (text table or JSON): the rows the pipeline's
stages add (:func:`table_row`) and their text layout (:func:`format_report`)."""
from __future__ import annotations

#: torchvision AlexNet's parameter count (the paper's 240 MB row).
ALEXNET_PARAMS = 61_100_840
ALEXNET_BYTES = ALEXNET_PARAMS * 4


def bits_label(bits: dict) -> str | int:
    """The bits column: one width, or the range of a per-layer allocation.

    >>> bits_label({"a": 6, "b": 6}), bits_label({"a": 4, "b": 8, "c": 6})
    (6, '4-8')
    """
    vals = sorted(set(bits.values()))
    return vals[0] if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"


def table_row(stage: str, approach: str, bits, size: int, fp32: int, metrics: dict | None,
              **extra) -> dict:
    """One report row: size, ratios vs fp32 and vs AlexNet, top-1/5 (None without evaluation
    data), then any stage-specific fields.

    >>> r = table_row("dense", "none", 32, 4_000_000, 4_000_000, {"top1": 0.5, "top5": 0.8})
    >>> r["ratio_vs_fp32"], round(r["ratio_vs_alexnet"], 1), r["top1"]
    (1.0, 61.1, 0.5)
    """
    r = {"stage": stage, "approach": approach, "bits": bits, "bytes": int(size),
         "ratio_vs_fp32": fp32 / size, "ratio_vs_alexnet": ALEXNET_BYTES / size,
         "top1": metrics.get("top1") if metrics else None,
         "top5": metrics.get("top5") if metrics else None}
    r.update(extra)
    return r


def _pct(v):
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def _size(b: int) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.0f} KB"


def format_report(report: dict, name: str = "model") -> str:
    """The paper's Table 2 layout: approach, bits, size, ratio vs fp32 and AlexNet, top-1/5.

    >>> print(format_report({"rows": [{"stage": "dense", "approach": "none", "bits": 32,
    ...   "bytes": 4_000_000, "ratio_vs_fp32": 1.0, "ratio_vs_alexnet": 61.1, "top1": 0.5,
    ...   "top5": 0.8}]}).splitlines()[0])
    model       stage             approach                   bits        size        bytes   vs fp32 vs AlexNet   top-1  top-5
    >>> print(format_report({"rows": [{"stage": "dense", "approach": "none", "bits": 32,
    ...   "bytes": 4_000_000, "ratio_vs_fp32": 1.0, "ratio_vs_alexnet": 61.1, "top1": 0.5,
    ...   "top5": 0.8}]}).splitlines()[2])
    model       dense             none                         32     4.00 MB    4,000,000      1.0x      61.1x   50.0%  80.0%
    """
    head = (f"{'model':<12}{'stage':<18}{'approach':<26}{'bits':>5}{'size':>12}{'bytes':>13}"
            f"{'vs fp32':>10}{'vs AlexNet':>11}{'top-1':>8}{'top-5':>7}")
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(f"{name[:11]:<12}{r['stage']:<18}{r['approach']:<26}{r['bits']!s:>5}"
                     f"{_size(r['bytes']):>12}{r['bytes']:>13,}{r['ratio_vs_fp32']:>9.1f}x"
                     f"{r['ratio_vs_alexnet']:>10.1f}x{_pct(r['top1']):>8}{_pct(r['top5']):>7}")
    lines.append(f"AlexNet reference: {ALEXNET_PARAMS:,} parameters x 4 bytes = {ALEXNET_BYTES / 1e6:.1f} MB "
                 f"(the paper's 240 MB row)")
    return "\n".join(lines)
