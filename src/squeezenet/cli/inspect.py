"""``squeezenet inspect``: what is inside a compressed ``.sqz`` file, layer by layer."""
from __future__ import annotations

from ._common import add_parser, print_json

EXAMPLES = """  squeezenet inspect dc.sqz           # per-layer bits, density, bytes by part
  squeezenet inspect dc.sqz --json
"""


def register(sub) -> None:
    p = add_parser(sub, "inspect", "per-layer bits, density and bytes by part of a .sqz file", EXAMPLES)
    p.add_argument("file", metavar="MODEL", help="a .sqz file")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path
    from ..io.sqz import inspect_sqz
    from ..errors import FormatError
    if Path(args.file).suffix.lower() != ".sqz":
        raise FormatError(args.file, "inspect reads .sqz files (use 'squeezenet summary' for others)")
    info = inspect_sqz(args.file)
    if args.json:
        print_json(info)
        return 0
    print(f"{info['file']}: {info['bytes']:,} bytes, {info['params']:,} parameters "
          f"({info['ratio_vs_fp32']:.1f}x smaller than fp32), preprocess {info['preprocess']}, "
          f"{info['classes'] or 'no'} classes")
    head = f"{'layer':<34}{'shape':>18}{'bits':>5}{'K':>5}{'density':>9}{'codebook':>9}{'codes':>9}{'positions':>10}{'bias':>7}{'bytes':>9}"
    print(head)
    print("-" * len(head))
    for r in info["layers"]:
        shape = "x".join(map(str, r["shape"]))
        print(f"{r['name']:<34}{shape:>18}{r['bits']!s:>5}{r['centroids']:>5}{r['density']:>9.1%}"
              f"{r['codebook']:>9,}{r['codes']:>9,}{r['positions']:>10,}{r['bias']:>7,}{r['bytes']:>9,}")
    print("-" * len(head))
    print(f"{'total':<61}{info['codebook']:>18,}{info['codes']:>9,}{info['positions']:>10,}"
          f"{info['bias']:>7,}{info['bytes'] - info['header'] - info['dense']:>9,}")
    print(f"header {info['header']:,} bytes, dense tensors {info['dense']:,} bytes")
    return 0
