"""Shared test helpers: the ../shared fixtures (SQUEEZENET_SHARED overrides), CLI runner, and
what the whole test run shares (``make test`` runs it on every core with pytest-xdist).

Conventions for tests (issue 21: CI stays under 15 minutes on a 2-core machine):

- Real weights imported once per run: the ``onnx_zoo_file`` fixture (SqueezeNet 1.1 from the
  ONNX zoo with its ImageNet class ids, a ``.safetensors`` file) instead of importing again;
  ``run_cache(name, inputs, make)`` makes any other artefact once per run (all xdist workers
  share it), keyed by its input files.
- Tests that must not overlap each other (shared servers, heartbeat timing, many worker
  processes) carry ``@pytest.mark.xdist_group("name")``: ``--dist loadgroup`` runs one group
  on one worker, one test after another.
- ``slow`` tests are scheduled first, so the longest ones never end the run alone.
- torch uses ``cpu_count // workers`` threads in each worker (1 on 2 cores with ``-n 2``), and
  subprocesses inherit ``OMP_NUM_THREADS`` to match.
- Budgets: a compress test that asserts no figure scores on few images (``--limit 60`` on the
  CLI) and calibrates on few (``--calibration-images 16`` / ``calibration_images=16``: the
  default 256 makes the Hessians the test's main cost); in-process CLI (``cli``) rather than
  subprocesses, each of which pays the torch import.
"""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SQUEEZENET_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: pytest-xdist workers in this run (1 without xdist); each gets an equal share of the cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:   # before torch is imported: subprocesses (CLI runs, torchrun) inherit it too
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

torch.set_num_threads(THREADS)

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


# ------------------------------------------------------------------ the run's shared artefacts

def pytest_collection_modifyitems(config, items):
    """``slow`` tests first (stable order otherwise): xdist hands them out before the many
    short ones, so the run does not end waiting on one long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(tryfirst=True)   # before xdist sends the collection to the controller
def pytest_collection_finish(session):
    """``--dist loadgroup`` finds a test's group in a ``@name`` suffix of its node id, which
    pytest-xdist 3.8 writes to ``item._nodeid``; pytest 9.2 reads node ids from ``item._id``,
    so the suffix is lost and grouped tests spread over the workers. Write it where this pytest
    reads it (a no-op where xdist's own suffix took)."""
    config = session.config
    if not getattr(config.option, "loadgroup", False):
        return
    for item in session.items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid:
            continue
        node_id = getattr(item, "_id", None)
        if node_id is not None and hasattr(type(node_id), "parse"):
            item._id = type(node_id).parse(f"{item.nodeid}@{'_'.join(names)}")


@pytest.fixture(scope="session")
def run_cache(tmp_path_factory):
    """``run_cache(name, inputs, make) -> Path``: an artefact made once per test run and shared
    by every xdist worker. ``make(path)`` writes it (a file or a folder); the path is keyed by
    ``name`` and the size and mtime of each input file, made under a file lock and moved into
    place when complete, so a reader never sees half of it. Treat the result as read-only
    (copy it to change it)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):   # basetemp is per worker: its parent is the run's
        base = base.parent
    root = base / "run-cache"
    root.mkdir(exist_ok=True)

    def get(name: str, inputs, make) -> Path:
        h = hashlib.sha256(name.encode())
        for p in sorted(Path(i) for i in inputs):
            st = p.stat()
            h.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        n = Path(name)   # the key goes before the suffix: readers may go by it (.safetensors)
        dest = root / f"{n.stem}-{h.hexdigest()[:16]}{n.suffix}"
        with FileLock(str(dest) + ".lock"):
            if not dest.exists():
                tmp = root / f".partial-{dest.name}"
                if tmp.is_dir():       # left by a make that failed
                    import shutil
                    shutil.rmtree(tmp)
                tmp.unlink(missing_ok=True)
                make(tmp)
                os.replace(tmp, dest)
        return dest
    return get


@pytest.fixture(scope="session")
def onnx_zoo_file(run_cache) -> Path:
    """SqueezeNet 1.1 with the ONNX-zoo ImageNet weights and class ids (synsets.txt), imported
    once per run by the importer a user runs (``squeezenet import --from onnx-zoo``)."""
    from squeezenet.interop.importers import import_to_file, read_classes
    weights = shared_path("fixtures/onnx_zoo_squeezenet1.1/weights")
    synsets = shared_path("fixtures/imagenet/synsets.txt")

    def make(path):
        import_to_file("onnx-zoo", [weights], path, read_classes(synsets))
    files = [weights] if weights.is_file() else sorted(q for q in weights.rglob("*") if q.is_file())
    return run_cache("onnx_zoo_squeezenet1_1.safetensors", [*files, synsets], make)
