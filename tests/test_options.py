"""Numeric options: one range check (squeezenet.errors.Range) where each config is defined,
and every flag refused with one line and exit 2 before any work (issue 15 section 4)."""
from __future__ import annotations

import math

import pytest

from squeezenet.errors import ConfigError, Range


@pytest.mark.parametrize("rng,good,bad", [
    (Range(1, integer=True), [1, 10**9], [0, -1, 1.0, True, None, float("nan"), "3"]),
    (Range(0, lo_open=True), [1e-9, 5, 10**30], [0, -1e-3, float("nan"), float("inf"), True]),
    (Range(0, 1, hi_open=True, optional=True), [None, 0, 0.999], [1, -0.1, float("nan")]),
    (Range(1, 16, integer=True), [1, 16], [0, 17, 8.0]),
])
def test_range(rng, good, bad):
    for v in good:
        assert rng.problem(v) is None, v
    for v in bad:
        assert rng.problem(v).startswith("must be "), v
        with pytest.raises(ConfigError, match=r"^x="):
            rng.check("x", v)


@pytest.mark.parametrize("field,value", [
    ("power", math.nan), ("grad_clip", -1.0), ("grad_clip", 0.0), ("lr", math.nan), ("lr", math.inf),
    ("seed", 10**23), ("seed", 1e23), ("seed", -1), ("workers", -1), ("epochs", 2.0), ("momentum", 1.0),
    ("checkpoint_minutes", math.nan), ("warmup_steps", -1), ("device", "cuda:x"), ("device", "gpu"),
    ("bf16", "yes"),
])
def test_train_config_checks_every_field(field, value):
    from squeezenet.train import TrainConfig
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert str(e.value).startswith(f"train config {field}=") and len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("field,value", [("epochs", math.nan), ("epochs", 0), ("batch_size", 0),
                                         ("lr", -1.0), ("train_subset", 0), ("seed", -2)])
def test_explore_budget_checks_every_field(field, value):
    from squeezenet.explore import Budget
    with pytest.raises(ConfigError, match=f"^budget {field}="):
        Budget(**{field: value})


def test_device_is_checked_against_this_machine():
    import torch

    from squeezenet.errors import SqueezeNetError
    from squeezenet.train import Trainer
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(SqueezeNetError, match="cuda:99"):
        Trainer.pick_device("cuda:99")
    if n == 0:
        with pytest.raises(SqueezeNetError, match="CUDA is not available"):
            Trainer.pick_device("cuda")
    assert Trainer.pick_device("cpu").type == "cpu"


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "digits", "--out", "{t}/o", "--power", "nan"], "power=nan"),
    (["train", "--data", "digits", "--out", "{t}/o", "--grad-clip", "-1"], "grad_clip=-1.0"),
    (["train", "--data", "digits", "--out", "{t}/o", "--lr", "nan"], "lr=nan"),
    (["train", "--data", "digits", "--out", "{t}/o", "--seed", "100000000000000000000000"], "seed="),
    (["train", "--data", "digits", "--out", "{t}/o", "--seed", "1e23"], "--seed"),
    (["train", "--data", "digits", "--out", "{t}/o", "--threads", "-2"], "--threads: -2"),
    (["train", "--data", "digits", "--out", "{t}/o", "--device", "cuda:99"], "cuda:99"),
    (["train", "--data", "digits", "--out", "{t}/o", "--workers", "-1"], "workers=-1"),
    (["compress", "{t}/m.safetensors", "--data", "digits", "--batch-size", "0", "-o", "{t}/m.sqz"], "batch_size=0"),
    (["compress", "{t}/m.safetensors", "--data", "digits", "--finetune-epochs", "nan", "-o", "{t}/m.sqz"],
     "finetune_epochs=nan"),
    (["summary", "squeezenet1_1", "--num-classes", "0"], "--num-classes: 0"),
    (["summary", "squeezenet1_1", "--input-size", "100000"], "--input-size: 100000"),
    (["export", "squeezenet_small", "--input-size", "100000", "-o", "{t}/m.onnx"], "--input-size: 100000"),
    (["export-caffe", "squeezenet_small", "--input-size", "100000", "-o", "{t}/c"], "--input-size: 100000"),
    (["bench", "--batch", "100000"], "<= 1,024"),
    (["bench", "--batch", "1000", "--input-size", "2048"], "over the benchmark's bound"),
    (["eval", "{t}/m.safetensors", "--data", "digits", "--workers", "-1"], "--workers: -1"),
    (["predict", "{t}/m.safetensors", "x.jpg", "--top", "0"], "--top: 0"),
    (["explore", "sweep", "--param", "SR", "--values", "0.5", "--epochs", "nan", "--out", "{t}/s"], "--epochs nan"),
    (["explore", "search", "--strategy", "random", "--trials", "0", "--study", "s"], "--trials: 0"),
    (["explore", "search", "--strategy", "random", "--trials", "1", "--study", "s", "--heartbeat", "nan"],
     "--heartbeat: nan"),
])
def test_numeric_flags_are_one_line_and_exit_2(cli, tmp_path, argv, needle):
    code, out, err = cli(*[a.format(t=tmp_path) for a in argv])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()   # refused before any output
