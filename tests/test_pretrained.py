"""Pretrained weights: the registry, the bundled .sqz files (re-made byte for byte from the
fixtures), create_model(pretrained=/weights=/num_classes=), torch.hub from a clone, and the CLI
(list --pretrained, a weights name wherever a model file goes, predict without a model)."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch

import squeezenet
from squeezenet.interop import pretrained as P

from conftest import REPO, shared_path

BUNDLE_LIMIT = 1_500_000   # bytes of bundled weights in all


def _script():
    spec = importlib.util.spec_from_file_location("make_bundled_weights", REPO / "scripts" / "make_bundled_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_registry_records_are_complete_and_bundles_fit():
    total = 0
    for name, w in P.REGISTRY.items():
        assert name == w.name and w.family in name and w.arch in squeezenet.list_models()
        assert w.preset in ("caffe", "torchvision") and w.license and w.description
        assert w.url is None or w.url.startswith("https://")
        assert w.sha256 is None or len(w.sha256) == 64
        if w.bundled:
            p = w.bundled_path()
            assert p.is_file(), p
            assert hashlib.sha256(p.read_bytes()).hexdigest() == w.bundled_sha256
            assert w.dev["bundled"]["bytes"] == p.stat().st_size
            total += p.stat().st_size
    assert total <= BUNDLE_LIMIT
    assert P.default_for("squeezenet1_1").bundled and P.default_for("squeezenet1_0").bundled
    with pytest.raises(squeezenet.SqueezeNetError, match="did you mean squeezenet1_1.onnx_zoo"):
        P.get("squeezenet1_1.onnx_zo")
    with pytest.raises(squeezenet.SqueezeNetError, match="no pretrained weights for squeezenet_small"):
        P.default_for("squeezenet_small")


def test_recorded_hashes_are_those_of_the_fixture_files():
    w = P.get("squeezenet1_0.deep_compression")
    f = shared_path("fixtures/deep_compression") / w.file_name
    assert hashlib.sha256(f.read_bytes()).hexdigest() == w.sha256


def test_bundled_files_are_remade_byte_for_byte_from_the_fixtures(tmp_path):
    shared_path("fixtures/onnx_zoo_squeezenet1.1")
    mod = _script()
    info = mod.make_all(shared_path("."), tmp_path)
    for name in info:
        assert (tmp_path / name).read_bytes() == (P.BUNDLED_DIR / name).read_bytes(), name


def test_class_list_and_transforms():
    w = squeezenet.weights.get("squeezenet1_1.onnx_zoo")
    ids = [l.split()[0] for l in shared_path("fixtures/imagenet/synset_words.txt").read_text().splitlines()]
    assert w.class_ids == ids and w.categories[281] == "tabby, tabby cat"
    from PIL import Image
    x = w.transforms()(Image.new("RGB", (300, 250), (124, 116, 104)))
    assert x.shape == (3, 224, 224) and float(x.abs().max()) < 0.01   # ImageNet mean -> ~0
    assert P.get("squeezenet1_0.deep_compression").transforms()(Image.new("RGB", (300, 250))).shape == (3, 227, 227)


def test_create_model_pretrained_named_and_new_head():
    m = squeezenet.create_model("squeezenet1_1", pretrained=True)
    assert m.num_classes == 1000 and m.preprocess == "torchvision" and m.class_names[0].startswith("tench")
    named = squeezenet.create_model("squeezenet1_1", weights="squeezenet1_1.onnx_zoo")
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(m(x), named(x))
    v10 = squeezenet.create_model("squeezenet1_0", pretrained=True)
    assert v10.config.conv10_padding == 1 and v10.preprocess == "caffe"
    head = squeezenet.create_model("squeezenet1_1", pretrained=True, num_classes=5)
    assert head.num_classes == 5 and head.classes is None
    assert torch.equal(head.features[0].weight, m.features[0].weight)   # the backbone is kept
    assert squeezenet.create_model("squeezenet1_1", num_classes=3).num_classes == 3   # no weights
    with pytest.raises(squeezenet.SqueezeNetError, match="are for squeezenet1_0_caffe, not squeezenet1_1"):
        squeezenet.create_model("squeezenet1_1", weights="squeezenet1_0.deep_compression")


def test_onnx_zoo_full_precision_from_a_mirror_folder(tmp_path, monkeypatch):
    # the zoo's .onnx as its initializers (made here from the fixture arrays), served from a
    # mirror folder: load(full=True) gives the released float32 weights
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from squeezenet.interop.onnx_zoo import read_npy
    wdir = shared_path("fixtures/onnx_zoo_squeezenet1.1/weights")
    inits = [numpy_helper.from_array(read_npy(f), f.stem) for f in sorted(wdir.glob("*.npy"))]
    graph = helper.make_graph([helper.make_node("Identity", ["squeezenet0_conv0_bias"], ["y"])], "zoo", [],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [64])], inits)
    w = P.get("squeezenet1_1.onnx_zoo")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    onnx.save(helper.make_model(graph), mirror / w.file_name)
    monkeypatch.setenv("SQUEEZENET_MIRROR", str(mirror))
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    full = w.load(full=True, progress=False)
    dense = _script().dense_v1_1(shared_path("."))
    for k, v in dense.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    assert full.class_names == dense.class_names and full.preprocess == "torchvision"
    (mirror / w.file_name).write_bytes(b"not onnx")
    (tmp_path / "cache" / w.file_name).unlink()
    with pytest.raises(squeezenet.FormatError, match="not a readable ONNX model"):
        w.load(full=True, progress=False)


def test_torch_hub_load_from_a_clone():
    m = torch.hub.load(str(REPO), "squeezenet1_1", source="local", pretrained=True)
    assert m.num_classes == 1000 and m.classes[0] == "n01440764"
    assert torch.hub.load(str(REPO), "squeezenet1_1", source="local", num_classes=4).num_classes == 4


def test_cli_list_pretrained(cli):
    code, out, _ = cli("list", "--pretrained")
    assert code == 0
    for name, w in P.REGISTRY.items():
        assert name in out and (w.url or "") in out
    assert "sha256: e4ab6960" in out and "not recorded" in out


def test_predict_without_a_model_uses_the_bundled_v1_1(cli):
    photo = shared_path("fixtures/photos/chelsea.png")
    code, out, err = cli("predict", photo, "--top", "1", "--engine", "eager")
    assert code == 0, err
    assert "n02124075 Egyptian cat" in out
    code, out, err = cli("predict", "squeezenet1_0.deep_compression", photo, "--top", "1", "--engine", "eager")
    assert code == 0 and "n02124075 Egyptian cat" in out, err


def test_eval_takes_a_weights_name(cli):
    code, out, err = cli("eval", "squeezenet1_1.onnx_zoo", "--data", shared_path("fixtures/imagenet_sample_dev"),
                         "--limit", "20", "--engine", "eager", "--no-progress", "--json")
    assert code == 0, err
    assert '"count": 20' in out


def test_predict_top1_matches_the_released_v1_1_on_the_photos():
    from squeezenet.data import get_transform, read_image
    dense = _script().dense_v1_1(shared_path(".")).eval()
    bundled = squeezenet.create_model("squeezenet1_1", pretrained=True)
    tf = get_transform("torchvision")
    photos = sorted(shared_path("fixtures/photos").glob("*.png"))
    x = torch.stack([tf(read_image(p)) for p in photos])
    with torch.inference_mode():
        assert dense(x).argmax(1).tolist() == bundled(x).argmax(1).tolist()


@pytest.mark.slow
def test_bundled_v1_1_loses_at_most_0_2_points_of_the_released_weights_on_the_dev_photos():
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    m = squeezenet.create_model("squeezenet1_1", pretrained=True)
    ds = build_dataset(shared_path("fixtures/imagenet_sample_dev"), "test", preset=m.preprocess,
                       classes=m.classes, strict=True)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = evaluate(m, make_loader(ds, batch_size=50))
    finally:
        torch.set_num_threads(n)
    full = P.get("squeezenet1_1.onnx_zoo").dev["full"]["top1"]
    assert r["count"] == 500
    assert r["top1"] >= full - 0.002 - 1e-9   # at most 0.2 points (1 photo) below the released weights
    assert abs(r["top1"] - P.get("squeezenet1_1.onnx_zoo").dev["bundled"]["top1"]) < 1e-9


def test_deepscale_caffemodel_from_a_mirror_is_read_by_the_caffe_importer(tmp_path, monkeypatch, capsys):
    # a Caffe file in the released layout (our own export of a v1.1), named as DeepScale names it
    from squeezenet.interop.caffe.export import export_caffe
    from squeezenet.models import create_model
    src = create_model("squeezenet1_1").eval()
    export_caffe(src, tmp_path / "mirror", name="squeezenet_v1.1")
    monkeypatch.setenv("SQUEEZENET_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    m = squeezenet.create_model("squeezenet1_1", weights="squeezenet1_1.deepscale", progress=False)
    assert torch.equal(m.state_dict()["classifier.1.weight"], src.state_dict()["classifier.1.weight"])
    assert m.preprocess == "caffe" and m.class_names[281] == "tabby, tabby cat"
    assert "no sha256 is recorded for squeezenet_v1.1.caffemodel" in capsys.readouterr().err
