"""Deployment formats: `export --to openvino|ncnn|litert`, int8 with float logits (no ties) and
accuracy-controlled int8 (`--max-drop`). Fast checks on the tiny model; the real SqueezeNet 1.1
(ONNX zoo) round-trips through every runtime on the 500-photo ImageNet dev sample (slow)."""
from __future__ import annotations

import json

import pytest
import torch

import squeezenet
from squeezenet.interop.onnx_export import to_onnx_bytes

from conftest import shared_path

openvino = pytest.importorskip("openvino")
ncnn = pytest.importorskip("ncnn")
pytest.importorskip("pnnx")
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A trained-looking tiny model with classes and a preset, saved once."""
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", num_classes=4)
    m.classes, m.class_names, m.preprocess = ["a", "b", "c", "d"], ["ant", "bee", "cat", "dog"], "small"
    return m, squeezenet.save(m, tmp_path_factory.mktemp("small") / "m.safetensors")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """8 labelled 32x32 PNGs in 4 class folders."""
    from PIL import Image
    root = tmp_path_factory.mktemp("photos")
    g = torch.Generator().manual_seed(1)
    for c in "abcd":
        (root / c).mkdir()
        for i in range(2):
            a = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("to,name,files", [("openvino", "m.xml", ["m.xml", "m.bin"]),
                                           ("ncnn", "m.ncnn.param", ["m.ncnn.param", "m.ncnn.bin", "m.ncnn.json"]),
                                           ("litert", "m.tflite", ["m.tflite"])])
def test_export_to_runtime_round_trip(cli, small, photos, tmp_path, to, name, files):
    model, path = small
    out = tmp_path / name
    code, o, err = cli("export", path, "--to", to, "-o", out, "--check")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    assert "top-1 agreement 1.00" in o and f"max |{to} - pytorch|" in o
    from squeezenet.runtime.exported import load_exported
    e = load_exported(out)
    assert (e.engine, e.preprocess, e.classes, e.class_names, e.num_classes) == (to, "small", model.classes,
                                                                                model.class_names, 4)
    assert e.precision == "f32" and not e.int8
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(e(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    # eval and predict run it in its runtime with its own preset and classes
    code, o, err = cli("eval", out, "--data", photos, "--json")
    assert code == 0, err
    d = json.loads(o)
    assert d["engine"] == to and d["count"] == 8 and d["preprocess"] == "small"
    code, o, err = cli("predict", out, photos / "a" / "0.png", "--json", "--top", "2")
    assert code == 0, err
    top = json.loads(o)[0]["top"][0]
    assert top["class"] in model.classes and top["label"].endswith(model.class_names[model.classes.index(top["class"])])
    code, o, err = cli("eval", out, "--data", photos, "--engine", "onnxruntime")
    assert code == 2 and f"runs with {to}" in err
    code, o, err = cli("bench", out, "--batch", "1,2", "--threads", "1", "--rounds", "1", "--iters", "1",
                       "--sgemm-size", "64", "--memory", "inprocess", "--json")
    assert code == 0, err
    d = json.loads(o)
    assert {r["engine"] for r in d["results"]} == {"torchvision", "eager", f"{to}_file"}
    assert d["engines"][f"{to}_file"]["precision"] == "f32"


@pytest.mark.parametrize("to,name", [("openvino", "q.xml"), ("litert", "q.tflite")])
def test_export_int8_keeps_float_logits(cli, small, photos, tmp_path, to, name):
    out = tmp_path / name
    code, o, err = cli("export", small[1], "--to", to, "-o", out, "--int8", "--calibration", photos)
    assert code == 0, err
    from squeezenet.runtime.exported import load_exported
    e = load_exported(out)
    assert e.int8 and "8" in e.precision   # the convolutions run in u8/i8
    assert json.loads(json.dumps(e.metadata["quantization"]))["float_output"] is True
    y = e(torch.randn(4, 3, 32, 32))
    assert y.shape == (4, 4) and torch.isfinite(y).all()


def test_export_ncnn_int8(cli, small, photos, tmp_path):
    """ncnn int8 from our calibration: each convolution in ncnn's int8 form, logits in float."""
    out = tmp_path / "q.param"
    code, o, err = cli("export", small[1], "--to", "ncnn", "-o", out, "--int8", "--calibration", photos, "--check")
    assert code == 0, err
    from squeezenet.runtime.exported import load_exported
    e = load_exported(out)
    n_conv = sum(1 for m in small[0].modules() if isinstance(m, torch.nn.Conv2d))
    assert e.int8 and e.precision == f"int8 ({n_conv} convs) + f32", e.precision
    assert out.read_text().count(" 8=2") == n_conv
    assert (tmp_path / "q.bin").stat().st_size < 0.4 * sum(p.numel() * 4 for p in small[0].parameters())
    assert e.metadata["quantization"]["float_output"] is True
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = small[0].eval()(x)
    y = e(x)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    assert float((y - ref).abs().max()) < 0.25 * float(ref.std()) + 1e-3   # int8-close, not just finite


@pytest.mark.parametrize("argv,needle", [
    (("--to", "openvino", "-o", "{t}/m.onnx"), "ending in .xml for --to openvino"),
    (("--to", "litert", "-o", "{t}/m.onnx"), "ending in .tflite for --to litert"),
    (("--to", "tflite", "-o", "{t}/m.tflite"), "invalid choice"),
    (("-o", "{t}/m.onnx", "--max-drop", "1"), "only used with --int8"),
    (("-o", "{t}/m.onnx", "--int8", "--calibration", "{p}", "--max-drop", "-1"), ">= 0"),
])
def test_export_bad_flags(cli, small, photos, tmp_path, argv, needle):
    code, o, err = cli("export", small[1], *[a.format(t=tmp_path, p=photos) for a in argv])
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert needle in lines[-1], err
    assert not [p for p in tmp_path.iterdir()]


def test_broken_exported_files_are_one_line_errors(cli, small, tmp_path):
    (tmp_path / "bad.xml").write_text("<net><layers><layer id='0' type='Nope'/></layers></net>")
    (tmp_path / "bad.bin").write_bytes(b"\0" * 8)
    (tmp_path / "lone.param").write_text("7767517\n1 1\nInput in0 0 1 in0\n")
    (tmp_path / "x.ncnn.param").write_text("garbage")
    (tmp_path / "x.ncnn.bin").write_bytes(b"")
    from squeezenet.runtime.litert_model import tflite_bytes
    good = tflite_bytes(to_onnx_bytes(small[0]))
    (tmp_path / "cut.tflite").write_bytes(good[:len(good) // 2])   # a download cut short
    (tmp_path / "few.tflite").write_bytes(good[:100])
    (tmp_path / "png.tflite").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    for f, needle in (("bad.xml", "OpenVINO cannot read it"), ("lone.param", "lone.bin are missing"),
                      ("x.ncnn.param", "x.ncnn.param"), ("cut.tflite", "cut.tflite: not a readable .tflite"),
                      ("few.tflite", "few.tflite: not a readable .tflite"),
                      ("png.tflite", "png.tflite: not a .tflite file")):
        code, o, err = cli("predict", tmp_path / f, "--preprocess", "small", tmp_path / "none.png")
        assert code == 2, (f, err)
        lines = [ln for ln in err.strip().splitlines() if ln]
        assert len(lines) == 1 and needle in lines[0], (f, err)


def test_max_drop_keeps_layers_in_float(cli, small, photos, tmp_path):
    """A bound of 0 points on the calibration photos (labelled here by the fp32 model's own
    answers, so fp32 scores 100 %) keeps layers in float until int8 agrees on every photo."""
    model, path = small
    from squeezenet.runtime.quantize import quantize_within
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 3, 32, 32, generator=g) * 3
    y = model.eval()(x).argmax(1)
    fp32 = to_onnx_bytes(model)
    q, r = quantize_within(fp32, [x[:4]], x, y, max_drop=0.0, rank_images=8)
    assert r["fp32_top1"] == 100.0 and r["within"] and r["drop_points"] <= 0
    assert r["steps"][-1]["float_layers"] == len(r["float_layers"]) and r["bytes"] == len(q)
    if r["steps"][0]["top1"] < 100:
        assert r["float_layers"]   # something had to stay in float
    from squeezenet.runtime.engines import ort_session
    out = torch.from_numpy(ort_session(q).run(None, {"input": x.numpy()})[0])
    assert float((out.argmax(1) == y).float().mean()) * 100 == r["int8_top1"]   # the report is the file's
    meta = {p.key: p.value for p in __import__("onnx").load_from_string(q).metadata_props}
    assert json.loads(meta["quantization"])["float_layers"] == r["float_layers"]
    # the CLI reports the drop and the layers kept
    code, o, err = cli("export", path, "-o", tmp_path / "q.onnx", "--int8", "--calibration", photos,
                       "--max-drop", "100")
    assert code == 0, err
    assert "0 of 26 layers kept in float" in o and "bound 100.0" in o
    # another runtime: the bound is met in ONNX Runtime, and the written file's own top-1 is said
    code, o, err = cli("export", path, "--to", "litert", "-o", tmp_path / "q.tflite", "--int8",
                       "--calibration", photos, "--max-drop", "100")
    assert code == 0, err
    import re
    from squeezenet.runtime.exported import load_exported
    from squeezenet.runtime.images import batches, image_dataset, take
    said = re.search(r"in litert itself: top-1 ([0-9.]+) % on the same photos \(drop (-?[0-9.]+) points\)", o)
    assert said, o
    ds = image_dataset(photos, preset=model.preprocess, classes=model.classes)
    run = load_exported(tmp_path / "q.tflite", need_preprocess=False)
    hits = [(run(x).argmax(1) == y) for x, y in batches(ds, take(ds, 500), 32)]
    assert float(said.group(1)) == pytest.approx(100 * float(torch.cat(hits).float().mean()), abs=0.005)


# --- the real SqueezeNet 1.1 on the ImageNet dev sample, in every runtime ---------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(model, dev images, labels, fp32 torch logits, fp32 ONNX bytes, int8 ONNX bytes): the
    int8 file is calibrated on every 10th dev photo; accuracy is scored on the other 450."""
    from squeezenet.data import build_dataset
    from squeezenet.interop.importers import import_to_file, read_classes
    from squeezenet.runtime.quantize import quantize_int8
    out = import_to_file("onnx-zoo", [shared_path("fixtures/onnx_zoo_squeezenet1.1/weights")],
                         tmp_path_factory.mktemp("zoo") / "zoo.safetensors",
                         read_classes(shared_path("fixtures/imagenet/synsets.txt")))
    m = squeezenet.load(out).eval()
    ds = build_dataset(shared_path("fixtures/imagenet_sample_dev"), split="test", preset=m.preprocess,
                       classes=m.classes, strict=True)
    items = [ds[i] for i in range(len(ds))]
    x, y = torch.stack([a for a, _ in items]), torch.tensor([int(b) for _, b in items])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            ref = torch.cat([m(x[i:i + 50]) for i in range(0, len(x), 50)])
        fp32 = to_onnx_bytes(m)
        calib = torch.zeros(len(x), dtype=torch.bool)
        calib[::10] = True
        q = quantize_int8(fp32, [x[calib][i:i + 25] for i in range(0, int(calib.sum()), 25)])
    finally:
        torch.set_num_threads(threads)
    return {"model": m, "x": x, "y": y, "ref": ref, "fp32": fp32, "int8": q, "held_out": ~calib}


def _run_all(fn, x, batch=50):
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def _top1(logits, y):
    return float((logits.argmax(1) == y).float().mean()) * 100


def _check(zoo, out, int8: bool):
    ref, y, held = zoo["ref"], zoo["y"], zoo["held_out"]
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
    ties = int(((out == out.max(1, keepdim=True).values).sum(1) > 1).sum())
    print(f"agreement {agree:.3f}, top-1 {_top1(out[held], y[held]):.2f} vs fp32 {_top1(ref[held], y[held]):.2f} "
          f"on {int(held.sum())} held-out photos, {ties} ties in {len(out)}")
    assert ties <= 0.01 * len(out)
    if int8:
        assert abs(_top1(out[held], y[held]) - _top1(ref[held], y[held])) <= 1.0
    else:
        assert agree >= 0.99


@pytest.mark.slow
def test_zoo_int8_onnx_float_logits_no_ties(zoo):
    from squeezenet.runtime.engines import ort_session
    import onnx
    q = zoo["int8"]
    assert onnx.load_from_string(q).graph.node[-1].op_type != "DequantizeLinear"
    s = ort_session(q, 1)
    _check(zoo, _run_all(lambda a: torch.from_numpy(s.run(None, {"input": a.numpy()})[0]), zoo["x"]), int8=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,int8", [("openvino", False), ("openvino", True), ("ncnn", False), ("ncnn", True),
                                      ("litert", False), ("litert", True)])
def test_zoo_exported_in_its_runtime(zoo, tmp_path, fmt, int8):
    from squeezenet.runtime.exported import FORMATS, export_to, load_exported
    path = tmp_path / ("m" + FORMATS[fmt][0])
    export_to(fmt, zoo["int8"] if int8 else zoo["fp32"], path, fp32_bytes=zoo["fp32"] if int8 else None)
    e = load_exported(path, threads=1)
    assert e.engine == fmt and e.int8 == int8 and e.classes == zoo["model"].classes
    want = {"openvino": "u8", "ncnn": "int8 (26 convs) + f32", "litert": "i8"}[fmt] if int8 else "f32"
    assert e.precision == want   # never bf16: fp32 files run in fp32
    _check(zoo, _run_all(e, zoo["x"]), int8=int8)


def test_litert_refuses_unknown_onnx_ops(small):
    """An ONNX op the LiteRT translator does not know is one line naming it, not a broken file."""
    import onnx
    from onnx import helper
    from squeezenet.runtime.litert_model import tflite_bytes
    proto = onnx.load_from_string(to_onnx_bytes(small[0]))
    last = proto.graph.node[-1]
    last.output[0] = "pre"
    proto.graph.node.append(helper.make_node("Sigmoid", ["pre"], [proto.graph.output[0].name], name="odd"))
    with pytest.raises(squeezenet.SqueezeNetError, match=r"ONNX op Sigmoid \(node 'odd'\) has no LiteRT translation"):
        tflite_bytes(proto.SerializeToString())


def test_litert_int8_follows_onnx_runtime_with_float_layers_and_bypass():
    """The .tflite of an int8 QDQ file computes what ONNX Runtime computes from it: with layers
    kept in float (``--max-drop``: QUANTIZE/DEQUANTIZE at their borders) and a complex bypass
    (int8 ADD, 1x1 shortcut convolutions)."""
    from squeezenet.runtime.engines import ort_session
    from squeezenet.runtime.litert_model import LiteRtRunner, tflite_bytes
    from squeezenet.runtime.quantize import Int8Quantizer
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", bypass="complex").eval()
    x = torch.randn(6, 3, 32, 32) * 2
    with torch.no_grad():
        ref = m(x)
    fp32 = to_onnx_bytes(m)
    assert torch.allclose(LiteRtRunner(tflite_bytes(fp32), 1)(x), ref, rtol=1e-4, atol=1e-5)
    with Int8Quantizer(fp32, [x]) as qz:
        assert any("shortcut" in name for name in qz.layers)
        for keep in ([], qz.layers[1:4]):
            q = qz.quantize(keep)
            want = torch.from_numpy(ort_session(q, 1).run(None, {"input": x.numpy()})[0])
            got = LiteRtRunner(tflite_bytes(q), 1)(x)
            span = float(want.abs().max())
            assert float((got - want).abs().max()) <= 0.03 * span, keep   # int8 rounding, not a wrong graph
            assert float((got - ref).abs().max()) <= 0.1 * span
