"""Benchmark structure and sanity on tiny settings (never wall-time thresholds)."""
import json

import pytest

import squeezenet
from squeezenet.runtime.bench import run_benchmark, sgemm_gflops


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))


def test_run_benchmark_structure():
    engines = ("torchvision", "eager", "auto", "onnxruntime", "onnxruntime_int8", "openvino")
    m = squeezenet.create_model("squeezenet_small")
    r = run_benchmark(m, "small", batches=(1, 2), threads=1, engines=engines, rounds=1, iters=2, sgemm_n=128)
    assert r["input"] == [3, 32, 32] and r["threads"] == 1
    assert r["macs"] == squeezenet.summary(m, 32).macs and r["sgemm_gflops"] > 0
    rows = {(x["engine"], x["batch"]): x for x in r["results"]}
    assert set(rows) == {(e, b) for e in engines for b in (1, 2)}
    for row in rows.values():
        assert 0 < row["p50_ms"] <= row["p90_ms"]
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["p50_ms"] * 1e3, rel=1e-2)
        assert row["gflops"] > 0 and row["floor_fraction"] > 0
        assert row["samples"] >= 1
    sp = r["speedup_vs_torchvision"]
    assert set(sp) == set(engines) and sp["torchvision"] == 1.0
    assert sp["eager"] == pytest.approx(rows[("torchvision", 1)]["p50_ms"] / rows[("eager", 1)]["p50_ms"], rel=1e-2)
    e = r["engines"]
    assert e["torchvision"]["weights"] == "our weights"
    assert e["torchvision"]["max_abs_diff_vs_eager"] < 1e-4  # the peer computes the same function
    assert set(e["auto"]["picks"]) == {"1", "32"}
    assert set(e["auto"]["picks"].values()) <= {"onnxruntime", "openvino", "channels_last", "torchscript", "eager"}
    one, many = e["auto"]["picks"]["1"], e["auto"]["picks"]["32"]
    assert e["auto"]["picked"] == (one if one == many else f"{one} (batch 1-5), {many} (batch 6+)")
    assert e["openvino"]["max_abs_diff_vs_eager"] < 1e-4 and e["openvino"]["precision"] == "f32"
    assert e["onnxruntime"]["max_abs_diff_vs_eager"] < 1e-4
    assert e["onnxruntime_int8"]["model_bytes"] < e["onnxruntime"]["model_bytes"] / 2.5
    json.dumps(r)


def test_sgemm_positive():
    assert sgemm_gflops(64, 2) > 0


def test_bench_cli_json(cli):
    code, out, err = cli("bench", "--model", "squeezenet_small", "--batch", "1,2", "--threads", "1",
                         "--engines", "torchvision,eager,onnxruntime", "--rounds", "1", "--iters", "1",
                         "--sgemm-size", "128", "--memory", "inprocess", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert {"results", "speedup_vs_torchvision", "sgemm_gflops", "floor_ms_batch1"} <= set(d)
    assert {r["engine"] for r in d["results"]} == {"torchvision", "eager", "onnxruntime"}
    assert set(d["speedup_vs_torchvision"]) == {"torchvision", "eager", "onnxruntime"}


def test_bench_cli_table_with_file(cli, tmp_path):
    p = squeezenet.save(squeezenet.create_model("squeezenet_small", num_classes=4), tmp_path / "m.safetensors")
    # one engine (the peer): the table and the memory of each engine in its own process
    code, out, err = cli("bench", p, "--batch", "1", "--threads", "1", "--engines", "torchvision",
                         "--rounds", "1", "--iters", "1", "--sgemm-size", "128")
    assert code == 0, err
    assert "torchvision" in out and "sgemm" in out and "1.00x" in out
    assert "peak RSS at batch 1, each engine in its own process" in out and "error" not in out


@pytest.mark.parametrize("argv,needle", [
    (("bench", "--batch", "0"), "batch sizes must be >= 1"),
    (("bench", "--batch", "a,b"), "1,32"),
    (("bench", "--threads", "0"), "--threads: 0: must be an integer in 1..256"),
    (("bench", "--engines", "eager,onnx"), "did you mean onnxruntime"),
    (("bench", "--model", "squeezenet2"), "unknown model"),
    (("bench", "{t}/missing.safetensors"), "no such file"),
    (("bench", "{t}/x.safetensors", "--model", "squeezenet1_1"), "not both"),
])
def test_bench_bad_input(cli, tmp_path, argv, needle):
    code, out, err = cli(*[a.format(t=tmp_path) for a in argv])
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert needle in lines[0]


def test_cli_engine_list_matches_runtime():
    from squeezenet.cli import bench
    from squeezenet.runtime.bench import DEFAULT_ENGINES
    assert bench.DEFAULT_ENGINES == DEFAULT_ENGINES


def test_help_does_not_load_runtime():
    """--help stays fast: registering export/bench loads neither the runtime nor ONNX Runtime."""
    import subprocess
    import sys
    code = ("import sys; from squeezenet.cli import build_parser; build_parser(); "
            "print(any(m in sys.modules for m in ('squeezenet.runtime', 'onnxruntime', 'onnx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
