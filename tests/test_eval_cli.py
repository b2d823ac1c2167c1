"""``squeezenet eval`` and ``squeezenet predict`` through squeezenet.load, on real fixtures."""
from __future__ import annotations

import json

import pytest

import squeezenet
from conftest import shared_path


pytestmark = pytest.mark.usefixtures("one_thread")


def test_predict_chelsea_is_a_cat(cli, onnx_zoo_file):
    path = onnx_zoo_file   # the importer's output (squeezenet import --from onnx-zoo), made once a run
    words = shared_path("fixtures/imagenet/synset_words.txt")
    cat = shared_path("fixtures/photos/chelsea.png")
    code, out, err = cli("predict", path, cat, shared_path("fixtures/photos/coffee.png"), "--labels", words, "--json")
    assert code == 0, err
    res = json.loads(out)
    top = res[0]["top"]
    assert len(top) == 5 and top[0]["probability"] >= top[1]["probability"]
    assert sum(r["probability"] for r in top) <= 1.0 + 1e-6
    assert any(w in top[0]["label"] for w in ("tabby", "tiger cat", "Egyptian cat")), top[0]
    assert "espresso" in " ".join(r["label"] for r in res[1]["top"][:2])
    code, out, _ = cli("predict", path, cat, "--labels", words, "--top", "3")
    assert code == 0 and out.splitlines()[0].endswith("chelsea.png") and len(out.splitlines()) == 4


def test_eval_digits_json_and_text(cli, tmp_path):
    m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    m.classes, m.preprocess = [str(i) for i in range(10)], "small"
    p = squeezenet.save(m, tmp_path / "m.safetensors")
    code, out, err = cli("eval", p, "--data", "digits", "--json", "--batch-size", "120")
    assert code == 0, err
    r = json.loads(out)
    assert r["count"] == 360 and 0 <= r["top1"] <= r["top5"] <= 1 and r["images_per_s"] > 0
    code, out, _ = cli("eval", p, "--data", "digits")
    assert code == 0 and "top-1" in out and "images 360" in out


@pytest.mark.parametrize("argv,needle", [
    (("eval", "{m}", "--data", "nowhere/"), "no such dataset"),
    (("eval", "{tmp}/missing.safetensors", "--data", "digits"), "no such file"),
    (("eval", "{m}", "--data", "digits", "--preprocess", "cafe"), "did you mean caffe"),
    (("eval", "{m}", "--data", "digits", "--engine", "warp"), "engine"),
    (("predict", "{m}", "{tmp}/nothing.png"), "no such image"),
    (("predict", "{m}", "{tmp}/garbage.png"), "unreadable image"),
    (("predict", "{m}", "{tmp}/garbage.png", "--top", "0"), "--top"),
])
def test_bad_input_one_line(cli, tmp_path, argv, needle):
    m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    p = squeezenet.save(m, tmp_path / "m.safetensors")
    (tmp_path / "garbage.png").write_bytes(b"not a png")
    code, out, err = cli(*[a.format(m=p, tmp=tmp_path) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


def test_eval_more_classes_than_outputs(cli, tmp_path):
    m = squeezenet.create_model("squeezenet_small", num_classes=3, meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    p = squeezenet.save(m, tmp_path / "m.safetensors")
    code, _, err = cli("eval", p, "--data", "digits")
    assert code == 2 and "--classes" in err


@pytest.mark.slow
def test_eval_onnx_zoo_on_imagenet_sample(cli, onnx_zoo_file):
    """spec section 11: dev set top-1 59.8 %, top-5 81.0 % (torchvision preprocessing)."""
    path = onnx_zoo_file
    root = shared_path("fixtures/imagenet_sample_dev")
    code, out, err = cli("eval", path, "--data", root, "--classes",
                         shared_path("fixtures/imagenet/synsets.txt"), "--json", "--batch-size", "50")
    assert code == 0, err
    r = json.loads(out)
    assert r["count"] == 500
    assert r["top1"] == pytest.approx(0.598, abs=0.005) and r["top5"] == pytest.approx(0.81, abs=0.005)
