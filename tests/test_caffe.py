"""Caffe interop: the caffe.proto subset, the four real prototxts, the DAG module, the
SqueezeNet mapping, caffemodel weights (hand-built and exported) and export round trips."""
from __future__ import annotations

import struct

import pytest
import torch

import squeezenet
from squeezenet.errors import FormatError, SqueezeNetError
from squeezenet.interop.caffe import pb
from squeezenet.interop.caffe import (CaffeNet, NotSqueezeNet, arch_name, export_caffe, import_caffe,
                                      load_caffe, parse_prototxt, read_caffemodel, read_prototxt,
                                      squeezenet_layout, to_squeezenet)

from conftest import shared_path


pytestmark = pytest.mark.usefixtures("one_thread")

# (fixture, expected registered arch, bypass, conv10 padding, pool positions, output blob)
REAL = [
    ("fixtures/caffe/squeezenet_v1.0/deploy.prototxt", "squeezenet1_0_caffe", "none", 1, (2, 6), "prob"),
    ("fixtures/caffe/squeezenet_v1.0/train_val.prototxt", "squeezenet1_0_caffe", "none", 1, (2, 6), "pool10"),
    ("fixtures/caffe/squeezenet_v1.1/deploy.prototxt", "squeezenet1_1", "none", 0, (1, 3), "prob"),
    ("fixtures/caffe/squeezenet_v1.1/train_val.prototxt", "squeezenet1_1", "none", 0, (1, 3), "pool10"),
    ("fixtures/caffe/squeezenet_residual/trainval.prototxt", "squeezenet1_0_caffe", "simple", 1, (2, 6), "pool10"),
    ("fixtures/deep_compression/SqueezeNet_deploy.prototxt", "squeezenet1_0_caffe", "none", 1, (2, 6), "pool_final"),
]


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 10
            p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5 + (0.01 if p.dim() == 1 else 0))


# ----------------------------------------------------------------------------- schema

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _ld(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def test_field_numbers_match_caffe_wire_format():
    """A caffemodel written byte by byte with Caffe's field numbers (independent of our
    schema): NetParameter.layer=100, LayerParameter name=1 type=2 bottom=3 top=4 blobs=7
    convolution_param=106 (num_output=1 kernel_size=4), BlobProto shape=7 data=5,
    BlobShape dim=1, legacy V1 layers=2 (name=4, type=5 enum CONVOLUTION=4, blobs=6)."""
    w = [0.5, -1.0, 2.0, 0.25]
    floats = struct.pack("<4f", *w)
    blob = _ld(7, _ld(1, b"".join(_varint(d) for d in (1, 4, 1, 1)))) + _ld(5, floats)
    bias = _ld(7, _ld(1, _varint(1))) + _ld(5, struct.pack("<f", 0.125))
    conv = _ld(106, _key(1, 0) + _varint(1) + _key(4, 0) + _varint(1))
    layer = _ld(1, b"ip") + _ld(2, b"Convolution") + _ld(3, b"data") + _ld(4, b"ip") + conv + \
        _ld(7, blob) + _ld(7, bias)
    net = pb.NetParameter.FromString(_ld(100, layer))
    lp = net.layer[0]
    assert (lp.name, lp.type, list(lp.bottom), list(lp.top)) == ("ip", "Convolution", ["data"], ["ip"])
    assert lp.convolution_param.num_output == 1 and list(lp.convolution_param.kernel_size) == [1]
    assert list(lp.blobs[0].shape.dim) == [1, 4, 1, 1] and list(lp.blobs[0].data) == w
    # legacy V1 layer with legacy blob dims num=1 channels=2 height=3 width=4
    v1_blob = b"".join(_key(f, 0) + _varint(v) for f, v in ((1, 1), (2, 2), (3, 3), (4, 4)))
    v1 = _ld(4, b"old") + _key(5, 0) + _varint(4) + _ld(6, v1_blob)
    old = pb.NetParameter.FromString(_ld(2, v1))
    assert old.layers[0].name == "old" and old.layers[0].type == pb.V1LayerParameter.CONVOLUTION
    b = old.layers[0].blobs[0]
    assert (b.num, b.channels, b.height, b.width) == (1, 2, 3, 4)
    # pooling_param=121 pool=1 (AVE=1) global_pooling=12; dropout_param=108 dropout_ratio=1
    lp2 = pb.LayerParameter.FromString(_ld(121, _key(1, 0) + _varint(1) + _key(12, 0) + _varint(1)) +
                                       _ld(108, _key(1, 5) + struct.pack("<f", 0.25)))
    assert lp2.pooling_param.pool == 1 and lp2.pooling_param.global_pooling
    assert lp2.dropout_param.dropout_ratio == 0.25


# ------------------------------------------------------------------------- real files

@pytest.mark.parametrize("rel,arch,bypass,pad10,pools,out", REAL, ids=[r[0].split("fixtures/")[1] for r in REAL])
def test_real_prototxt_builds_runs_and_maps_onto_squeezenet(rel, arch, bypass, pad10, pools, out):
    net = CaffeNet(read_prototxt(shared_path(rel))).eval()
    assert net.inputs == ["data"] and net.shapes["data"] == (1, 3, 227, 227)
    assert net.outputs == [out]
    assert net.shapes[out] == (1, 1000, 1, 1)
    config, mapping = squeezenet_layout(net)
    assert arch_name(config) == arch
    assert (config.bypass, config.conv10_padding, config.pool_after) == (bypass, pad10, pools)
    assert len(mapping) == 26
    # the mapping is checked by running both on the same random weights
    _randomize(net, seed=1)
    model = to_squeezenet(net)
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        y_dag = net(x).flatten(1)
        y = model(x)
    if out == "prob":
        y = torch.softmax(y, 1)
    assert y.abs().max() > 0 and y.std() > 0
    torch.testing.assert_close(y, y_dag, rtol=1e-5, atol=1e-6)


def test_train_val_phase_rules():
    path = shared_path("fixtures/caffe/squeezenet_v1.0/train_val.prototxt")
    test = CaffeNet(read_prototxt(path), phase="TEST")
    train = CaffeNet(read_prototxt(path), phase="TRAIN")
    # loss is TRAIN-only, both accuracies TEST-only; all need labels so none is run
    assert test.skipped == ["accuracy", "accuracy_top5"]
    assert train.skipped == ["loss"]
    assert test.transform == {"crop_size": 227, "mean_value": [104.0, 117.0, 123.0], "scale": 1.0, "mirror": False}
    # dropout follows train()/eval(): TRAIN-mode outputs vary, eval outputs do not
    _randomize(train)
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        train.train()
        a, b = train(x), train(x)
        train.eval()
        c, d = train(x), train(x)
    assert not torch.equal(a, b) and torch.equal(c, d)


def test_caffe_pooling_rounds_up_and_global_pooling():
    net = CaffeNet(parse_prototxt("""
        input: "data" input_dim: 1 input_dim: 2 input_dim: 56 input_dim: 56
        layer { name: "ceil" type: "Pooling" bottom: "data" top: "ceil"
                pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
        layer { name: "floor" type: "Pooling" bottom: "data" top: "floor"
                pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR } }
        layer { name: "ave" type: "Pooling" bottom: "data" top: "ave"
                pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
        layer { name: "g" type: "Pooling" bottom: "data" top: "g"
                pooling_param { pool: AVE global_pooling: true } }"""))
    # Caffe: ceil((56 - 3) / 2) + 1 = 28 (floor would give 27)
    assert net.shapes["ceil"] == (1, 2, 28, 28) and net.shapes["floor"] == (1, 2, 27, 27)
    # with pad 1: ceil((56 + 2 - 3) / 2) + 1 = 29 (the last window starts inside the image)
    assert net.shapes["ave"] == (1, 2, 29, 29) and net.shapes["g"] == (1, 2, 1, 1)
    x = torch.arange(2 * 56 * 56, dtype=torch.float32).reshape(1, 2, 56, 56)
    blobs = net(x, return_blobs=True)
    assert blobs["ceil"].shape == (1, 2, 28, 28) and blobs["ave"].shape == (1, 2, 29, 29)
    # last ceil window covers only rows/cols 54..55: its max is x[..., 55, 55]
    assert blobs["ceil"][0, 0, -1, -1] == x[0, 0, 55, 55]
    # Caffe AVE divides the first window (rows -1..1) by 9, padding included
    assert torch.isclose(blobs["ave"][0, 0, 0, 0], x[0, 0, :2, :2].sum() / 9)
    torch.testing.assert_close(blobs["g"].flatten(), x.mean(dim=(2, 3)).flatten())


def test_in_place_layers_and_eltwise_follow_blob_names():
    net = CaffeNet(parse_prototxt("""
        layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
        layer { name: "a" type: "Convolution" bottom: "data" top: "a"
                convolution_param { num_output: 1 kernel_size: 1 bias_term: false } }
        layer { name: "copy" type: "Eltwise" bottom: "a" bottom: "a" top: "before"
                eltwise_param { coeff: 1 coeff: 0 } }
        layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
        layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "before" top: "sum" }"""))
    with torch.no_grad():
        net.params["a"].weight.fill_(1.0)
    x = torch.randn(1, 1, 4, 4)
    # "before" was taken before the in-place ReLU, "a" after it
    torch.testing.assert_close(net(x), x.clamp(min=0) + x)


def test_not_a_squeezenet_is_still_runnable():
    net = CaffeNet(parse_prototxt("""
        input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
        layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 3 } }
        layer { name: "ip" type: "InnerProduct" bottom: "c" top: "ip" inner_product_param { num_output: 5 } }
        layer { name: "p" type: "Softmax" bottom: "ip" top: "p" }"""))
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    with pytest.raises(NotSqueezeNet):
        squeezenet_layout(net)


# --------------------------------------------------------------------- caffemodel weights

def test_hand_built_legacy_caffemodel_loads_by_layer_name(tmp_path):
    """Legacy ``layers {}`` with enum types and num/channels/height/width blobs, as old
    Caffe wrote them (InnerProduct weights as 1x1xOxI, biases as 1x1x1xO)."""
    proto = """name: "tiny"
        input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3
        layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
                 convolution_param { num_output: 2 kernel_size: 3 } }
        layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
        layers { name: "fc" type: INNER_PRODUCT bottom: "conv" top: "fc"
                 inner_product_param { num_output: 3 } }"""
    (tmp_path / "tiny.prototxt").write_text(proto)
    g = torch.Generator().manual_seed(3)
    cw, cb = torch.randn(2, 2, 3, 3, generator=g), torch.randn(2, generator=g)
    fw, fb = torch.randn(3, 2, generator=g), torch.randn(3, generator=g)
    weights = pb.NetParameter(name="tiny")
    for name, arrays in (("conv", [(cw, (2, 2, 3, 3)), (cb, (1, 1, 1, 2))]),
                         ("fc", [(fw, (1, 1, 3, 2)), (fb, (1, 1, 1, 3))]),
                         ("unused", [(fb, (1, 1, 1, 3))])):
        lay = weights.layers.add(name=name)
        for arr, (n, c, h, w) in arrays:
            blob = lay.blobs.add(num=n, channels=c, height=h, width=w)
            blob.data.extend(arr.flatten().tolist())
    (tmp_path / "tiny.caffemodel").write_bytes(weights.SerializeToString())
    net = load_caffe(tmp_path / "tiny.prototxt", tmp_path / "tiny.caffemodel")
    x = torch.randn(4, 2, 3, 3)
    expected = torch.nn.functional.linear(torch.relu(torch.nn.functional.conv2d(x, cw, cb)).flatten(1), fw, fb)
    torch.testing.assert_close(net(x), expected)


def test_caffemodel_errors_name_layer_and_shapes(tmp_path):
    m = squeezenet.create_model("squeezenet1_1").eval()
    proto, weights = export_caffe(m, tmp_path)
    v10 = shared_path("fixtures/caffe/squeezenet_v1.0/deploy.prototxt")
    with pytest.raises(FormatError, match=r"layer 'conv1' weights: shape \(64, 3, 3, 3\) in the caffemodel, "
                                          r"the prototxt needs \(96, 3, 7, 7\)"):
        import_caffe(v10, weights)
    # missing weights: a prototxt layer the caffemodel does not have
    net = read_caffemodel(weights)
    del net.layer[-4]   # conv10 (before relu_conv10, pool10, prob)
    (tmp_path / "nofinal.caffemodel").write_bytes(net.SerializeToString())
    with pytest.raises(FormatError, match="missing weights for layer.*'conv10'"):
        import_caffe(proto, tmp_path / "nofinal.caffemodel")
    # truncated and corrupt files
    data = weights.read_bytes()
    (tmp_path / "trunc.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="corrupt or truncated caffemodel"):
        read_caffemodel(tmp_path / "trunc.caffemodel")
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    with pytest.raises(FormatError, match="no layers"):
        read_caffemodel(tmp_path / "empty.caffemodel")
    # a blob whose declared shape does not match its data: refused before any reshape
    net = read_caffemodel(weights)
    net.layer[1].blobs[1].shape.dim[0] = 1 << 39
    (tmp_path / "huge.caffemodel").write_bytes(net.SerializeToString())
    with pytest.raises(FormatError, match="conv1"):
        import_caffe(proto, tmp_path / "huge.caffemodel")


def test_prototxt_errors(tmp_path):
    with pytest.raises(FormatError, match="syntax error at line 3"):
        parse_prototxt('name: "x"\nlayer {\n  name: "a" type "ReLU"\n}\n', "bad.prototxt")
    with pytest.raises(FormatError, match="layer 'norm1' has unknown layer type 'LRN'"):
        CaffeNet(parse_prototxt('input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'
                                'layer { name: "norm1" type: "LRN" bottom: "data" top: "n" }'))
    # an unknown field in an unknown layer type reports the type, not the field
    with pytest.raises(FormatError, match="unknown layer type 'LRN'"):
        parse_prototxt('layer { name: "norm1" type: "LRN" lrn_param { local_size: 5 } }')
    with pytest.raises(FormatError, match="line 1.*kernal_size"):
        parse_prototxt('layer { name: "c" type: "Convolution" convolution_param { kernal_size: 3 } }')
    with pytest.raises(FormatError, match="bottom blob 'nope' is not produced"):
        CaffeNet(parse_prototxt('input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'
                                'layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }'))
    with pytest.raises(FormatError, match="declares .* parameters"):
        CaffeNet(parse_prototxt('input: "data" input_dim: 1 input_dim: 1000 input_dim: 8 input_dim: 8\n'
                                'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                                'convolution_param { num_output: 100000 kernel_size: 3 } }'))
    (tmp_path / "bin.prototxt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FormatError, match="not a text prototxt"):
        read_prototxt(tmp_path / "bin.prototxt")


# ----------------------------------------------------------------------------- export

@pytest.mark.parametrize("name,kwargs,size", [
    ("squeezenet1_0_caffe", {}, 227),
    ("squeezenet1_1", {}, 224),
    ("squeezenet1_0", {"bypass": "simple"}, 227),
    ("squeezenet_small", {"bypass": "complex"}, 32),
])
def test_export_round_trip_identical_outputs(tmp_path, name, kwargs, size):
    model = squeezenet.create_model(name, **kwargs).eval()
    _randomize(model, seed=5)
    proto, weights = export_caffe(model, tmp_path)
    back = import_caffe(proto, weights)
    assert back.config == model.config and back.preprocess == "caffe"
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        y = model(x)
        assert y.std() > 0
        assert torch.equal(back(x), y)
        # the generic DAG of the exported deploy net gives Caffe's softmax output
        dag = load_caffe(proto, weights)
        torch.testing.assert_close(dag(x).flatten(1), torch.softmax(y, 1))
    # the caffemodel alone carries the net definition too
    assert torch.equal(import_caffe(None, weights)(x), y)


def test_export_layer_names_match_deepscale_deploy(tmp_path):
    proto, _ = export_caffe(squeezenet.create_model("squeezenet1_0_caffe"), tmp_path)
    ours = [(l.name, l.type) for l in read_prototxt(proto).layer if l.type != "Input"]
    real = [(l.name, l.type) for l in read_prototxt(shared_path("fixtures/caffe/squeezenet_v1.0/deploy.prototxt")).layer]
    assert ours == real


def test_cli_import_and_export_caffe(tmp_path, cli, shared):
    m = squeezenet.create_model("squeezenet1_1").eval()
    _randomize(m, seed=7)
    squeezenet.save(m, tmp_path / "m.safetensors")
    code, out, err = cli("export-caffe", tmp_path / "m.safetensors", "-o", tmp_path / "caffe")
    assert code == 0, err
    assert not (tmp_path / "caffe" / "classes.txt").exists()   # the model has no class list
    code, out, err = cli("export-caffe", tmp_path / "nope.safetensors", "-o", tmp_path / "c2")
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("import", tmp_path / "caffe" / "squeezenet.caffemodel", "--from", "caffe",
                         "--classes", tmp_path / "nope.txt", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "no such class list" in err
    synsets = shared("fixtures/imagenet/synsets.txt")
    code, out, err = cli("import", tmp_path / "caffe" / "deploy.prototxt", tmp_path / "caffe" / "squeezenet.caffemodel",
                         "--from", "caffe", "--classes", synsets, "-o", tmp_path / "back.safetensors")
    assert code == 0, err
    back = squeezenet.load(tmp_path / "back.safetensors")
    assert back.preprocess == "caffe" and len(back.classes) == 1000 and back.classes[0] == "n01440764"
    # classes travel into the Caffe export as classes.txt
    code, out, err = cli("export-caffe", tmp_path / "back.safetensors", "-o", tmp_path / "caffe2")
    assert code == 0 and (tmp_path / "caffe2" / "classes.txt").read_text().split() == back.classes
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))
    # bad input: one line, exit 2
    (tmp_path / "t.caffemodel").write_bytes((tmp_path / "caffe" / "squeezenet.caffemodel").read_bytes()[:1000])
    for args, pattern in [
        ((tmp_path / "caffe" / "deploy.prototxt", tmp_path / "t.caffemodel"), "corrupt or truncated"),
        ((shared("fixtures/caffe/squeezenet_v1.0/deploy.prototxt"), tmp_path / "caffe" / "squeezenet.caffemodel"),
         "layer 'conv1' weights: shape"),
        ((tmp_path / "caffe" / "deploy.prototxt",), "one .caffemodel"),
    ]:
        code, out, err = cli("import", *args, "--from", "caffe", "-o", tmp_path / "x.safetensors")
        assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    code, out, err = cli("import", tmp_path / "caffe" / "deploy.prototxt", tmp_path / "caffe" / "squeezenet.caffemodel",
                         "--from", "caffe", "-o", tmp_path / "x.pth")
    assert code == 2 and ".safetensors" in err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("name,size", [("squeezenet1_0_caffe", 227), ("squeezenet1_1", 227), ("squeezenet_small", 32)])
def test_export_declares_the_deepscale_input_size(tmp_path, name, size):
    """ImageNet models declare 227x227 as DeepScale's v1.0 and v1.1 deploy files do (the caffe
    preset's crop); the 32x32 model its registered size."""
    proto, _ = export_caffe(squeezenet.create_model(name), tmp_path)
    assert CaffeNet(read_prototxt(proto)).shapes["data"] == (1, 3, size, size)
    if name == "squeezenet1_1":
        real = CaffeNet(read_prototxt(shared_path("fixtures/caffe/squeezenet_v1.1/deploy.prototxt")))
        assert real.shapes["data"][2:] == (size, size)
