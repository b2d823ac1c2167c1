"""Shared test helpers: the ../shared fixtures (SQUEEZENET_SHARED overrides), CLI runner."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SQUEEZENET_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# A shell without job control starts a background job (`make test &`) with SIGINT ignored
# (POSIX), and subprocesses inherit an ignored signal: the tests that press Ctrl-C would then
# press nothing. Run as from a terminal: Python's own handler (a child resets it to default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_path(rel: str) -> Path:
    """Path of a fixture under ../shared; skips the test if missing (fails under CI=true)."""
    p = SHARED / rel
    if not p.exists():
        msg = f"fixture missing: {p} (set SQUEEZENET_SHARED to the shared folder)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from squeezenet.cli import main

    def run(*argv: str):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse exits on --help / bad flags
            code = e.code if isinstance(e.code, int) else 0
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: on a shared 2-core machine two contending threads are
    many times slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
