"""Table-2 style report of a compression run (text table or JSON)."""
from __future__ import annotations


def _pct(v):
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def _size(b: int) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.0f} KB"


def format_report(report: dict, name: str = "model") -> str:
    """The paper's Table 2 layout: approach, bits, size, ratio vs fp32 and AlexNet, top-1/5.

    >>> print(format_report({"rows": [{"stage": "dense", "approach": "none", "bits": 32,
    ...   "bytes": 4_000_000, "ratio_vs_fp32": 1.0, "ratio_vs_alexnet": 61.1, "top1": 0.5,
    ...   "top5": 0.8}]}).splitlines()[2])
    model       dense             none                         32     4.00 MB    4,000,000      1.0x     61.1x   50.0%  80.0%
    """
    head = (f"{'model':<12}{'stage':<18}{'approach':<26}{'bits':>5}{'size':>12}{'bytes':>13}"
            f"{'vs fp32':>10}{'vs AlexNet':>10}{'top-1':>8}{'top-5':>7}")
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(f"{name[:11]:<12}{r['stage']:<18}{r['approach']:<26}{r['bits']!s:>5}"
                     f"{_size(r['bytes']):>12}{r['bytes']:>13,}{r['ratio_vs_fp32']:>9.1f}x"
                     f"{r['ratio_vs_alexnet']:>9.1f}x{_pct(r['top1']):>8}{_pct(r['top5']):>7}")
    lines.append(f"AlexNet reference: 61,100,840 parameters x 4 bytes = 244.4 MB (the paper's 240 MB row)")
    return "\n".join(lines)
