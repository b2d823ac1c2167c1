"""Outputs: nothing destroyed, nothing written elsewhere, one line for any OS error (issue 15
sections 3 and 5, issue 16 item 2 and the umask).

Every hostile case is made here: a folder or FIFO where a file belongs, a file where a folder
belongs, the input given as the output (also through a symlink and a hard link), names that
climb out of the output folder, a failing fsync, a SIGKILL between the files of a set, stale
temps of a killed run. Root ignores permission bits, so "cannot write" is made with a file in
the way of a folder (ENOTDIR), which no user can write through.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import squeezenet
from squeezenet import io as sio
from squeezenet.errors import ConfigError, OutputError

SRC = str(Path(squeezenet.__file__).parents[1])
TINY = squeezenet.MetaParams(base_e=16, incr_e=16, sr=0.25)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_file(path: Path, classes=None) -> Path:
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY, num_classes=len(classes) if classes else 10)
    m.classes = classes or [str(i) for i in range(10)]
    m.preprocess = "small"
    return squeezenet.save(m, path)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _age(path: Path, seconds: float = 3600) -> None:
    """Make ``path`` look left by a run that ended before this process started."""
    t = sio.PROCESS_START - seconds
    os.utime(path, (t, t), follow_symlinks=False)


# ------------------------------------------------------------------------ single files

@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_model_files_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        p = tiny_file(tmp_path / "m.safetensors")
        sio.atomic_write_files(tmp_path / "set", {"a.txt": "x"})
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == mode
    assert ((tmp_path / "set" / "a.txt").stat().st_mode & 0o777) == mode
    assert ((tmp_path / "set").stat().st_mode & 0o777) == 0o777 & ~mask


def test_stale_temps_of_the_same_output_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "m.safetensors"
    stale = tmp_path / ".m.safetensors.abc_1234.tmp"          # a SIGKILLed run's temp
    young = tmp_path / ".m.safetensors.zzzz9999.tmp"          # a concurrent writer's, just made
    other = tmp_path / ".n.safetensors.abcd1234.tmp"          # another output's
    odd = tmp_path / ".m.safetensors.backup.tmp"              # not our pattern
    stale_dir = tmp_path / ".m.safetensors.qwer5678.tmp"      # a killed multi-file writer's folder
    for p in (stale, young, other, odd):
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "f").write_bytes(b"x")
    for p in (stale, other, odd, stale_dir):
        _age(p)
    os.utime(young, (time.time() + 60, time.time() + 60))
    tiny_file(out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([out.name, young.name, other.name, odd.name])


def test_atomic_write_refuses_folders_devices_and_unwritable_places(tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        sio.atomic_write_bytes(tmp_path / "dir.safetensors", b"x")
    os.mkfifo(tmp_path / "fifo.onnx")
    with pytest.raises(OutputError, match="not a regular file"):
        sio.atomic_write_bytes(tmp_path / "fifo.onnx", b"x")
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(OutputError) as e:
        sio.atomic_write_bytes(tmp_path / "afile" / "x.sqz", b"x")
    assert str(tmp_path / "afile") in str(e.value) and len(str(e.value).splitlines()) == 1
    assert isinstance(e.value, OSError)          # `except OSError` callers keep working
    assert (tmp_path / "afile").read_text() == "keep"


def test_fsync_error_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "m.bin"
    out.write_bytes(b"old")

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(sio.os, "fsync", eio)
    with pytest.raises(OutputError, match=r"m\.bin: cannot write \(Input/output error\)"):
        sio.atomic_write_bytes(out, b"new")
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


def test_check_output_refuses_the_input_also_through_links(tmp_path):
    src = tmp_path / "in.sqz"
    src.write_bytes(b"model")
    (tmp_path / "link.sqz").symlink_to(src)
    os.link(src, tmp_path / "hard.sqz")
    for out in ("in.sqz", "link.sqz", "hard.sqz"):
        with pytest.raises(OutputError, match="is the input"):
            sio.check_output(tmp_path / out, inputs=[src])
        sio.check_output(tmp_path / out, inputs=[src], overwrite=True)
    sio.check_output(tmp_path / "new" / "deeper" / "out.sqz", inputs=[src])   # parents are made
    assert (tmp_path / "new" / "deeper").is_dir() and not list((tmp_path / "new" / "deeper").iterdir())
    assert src.read_bytes() == b"model"


# --------------------------------------------------------------------------- file sets

def test_a_set_replaces_the_old_one_keeping_other_files(tmp_path):
    out = tmp_path / "caffe"
    sio.atomic_write_files(out, {"deploy.prototxt": "old", "m.caffemodel": b"old", "classes.txt": "a\n"})
    (out / "notes.txt").write_text("mine")
    notes_inode = (out / "notes.txt").stat().st_ino
    sio.atomic_write_files(out, {"deploy.prototxt": "new", "m.caffemodel": b"new"}, remove=("classes.txt",))
    assert sorted(p.name for p in out.iterdir()) == ["deploy.prototxt", "m.caffemodel", "notes.txt"]
    assert (out / "deploy.prototxt").read_text() == "new" and (out / "notes.txt").read_text() == "mine"
    assert (out / "notes.txt").stat().st_ino == notes_inode        # the same file, not a copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["caffe"]  # no temp folder left


def test_a_set_in_a_folder_with_subfolders_is_written_file_by_file(tmp_path):
    out = tmp_path / "runs"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "x").write_text("x")
    sio.atomic_write_files(out, {"a.csv": "1", "a.png": b"2"})
    sio.atomic_write_files(out, {"a.csv": "3", "a.png": b"4"})
    assert (out / "a.csv").read_text() == "3" and (out / "keep" / "x").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_set_where_files_cannot_be_hard_linked_is_written_file_by_file(tmp_path, monkeypatch):
    out = tmp_path / "o"
    sio.atomic_write_files(out, {"a": "old"})
    (out / "notes.txt").write_text("mine")

    def no_links(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(sio.os, "link", no_links)
    sio.atomic_write_files(out, {"a": "new"})
    assert sorted(p.name for p in out.iterdir()) == ["a", "notes.txt"] and (out / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_a_failing_writer_leaves_the_old_set(tmp_path):
    out = tmp_path / "o"
    sio.atomic_write_files(out, {"a": "old", "b": "old"})

    def boom(tmp):
        raise RuntimeError("conversion failed")
    with pytest.raises(RuntimeError):
        sio.atomic_write_files(out, {"a": "new", "b": boom})
    assert [(out / n).read_text() for n in "ab"] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


@pytest.mark.parametrize("name", ["../x", "a/b", "/tmp/abs", "..", ".", "", ".hidden", "a\\b"])
def test_set_names_cannot_leave_the_folder(tmp_path, name):
    with pytest.raises(ConfigError):
        sio.atomic_write_files(tmp_path / "o", {name: "x"})
    assert not (tmp_path / "o").exists()


def test_a_file_where_the_folder_belongs_is_one_line(tmp_path):
    (tmp_path / "o").write_text("keep")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        sio.atomic_write_files(tmp_path / "o", {"a": "x"})
    assert (tmp_path / "o").read_text() == "keep"


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {src!r})
    from squeezenet.io import atomic_write_files
    def die(tmp):
        open(tmp, "w").write("half")
        os.kill(os.getpid(), signal.SIGKILL)
    atomic_write_files({out!r}, {{"deploy.prototxt": "new", "m.caffemodel": die}})
""")


def test_sigkill_between_the_files_of_a_set_leaves_the_old_set(tmp_path):
    out = tmp_path / "caffe"
    sio.atomic_write_files(out, {"deploy.prototxt": "old", "m.caffemodel": "old"})
    r = subprocess.run([sys.executable, "-c", KILLER.format(src=SRC, out=str(out))],
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr
    assert [(out / n).read_text() for n in ("deploy.prototxt", "m.caffemodel")] == ["old", "old"]
    temps = [p for p in tmp_path.iterdir() if p.name != "caffe"]
    assert len(temps) == 1 and temps[0].name.startswith(".caffe.") and temps[0].name.endswith(".tmp")
    _age(temps[0])   # the killed process started before this one in real life
    sio.atomic_write_files(out, {"deploy.prototxt": "new", "m.caffemodel": "new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["caffe"]
    assert (out / "m.caffemodel").read_text() == "new"


# ------------------------------------------------------------------------------- CLI

def test_compress_refuses_its_input_as_output_unless_overwrite(cli, tmp_path):
    src = tiny_file(tmp_path / "m.safetensors")
    common = ["--data", "digits", "--finetune-epochs", "0", "--calibration-images", "0", "--bits", "4"]
    code, _, err = cli("compress", src, *common, "-o", tmp_path / "c.sqz")
    assert code == 0, err
    before = (tmp_path / "c.sqz").read_bytes()
    (tmp_path / "link.sqz").symlink_to(tmp_path / "c.sqz")
    for out in ("c.sqz", "link.sqz"):
        code, _, err = cli("compress", tmp_path / "c.sqz", *common, "-o", tmp_path / out)
        assert code == 2 and "is the input" in one_line(err) and "--overwrite" in err
    assert (tmp_path / "c.sqz").read_bytes() == before
    code, _, err = cli("compress", tmp_path / "c.sqz", *common, "--overwrite", "-o", tmp_path / "c.sqz")
    assert code == 0, err
    squeezenet.load(tmp_path / "c.sqz")


def test_output_place_is_checked_before_the_work(cli, tmp_path):
    """A place nothing can be written to fails first, naming it: the (missing) input is not
    even opened, so no work is done for nothing."""
    (tmp_path / "afile").write_text("")
    missing = tmp_path / "not-there.safetensors"
    for argv in (["compress", missing, "--data", "digits", "-o", tmp_path / "afile" / "x.sqz"],
                 ["export", missing, "--int8", "--calibration", "digits", "-o", tmp_path / "afile" / "x.onnx"],
                 ["import", missing, "--from", "torchvision", "-o", tmp_path / "afile" / "x.safetensors"],
                 ["export-caffe", missing, "-o", tmp_path / "afile"],
                 ["train", "--data", "digits", "--model", missing, "--out", tmp_path / "afile" / "run"],
                 ["explore", "sweep", "--param", "SR", "--values", "0.5", "--out", tmp_path / "afile"],
                 ["explore", "report", "--storage", tmp_path / "x.db", "--study", "s", "--out", tmp_path / "afile"]):
        code, _, err = cli(*argv)
        line = one_line(err)
        assert code == 2 and str(tmp_path / "afile") in line and "not-there" not in line, (argv, err)
    (tmp_path / "d.onnx").mkdir()
    code, _, err = cli("export", "squeezenet_small", "-o", tmp_path / "d.onnx")
    assert code == 2 and "is a folder" in one_line(err)


def test_export_caffe_name_cannot_escape_and_sets_stay_whole(cli, tmp_path):
    src = tiny_file(tmp_path / "m.safetensors")
    out = tmp_path / "deep" / "caffe"
    for name in ("../../x", str(tmp_path / "abs"), "a/b", ".."):
        code, _, err = cli("export-caffe", src, "-o", out, "--name", name)
        assert code == 2 and "--name" in one_line(err)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "x.caffemodel").exists()
    code, stdout, err = cli("export-caffe", src, "-o", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "deploy.prototxt", "squeezenet.caffemodel"]
    # a model without a class list: the old classes.txt goes with the old set
    m = squeezenet.load(src)
    m.classes = None
    squeezenet.save(m, tmp_path / "nocls.safetensors")
    code, _, err = cli("export-caffe", tmp_path / "nocls.safetensors", "-o", out)
    assert code == 2 and "not empty" in one_line(err)   # a used folder: refused unless --overwrite
    code, _, err = cli("export-caffe", tmp_path / "nocls.safetensors", "-o", out, "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["deploy.prototxt", "squeezenet.caffemodel"]


def test_unwritable_cache_degrades_with_one_warning(cli, capsys, tmp_path, monkeypatch):
    """A cache that cannot be written (here a file in its way) costs speed, not the command:
    an archive is unpacked privately, decoded images are not kept, one warning line."""
    import tarfile

    from PIL import Image

    from squeezenet.data import archive
    for c in ("a", "b"):
        (tmp_path / "imgs" / "test" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), (80 * i, 40 if c == "a" else 200, 9)).save(tmp_path / "imgs" / "test" / c / f"{i}.png")
    with tarfile.open(tmp_path / "data.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "imgs" / "test", arcname="test")
    model = tiny_file(tmp_path / "m.safetensors", classes=["a", "b"])
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "afile" / "cache"))
    monkeypatch.setattr(archive, "_WRITABLE", {})
    code, stdout, err = cli("eval", model, "--data", tmp_path / "data.tar.gz", "--engine", "eager")
    assert code == 0, err
    assert "images 6" in stdout
    warnings = "\n".join(l for l in err.splitlines() if "warning" in l)   # the unpack note and bars aside
    assert "not writable" in one_line(warnings) and str(tmp_path / "afile" / "cache") in err
    assert "for this run only" in err
    from squeezenet.runtime.auto import _write_cache
    _write_cache("k", {"engine": "eager"})   # the auto engine's measurement cache: skipped, warned already
    assert capsys.readouterr().err == ""


def test_broken_pipe_ends_quietly(tmp_path):
    """``squeezenet summary --json | head -1``: the reader is gone before the output is written
    (its end of the pipe closed first, so the test does not race the child): no traceback,
    exit 141 (128 + SIGPIPE)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "squeezenet", "summary", "squeezenet1_0", "--json"],
                           stdout=w, stderr=subprocess.PIPE, timeout=120,
                           env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"})
    finally:
        os.close(w)
    assert p.returncode == 141 and p.stderr.decode() == "", p.stderr.decode()


def test_explore_storage_must_be_a_file(cli, tmp_path):
    for url in ("sqlite://", "sqlite:///:memory:"):
        code, _, err = cli("explore", "search", "--strategy", "random", "--trials", "1", "--study", "s",
                           "--storage", url, "--max-steps", "1")
        assert code == 2 and "no database file" in one_line(err)


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    """A write that runs out of room (here the file-size limit, EFBIG, as a full disk gives
    ENOSPC) inside safetensors, which raises its own error type: one line, old file intact."""
    import resource
    import signal
    out = tiny_file(tmp_path / "m.safetensors")
    before = out.read_bytes()
    old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_lim = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, old_lim[1]))
    try:
        with pytest.raises(OutputError) as e:
            tiny_file(out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_lim)
        signal.signal(signal.SIGXFSZ, old_sig)
    assert str(e.value).startswith(f"{out}: cannot write") and len(str(e.value).splitlines()) == 1
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
