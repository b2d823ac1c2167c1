"""The README's commands, run as written, top to bottom, in a fresh folder (issue 16).

Every ```-fenced block of README.md whose info string is empty, ``sh``, ``bash``, ``shell`` or
``console`` runs as a bash script (``set -euo pipefail``: any failing command fails the test);
``python`` blocks run with this interpreter; other blocks (``text``, ``yaml``...) are prose. A
block whose first line starts with ``# needs a download`` is skipped: say there where its files
come from. Blocks run in README order, each in its own shell, in one temporary folder that
holds a copy of the repository's top-level files (``benchmarks/``, ``docs/``...) and sees the
fixtures as ``../shared``, so a block may use files an earlier block made and nothing else.
``squeezenet`` and ``python`` on the PATH are this checkout's; ``SQUEEZENET_SMOKE=1`` caps
every budget (steps, epochs, trials, images: ``squeezenet.cli._common.SMOKE_CAPS``) so the
whole README takes minutes. Unpacked datasets come from the usual cache (``SQUEEZENET_CACHE``).

A new README block needs nothing here: write it so it runs in that folder.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, shared_path

SHELL = {"", "sh", "bash", "shell", "console"}
PYTHON = {"python", "py", "python3"}
DOWNLOAD = "# needs a download"
#: top-level repository entries a README block may use (a fresh clone has them); src/ is
#: reached through PYTHONPATH, tests/ is not for the README
COPY = ("benchmarks", "docs", "Makefile", "pyproject.toml", "README.md")
BLOCK_TIMEOUT = 1800


@dataclass
class Block:
    line: int          # README line of the opening fence
    lang: str
    code: str

    @property
    def kind(self) -> str:
        if self.lang in SHELL:
            return "shell"
        return "python" if self.lang in PYTHON else "prose"

    @property
    def needs_download(self) -> bool:
        first = next((l.strip() for l in self.code.splitlines() if l.strip()), "")
        return first.lower().startswith(DOWNLOAD)


def readme_blocks(text: str) -> list[Block]:
    """The ```-fenced blocks of a Markdown text, in order.

    >>> [(b.line, b.lang, b.code) for b in readme_blocks("x\\n```sh\\nls\\n```\\n```\\n```\\n")]
    [(2, 'sh', 'ls\\n'), (5, '', '')]
    """
    blocks, cur, lang, start = [], None, "", 0
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if cur is None and m:
            cur, lang, start = [], m.group(1).lower(), i
        elif cur is not None and line.strip() == "```":
            blocks.append(Block(start, lang, "".join(l + "\n" for l in cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    assert cur is None, f"README.md: the block opened at line {start} is never closed"
    return blocks


def test_readme_blocks_parse_and_are_labelled():
    """Fast: the README parses, has runnable blocks, and every download block says what to get."""
    blocks = readme_blocks((REPO / "README.md").read_text())
    runnable = [b for b in blocks if b.kind != "prose" and not b.needs_download]
    assert len(runnable) >= 6
    for b in blocks:
        if b.needs_download:
            first = b.code.strip().splitlines()[0]
            assert len(first) > len(DOWNLOAD) + 10, f"README.md:{b.line}: say what to download and from where"


def _sandbox(tmp: Path) -> tuple[Path, dict]:
    """(working folder, environment) for the README's commands."""
    work = tmp / "work"
    work.mkdir()
    (tmp / "shared").symlink_to(shared_path("fixtures").parent, target_is_directory=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, work / name)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name, argv in (("squeezenet", f'"{sys.executable}" -m squeezenet'), ("python", f'"{sys.executable}"'),
                       ("python3", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({
        "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "SQUEEZENET_SMOKE": "1",
        "SQUEEZENET_SHARED": str(tmp / "shared"),
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        "PYTHONWARNINGS": "ignore",
        "MPLBACKEND": "Agg",
    })
    return work, env


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path):
    blocks = readme_blocks((REPO / "README.md").read_text())
    work, env = _sandbox(tmp_path)
    timings = []
    for b in blocks:
        if b.kind == "prose":
            continue
        if b.needs_download:
            timings.append((b.line, "skipped (needs a download)"))
            continue
        if b.kind == "shell":   # -x with the block's elapsed seconds: the log says what ran how long
            argv, stdin = ["bash", "-c", "PS4='+ [${SECONDS}s] '\nset -xeuo pipefail\n" + b.code], None
        else:
            argv, stdin = [sys.executable, "-"], b.code
        t = time.perf_counter()
        r = subprocess.run(argv, cwd=work, env=env, input=stdin, capture_output=True, text=True,
                           timeout=BLOCK_TIMEOUT)
        timings.append((b.line, f"{time.perf_counter() - t:.0f} s"))
        print(f"README.md:{b.line} ({b.kind}): exit {r.returncode} in {timings[-1][1]}", flush=True)
        if r.returncode != 0:
            tail = "\n".join(l[-300:] for l in (r.stdout + r.stderr).strip().splitlines()[-25:])
            pytest.fail(f"README.md:{b.line}: the {b.kind} block failed (exit {r.returncode}):\n{b.code}\n"
                        f"--- last output ---\n{tail}")
    print("README blocks:", ", ".join(f"line {l}: {t}" for l, t in timings))
