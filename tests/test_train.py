"""squeezenet.train: schedule, accumulation, callbacks, checkpoints, exact resume, NaN, signals."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import squeezenet
from squeezenet.errors import ConfigError, FormatError, SqueezeNetError
from squeezenet.train import Callback, TrainConfig, Trainer, TrainingDiverged, lr_at

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = squeezenet.MetaParams(base_e=16, incr_e=16, sr=0.25)


def tiny_model(classes=4):
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY, num_classes=classes)
    m.classes = [f"c{i}" for i in range(classes)]
    m.preprocess = "small"
    return m


def tiny_data(n=40, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float() * 0.3
    return TensorDataset(x, y)


def cfg(**kw):
    base = dict(epochs=2, batch_size=8, accum_steps=2, lr=0.01, progress=False, checkpoint_minutes=1e9)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------- config and schedule

def test_paper_defaults():
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.schedule, c.power, c.dropout) == (0.04, 0.9, 2e-4, "poly", 1.0, 0.5)
    assert c.batch_size * c.accum_steps == 512


def test_lr_schedules():
    c = TrainConfig(lr=0.04)
    lrs = [lr_at(c, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.04) and lrs[50] == pytest.approx(0.02) and lrs[99] == pytest.approx(0.0004)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    w = TrainConfig(lr=0.1, warmup_steps=10)
    assert [round(lr_at(w, s, 110), 4) for s in (0, 4, 9)] == [0.01, 0.05, 0.1]
    assert lr_at(w, 60, 110) == pytest.approx(0.05)
    cos = TrainConfig(lr=1.0, schedule="cosine")
    assert lr_at(cos, 50, 100) == pytest.approx(0.5) and lr_at(cos, 0, 100) == 1.0
    assert lr_at(TrainConfig(lr=0.3, schedule="constant"), 99, 100) == 0.3


def test_config_file_and_errors(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.01\n  epochs: 3\n")
    c = TrainConfig.from_file(tmp_path / "c.yaml", epochs=5)
    assert (c.lr, c.epochs, c.momentum) == (0.01, 5, 0.9)
    (tmp_path / "bad.yaml").write_text("lrr: 0.1\n")
    with pytest.raises(ConfigError, match="did you mean lr"):
        TrainConfig.from_file(tmp_path / "bad.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(FormatError, match="cannot parse"):
        TrainConfig.from_file(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ConfigError, match="accum_steps"):
        TrainConfig(accum_steps=0)


# ---------------------------------------------------------------- the loop

class Recorder(Callback):
    def __init__(self):
        self.events, self.lrs = [], []

    def on_train_start(self, t):
        self.events.append("start")

    def on_step_end(self, t):
        self.events.append(f"step{t.step}")
        self.lrs.append(t.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, t, metrics):
        self.events.append(f"epoch{metrics['epoch']}")

    def on_train_end(self, t):
        self.events.append("end")


def test_accumulation_callbacks_checkpoints(tmp_path):
    # 40 samples / batch 8 = 5 micro-batches per epoch; accum 2 -> steps of 2, 2, 1 -> 3 per epoch.
    rec, seen = Recorder(), []

    def loss_fn(model, x, y):
        seen.append(x.shape[0])
        return torch.nn.functional.cross_entropy(model(x), y)
    t = Trainer(tiny_model(), cfg(), tiny_data(), val_data=tiny_data(12, seed=1), out_dir=tmp_path,
                callbacks=[rec], loss_fn=loss_fn)
    assert t.steps_per_epoch() == 3 and t.total_steps() == 6
    hist = t.fit()
    assert t.step == 6 and len(hist) == 2 and len(seen) == 10
    assert rec.events == ["start", "step1", "step2", "step3", "epoch1", "step4", "step5", "step6", "epoch2", "end"]
    assert rec.lrs == pytest.approx([0.01 * (1 - s / 6) for s in range(6)])
    assert {"train_loss", "val_top1", "val_top5", "lr", "seconds", "epoch", "step"} <= set(hist[0])
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2] and lines[1]["val_count"] == 12
    for name in ("last", "best"):
        m = squeezenet.load(tmp_path / f"{name}.safetensors")
        side = json.loads((tmp_path / f"{name}.json").read_text())
        assert m.classes == ["c0", "c1", "c2", "c3"] and m.preprocess == "small"
        assert side["classes"] == m.classes and side["preprocess"] == "small" and side["config"]["num_classes"] == 4
        assert "epoch" in side and "step" in side
    last = squeezenet.load(tmp_path / "last.safetensors")
    for k, v in t.model.state_dict().items():
        assert torch.equal(last.state_dict()[k], v.cpu())
    assert (tmp_path / "train_state.safetensors").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_learns_and_max_steps():
    t = Trainer(tiny_model(), cfg(epochs=50, accum_steps=1, lr=0.05, max_steps=12, dropout=0.0), tiny_data())
    hist = t.fit()
    assert t.step == 12 and hist[-1]["step"] == 12
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_bf16_and_channels_last():
    t = Trainer(tiny_model(), cfg(bf16=True, channels_last=True, max_steps=2), tiny_data())
    before = [p.detach().clone() for p in t.model.parameters()]
    hist = t.fit()
    assert math.isfinite(hist[-1]["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_nan_stops_and_keeps_last_good(tmp_path):
    calls = []

    def loss_fn(model, x, y):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        return loss * float("nan") if len(calls) > 4 else loss  # step 3 sees NaN
    t = Trainer(tiny_model(), cfg(checkpoint_every=1, epochs=3), tiny_data(), out_dir=tmp_path, loss_fn=loss_fn)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3.*last good checkpoint"):
        t.fit()
    assert t.step == 2
    m = squeezenet.load(tmp_path / "last.safetensors")
    assert json.loads((tmp_path / "last.json").read_text())["step"] == 2
    assert all(torch.isfinite(p).all() for p in m.parameters())


class Crash(Callback):
    def __init__(self, at):
        self.at = at

    def on_step_end(self, t):
        if t.step == self.at:
            raise RuntimeError("simulated crash")


def test_resume_in_process_is_exact(tmp_path):
    data = tiny_data()
    ref = Trainer(tiny_model(), cfg(epochs=3, checkpoint_every=1), data, out_dir=tmp_path / "ref")
    ref.fit()
    a = Trainer(tiny_model(), cfg(epochs=3, checkpoint_every=1), data, out_dir=tmp_path / "a", callbacks=[Crash(5)])
    with pytest.raises(RuntimeError, match="simulated"):
        a.fit()
    b = Trainer(tiny_model(), cfg(epochs=3, checkpoint_every=1), data, out_dir=tmp_path / "a").resume()
    assert b.step == 4 and b.epoch == 1 and b._pos == 2  # mid-epoch: 2 of 5 micro-batches done
    b.fit()
    assert b.step == ref.step == 9
    assert [h["lr"] for h in b.history] == [h["lr"] for h in ref.history]
    for (k, v), w in zip(ref.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    for change in ({"epochs": 4}, {"train_size": 16}, {"label_smoothing": 0.1}, {"dropout": 0.2}, {"val_split": 0.1}):
        with pytest.raises(SqueezeNetError, match=f"different schedule.*{next(iter(change))}"):
            Trainer(tiny_model(), cfg(**{"epochs": 3, "checkpoint_every": 1, **change}), data, out_dir=tmp_path / "a").resume()
    with pytest.raises(SqueezeNetError, match="nothing to resume"):
        Trainer(tiny_model(), cfg(), data, out_dir=tmp_path / "none").resume()


# ---------------------------------------------------------------- subprocesses: SIGKILL, SIGINT

WORKER = textwrap.dedent("""
    import sys, json, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_train import tiny_model, tiny_data, cfg
    from squeezenet.train import Trainer, Callback
    out, resume, slow = sys.argv[1], sys.argv[2] == "resume", float(sys.argv[3])
    class Log(Callback):
        def on_step_end(self, t):
            with open(out + "/steps.log", "a") as f:
                f.write(f"{{t.step}} {{t.optimizer.param_groups[0]['lr']!r}}\\n")
            print("step", t.step, flush=True)
            import time; time.sleep(slow)
    t = Trainer(tiny_model(), cfg(epochs=3, checkpoint_every=1), tiny_data(), out_dir=out, callbacks=[Log()])
    if resume:
        t.resume()
    t.fit()
    print("interrupted" if t.interrupted else "done", t.step, flush=True)
    torch.save(t.model.state_dict(), out + "/final.pt")
""")


def _worker(tmp_path, out, mode, slow=0.0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(Path(squeezenet.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(script), str(out), mode, str(slow)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_step(proc, n):
    for line in proc.stdout:
        if line.startswith("step") and int(line.split()[1]) >= n:
            return
    raise AssertionError("worker ended early: " + proc.stderr.read())


def _steps(out):
    rows = [l.split() for l in (out / "steps.log").read_text().splitlines()]
    return {int(s): float(lr) for s, lr in rows}


@pytest.mark.slow  # worker subprocesses, each importing torch
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    ref = _worker(tmp_path, tmp_path / "ref", "fresh")
    run = _worker(tmp_path, tmp_path / "run", "fresh", slow=0.3)
    _wait_for_step(run, 5)  # step 4 is saved by now: mid-epoch 2 (3 steps per epoch)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    out, err = ref.communicate(timeout=120)
    assert ref.returncode == 0, err
    state = json.loads((tmp_path / "run" / "last.json").read_text())
    assert 4 <= state["step"] < 9
    res = _worker(tmp_path, tmp_path / "run", "resume")
    out2, err2 = res.communicate(timeout=120)
    assert res.returncode == 0, err2
    assert "done 9" in out2 and "done 9" in out
    assert _steps(tmp_path / "run") == _steps(tmp_path / "ref")  # same steps, same lr for each
    a = torch.load(tmp_path / "ref" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "final.pt", weights_only=True)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


@pytest.mark.slow  # worker subprocesses, each importing torch
def test_sigint_saves_and_exits_cleanly(tmp_path):
    (tmp_path / "run").mkdir()
    run = _worker(tmp_path, tmp_path / "run", "fresh", slow=0.3)
    _wait_for_step(run, 2)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0 and "Traceback" not in err, err
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "interrupted"
    saved = json.loads((tmp_path / "run" / "last.json").read_text())
    assert saved["step"] == int(last[1])
    res = _worker(tmp_path, tmp_path / "run", "resume")
    out2, err2 = res.communicate(timeout=120)
    assert res.returncode == 0 and "done 9" in out2, err2


# ---------------------------------------------------------------- init and optimizer options

def test_init_schemes():
    from squeezenet.train.init import init_weights
    x = torch.randn(32, 3, 32, 32)
    m = init_weights(squeezenet.create_model("squeezenet_small", meta=TINY), "alive")
    assert torch.all(m.final_conv.bias == 1.0)
    m = init_weights(squeezenet.create_model("squeezenet_small", meta=TINY), "lsuv", data=TensorDataset(x, x[:, 0, 0, 0]))
    with torch.no_grad():
        out = m.final_conv(m.features(x))
    assert 0.9 < float(out.std()) < 1.1
    with pytest.raises(ConfigError, match="init"):
        init_weights(m, "xavier")


def test_recipes_are_one_table():
    """train --recipe, the digits demo and explore all read squeezenet.train.recipes."""
    from squeezenet.cli import train as cli_train
    from squeezenet.explore import trial
    from squeezenet.train import demo
    from squeezenet.train.init import init_weights
    from squeezenet.train.recipes import INITS, RECIPES
    assert cli_train.RECIPES is RECIPES and cli_train.INITS is INITS
    assert demo.DEMO_RECIPE is RECIPES["digits"].config and trial.RECIPE is RECIPES["digits"]
    assert {"paper", "small", "digits"} <= set(RECIPES)
    # the demo recipe is "small" trained for 20 epochs
    small, digits = RECIPES["small"], RECIPES["digits"]
    assert {k: digits.config[k] for k in small.config} == dict(small.config) and digits.config["epochs"] == 20
    assert digits.train_config(lr=0.5).lr == 0.5 and digits.train_config().epochs == 20
    assert RECIPES["paper"].train_config() == TrainConfig()
    with pytest.raises(TypeError):
        RECIPES["small"].config["lr"] = 1.0   # read-only: a caller cannot change the table
    for name in INITS:   # every listed init is one init_weights knows
        init_weights(squeezenet.create_model("squeezenet_small", meta=TINY), name,
                     data=TensorDataset(torch.randn(8, 3, 32, 32), torch.zeros(8)))


def test_adamw_resume_exact(tmp_path):
    data = tiny_data()
    c = dict(epochs=2, checkpoint_every=1, optimizer="adamw", lr=1e-3)
    ref = Trainer(tiny_model(), cfg(**c), data)
    ref.fit()
    a = Trainer(tiny_model(), cfg(**c), data, out_dir=tmp_path, callbacks=[Crash(4)])
    with pytest.raises(RuntimeError):
        a.fit()
    b = Trainer(tiny_model(), cfg(**c), data, out_dir=tmp_path).resume()
    assert isinstance(b.optimizer, torch.optim.AdamW)
    b.fit()
    assert b.step == ref.step == 6
    for v, w in zip(ref.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6)


@pytest.mark.slow
def test_digits_demo_reaches_97_percent(tmp_path):
    from squeezenet.train.demo import run_digits_demo
    r = run_digits_demo(tmp_path / "demo", progress=False)
    assert r["count"] == 360 and r["top1"] >= 0.97
    assert squeezenet.load(r["checkpoint"]).classes == [str(i) for i in range(10)]
    # the demo's compression half (issue 5's figure): >= 10x smaller, <= 1 point top-1 lost,
    # measured on the .sqz loaded back from disk
    from squeezenet.compress.demo import compress_demo
    c = compress_demo(r["checkpoint"], tmp_path / "demo", log=lambda *a: None)
    assert c["ratio_vs_fp32"] >= 10 and c["top1_loss"] <= 1.0, (c["ratio_vs_fp32"], c["top1_loss"])


# ---------------------------------------------------------------- several processes, broken images

def _folder_with_broken(root: Path, n: int = 8, broken=(0, 2)) -> Path:
    """Class folders a/ b/ of n 32x32 PNGs (sorted order = index order); ``broken`` indices garbage."""
    from PIL import Image
    for i in range(n):
        d = root / ("a" if i < n // 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        if i in broken:
            (d / f"{i:02d}.png").write_bytes(b"\x89PNG not an image")
        else:
            Image.new("RGB", (32, 32), (30 * i, 90, 160)).save(d / f"{i:02d}.png")
    return root


def test_ranks_keep_the_same_batches_when_one_meets_broken_images(tmp_path):
    """Issue 15 section 6: skip-and-count shrank only the rank that met a broken image (here
    both are in rank 0's shard), so DDP ranks ran different batch shapes or counts. Replaced
    by the next readable sample, both ranks see the same shapes; every bad image is counted."""
    from squeezenet.data import Loader, build_dataset
    from squeezenet.data.datasets import ReplaceUnreadable, collate_skipping
    from squeezenet.train import ShardSampler
    ds = build_dataset(_folder_with_broken(tmp_path / "d"), "train", preset="small", preload=False)
    shapes = {}
    for wrap in (False, True):
        for rank in (0, 1):
            data = ReplaceUnreadable(ds) if wrap else ds
            loader = Loader(data, batch_size=2, sampler=ShardSampler(len(ds), False, 0, rank, 2),
                            collate_fn=collate_skipping)
            shapes[wrap, rank] = [tuple(x.shape) for x, _ in loader]
    assert shapes[False, 0] != shapes[False, 1]                    # the old behaviour: out of step
    assert shapes[True, 0] == shapes[True, 1] == [(2, 3, 32, 32)] * 2
    assert sorted(Path(p).name for p in ds.skipped) == ["00.png", "02.png"]


def test_replacement_needs_one_readable_image(tmp_path):
    from squeezenet.data import build_dataset
    from squeezenet.data.datasets import ReplaceUnreadable
    ds = build_dataset(_folder_with_broken(tmp_path / "d", n=2, broken=(0, 1)), "train", preset="small", preload=False)
    with pytest.raises(FormatError, match="none of its 2 images is readable"):
        ReplaceUnreadable(ds)[0]


@pytest.mark.slow  # torchrun, two processes each importing torch
def test_torchrun_with_a_broken_image(tmp_path):
    data = _folder_with_broken(tmp_path / "d", n=16, broken=(0,))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(squeezenet.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "squeezenet", "train", "--data", str(data), "--preprocess", "small", "--out", str(tmp_path / "o"),
           "--max-steps", "4", "--batch-size", "2", "--accum-steps", "1", "--no-val", "--no-progress", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped 1 unreadable image(s)" in r.stdout
    rows = [json.loads(l) for l in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and rows[-1]["skipped"] == 1


@pytest.mark.slow  # two demo trainings (dataset build, validation): ~10 s on an idle machine
def test_demo_run_twice_starts_clean(tmp_path):
    """A second demo into the same folder replaces the first run's files: metrics.jsonl holds
    each epoch once; files that are not training's stay."""
    from squeezenet.train.demo import run_digits_demo
    (tmp_path / "notes.txt").write_text("mine")
    for _ in range(2):
        run_digits_demo(tmp_path, epochs=1, max_steps=2, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and (tmp_path / "notes.txt").read_text() == "mine"
