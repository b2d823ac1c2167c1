"""squeezenet.runtime: every engine agrees with eager; auto measures once and caches."""
import json

import numpy as np
import pytest
import torch

import squeezenet
from conftest import shared_path
from squeezenet.runtime import ENGINES, compile_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return squeezenet.create_model("squeezenet_small", bypass="simple").eval()


@pytest.mark.parametrize("engine", ["eager", "channels_last", "torchscript", "onnxruntime"])
def test_engine_agrees_with_eager(small, engine):
    f = compile_model(small, engine, threads=1)
    assert f.engine == engine
    for shape in [(1, 3, 32, 32), (5, 3, 32, 32), (2, 3, 40, 48)]:  # other batch and input sizes too
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = small(x)
        out = f(x)
        assert isinstance(out, torch.Tensor) and out.shape == ref.shape
        assert torch.allclose(out, ref, rtol=1e-5, atol=1e-4), (out - ref).abs().max()
    assert small.training is False and next(small.parameters()).is_contiguous()  # untouched


@pytest.mark.slow
def test_compile_engine_agrees(small):
    f = compile_model(small, "compile", threads=1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(f(x), small(x), rtol=1e-5, atol=1e-4)


def test_auto_measures_once_and_caches(small, cache, monkeypatch):
    import squeezenet.runtime.auto as rt
    f = compile_model(small, "auto", threads=1, candidates=("onnxruntime", "eager"))
    assert f.engine in ("onnxruntime", "eager")
    assert set(f.timings_ms) == {"onnxruntime", "eager"} and all(v > 0 for v in f.timings_ms.values())
    entry = next(iter(json.loads((cache / "runtime_auto.json").read_text()).values()))
    assert entry["engine"] == f.engine and entry["input"] == [3, 32, 32] and entry["threads"] == 1
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(f(x), small(x), rtol=1e-5, atol=1e-4)

    def boom(*a, **k):
        raise AssertionError("auto measured again despite a cached choice")
    monkeypatch.setattr(rt, "choose_engine", boom)
    g = compile_model(small, "auto", threads=1, candidates=("onnxruntime", "eager"))
    assert g.engine == f.engine
    # a different input size is a different key: measured again
    with pytest.raises(AssertionError, match="measured again"):
        compile_model(small, "auto", threads=1, candidates=("onnxruntime", "eager"), input_size=48)


def test_auto_rejects_disagreeing_engine(small, cache, monkeypatch):
    import squeezenet.runtime.auto as rt
    real = rt.build_engine

    def wrong(model, engine, shape, threads):
        fn = real(model, engine, shape, threads)
        return (lambda x: fn(x) + 1.0) if engine == "channels_last" else fn
    monkeypatch.setattr(rt, "build_engine", wrong)
    f = compile_model(small, "auto", threads=1, candidates=("channels_last", "eager"))
    assert f.engine == "eager"
    entry = next(iter(json.loads((cache / "runtime_auto.json").read_text()).values()))
    assert "disagrees" in entry["rejected"]["channels_last"]


def test_corrupt_cache_is_ignored(small, cache):
    cache.mkdir(parents=True)
    (cache / "runtime_auto.json").write_text("{not json")
    assert compile_model(small, "auto", threads=1, candidates=("eager",)).engine == "eager"


@pytest.mark.parametrize("kwargs,needle", [
    ({"engine": "onnx"}, "did you mean onnxruntime"),
    ({"engine": "tensorrt"}, "unknown engine"),
    ({"engine": "eager", "threads": 0}, "threads=0"),
    ({"engine": "auto", "candidates": ("eager", "tvm")}, "tvm"),
])
def test_bad_engine_arguments(small, kwargs, needle):
    with pytest.raises(squeezenet.SqueezeNetError, match=needle):
        compile_model(small, **kwargs)


def test_engines_on_real_weights_and_fixture_inputs():
    """Real SqueezeNet 1.1 weights, the ONNX-zoo inputs: logits up to ~300, so agreement is
    checked as |a - b| <= 1e-4 + 1e-5 |b| (a few float32 ulps); top-1 matches the zoo output."""
    from squeezenet.runtime.reference import onnx_zoo_squeezenet1_1
    root = shared_path("fixtures/onnx_zoo_squeezenet1.1")
    model = onnx_zoo_squeezenet1_1(root / "weights")
    xs = [torch.from_numpy(np.load(root / f"test_data_set_{t}/input_0.npy", allow_pickle=False)) for t in range(3)]
    want = [np.load(root / f"test_data_set_{t}/output_0.npy", allow_pickle=False).argmax() for t in range(3)]
    x = torch.cat(xs)
    with torch.no_grad():
        ref = model(x)
    assert ref.argmax(1).tolist() == want
    import importlib.util
    optional = ("openvino",) if importlib.util.find_spec("openvino") else ()
    for engine in ("channels_last", "torchscript", "onnxruntime") + optional:
        out = compile_model(model, engine, threads=1)(x)
        assert torch.allclose(out, ref, rtol=1e-5, atol=1e-4), (engine, (out - ref).abs().max())


def test_engine_list():
    assert set(ENGINES) == {"eager", "channels_last", "torchscript", "compile", "onnxruntime", "openvino"}
    # the CLI's --engine help is plain text (so --help does not import torch): it names each one
    import re

    from squeezenet.cli._infer import ENGINES_HELP
    named = set(re.findall(r"\b[a-z_]+\b", ENGINES_HELP))
    assert set(ENGINES) | {"auto"} <= named, set(ENGINES) - named
