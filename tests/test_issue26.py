"""Issue 26, a newcomer's first hour, round 2: no silent surprises (a contradicting
--preprocess, warm-up longer than the run, output folders), the Python path, one vocabulary,
progress, packaging."""
from __future__ import annotations

import json

import pytest
import torch

import squeezenet

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = squeezenet.MetaParams(base_e=16, incr_e=16)


def one_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """An untrained tiny digits model storing the small preset and the digits' classes."""
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY).eval()
    m.classes, m.preprocess = [str(i) for i in range(10)], "small"
    return squeezenet.save(m, tmp_path_factory.mktemp("m") / "m.safetensors")


# ------------------------------------------------------------------ 1. --preprocess vs the stored preset

def test_a_preprocess_contradicting_the_stored_preset_is_refused_in_eval_predict_export(cli, digits_file, tmp_path):
    img = tmp_path / "x.png"
    from PIL import Image
    Image.new("RGB", (40, 40), (200, 10, 10)).save(img)
    for argv in (("eval", digits_file, "--data", "digits", "--limit", "10", "--preprocess", "caffe"),
                 ("predict", digits_file, img, "--preprocess", "torchvision"),
                 ("export", digits_file, "-o", tmp_path / "m.onnx", "--preprocess", "caffe")):
        code, out, err = cli(*argv)
        line = one_line(err)
        assert code == 2 and "stores the preprocessing preset 'small'" in line and str(digits_file) in line, err
        assert "--force-preprocess" in line and argv[-1] in line
    assert not (tmp_path / "m.onnx").exists()
    # the stored preset given again is no contradiction
    code, out, err = cli("eval", digits_file, "--data", "digits", "--limit", "10", "--preprocess", "small",
                         "--json", "--no-progress")
    assert code == 0 and json.loads(out)["preprocess"] == "small", err


def test_force_preprocess_runs_the_given_preset_and_says_so(cli, digits_file, tmp_path):
    from PIL import Image
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(img)
    code, out, err = cli("predict", digits_file, img, "--preprocess", "torchvision", "--force-preprocess",
                         "--engine", "eager")
    assert code == 0, err
    assert "running preset torchvision, not" in err and "stored small" in err
    code, out, err = cli("export", digits_file, "-o", tmp_path / "m.onnx", "--preprocess", "torchvision",
                         "--force-preprocess")
    assert code == 0, err
    from squeezenet.interop.onnx_export import read_onnx_metadata
    assert read_onnx_metadata(tmp_path / "m.onnx")["preprocess"]["preset"] == "torchvision"


# ------------------------------------------------------------------ 2. warm-up longer than the run

def test_warmup_is_scaled_to_the_run_and_one_line_says_so(cli, digits_file, tmp_path):
    from squeezenet.train import TrainConfig, lr_at
    c = TrainConfig(lr=1.0, warmup_steps=50, schedule="cosine")
    lrs = [lr_at(c, s, 30) for s in range(30)]
    assert lrs[0] == pytest.approx(1 / 3) and lrs[2] == pytest.approx(1.0)   # 3 warm-up steps, then decay
    assert lrs[4] < 1.0 and lrs[-1] < 0.05
    long = TrainConfig(lr=1.0, warmup_steps=50)
    assert lr_at(long, 49, 750) == pytest.approx(1.0) and lr_at(long, 24, 750) == pytest.approx(0.5)   # unchanged
    code, out, err = cli("train", "--model", digits_file, "--data", "digits", "--out", tmp_path / "r",
                         "--max-steps", "4", "--no-val", "--no-progress", "--batch-size", "16")
    assert code == 0, err
    assert "warm-up scaled to the run: 1 steps (10 % of 4), not 50" in out


# ------------------------------------------------------------------ 3. one rule for output folders

def test_every_command_that_writes_a_folder_refuses_a_used_one_unless_overwrite(cli, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    for argv in (("train", "--data", "digits", "-o", used, "--max-steps", "1"),
                 ("demo", "-o", used, "--max-steps", "1"),
                 ("explore", "sweep", "--param", "SR", "--values", "0.5", "-o", used, "--max-steps", "1"),
                 ("explore", "report", "--storage", tmp_path / "none.db", "--study", "s", "-o", used),
                 ("export-caffe", "squeezenet_small", "-o", used)):
        code, out, err = cli(*argv)
        line = one_line(err)
        assert code == 2 and f"{used}: not empty (holds keep.txt)" in line and "--overwrite" in line, (argv, err)
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    code, out, err = cli("export-caffe", "squeezenet_small", "-o", used, "--overwrite")
    assert code == 0, err
    assert (used / "keep.txt").read_text() == "mine" and (used / "deploy.prototxt").is_file()


def test_demo_run_again_keeps_the_earlier_demo_and_says_how_to_go_on(cli, tmp_path):
    d = tmp_path / "demo"
    d.mkdir()
    for name in ("last.safetensors", "best.safetensors", "metrics.jsonl", "last.sqz"):
        (d / name).write_text("earlier")
    (d / "notes.txt").write_text("mine")
    code, out, err = cli("demo", "-o", d, "--max-steps", "1")
    line = one_line(err)
    assert code == 2 and "not empty" in line and "--overwrite" in line and "--out" in line
    assert all((d / n).read_text() == "earlier" for n in ("last.safetensors", "best.safetensors", "last.sqz"))
    from squeezenet.cli.demo import _clear_demo
    assert sorted(_clear_demo(d)) == ["best.safetensors", "last.safetensors", "last.sqz", "metrics.jsonl"]
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------ 6. one vocabulary

def test_o_and_out_everywhere_and_old_names_are_hidden_aliases(cli, digits_file, tmp_path):
    from squeezenet.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("train", "demo", "compress", "export", "export-caffe", "import"):
        opts = sub[name]._option_string_actions
        assert opts["-o"] is opts["--out"] is opts["--output"], name
        assert "--output" not in sub[name].format_help(), name
    sweep = next(a for a in sub["explore"]._actions if a.dest == "explore_command").choices["sweep"]
    assert sweep._option_string_actions["-o"] is sweep._option_string_actions["--out"]
    for name in ("eval", "predict", "compress", "export", "export-caffe", "summary", "inspect", "bench"):
        usage = sub[name].format_usage()
        assert "MODEL" in usage and "WEIGHTS" not in usage and "weights" not in usage, (name, usage)
    # export: --unlabeled / --calibration-images as compress, the old names still work
    ex = sub["export"]
    assert ex._option_string_actions["--calibration"] is ex._option_string_actions["--unlabeled"]
    assert ex._option_string_actions["--calibration-count"] is ex._option_string_actions["--calibration-images"]
    assert "--calibration " not in ex.format_help() and "--calibration-count" not in ex.format_help()
    pr = sub["predict"]
    assert pr._option_string_actions["--labels"] is pr._option_string_actions["--classes"]
    assert "--labels" not in pr.format_help()
    code, out, err = cli("export", digits_file, "--output", tmp_path / "m.onnx")
    assert code == 0 and (tmp_path / "m.onnx").is_file(), err


def test_predict_classes_names_the_model_ids_or_gives_the_class_list(cli, digits_file, tmp_path):
    from PIL import Image
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32), (0, 0, 0)).save(img)
    names = tmp_path / "names.txt"     # the model's ids with names, in another order, and more
    names.write_text("".join(f"{i} digit-{i}\n" for i in reversed(range(12))))
    code, out, err = cli("predict", digits_file, img, "--classes", names, "--json", "--engine", "eager")
    assert code == 0, err
    top = json.loads(out)[0]["top"]
    assert all(r["label"] == f"{r['class']} digit-{r['class']}" for r in top)
    code, out2, err = cli("predict", digits_file, img, "--labels", names, "--json", "--engine", "eager")
    assert code == 0 and json.loads(out2) == json.loads(out), err
    other = tmp_path / "other.txt"     # ids the model lacks, one per output: names by output index
    other.write_text("".join(f"c{i} thing {i}\n" for i in range(10)))
    code, out, err = cli("predict", digits_file, img, "--classes", other, "--json", "--engine", "eager")
    assert code == 0, err
    assert all(r["label"] == f"c{r['index']} thing {r['index']}" for r in json.loads(out)[0]["top"])
    bare = squeezenet.load(digits_file)
    bare.classes = None                # a model without a class list: the file is its class list
    squeezenet.save(bare, tmp_path / "bare.safetensors")
    code, out, err = cli("predict", tmp_path / "bare.safetensors", img, "--classes", other, "--json",
                         "--engine", "eager")
    assert code == 0 and all(r["class"] == f"c{r['index']}" for r in json.loads(out)[0]["top"]), err
    other.write_text("a\nb\n")
    code, out, err = cli("predict", digits_file, img, "--classes", other)
    assert code == 2 and "2 classes" in one_line(err) and "10 outputs" in err


def test_train_help_shows_the_defaults_of_each_recipe(cli):
    code, out, err = cli("train", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "(default by recipe: paper 0.04, small/digits 0.001, finetune 0.0003)" in text
    assert "Defaults come from the recipe that runs" in text and "lr 0.04 decreased" not in text


def test_a_model_name_with_a_dot_gets_a_did_you_mean(cli):
    code, out, err = cli("summary", "squeezenet1.1")
    line = one_line(err)
    assert code == 2 and "did you mean squeezenet1_1?" in line


def test_shared_folder_comes_from_the_environment_or_the_current_folder(monkeypatch, tmp_path):
    from squeezenet.data import build_dataset, shared_dir
    from squeezenet.errors import FormatError
    work = tmp_path / "clone"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("SQUEEZENET_SHARED", raising=False)
    (tmp_path / "shared").mkdir()
    assert shared_dir() == tmp_path / "shared"
    monkeypatch.setenv("SQUEEZENET_SHARED", str(tmp_path / "elsewhere"))
    assert shared_dir() == tmp_path / "elsewhere"
    with pytest.raises(FormatError, match="CIFAR-10 folder not found .*SQUEEZENET_SHARED="):
        build_dataset("cifar10", "test")


# ------------------------------------------------------------------ 7. packaging

def test_license_and_optional_extras():
    import tomllib

    from conftest import REPO
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "BSD-3-Clause"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text
    core = " ".join(meta["dependencies"])
    for pkg in ("optuna", "psycopg2", "matplotlib"):
        assert pkg not in core
    extras = meta["optional-dependencies"]
    assert any(d.startswith("optuna") for d in extras["explore"])
    assert any(d.startswith("psycopg2-binary") for d in extras["postgres"])
    dev = " ".join(extras["dev"])
    assert all(p in dev for p in ("pytest", "optuna", "matplotlib", "psycopg2-binary"))


def test_a_missing_extra_is_one_line_naming_it(cli, monkeypatch, tmp_path):
    import sys

    import squeezenet.explore as explore
    for mod in ("optuna", "squeezenet.explore.strategies", "squeezenet.explore.study"):
        monkeypatch.setitem(sys.modules, mod, None) if mod == "optuna" else monkeypatch.delitem(sys.modules, mod,
                                                                                               raising=False)
    for name in explore._LAZY:
        monkeypatch.delitem(explore.__dict__, name, raising=False)
    code, out, err = cli("explore", "search", "--strategy", "random", "--trials", "1", "--study", "s",
                         "--storage", tmp_path / "s.db")
    line = one_line(err)
    assert code == 2 and 'pip install "squeezenet[explore]"' in line and "optuna" in line
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = cli("explore", "sweep", "--param", "SR", "--values", "0.5", "-o", tmp_path / "sw")
    assert code == 2 and 'pip install "squeezenet[plot]"' in one_line(err)


# ------------------------------------------------------------------ 4. the Python path

def test_python_functions_are_the_commands_and_stay_lazy(digits_file, tmp_path):
    import subprocess
    import sys

    from squeezenet.errors import ConfigError, SqueezeNetError
    with pytest.raises(ConfigError, match="unrecognized arguments: --no-such-flag"):
        squeezenet.export(digits_file, tmp_path / "m.onnx", no_such_flag=3)
    with pytest.raises(SqueezeNetError, match="stores the preprocessing preset 'small'"):
        squeezenet.export(digits_file, tmp_path / "m.onnx", preprocess="caffe", verbose=False)
    assert not (tmp_path / "m.onnx").exists()
    import squeezenet.compress.pipeline as pipeline   # the package of the same name: the function stays
    assert callable(squeezenet.compress) and squeezenet.compress.pipeline is pipeline
    code = ("import sys, squeezenet; squeezenet.finetune, squeezenet.compress, squeezenet.export, "
            "squeezenet.transforms; print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


# ------------------------------------------------------------------ 5. progress

def test_compress_stage_counter_never_jumps_when_the_path_is_chosen():
    import dataclasses
    from types import SimpleNamespace

    from squeezenet.compress.pipeline import STAGES, run_stages

    def choose_mixed(s):
        s.art.plan = "mixed"
    for plan_chosen in ("mixed", "uniform"):
        lines = []
        cfg = SimpleNamespace(max_drop_points=None, target_size=560000, distill_steps=300, svd_energy=None)
        art = SimpleNamespace(plan=None, target_size=560000, from_search=False)
        s = SimpleNamespace(art=art, mixed_wanted=True, cfg=cfg, retrains=True, roles=SimpleNamespace(distill=[1]),
                            log=lines.append, report=SimpleNamespace(timings={}))
        pick = choose_mixed if plan_chosen == "mixed" else (lambda s: setattr(s.art, "plan", "uniform"))
        stages = [dataclasses.replace(st, run=pick if st.name == "size budget" else (lambda s: None))
                  for st in STAGES]
        run_stages(s, stages)
        counts = [l.split("]")[0][1:] for l in lines]
        totals = [c.split("/")[1] for c in counts]
        assert totals[:3] == ["6 or 8"] * 3, lines         # before the choice: both totals
        final = {"mixed": "6", "uniform": "8"}[plan_chosen]
        assert set(totals[3:]) == {final} and counts[-1] == f"{final}/{final}", lines


def test_distillation_shows_a_bar_every_step(capsys):
    import torch

    from squeezenet.compress import quantize as Q
    from squeezenet.compress.distill import distill_quantized
    torch.manual_seed(0)
    model = squeezenet.create_model("squeezenet_small", meta=TINY).eval()
    teacher = squeezenet.create_model("squeezenet_small", meta=TINY).eval()
    layers = Q.quantize_model(model, 3, iters=10)
    lines = []
    distill_quantized(model, teacher, layers, [torch.randn(2, 3, 32, 32)], steps=3, mode="ste",
                      log=lines.append, progress=True)
    err = capsys.readouterr().err
    assert "distill:" in err and "/3 [" in err and "loss=" in err   # tqdm redraws at most every 0.1 s
    assert [l.split(":")[0].strip() for l in lines] == ["distill step 1/3", "distill step 3/3"]


def test_bench_and_explore_trials_show_progress(cli, tmp_path):
    code, out, err = cli("bench", "--model", "squeezenet_small", "--batch", "1", "--threads", "1", "--engines",
                         "torchvision,eager", "--rounds", "1", "--iters", "1", "--sgemm-size", "64",
                         "--memory", "inprocess", "--json")
    assert code == 0 and "bench: batch 1" in err, err
    code, out, err = cli("explore", "sweep", "--param", "SR", "--values", "0.25", "--max-steps", "2",
                         "--train-subset", "64", "--test-subset", "32", "-o", tmp_path / "sw")
    assert code == 0 and "epoch 1/2: 100%" in err and "loss=" in err, err
