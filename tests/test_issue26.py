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
