"""``squeezenet train`` end to end, including 2 processes under torchrun (gloo on CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import squeezenet
from squeezenet.train import STATE_FILE, load_train_state

TINY = squeezenet.MetaParams(base_e=16, incr_e=16, sr=0.25)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_file(tmp_path) -> Path:
    torch.manual_seed(0)
    return squeezenet.save(squeezenet.create_model("squeezenet_small", meta=TINY), tmp_path / "tiny.safetensors")


def test_train_digits_writes_checkpoints_and_resumes(cli, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--out", out, "--model", tiny_file(tmp_path), "--max-steps", "3",
            "--batch-size", "16", "--accum-steps", "2", "--lr", "0.01", "--no-progress", "--checkpoint-every", "1"]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert "best val top-1" in stdout
    m = squeezenet.load(out / "best.safetensors")
    assert m.classes == [str(i) for i in range(10)] and m.preprocess == "small"
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    # a model file fine-tunes: best is chosen on 10 % of each class held out of digits/train (142 of 1,437)
    assert rows[-1]["step"] == 3 and rows[-1]["val_count"] == 142
    assert "scored on digits/test (360 images, chose nothing)" in stdout
    _, info = load_train_state(out / STATE_FILE)
    assert info["step"] == 3 and info["train_config"]["accum_steps"] == 2
    code, stdout, err = cli("train", "--out", out, "--resume", "--no-progress")
    assert code == 0, err  # already finished: nothing left to do
    code, _, err = cli("train", "--out", out, "--resume", "--lr", "0.5", "--no-progress")
    assert code == 2 and "different schedule" in err


@pytest.mark.parametrize("argv,needle", [
    (("train", "--out", "{tmp}/o"), "--data is required"),
    (("train", "--out", "{tmp}/o", "--resume"), "nothing to resume"),
    (("train", "--data", "digits", "--out", "{tmp}/o", "--model", "squeezenet9"), "unknown model"),
    (("train", "--data", "digits", "--out", "{tmp}/o", "--config", "{tmp}/bad.yaml"), "did you mean lr"),
    (("train", "--data", "digits", "--out", "{tmp}/o", "--schedule", "steps"), "schedule"),
    (("train", "--data", "digits", "--out", "{tmp}/o", "--epochs", "0"), "epochs"),
    (("train", "--data", "{tmp}/nope", "--out", "{tmp}/o"), "no such dataset"),
])
def test_train_bad_input(cli, tmp_path, argv, needle):
    (tmp_path / "bad.yaml").write_text("lrr: 1\n")
    code, _, err = cli(*[str(a).format(tmp=tmp_path) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(squeezenet.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    import socket
    with socket.socket() as sock:  # torchrun's --master_port=0 can hang; pick a free port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "squeezenet", "train", "--data", "digits", "--out", str(out), "--model", str(tiny_file(tmp_path)),
           "--max-steps", "4", "--batch-size", "16", "--accum-steps", "2", "--lr", "0.01", "--no-progress",
           "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("best val top-1") == 1  # rank 0 reports, rank 1 stays quiet
    assert "2 process(es)" in r.stdout
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    # val (142 held out of digits/train: the fine-tune default) sharded, then summed; the test split scored once
    assert len(rows) == 1 and rows[0]["step"] == 4 and rows[0]["val_count"] == 142
    assert r.stdout.count("scored on digits/test (360 images, chose nothing)") == 1
    _, info = load_train_state(out / STATE_FILE)
    assert info["world_size"] == 2 and len(info["rng"]) == 2
    m = squeezenet.load(out / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_recipe_small_and_flags_win(cli, tmp_path):
    out = tmp_path / "r"
    code, _, err = cli("train", "--data", "digits", "--out", out, "--model", tiny_file(tmp_path), "--recipe", "small",
                       "--lr", "0.002", "--max-steps", "1", "--no-progress", "--no-val")
    assert code == 0, err
    _, info = load_train_state(out / STATE_FILE)
    c = info["train_config"]
    assert (c["optimizer"], c["batch_size"], c["accum_steps"], c["lr"]) == ("adamw", 64, 1, 0.002)


def test_default_recipe_follows_the_model(cli, tmp_path):
    """32x32 data trains squeezenet_small with the small recipe unless --recipe says otherwise."""
    out = tmp_path / "d"
    code, _, err = cli("train", "--data", "digits", "--out", out, "--max-steps", "1", "--no-progress", "--no-val")
    assert code == 0, err
    _, info = load_train_state(out / STATE_FILE)
    assert (info["train_config"]["optimizer"], info["train_config"]["batch_size"]) == ("adamw", 64)
    out = tmp_path / "p"
    code, _, err = cli("train", "--data", "digits", "--out", out, "--recipe", "paper", "--max-steps", "1",
                       "--batch-size", "8", "--accum-steps", "1", "--no-progress", "--no-val")
    assert code == 0, err
    _, info = load_train_state(out / STATE_FILE)
    assert info["train_config"]["optimizer"] == "sgd" and info["train_config"]["lr"] == 0.04


# ------------------------------------------------------------- an --out that holds a run

def _rows(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def test_used_out_is_refused_and_overwrite_starts_clean(cli, tmp_path):
    """Issue 16 item 2: a second run into the same --out used to replace best.safetensors and
    append epochs to metrics.jsonl a second time."""
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--out", out, "--model", tiny_file(tmp_path), "--batch-size", "16",
            "--accum-steps", "1", "--lr", "0.01", "--no-progress", "--no-val"]
    code, _, err = cli(*args, "--max-steps", "2")
    assert code == 0, err
    (out / "notes.txt").write_text("mine")
    best, rows = (out / "best.safetensors").read_bytes(), _rows(out)
    code, _, err = cli(*args, "--max-steps", "1", "--seed", "3")
    line = err.strip().splitlines()
    assert code == 2 and len(line) == 1 and "not empty" in line[0] and "--resume" in line[0] and "--overwrite" in line[0]
    assert (out / "best.safetensors").read_bytes() == best and _rows(out) == rows   # nothing touched
    code, _, err = cli(*args, "--max-steps", "1", "--resume", "--overwrite")
    assert code == 2 and "give one" in err
    code, stdout, err = cli(*args, "--max-steps", "1", "--seed", "3", "--overwrite")
    assert code == 0, err
    assert "removed" in stdout and "notes.txt" not in stdout
    assert [r["epoch"] for r in _rows(out)] == [1] and _rows(out)[0]["step"] == 1   # the new run only
    assert (out / "notes.txt").read_text() == "mine"                                # not training's
    assert (out / "best.safetensors").read_bytes() != best


def test_resume_agrees_with_the_state_and_names_only_files_that_exist(cli, tmp_path):
    """A kill between appending an epoch to metrics.jsonl and writing the state would repeat
    that epoch on resume; a best model the state counts on may be missing: the resumed run
    rewrites metrics.jsonl from the state and never claims to have written a missing file."""
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", "digits", "--out", out, "--model", tiny_file(tmp_path), "--max-steps", "2",
                       "--batch-size", "16", "--accum-steps", "1", "--lr", "0.01", "--no-progress", "--no-val")
    assert code == 0, err
    rows = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text(rows + rows)       # the epoch again, as after such a kill
    (out / "best.safetensors").unlink()
    code, stdout, err = cli("train", "--out", out, "--resume", "--no-progress")
    assert code == 0, err
    assert (out / "metrics.jsonl").read_text() == rows
    assert "best.safetensors" not in stdout and f"wrote {out / 'last.safetensors'}" in stdout


def test_checkpoint_writes_the_state_last(tmp_path, monkeypatch):
    """The training state is the commit point: model files first, so a kill after the state
    never leaves a state that speaks of a best/last file not yet written."""
    from squeezenet.train import TrainConfig, Trainer
    from squeezenet.train import trainer as T
    from squeezenet.data import build_dataset
    order = []
    real_model, real_state = T.save_model_checkpoint, T.save_train_state
    monkeypatch.setattr(T, "save_model_checkpoint", lambda m, d, name, info: (order.append(name), real_model(m, d, name, info))[1])
    monkeypatch.setattr(T, "save_train_state", lambda *a: (order.append("state"), real_state(*a))[1])
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY)
    cfg = TrainConfig(epochs=1, batch_size=32, accum_steps=1, lr=0.01, max_steps=1, progress=False)
    Trainer(m, cfg, build_dataset("digits", "train"), out_dir=tmp_path).fit()
    assert order == ["best", "last", "state"]


@pytest.mark.parametrize("layout, message", [
    ({"train/a": 3, "train/b": 0, "test/a": 2, "test/b": 2}, "d/train: class folder 'b' holds no images"),
    ({"train/a": 3, "test/a": 2}, "d/train: 1 class with images ('a'); training a classifier needs at least 2"),
])
def test_training_from_scratch_refuses_an_empty_class_folder_or_one_class(cli, tmp_path, layout, message):
    # the fine-tune path refused these already; a run from scratch trained on them (100 % "accuracy")
    from PIL import Image
    for folder, n in layout.items():
        (tmp_path / "d" / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (36, 36), (40 * i, 90, 200)).save(tmp_path / "d" / folder / f"{i}.png")
    code, out, err = cli("train", "--data", tmp_path / "d", "--out", tmp_path / "run", "--recipe", "small",
                         "--epochs", "1", "--no-progress")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
