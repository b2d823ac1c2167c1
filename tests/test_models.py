import json

import pytest
import torch
import torchvision

import squeezenet as sq
from squeezenet.models import MetaParams, SqueezeNetConfig, get_model_entry, summary
from squeezenet.models.registry import register_model

ALL = sq.list_models()


@pytest.mark.parametrize("name", ALL)
def test_contract_every_registered_model(name):
    """Forward + backward at 224 and at the small size; output shape; finite values."""
    torch.manual_seed(0)
    model = sq.create_model(name, num_classes=7)
    sizes = {224, 32} if get_model_entry(name).input_size == 32 else {224, 64}
    for size in sorted(sizes):
        model.train()
        x = torch.randn(2, 3, size, size, requires_grad=True)
        y = model(x)
        assert y.shape == (2, 7)
        assert torch.isfinite(y).all()
        y.sum().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        model.zero_grad()
    model.eval()
    with torch.no_grad():
        a = model(torch.ones(1, 3, 64, 64))
        b = model(torch.ones(1, 3, 64, 64))
    assert torch.equal(a, b), "eval mode must be deterministic (dropout off)"


@pytest.mark.parametrize("name,bypass,count", [
    ("squeezenet1_0", "none", 1_248_424),
    ("squeezenet1_1", "none", 1_235_496),
    ("squeezenet1_0", "simple", 1_248_424),
    ("squeezenet1_0", "complex", 1_589_672),
    ("squeezenet1_0_caffe", "none", 1_248_424),
])
def test_parameter_counts(name, bypass, count):
    m = sq.create_model(name, bypass=bypass)
    assert sum(p.numel() for p in m.parameters()) == count


TABLE1 = [  # layer, output HxWxC, s1x1, e1x1, e3x3, params (paper Table 1)
    ("conv1", "111x111x96", None, None, None, 14208),
    ("maxpool1", "55x55x96", None, None, None, 0),
    ("fire2", "55x55x128", 16, 64, 64, 11920),
    ("fire3", "55x55x128", 16, 64, 64, 12432),
    ("fire4", "55x55x256", 32, 128, 128, 45344),
    ("maxpool4", "27x27x256", None, None, None, 0),
    ("fire5", "27x27x256", 32, 128, 128, 49440),
    ("fire6", "27x27x384", 48, 192, 192, 104880),
    ("fire7", "27x27x384", 48, 192, 192, 111024),
    ("fire8", "27x27x512", 64, 256, 256, 188992),
    ("maxpool8", "13x13x512", None, None, None, 0),
    ("fire9", "13x13x512", 64, 256, 256, 197184),
    ("conv10", "13x13x1000", None, None, None, 513000),
    ("avgpool10", "1x1x1000", None, None, None, 0),
]


def test_table1_rows():
    s = summary(sq.create_model("squeezenet1_0"), 227)
    got = [(l.name, f"{l.output[1]}x{l.output[2]}x{l.output[0]}", l.s1x1, l.e1x1, l.e3x3, l.params)
           for l in s.layers]
    assert got == TABLE1
    assert s.params == 1_248_424 and s.size_bytes == 4 * 1_248_424
    # MACs: conv1 = 111*111*96*7*7*3; total about 0.82-0.86 GMACs (paper: 0.82 at 224)
    assert s.layers[0].macs == 111 * 111 * 96 * 7 * 7 * 3
    assert 0.80e9 < s.macs < 0.86e9
    v11 = summary(sq.create_model("squeezenet1_1"), 224)
    assert 0.34e9 < v11.macs < 0.36e9  # 2.4x less computation than v1.0
    assert s.peak_activation_bytes >= max(l.activation_bytes for l in s.layers)


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_torchvision_state_dict_compat(name):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)(weights=None).eval()
    ours = sq.create_model(name).eval()
    assert list(tv.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():   # ours lays a CPU input out as NHWC (its max-pool is 10x faster so): the same
        # computation as torchvision's on that layout, bit for bit, and as its NCHW one to float rounding
        assert torch.equal(tv(x.contiguous(memory_format=torch.channels_last)), ours(x))
        assert torch.allclose(tv(x), ours(x), rtol=1e-5, atol=1e-6)


def test_metaparams_defaults_are_v10():
    assert tuple(MetaParams().fires()) == tuple(SqueezeNetConfig().fires)
    m = sq.create_model("squeezenet1_0", meta=MetaParams(sr=0.75))
    assert m.features[3].squeeze.out_channels == 96  # 0.75 * 128
    m = sq.create_model("squeezenet1_0", meta=MetaParams(pct_3x3=0.25))
    assert (m.features[3].expand1x1.out_channels, m.features[3].expand3x3.out_channels) == (96, 32)


@pytest.mark.parametrize("kw,field", [
    (dict(sr=0), "SR"), (dict(sr=-1), "SR"), (dict(pct_3x3=0.0), "pct_3x3"),
    (dict(pct_3x3=1.0), "pct_3x3"), (dict(pct_3x3=1.5), "pct_3x3"), (dict(freq=0), "freq"),
    (dict(sr=0.001), "SR"), (dict(base_e=2, pct_3x3=0.1, incr_e=0), "pct_3x3"),
])
def test_bad_metaparams(kw, field):
    with pytest.raises(ValueError, match=field):
        MetaParams(**kw)


def test_bypass_structure():
    m = sq.create_model("squeezenet1_0", bypass="complex")
    fires = [f for f in m.features if isinstance(f, sq.Fire)]
    assert [f.bypass for f in fires] == ["conv", "identity"] * 4
    m = sq.create_model("squeezenet1_0", bypass="simple")
    assert [f.bypass for f in m.features if isinstance(f, sq.Fire)] == ["none", "identity"] * 4


def test_caffe_v10_conv10_padding():
    m = sq.create_model("squeezenet1_0_caffe")
    assert m.final_conv.padding == (1, 1)
    assert summary(m, 227).layers[-2].output == [1000, 15, 15]


def test_small_variant_size():
    m = sq.create_model("squeezenet_small")
    s = summary(m, 32)
    assert s.layers[0].output == [64, 32, 32]
    assert s.layers[-2].output == [10, 4, 4]


def test_init_as_paper():
    torch.manual_seed(0)
    m = sq.create_model("squeezenet1_0")
    w = m.final_conv.weight
    assert abs(w.std().item() - 0.01) < 0.001
    assert torch.count_nonzero(m.features[0].bias) == 0


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model("squeezenet1_0")(lambda **k: None)
    with pytest.raises(sq.SqueezeNetError, match="did you mean .*squeezenet1_0"):
        sq.create_model("squeezenet1_O")


def test_registry_holds_the_input_size_and_preset_per_stem():
    """The registry is the one place for a stem's documented input size and default preset;
    it refuses a second entry that disagrees for the same stem."""
    from squeezenet.models import default_input_size, default_preset
    want = {"squeezenet1_0": (227, "torchvision"), "squeezenet1_0_caffe": (227, "torchvision"),
            "squeezenet1_1": (224, "torchvision"), "squeezenet_small": (32, "small")}
    for name, (size, preset) in want.items():
        m = sq.create_model(name, bypass="complex")
        assert (get_model_entry(name).input_size, default_input_size(m), default_preset(m)) == (size, size, preset)
    # a model the registry does not know: 224, torchvision
    assert (default_input_size(torch.nn.Conv2d(3, 3, 1)), default_preset(torch.nn.Conv2d(3, 3, 1))) == (224, "torchvision")
    with pytest.raises(ValueError, match="stem 'v1.1' is registered by 'squeezenet1_1'"):
        register_model("squeezenet1_1_other", input_size=227, stem="v1.1")(lambda **k: None)
    assert "squeezenet1_1_other" not in sq.list_models()


def test_save_load_roundtrip(tmp_path):
    m = sq.create_model("squeezenet_small", bypass="complex")
    m.classes = [str(i) for i in range(10)]
    m.preprocess = "small"
    p = sq.save(m, tmp_path / "m.safetensors")
    r = sq.load(p)
    assert r.config == m.config and r.classes == m.classes and r.preprocess == "small"
    m.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), r(x))


def test_load_bad_files(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(sq.FormatError, match="x.safetensors"):
        sq.load(bad)
    with pytest.raises(sq.FormatError, match="no such file"):
        sq.load(tmp_path / "missing.safetensors")
    with pytest.raises(sq.FormatError, match="unknown model file type"):
        sq.load(bad.rename(tmp_path / "x.bin"))


def test_batch_norm_option(tmp_path):
    import squeezenet
    from squeezenet.errors import SqueezeNetError
    from squeezenet.interop.caffe import export_caffe
    plain = squeezenet.create_model("squeezenet_small")
    bn = squeezenet.create_model("squeezenet_small", batch_norm=True)
    n_bn = sum(m.num_features * 2 for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert n_bn > 0 and sum(p.numel() for p in bn.parameters()) == sum(p.numel() for p in plain.parameters()) + n_bn
    # compression sees the same convs (BatchNorm stays dense)
    from squeezenet.compress.prune import prunable
    assert [tuple(bn.get_parameter(k).shape) for k in prunable(bn)] == \
        [tuple(plain.get_parameter(k).shape) for k in prunable(plain)]
    bn.train()
    with torch.no_grad():
        bn(torch.randn(8, 3, 32, 32))          # running statistics move
    bn.eval()
    squeezenet.save(bn, tmp_path / "bn.safetensors")
    back = squeezenet.load(tmp_path / "bn.safetensors").eval()
    assert back.config.batch_norm
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(back(x), bn(x), atol=1e-6)
    with pytest.raises(SqueezeNetError, match="BatchNorm"):
        export_caffe(bn, tmp_path / "caffe")


def test_batch_norm_normalises_the_complex_bypass_too():
    import squeezenet
    m = squeezenet.create_model("squeezenet_small", batch_norm=True, bypass="complex")
    fires = [f for f in m.modules() if type(f).__name__ == "Fire"]
    conv_fires = [f for f in fires if f.shortcut is not None]
    assert conv_fires and all(isinstance(f.shortcut_bn, torch.nn.BatchNorm2d) for f in conv_fires)
    plain = squeezenet.create_model("squeezenet_small", bypass="complex")
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in plain.modules())


def test_cpu_forward_runs_nhwc():
    """The forward lays a CPU input out as NHWC (PyTorch's NCHW max-pool is ~10x slower on the
    CPU), with the NCHW computation's result to float rounding."""
    m = sq.create_model("squeezenet_small", num_classes=3).eval()
    seen = []
    m.features[0].register_forward_pre_hook(lambda mod, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        nchw = torch.flatten(m.classifier(m.features(x)), 1)   # the same layers on the NCHW input
    assert seen == [True, False] and torch.allclose(y, nchw, rtol=1e-5, atol=1e-6)
