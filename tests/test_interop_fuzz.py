"""Fuzz-style robustness: truncated and bit-flipped copies of the real prototxts, of the
ONNX-zoo .npy files and of an exported caffemodel must raise only FormatError /
SqueezeNetError: no other exception, no hang, no large allocation.

Seeded and bounded (200 cases per file), so the test is deterministic and fast. Every other
reader of user files (images, folders, .safetensors + sidecars, .sqz, .net, .pth, YAML
spaces, archives, class lists) is fuzzed by ``tests/fuzz_readers.py``: a few cases each here
(fast), thousands each under a memory limit in the slow test, which prints the table
(``PYTHONPATH=src python tests/fuzz_readers.py --cases 2000`` prints it too).
"""
from __future__ import annotations

import os
import random
import resource
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import squeezenet
from squeezenet.errors import SqueezeNetError
from squeezenet.interop.caffe import (CaffeNet, export_caffe, load_caffe, read_caffemodel, read_prototxt,
                                      squeezenet_layout)
from squeezenet.interop.onnx_zoo import import_onnx_zoo, read_npy

from conftest import IN_CI, shared_path
from fuzz_readers import READERS, run_all, run_reader, table

CASES = 200
PROTOTXTS = ["fixtures/caffe/squeezenet_v1.0/deploy.prototxt",
             "fixtures/caffe/squeezenet_v1.1/deploy.prototxt",
             "fixtures/caffe/squeezenet_residual/trainval.prototxt",
             "fixtures/deep_compression/SqueezeNet_deploy.prototxt"]
NPYS = ["fixtures/onnx_zoo_squeezenet1.1/weights/squeezenet0_conv0_weight.npy",
        "fixtures/onnx_zoo_squeezenet1.1/weights/squeezenet0_conv25_bias.npy",
        "fixtures/onnx_zoo_squeezenet1.1/test_data_set_0/input_0.npy"]
MAX_RSS_GROWTH = 1 << 30      # bytes


def mutate(rng: random.Random, data: bytes, head: int | None = None) -> bytes:
    """Truncate (30 %) or flip 1-8 random bits (in the first ``head`` bytes if given)."""
    if rng.random() < 0.3:
        return data[:rng.randrange(len(data))]
    b = bytearray(data)
    span = min(len(b), head) if head else len(b)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(span)
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


@contextmanager
def guarded(what: str, seconds: int = 60):
    """Fails on a hang (SIGALRM) or when the process's peak memory grows by over 1 GiB."""
    def hang(signum, frame):
        raise AssertionError(f"{what}: a case took over {seconds} s (hang)")
    old = signal.signal(signal.SIGALRM, hang)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        yield lambda: signal.alarm(seconds)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert grown < MAX_RSS_GROWTH, f"{what}: peak memory grew by {grown} bytes"


def run_cases(what: str, data: bytes, path: Path, load, seed, head=None) -> tuple[int, int]:
    rng = random.Random(seed)
    ok = refused = 0
    with guarded(what) as arm:
        for i in range(CASES):
            path.write_bytes(mutate(rng, data, head))
            arm()
            try:
                load(path)
                ok += 1
            except SqueezeNetError as e:
                assert str(e).strip() and "\n" not in str(e).strip(), f"{what} case {i}: multi-line error"
                refused += 1
            except Exception as e:  # anything else is a bug
                raise AssertionError(f"{what} case {i}: {type(e).__name__}: {e}") from e
    return ok, refused


@pytest.mark.parametrize("rel", PROTOTXTS, ids=[p.split("/")[-2] for p in PROTOTXTS])
def test_fuzz_prototxt(tmp_path, rel):
    src = shared_path(rel)

    def load(p):
        net = load_caffe(p)
        squeezenet_layout(net)   # NotSqueezeNet is a SqueezeNetError too

    ok, refused = run_cases(rel, src.read_bytes(), tmp_path / "f.prototxt", load, rel)
    assert ok + refused == CASES and refused > CASES // 2


def test_fuzz_exported_caffemodel(tmp_path):
    model = squeezenet.create_model("squeezenet1_1").eval()
    proto, weights = export_caffe(model, tmp_path)
    net = CaffeNet(read_prototxt(proto))
    ok, refused = run_cases("caffemodel", weights.read_bytes(), tmp_path / "f.caffemodel",
                            lambda p: net.load_caffemodel(read_caffemodel(p), p), 1)
    # bit flips inside float data still parse: both outcomes occur
    assert ok > 0 and refused > 0


@pytest.mark.parametrize("rel", NPYS, ids=[p.split("/")[-1] for p in NPYS])
def test_fuzz_npy(tmp_path, rel):
    data = shared_path(rel).read_bytes()
    # flips aimed at the header (first 128 bytes) half the time: that is where the danger is
    ok1, ref1 = run_cases(rel, data, tmp_path / "f.npy", read_npy, rel, head=128)
    ok2, ref2 = run_cases(rel, data, tmp_path / "g.npy", read_npy, rel + "/all")
    assert ref1 > 0 and ok2 > 0


def test_fuzz_onnx_zoo_folder(tmp_path):
    """A corrupted weight file inside the zoo folder: the whole import refuses cleanly."""
    src = shared_path("fixtures/onnx_zoo_squeezenet1.1/weights")
    d = tmp_path / "weights"
    d.mkdir()
    files = sorted(src.glob("*.npy"))
    for f in files:
        (d / f.name).symlink_to(f)
    rng = random.Random(7)
    victims = [rng.choice(files) for _ in range(20)]
    with guarded("onnx-zoo folder") as arm:
        for i, victim in enumerate(victims):
            target = d / victim.name
            target.unlink()
            target.write_bytes(mutate(rng, victim.read_bytes(), head=128))
            arm()
            try:
                import_onnx_zoo(d)
            except SqueezeNetError:
                pass
            except Exception as e:
                raise AssertionError(f"zoo case {i} ({victim.name}): {type(e).__name__}: {e}") from e
            target.unlink()
            target.symlink_to(victim)


@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_every_reader_a_few_cases(tmp_path, name):
    """A few mutated and hostile inputs per reader, in this process: no traceback, no
    multi-line error, no hang (keeps the generators of the slow fuzz working)."""
    r = run_reader(name, 6, seed=1, tmp=tmp_path)
    if r.get("skipped"):
        if IN_CI:
            pytest.fail(r["skipped"])
        pytest.skip(r["skipped"])
    assert r["tried"] == 6 and r["failures"] == 0, r["examples"]


#: cases per reader in the test run (``SQUEEZENET_FUZZ_CASES`` overrides): enough to meet every
#: mutation and hostile kind many times; the long run is the script's (``--cases 2000``)
FUZZ_CASES = 200


@pytest.mark.slow
@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_every_reader_under_a_memory_limit(tmp_path, capsys, name):
    """``SQUEEZENET_FUZZ_CASES`` (default :data:`FUZZ_CASES`) cases of each reader, the reader in
    a worker process under RLIMIT_AS (+1 GiB) with a 20 s limit per case; prints the reader's
    row of the table, whose failures must be 0. One test per reader, so that the test run
    spreads them over its workers."""
    cases = int(os.environ.get("SQUEEZENET_FUZZ_CASES", str(FUZZ_CASES)))
    rows = run_all([name], cases, seed=0, mem_mb=1024, timeout=20, tmp=tmp_path, log=None)
    with capsys.disabled():
        print("\n" + table(rows))
    skipped = [r for r in rows if r.get("skipped")]
    assert not (skipped and IN_CI), skipped
    assert all(r["failures"] == 0 for r in rows), table(rows)
    assert all(r["tried"] == cases for r in rows if not r.get("skipped"))
