"""squeezenet.runtime: every engine agrees with eager; auto measures once and caches."""
import importlib.util
import json
import time

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
    assert set(f.picks.values()) <= {"onnxruntime", "eager"}   # one engine, or one per batch size
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


# ------------------------------------------------- auto per batch size; auto for .onnx files

def test_auto_picks_per_batch_size_and_dispatches(small, cache, monkeypatch):
    """auto measures at batch 1 and 32; a call runs the pick of the nearest batch size."""
    import squeezenet.runtime.auto as rt
    assert rt.AUTO_BATCHES == (1, 32)
    seen = {}

    def forced(built, shape, batches=rt.AUTO_BATCHES, **kw):
        seen["built"] = sorted(built)
        return {1: "channels_last", 32: "eager"}, {1: {"channels_last": 1.0, "eager": 2.0}, 32: {"eager": 30.0}}
    monkeypatch.setattr(rt, "measure_picks", forced)
    f = compile_model(small, "auto", threads=1, candidates=("channels_last", "eager"))
    assert seen["built"] == ["channels_last", "eager"]
    assert f.picks == {1: "channels_last", 32: "eager"}
    assert f.engine == "channels_last (batch 1-5), eager (batch 6+)"
    assert [f.engine_for(n) for n in (1, 5, 6, 100)] == ["channels_last"] * 2 + ["eager"] * 2
    assert f.precision == {"channels_last": "f32", "eager": "f32"}
    for n in (1, 7):
        x = torch.randn(n, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(f(x), small(x), rtol=1e-5, atol=1e-4)
    entry = next(iter(json.loads((cache / "runtime_auto.json").read_text()).values()))
    assert entry["picks"] == {"1": "channels_last", "32": "eager"} and entry["engine"] == f.engine
    assert set(entry["p50_ms_by_batch"]) == {"1", "32"}
    monkeypatch.setattr(rt, "measure_picks", None)   # cached: not measured again
    assert compile_model(small, "auto", threads=1, candidates=("channels_last", "eager")).picks == f.picks


def test_measure_picks_times_each_batch_size(small):
    from squeezenet.runtime.auto import measure_picks
    fns = {"eager": compile_model(small, "eager", threads=1), "slow": lambda x: (time.sleep(0.01), small(x))[1]}
    picks, p50 = measure_picks(fns, (3, 32, 32), batches=(1, 4), rounds=2, per_round=1)
    assert picks == {1: "eager", 4: "eager"} and set(p50) == {1, 4}
    assert p50[1]["slow"] > p50[1]["eager"] > 0


def test_time_callables_times_warm_calls_in_a_new_order_each_round():
    """Each round: every candidate's timed calls come right after ``rewarm`` untimed ones of
    its own (steady state, not the first call after another runtime), in a new order."""
    from squeezenet.runtime.engines import time_callables
    calls = []
    fns = {k: (lambda x, k=k: calls.append(k)) for k in "abcd"}
    out = time_callables(fns, torch.zeros(1), rounds=4, per_round=2, warmup=1, settle_s=0, rewarm=3)
    assert {k: len(v) for k, v in out.items()} == {k: 8 for k in "abcd"}
    body = calls[4:]                       # after one warm-up call each
    blocks = [body[i:i + 5] for i in range(0, len(body), 5)]
    assert len(blocks) == 16 and all(len(set(b)) == 1 for b in blocks)   # 3 untimed + 2 timed, one candidate
    orders = ["".join(b[0] for b in blocks[i:i + 4]) for i in range(0, 16, 4)]
    assert all(sorted(o) == list("abcd") for o in orders) and len(set(orders)) > 1
    alone = []
    time_callables({"a": lambda x: alone.append(1)}, torch.zeros(1), rounds=2, per_round=2, warmup=0, rewarm=3)
    assert len(alone) == 4                 # one candidate: nothing to re-warm from


@pytest.fixture(scope="module")
def onnx_files(small, tmp_path_factory):
    from squeezenet.interop.onnx_export import to_onnx_bytes
    from squeezenet.runtime.quantize import quantize_int8
    d = tmp_path_factory.mktemp("files")
    small.preprocess = "small"
    fp32 = to_onnx_bytes(small)
    g = torch.Generator().manual_seed(1)
    (d / "m.onnx").write_bytes(fp32)
    (d / "m-int8.onnx").write_bytes(quantize_int8(fp32, [torch.randn(16, 3, 32, 32, generator=g)]))
    return d


@pytest.mark.parametrize("name", ["m.onnx", "m-int8.onnx"])
def test_auto_for_an_onnx_file_measures_onnxruntime_and_openvino(onnx_files, cache, monkeypatch, name):
    pytest.importorskip("openvino")
    import squeezenet.runtime.auto as rt
    from squeezenet.runtime import compile_file
    from squeezenet.runtime.onnx_model import load_onnx
    o = load_onnx(onnx_files / name, threads=1)
    said = []
    f = compile_file(o, threads=1, log=said.append)
    assert len(said) == 1 and "onnxruntime, openvino" in said[0]
    assert set(f.picks) == {1, 32} and set(f.picks.values()) <= {"onnxruntime", "openvino", "litert"}
    entry = next(iter(json.loads((cache / "runtime_auto.json").read_text()).values()))
    litert = {"litert"} if importlib.util.find_spec("ai_edge_litert") else set()
    assert set(entry["p50_ms_by_batch"]["1"]) == {"onnxruntime", "openvino"} | litert, entry   # all ran and agreed
    assert f.preprocess == "small" and f.classes == o.classes and f.int8 == o.int8   # the file's facts
    # a split by batch size (ORT at 1, OpenVINO at 32), forced: each call runs the engine of its size
    monkeypatch.setattr(rt, "measure_picks", lambda built, shape, *a, **k: (
        {1: "onnxruntime", 32: "openvino"}, {1: {"onnxruntime": 1.0}, 32: {"openvino": 9.0}}))
    f = compile_file(o, threads=1, remeasure=True)
    assert f.engine == "onnxruntime (batch 1-5), openvino (batch 6+)" and f.engine_for(16) == "openvino"
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ref, out = o(x), f(x)
    if o.int8:   # another runtime's int8 kernels round differently: close, and the same classes
        assert f.precision["openvino"] != "bf16" and "8" in f.precision["openvino"], f.precision
        assert float((out - ref).abs().max()) <= rt.INT8_REL_TOL * float(ref.std()) + 1e-4
        assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    else:        # fp32 stays fp32 (INFERENCE_PRECISION_HINT f32, never bf16)
        assert f.precision["openvino"] == "f32", f.precision
        assert torch.allclose(out, ref, rtol=1e-5, atol=1e-4)
    assert torch.equal(f(x[:2]), o(x[:2]))   # batch 2 runs the file's own session


def test_auto_for_a_file_refuses_a_runtime_that_disagrees(onnx_files, cache, monkeypatch):
    pytest.importorskip("openvino")
    import squeezenet.runtime.auto as rt
    from squeezenet.runtime.onnx_model import load_onnx
    real = rt._build_file_engine

    def wrong(model, name, threads):
        fn = real(model, name, threads)
        return fn if name == "onnxruntime" else (lambda x: fn(x) * 1.5)
    monkeypatch.setattr(rt, "_build_file_engine", wrong)
    o = load_onnx(onnx_files / "m-int8.onnx", threads=1)
    f = rt.compile_file(o, threads=1)
    assert f.picks == {1: "onnxruntime", 32: "onnxruntime"} and f.engine == "onnxruntime"
    entry = next(iter(json.loads((cache / "runtime_auto.json").read_text()).values()))
    assert "disagrees with onnxruntime" in entry["rejected"]["openvino"]
