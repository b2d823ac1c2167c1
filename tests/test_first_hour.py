"""Issue 16, a new user's first hour: no silent wrong answers, ONNX files where models go, class
names, progress and signals, and the small things (the README runner is tests/test_readme.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

import squeezenet
from conftest import shared_path

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = squeezenet.MetaParams(base_e=16, incr_e=16)
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A small SqueezeNet for digits (untrained: these tests check plumbing, not accuracy)."""
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY)
    return squeezenet.save(m.eval(), tmp_path_factory.mktemp("tiny") / "m.safetensors")


@pytest.fixture
def tiny_digits_model(tiny_model_file):
    def make(tmp_path, names=True, classes=True, preprocess="small"):
        """The model with (or without) its class list and names, saved in ``tmp_path``."""
        m = squeezenet.load(tiny_model_file)
        m.classes = [str(i) for i in range(10)] if classes else None
        m.preprocess = preprocess
        if names and classes:
            m.class_names = DIGIT_NAMES
        return squeezenet.save(m, tmp_path / "m.safetensors")
    return make


def one_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ 1. Caffe round trip

def test_caffe_round_trip_keeps_preset_classes_and_names(cli, tmp_path):
    m = squeezenet.create_model("squeezenet1_1", num_classes=3).eval()
    m.classes, m.class_names, m.preprocess = ["n1", "n2", "n3"], ["cat", "dog", "n3"], "torchvision"
    squeezenet.save(m, tmp_path / "m.safetensors")
    code, out, err = cli("export-caffe", tmp_path / "m.safetensors", "-o", tmp_path / "caffe")
    assert code == 0, err
    proto = (tmp_path / "caffe" / "deploy.prototxt").read_text()
    assert "# preprocessing: torchvision" in proto and "# classes: classes.txt" in proto
    assert (tmp_path / "caffe" / "classes.txt").read_text().splitlines() == ["n1 cat", "n2 dog", "n3"]
    code, out, err = cli("import", tmp_path / "caffe" / "deploy.prototxt", tmp_path / "caffe" / "squeezenet.caffemodel",
                         "--from", "caffe", "-o", tmp_path / "back.safetensors")
    assert code == 0 and "assumed" not in err, err
    back = squeezenet.load(tmp_path / "back.safetensors")
    assert back.preprocess == "torchvision" and back.classes == m.classes
    assert back.class_names == ["cat", "dog", "n3"]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))


def test_caffe_import_says_which_preset_it_assumed(cli, tmp_path):
    from squeezenet.interop.caffe import export_caffe
    proto, weights = export_caffe(squeezenet.create_model("squeezenet1_1").eval(), tmp_path / "c")   # no preset
    # a caffemodel alone (its net has no notes) and a prototxt that says nothing: caffe, said once
    for srcs in ((weights,), (proto, weights)):
        code, out, err = cli("import", *srcs, "--from", "caffe", "-o", tmp_path / "a.safetensors")
        assert code == 0 and "assumed 'caffe'" in one_line(err), err
        assert squeezenet.load(tmp_path / "a.safetensors").preprocess == "caffe"
    code, out, err = cli("import", weights, "--from", "caffe", "--preprocess", "torchvision",
                         "-o", tmp_path / "b.safetensors")
    assert code == 0 and err.strip() == "" and squeezenet.load(tmp_path / "b.safetensors").preprocess == "torchvision"
    code, out, err = cli("import", weights, "--from", "caffe", "--preprocess", "cafe", "-o", tmp_path / "c.safetensors")
    assert code == 2 and "did you mean caffe" in one_line(err)
    # a prototxt naming a class list that was not copied along: said, and the model has none
    text = proto.read_text().replace("# preprocessing: unspecified", "# preprocessing: torchvision\n# classes: gone.txt")
    proto.write_text(text)
    code, out, err = cli("import", proto, weights, "--from", "caffe", "-o", tmp_path / "d.safetensors")
    assert code == 0 and "gone.txt" in one_line(err)
    d = squeezenet.load(tmp_path / "d.safetensors")
    assert d.classes is None and d.preprocess == "torchvision"


@pytest.mark.slow
def test_caffe_round_trip_scores_as_the_original_on_the_dev_set(cli, tmp_path):
    """The issue's report: 31.2 % after the round trip instead of 59.8 %."""
    S = shared_path("fixtures")
    code, _, err = cli("import", S / "onnx_zoo_squeezenet1.1/weights", "--from", "onnx-zoo",
                       "--classes", S / "imagenet/synset_words.txt", "-o", tmp_path / "zoo.safetensors")
    assert code == 0, err
    assert cli("export-caffe", tmp_path / "zoo.safetensors", "-o", tmp_path / "out")[0] == 0
    code, _, err = cli("import", tmp_path / "out/deploy.prototxt", tmp_path / "out/squeezenet.caffemodel",
                       "--from", "caffe", "-o", tmp_path / "back.safetensors")
    assert code == 0, err
    figures = []
    for f in ("zoo", "back"):
        code, out, err = cli("eval", tmp_path / f"{f}.safetensors", "--data", S / "imagenet_sample_dev",
                             "--engine", "eager", "--json", "--no-progress")
        assert code == 0, err
        r = json.loads(out)
        figures.append((r["count"], r["top1"], r["top5"], r["preprocess"]))
    assert figures[0] == figures[1]
    assert figures[0][0] == 500 and abs(figures[0][1] - 0.598) <= 0.0041


# ------------------------------------------------------------------ 3. no class list

def _write_folders(root: Path, names, per_class=3):
    """Class folders of digit images: a folder named by a digit holds that digit."""
    from squeezenet.data import DigitsDataset
    ds = DigitsDataset("test")
    for k, name in enumerate(names):
        digit = int(name) if name.isdigit() else k
        picks = [i for i, t in enumerate(ds.targets) if t == digit][:per_class]
        (root / name).mkdir(parents=True)
        for j, i in enumerate(picks):
            ds.images[i].save(root / name / f"{j}.png")


def test_eval_without_class_list_on_named_folders_asks_for_classes(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path, classes=False)
    _write_folders(tmp_path / "words", ["cat", "dog"])
    code, out, err = cli("eval", p, "--data", tmp_path / "words", "--engine", "eager")
    assert code == 2 and "has no class list" in one_line(err) and "--classes" in err
    (tmp_path / "cls.txt").write_text("dog\ncat\n" + "".join(f"x{i}\n" for i in range(8)))
    code, out, err = cli("eval", p, "--data", tmp_path / "words", "--classes", tmp_path / "cls.txt",
                         "--engine", "eager", "--json")
    assert code == 0 and json.loads(out)["count"] == 6, err


def test_eval_without_class_list_maps_index_named_folders_by_index(cli, tmp_path, tiny_digits_model):
    """Folders 0, 1, 7 go to outputs 0, 1, 7 (sorted names would send 7 to output 2): a model
    that always answers 7 scores the third of the images that are in folder 7."""
    m = squeezenet.load(tiny_digits_model(tmp_path, classes=False))
    with torch.no_grad():
        m.final_conv.weight.zero_()
        m.final_conv.bias.zero_()
        m.final_conv.bias[7] = 1.0
    p = squeezenet.save(m, tmp_path / "seven.safetensors")
    _write_folders(tmp_path / "idx", ["0", "1", "7"], per_class=4)
    code, out, err = cli("eval", p, "--data", tmp_path / "idx", "--engine", "eager", "--json", "--batch-size", "5")
    assert code == 0, err
    by_index = json.loads(out)
    (tmp_path / "cls.txt").write_text("".join(f"{i}\n" for i in range(10)))
    code, out, err = cli("eval", p, "--data", tmp_path / "idx", "--classes", tmp_path / "cls.txt",
                         "--engine", "eager", "--json")
    assert code == 0, err
    explicit = json.loads(out)
    assert by_index["count"] == explicit["count"] == 12 and by_index["top1"] == explicit["top1"]
    assert by_index["top1"] == pytest.approx(1 / 3)      # a mapping by sorted names scores 0


# ------------------------------------------------------------------ 4. signals

def test_demo_ends_on_ctrl_c_with_130_and_no_compression(cli, tmp_path, monkeypatch):
    from squeezenet.train import trainer as T
    original = T.Trainer._after_step

    def after_step(self, total):   # Ctrl-C arrives during step 2
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, total)
    monkeypatch.setattr(T.Trainer, "_after_step", after_step)
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--max-steps", "6")
    assert code == 130
    said = [l for l in err.splitlines() if "interrupted" in l]
    assert said == ["squeezenet demo: interrupted"], err
    assert "2/2 compress" not in out and "--resume" not in out + err


def test_trainer_without_a_resumable_out_dir_raises_on_sigint():
    from squeezenet.data import build_dataset
    from squeezenet.train import Callback, TrainConfig, Trainer

    class Kill(Callback):
        def on_step_end(self, t):
            if t.step == 1:
                os.kill(os.getpid(), signal.SIGINT)
    m = squeezenet.create_model("squeezenet_small", meta=TINY)
    t = Trainer(m, TrainConfig(epochs=1, batch_size=32, max_steps=5, progress=False),
                build_dataset("digits", "train"), callbacks=[Kill()])
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert t.step < 5 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow   # a subprocess importing torch
def test_demo_sigint_in_a_real_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(squeezenet.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "squeezenet", "demo", "--out", str(tmp_path / "d"), "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = p.stdout.readline()                  # "== 1/2 train ..."
    assert "1/2 train" in first
    p.stdout.readline()                          # the model line: training starts now
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "squeezenet demo: interrupted"
    assert "2/2 compress" not in out and "--resume" not in out + err and "Traceback" not in err


# ------------------------------------------------------------------ 5. sweep values

def test_sweep_says_up_front_which_values_make_no_network(cli, tmp_path):
    code, out, err = cli("explore", "sweep", "--param", "pct_3x3", "--values", "0.01,0.99", "--set",
                         "base_e=32,incr_e=32", "--data", "digits", "--max-steps", "1", "--out", tmp_path)
    assert code == 2 and "no value of --values makes a network" in one_line(err)
    assert not (tmp_path / "sweep_pct_3x3.csv").exists()
    code, out, err = cli("explore", "sweep", "--param", "pct_3x3", "--values", "0.01,0.5", "--set",
                         "base_e=16,incr_e=16", "--data", "digits", "--max-steps", "1", "--batch-size", "32",
                         "--test-subset", "32", "--out", tmp_path)
    assert code == 0, err
    assert err.splitlines()[0].startswith("pct_3x3=0.01: not a network")


def test_smoke_env_caps_budgets_in_one_place(monkeypatch):
    import argparse
    from squeezenet.cli._common import apply_smoke
    ns = lambda: argparse.Namespace(epochs=15, max_steps=None, batch=[1, 32], limit=None, trials=20, lr=2e-3)
    monkeypatch.delenv("SQUEEZENET_SMOKE", raising=False)
    a = ns()
    assert apply_smoke(a) == [] and a.epochs == 15 and a.max_steps is None
    monkeypatch.setenv("SQUEEZENET_SMOKE", "1")
    a = ns()
    said = apply_smoke(a)
    assert (a.epochs, a.max_steps, a.batch, a.limit, a.trials, a.lr) == (1, 2, [1, 8], 40, 2, 2e-3)
    assert "--max-steps 2" in said and "--batch 1,8" in said


# ------------------------------------------------------------------ 6. README figures

def test_readme_dc_sqz_bytes_are_what_import_writes(cli, tmp_path):
    import re
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    plain, with_ids = (int(v.replace(",", "")) for v in
                       re.search(r"lossless: ([\d,]+) bytes \(([\d,]+) with class ids\)", readme).groups())
    net = shared_path("fixtures/deep_compression/compressed_SqueezeNet.net")
    assert cli("import", net, "--from", "deep-compression", "-o", tmp_path / "dc.sqz")[0] == 0
    assert cli("import", net, "--from", "deep-compression", "--classes", shared_path("fixtures/imagenet/synsets.txt"),
               "-o", tmp_path / "dc_ids.sqz")[0] == 0
    assert (tmp_path / "dc.sqz").stat().st_size == plain
    assert (tmp_path / "dc_ids.sqz").stat().st_size == with_ids


# ------------------------------------------------------------------ 7. .onnx files

def test_eval_predict_bench_run_exported_onnx_files(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path)
    assert cli("export", p, "-o", tmp_path / "m.onnx")[0] == 0
    from squeezenet.data import build_dataset
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        build_dataset("digits", "train", transform=lambda im: im).images[i].save(calib / f"{i}.png")
    code, _, err = cli("export", p, "-o", tmp_path / "m-int8.onnx", "--int8", "--calibration", calib)
    assert code == 0, err
    code, out, err = cli("eval", p, "--data", "digits", "--json", "--engine", "eager")
    ref = json.loads(out)
    for f in ("m.onnx", "m-int8.onnx"):
        code, out, err = cli("eval", tmp_path / f, "--data", "digits", "--json")
        assert code == 0, err
        r = json.loads(out)
        # the default engine (auto) runs an .onnx file with ONNX Runtime or, where installed and
        # faster at eval's batch size on this CPU, OpenVINO (issue 22: OpenVINO int8 wins at batch 32)
        assert r["engine"] in ("onnxruntime", "openvino", "litert"), r["engine"]
        assert r["preprocess"] == "small" and r["count"] == 360
        if f == "m.onnx":
            assert r["top1"] == ref["top1"] and r["top5"] == ref["top5"]
        else:
            assert abs(r["top1"] - ref["top1"]) < 0.1
    import importlib.util
    if importlib.util.find_spec("openvino"):   # an .onnx file in OpenVINO by name: fp32 answers unchanged
        code, out, err = cli("eval", tmp_path / "m.onnx", "--data", "digits", "--json", "--engine", "openvino")
        r = json.loads(out)
        assert code == 0 and r["engine"] == "openvino" and r["top1"] == ref["top1"], err
    img = tmp_path / "calib" / "3.png"
    code, out, err = cli("predict", tmp_path / "m-int8.onnx", img, "--json", "--top", "2")
    assert code == 0, err
    row = json.loads(out)[0]["top"][0]
    assert row["class"] in [str(i) for i in range(10)] and row["label"].split(" ", 1)[1] in DIGIT_NAMES
    code, out, err = cli("eval", tmp_path / "m.onnx", "--data", "digits", "--engine", "torchscript")
    assert code == 2 and "onnxruntime, openvino or litert" in one_line(err)
    code, out, err = cli("bench", tmp_path / "m-int8.onnx", "--batch", "1", "--threads", "1", "--rounds", "1",
                         "--iters", "1", "--sgemm-size", "64", "--memory", "inprocess", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert {row["engine"] for row in r["results"]} == {"torchvision", "eager", "onnx_file"}
    assert r["speedup_vs_torchvision"]["onnx_file"] > 0


def test_onnx_without_our_metadata_says_what_is_missing(cli, tmp_path, tiny_digits_model):
    import onnx
    p = tiny_digits_model(tmp_path)
    assert cli("export", p, "-o", tmp_path / "m.onnx")[0] == 0
    proto = onnx.load(str(tmp_path / "m.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    code, out, err = cli("eval", tmp_path / "bare.onnx", "--data", "digits")
    line = one_line(err)
    assert code == 2 and "no squeezenet metadata" in line and "--preprocess" in line
    code, out, err = cli("eval", tmp_path / "bare.onnx", "--data", "digits", "--preprocess", "small", "--json")
    assert code == 0 and json.loads(out)["count"] == 360, err      # digits' folders are indices
    code, out, err = cli("predict", tmp_path / "bare.onnx", shared_path("fixtures/photos/chelsea.png"),
                         "--preprocess", "small", "--json")
    assert code == 0 and json.loads(out)[0]["top"][0]["class"].isdigit(), err
    code, out, err = cli("bench", tmp_path / "bare.onnx", "--batch", "1")
    assert code == 2 and "no squeezenet config" in one_line(err)
    code, out, err = cli("summary", tmp_path / "m.onnx")
    assert code == 2 and "eval" in one_line(err)   # load() points to the commands that run .onnx


# ------------------------------------------------------------------ 8. class names

def test_imagenet_names_travel_from_import_to_predict(cli, tmp_path):
    S = shared_path("fixtures")
    code, _, err = cli("import", S / "onnx_zoo_squeezenet1.1/weights", "--from", "onnx-zoo",
                       "--classes", S / "imagenet/synset_words.txt", "-o", tmp_path / "zoo.safetensors")
    assert code == 0, err
    code, out, err = cli("predict", tmp_path / "zoo.safetensors", S / "photos/chelsea.png", "--top", "1")
    assert code == 0 and out.splitlines()[1].endswith("n02124075 Egyptian cat"), out
    m = squeezenet.load(tmp_path / "zoo.safetensors")
    assert m.classes[0] == "n01440764" and m.class_names[0] == "tench, Tinca tinca"
    from squeezenet.interop.onnx_export import read_onnx_metadata
    assert cli("export", tmp_path / "zoo.safetensors", "-o", tmp_path / "zoo.onnx")[0] == 0
    assert read_onnx_metadata(tmp_path / "zoo.onnx")["class_names"][285] == "Egyptian cat"


def test_class_names_survive_compress_and_training(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path)
    code, out, err = cli("compress", p, "--data", "digits", "--finetune-epochs", "0", "--calibration-images", "0",
                         "--bits", "4", "--limit", "50", "-o", tmp_path / "m.sqz")
    assert code == 0, err
    assert squeezenet.load(tmp_path / "m.sqz").class_names == DIGIT_NAMES
    words = tmp_path / "words.txt"
    words.write_text("".join(f"{i} {n}\n" for i, n in enumerate(DIGIT_NAMES)))
    code, out, err = cli("train", "--data", "digits", "--out", tmp_path / "run", "--classes", words,
                         "--max-steps", "2", "--no-progress", "--no-val")
    assert code == 0, err
    assert squeezenet.load(tmp_path / "run" / "last.safetensors").class_names == DIGIT_NAMES


# ------------------------------------------------------------------ 9. progress and messages

def test_progress_bar_total_honours_max_steps(capsys):
    from squeezenet.data import build_dataset
    from squeezenet.train import TrainConfig, Trainer
    m = squeezenet.create_model("squeezenet_small", meta=TINY)
    Trainer(m, TrainConfig(epochs=3, batch_size=32, accum_steps=1, max_steps=3, progress=True),
            build_dataset("digits", "train")).fit()
    err = capsys.readouterr().err
    assert "3/3" in err and "/45" not in err and "epoch 1/1" in err   # 1,437 images = 45 batches an epoch


def test_eval_shows_a_bar_and_names_the_engine_and_folder(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path)
    code, out, err = cli("eval", p, "--data", "digits", "--json", "--engine", "channels_last")
    assert code == 0 and "eval" in err and json.loads(out)["engine"] == "channels_last"
    _write_folders(tmp_path / "flat", ["0", "1"])   # class folders without test/: scored whole
    code, out, err = cli("eval", p, "--data", tmp_path / "flat", "--engine", "eager", "--no-progress")
    assert code == 0 and f"on {tmp_path / 'flat'}," in out and "flat/test" not in out, out
    assert "eval" not in err


def test_auto_engine_says_when_it_measures(tmp_path, monkeypatch):
    from squeezenet.runtime import compile_model
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path))
    said = []
    m = squeezenet.create_model("squeezenet_small", meta=TINY)
    compile_model(m, "auto", candidates=("eager", "channels_last"), log=said.append)
    assert len(said) == 1 and "measuring" in said[0]
    f = compile_model(m, "auto", candidates=("eager", "channels_last"), log=said.append)   # cached now
    # one engine, or one per batch size where they differ by more than 5 % (eager and
    # channels_last are near ties since the forward itself runs NHWC on the CPU)
    assert len(said) == 1 and set(f.picks.values()) <= {"eager", "channels_last"}


def test_first_unpack_says_so(tmp_path, capsys):
    from squeezenet.data import unpack
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "x.txt").write_text("x")
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "src", arcname="d")
    first = unpack(tmp_path / "d.tar.gz", cache=tmp_path / "cache")
    err = capsys.readouterr().err
    assert "unpacking" in err and str(tmp_path / "d.tar.gz") in err
    assert unpack(tmp_path / "d.tar.gz", cache=tmp_path / "cache") == first
    assert capsys.readouterr().err == ""          # the second time: nothing to say


def test_compress_says_each_stage_as_it_starts(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path)
    code, out, err = cli("compress", p, "--data", "digits", "--max-steps", "2", "--calibration-images", "0",
                         "--bits", "4", "--limit", "40", "-o", tmp_path / "m.sqz")
    assert code == 0, err
    starts = [l for l in out.splitlines() if l.startswith("[")]
    assert [l.split("]")[1].split(":")[0].strip() for l in starts] == [
        "dense", "fractions", "prune", "retrain", "quantize", "centroids", "encode"]
    assert starts[0].startswith("[1/7]") and "epoch 1/1" in err and "centroids" in err   # retraining bars


# ------------------------------------------------------------------ 10. small things

def test_compress_report_header_has_its_spaces():
    from squeezenet.compress.report import format_report
    assert "vs fp32 vs AlexNet" in format_report({"rows": []})


def test_did_you_mean_only_offers_the_subcommands_own_flags(cli):
    code, out, err = cli("summary", "squeezenet1_0", "--rounds", "3")
    assert code == 2 and "--rounds" in err and "did you mean" not in err   # --rounds is bench's
    code, out, err = cli("summary", "squeezenet1_0", "--out", "x")
    assert code == 2 and "did you mean --out" not in err
    code, out, err = cli("explore", "sweep", "--param", "SR", "--values", "1", "--out", "x", "--epoch", "2")
    assert code == 2 and "did you mean --epochs" in one_line(err) and "squeezenet explore sweep" in err
    code, out, err = cli("summary", "--help")
    assert code == 0 and "--list" not in out and "squeezenet list" in out


def test_predict_skips_unreadable_images_and_counts_them(cli, tmp_path, tiny_digits_model):
    p = tiny_digits_model(tmp_path)
    good = shared_path("fixtures/photos/chelsea.png")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    code, out, err = cli("predict", p, tmp_path / "bad.jpg", good, tmp_path / "missing.png", "--json")
    assert code == 0, err
    assert [r["image"] for r in json.loads(out)] == [str(good)]
    assert "skipped 2 of 3 image(s)" in err and "bad.jpg" in err and "missing.png" in err
    code, out, err = cli("predict", p, tmp_path / "bad.jpg", tmp_path / "missing.png")
    assert code == 2 and "none of the 2 images could be read" in one_line(err)
