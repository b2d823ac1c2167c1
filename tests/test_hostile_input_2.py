"""Hostile input, round 2 (issue 25): foreign ONNX files, training runs and their folders,
odd images, options. One regression test per kind, on tiny files the tests make."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from squeezenet.errors import SqueezeNetError

from fuzz_readers import refused, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "warning" not in ln]
    assert len(lines) == 1, err
    return lines[0]


def image_folder(root: Path, classes=("a", "b"), per_class: int = 2, junk: bool = False) -> Path:
    from PIL import Image
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            p = root / c / f"{i}.png"
            if junk:
                p.write_bytes(b"not an image at all")
            else:
                Image.new("RGB", (32, 32), (40 * ci, 90, 10 * i)).save(p)
    return root


# ------------------------------------------------------------------------------ ONNX graphs

def onnx_graph(path: Path, nodes=None, out_shape=("N", 3), inits=(), meta=None, scale=1.0) -> Path:
    """A tiny image classifier: x (N, 3, 32, 32) -> GlobalAveragePool -> Flatten -> Mul(scale)."""
    import onnx
    from onnx import TensorProto, helper
    if nodes is None:
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
                 helper.make_node("Mul", ["f", "s"], ["y"])]
        inits = [helper.make_tensor("s", TensorProto.FLOAT, [1], [scale]), *inits]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    meta = {"format": "squeezenet", "preprocess": {"preset": "small"}, "classes": ["a", "b", "c"]} \
        if meta is None else meta
    helper.set_model_props(m, {k: json.dumps(v) for k, v in meta.items()})
    onnx.save(m, str(path))
    return path


def test_onnx_control_flow_is_refused_before_onnx_runtime_loads_it(tmp_path, monkeypatch):
    from onnx import TensorProto, helper

    from squeezenet.runtime import engines, onnx_model
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])])
    nodes = [helper.make_node("Loop", ["n", "t"], [], body=body),
             helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    inits = [helper.make_tensor("n", TensorProto.INT64, [], [2 ** 62]), helper.make_tensor("t", TensorProto.BOOL, [], [1])]
    p = onnx_graph(tmp_path / "loop.onnx", nodes=nodes, inits=inits)
    monkeypatch.setattr(engines, "ort_session", lambda *a, **k: pytest.fail("ONNX Runtime saw the file"))
    refused(lambda: onnx_model.load_onnx(p), str(p), "operator Loop")


def test_onnx_huge_initializer_is_refused_from_its_dims(tmp_path):
    from onnx import TensorProto

    from squeezenet.runtime.onnx_model import load_onnx
    big = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 1 << 30])   # 16 GiB declared, nothing held
    p = onnx_graph(tmp_path / "big.onnx", inits=[big])
    refused(lambda: load_onnx(p), str(p), "initializer 'w'", "17,179,869,184 bytes")


@pytest.mark.parametrize("shape,needle", [(("N",), "rank 1"), (("N", 3, 1, 1), "rank 4")])
def test_onnx_output_rank_is_checked(tmp_path, shape, needle):
    from onnx import helper

    from squeezenet.runtime.onnx_model import load_onnx
    if len(shape) == 1:
        nodes = [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2, 3], keepdims=0)]
    else:
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["y"])]
    p = onnx_graph(tmp_path / "r.onnx", nodes=nodes, out_shape=shape)
    refused(lambda: load_onnx(p), str(p), needle)


def test_onnx_class_list_shorter_than_the_output_is_one_line(cli, tmp_path):
    p = onnx_graph(tmp_path / "m.onnx", meta={"format": "squeezenet", "preprocess": {"preset": "small"},
                                              "classes": ["a", "b"]})
    img = image_folder(tmp_path / "d", ("a",), per_class=1) / "a" / "0.png"
    code, out, err = cli("predict", p, img)
    assert code == 2 and "2 classes in the class list, the model has 3 outputs" in one_line(err)


def test_eval_of_an_onnx_file_with_nan_output_reports_no_figure(cli, tmp_path):
    from onnx import TensorProto, helper
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Abs", ["f"], ["a"]), helper.make_node("Neg", ["a"], ["n"]),
             helper.make_node("Sub", ["n", "one"], ["m"]), helper.make_node("Log", ["m"], ["y"])]   # log(-|x|-1): NaN
    p = onnx_graph(tmp_path / "nan.onnx", nodes=nodes, inits=[helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    data = image_folder(tmp_path / "d", ("a", "b", "c"), per_class=1)
    code, out, err = cli("eval", p, "--data", data, "--no-progress")
    assert code == 2 and "non-finite" in one_line(err) and "top-1" not in out
    code, out, err = cli("predict", p, data / "a" / "0.png")
    assert code == 2 and "non-finite" in one_line(err)
    code, out, err = cli("eval", onnx_graph(tmp_path / "ok.onnx"), "--data", data, "--no-progress")
    assert code == 0 and "top-1" in out, err     # the same graph with a finite scale is scored


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_onnx_nan_weights_or_bad_int8_scales_are_refused_at_load(tmp_path, value):
    from onnx import TensorProto, helper

    from squeezenet.runtime.onnx_model import load_onnx
    if value == 0.0:   # a zero scale of a QuantizeLinear/DequantizeLinear pair
        nodes = [helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["d"]),
                 helper.make_node("GlobalAveragePool", ["d"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
        inits = [helper.make_tensor("sc", TensorProto.FLOAT, [], [0.0]), helper.make_tensor("zp", TensorProto.UINT8, [], [0])]
        p = onnx_graph(tmp_path / "q.onnx", nodes=nodes, inits=inits)
        refused(lambda: load_onnx(p), str(p), "scale 'sc' is not positive")
    else:
        p = onnx_graph(tmp_path / "w.onnx", scale=value)
        refused(lambda: load_onnx(p), str(p), "initializer 's' holds NaN or infinite values")


def test_eval_where_every_image_is_unreadable_exits_2(cli, tmp_path):
    p = onnx_graph(tmp_path / "m.onnx")
    data = image_folder(tmp_path / "d", ("a", "b", "c"), per_class=1, junk=True)
    code, out, err = cli("eval", p, "--data", data, "--no-progress")
    assert code == 2 and "none of the 3 image(s) could be read" in err.strip().splitlines()[-1]
    assert "top-1" not in out


def test_predict_streams_images_in_batches(cli, tmp_path, monkeypatch):
    from squeezenet.cli import predict
    from squeezenet.runtime.onnx_model import OnnxModel
    p = onnx_graph(tmp_path / "m.onnx")
    imgs = [image_folder(tmp_path / "d", ("a",), per_class=7) / "a" / f"{i}.png" for i in range(7)]
    monkeypatch.setattr(predict, "BATCH", 3)
    sizes = []
    call = OnnxModel.__call__
    monkeypatch.setattr(OnnxModel, "__call__", lambda self, x: sizes.append(len(x)) or call(self, x))
    code, out, err = cli("predict", p, *imgs, "--json")
    assert code == 0, err
    assert sizes == [3, 3, 1] and len(json.loads(out)) == 7


# ----------------------------------------------------------------------------------- images

def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from squeezenet.data import read_image
    a16 = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)   # 0 .. 65472
    Image.fromarray(a16).save(tmp_path / "g16.png")
    Image.fromarray((a16 // 257).astype(np.uint8)).save(tmp_path / "g8.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    x16 = np.asarray(read_image(tmp_path / "g16.png"), dtype=np.int16)
    x8 = np.asarray(read_image(tmp_path / "g8.png"), dtype=np.int16)
    assert np.abs(x16 - x8).max() <= 1 and x16.max() > 200 and x16.min() < 5


# --------------------------------------------------------------------------------- training

class Items(torch.utils.data.Dataset):
    classes = ["c0", "c1", "c2", "c3", "c4"]

    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 32, 32, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 5


def test_non_finite_weights_stop_training_and_are_never_saved(tmp_path):
    from squeezenet.train import TrainConfig, Trainer
    from squeezenet.train.trainer import TrainingDiverged

    class Overflow:   # what a step at a huge learning rate does to the weights (the loss still finite)
        def on_step_end(self, trainer):
            with torch.no_grad():
                trainer.model.features[0].weight.fill_(float("inf"))
    cfg = TrainConfig(epochs=1, batch_size=8, accum_steps=1, lr=0.01, max_steps=1, progress=False)
    out = tmp_path / "run"
    t = Trainer(tiny_model().train(), cfg, Items(), out_dir=out, callbacks=[Overflow()])
    refused(t.fit, "NaN or infinite", "nothing saved", kind=TrainingDiverged)
    assert not any(out.glob("*.safetensors")) and not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "digits", "--out", "OUT", "--lr", "1e308"], "lr=1e+308"),
    (["train", "--data", "digits", "--out", "OUT", "--batch-size", "100000000"], "batch_size=100000000"),
    (["train", "--data", "digits", "--out", "OUT", "--workers", "100000"], "workers=100000"),
    (["eval", "m.safetensors", "--data", "digits", "--threads", "1000000"], "--threads: 1000000"),
    (["eval", "m.safetensors", "--data", "digits", "--batch-size", "100000000"], "--batch-size: 100000000"),
    (["bench", "--iters", "1000000000"], "--iters: 1000000000"),
    (["bench", "--sgemm-size", "16384"], "--sgemm-size: 16384"),
    (["explore", "search", "--study", "s", "--trials", "1", "--seed", "4294967296"], "--seed: 4294967296"),
])
def test_resource_options_are_bounded(cli, tmp_path, argv, needle):
    code, _, err = cli(*[str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert code == 2 and needle in one_line(err), err


def test_train_on_data_where_no_image_is_readable_stops(cli, tmp_path):
    data = image_folder(tmp_path / "d", junk=True)
    code, out, err = cli("train", "--data", data, "--out", tmp_path / "run", "--model", "squeezenet_small",
                         "--preprocess", "small", "--no-progress", "--epochs", "3", "--no-val")
    assert code == 2 and "none of the 4 training images could be read" in err.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_a_second_writer_of_a_run_folder_is_refused(cli, tmp_path):
    from squeezenet.io import FolderLock
    out = tmp_path / "run"
    with FolderLock(out):
        code, _, err = cli("train", "--data", "digits", "--out", out, "--max-steps", "1", "--no-progress")
        assert code == 2 and "another squeezenet command is writing this folder" in one_line(err)
        with pytest.raises(SqueezeNetError):
            FolderLock(out).__enter__()
    assert not out.exists()           # created for the lock, left empty: removed
    with FolderLock(out) as lock:    # released on exit: taken again
        assert lock.fd is not None


def test_overwrite_never_removes_its_own_model_input(cli, tmp_path):
    import squeezenet
    out = tmp_path / "run"
    out.mkdir()
    squeezenet.save(tiny_model(), out / "last.safetensors")
    code, _, err = cli("train", "--model", out / "last.safetensors", "--data", image_folder(tmp_path / "d"),
                       "--out", out, "--overwrite", "--no-progress")
    assert code == 2 and "--overwrite would remove" in one_line(err)
    assert (out / "last.safetensors").is_file()


def test_append_line_on_a_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    from squeezenet import io as sio
    from squeezenet.errors import OutputError
    p = tmp_path / "metrics.jsonl"
    sio.append_line(p, '{"epoch": 1}')
    before = p.read_bytes()
    real = os.write

    def full(fd, data):   # half the line goes down, then the disk is full
        if len(data) > 4:
            real(fd, bytes(data[:4]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(sio.os, "write", full)
    refused(lambda: sio.append_line(p, '{"epoch": 2, "train_loss": 1.5}'), str(p), "No space left",
            kind=OutputError)
    assert p.read_bytes() == before


# -------------------------------------------------------------------------- Caffe class lists

def _caffe_small(tmp_path, classes):
    from squeezenet.models import SqueezeNet, SqueezeNetConfig
    m = SqueezeNet(SqueezeNetConfig(stem="v1.1", fires=((4, 8, 8), (4, 8, 8)), pool_after=(0,),
                                    num_classes=len(classes))).eval()
    m.classes, m.preprocess = list(classes), "torchvision"
    return m


def test_class_ids_with_spaces_survive_export_caffe_and_import(cli, tmp_path):
    import squeezenet
    classes = ["egyptian cat", "dog", '"quoted" id', "n01440764"]
    squeezenet.save(_caffe_small(tmp_path, classes), tmp_path / "m.safetensors")
    code, _, err = cli("export-caffe", tmp_path / "m.safetensors", "-o", tmp_path / "caffe")
    assert code == 0, err
    code, _, err = cli("import", "--from", "caffe", tmp_path / "caffe" / "deploy.prototxt",
                       tmp_path / "caffe" / "squeezenet.caffemodel", "-o", tmp_path / "back.safetensors")
    assert code == 0, err
    assert squeezenet.load(tmp_path / "back.safetensors").classes == classes


def test_caffe_class_list_linked_from_outside_the_folder_is_not_read(tmp_path):
    from squeezenet.interop.caffe import export_caffe, import_caffe
    proto, weights = export_caffe(_caffe_small(tmp_path, ["a", "b"]), tmp_path / "caffe")
    (tmp_path / "secret.txt").write_text("x\ny\n")
    (tmp_path / "caffe" / "classes.txt").unlink()
    (tmp_path / "caffe" / "classes.txt").symlink_to(tmp_path / "secret.txt")
    refused(lambda: import_caffe(proto, weights), "classes.txt", "outside the prototxt's folder")


# ---------------------------------------------------------------------------- training state

def _state(tmp_path):
    from squeezenet.train import TrainConfig, Trainer
    cfg = TrainConfig(epochs=1, batch_size=4, accum_steps=1, lr=0.01, max_steps=1, progress=False)
    out = tmp_path / "run"
    Trainer(tiny_model().train(), cfg, Items(), out_dir=out).fit()
    return cfg, out / "train_state.safetensors"


def _edit(info: dict, tensors: dict, case: str) -> None:
    if case == "no train_config":
        del info["train_config"]
    elif case == "step is a string":
        info["step"] = "7"
    elif case == "bad python rng":
        info["rng"][0]["python"][1] = info["rng"][0]["python"][1][:10]
    elif case == "bad torch rng":
        tensors["rng.0.torch"] = torch.zeros(3, dtype=torch.uint8)
    elif case == "empty optimizer state":
        info["optimizer"] = {"param_groups": [], "state": {}}
    elif case == "optimizer of other params":
        info["optimizer"]["param_groups"][0]["params"] = [0]
    elif case == "odd key":
        tensors["weird"] = torch.zeros(1)
    elif case == "history of numbers":
        info["history"] = [1, 2]
    elif case == "model without config":
        info["model"] = {}


@pytest.mark.parametrize("case", ["no train_config", "step is a string", "bad python rng", "bad torch rng",
                                  "empty optimizer state", "optimizer of other params", "odd key",
                                  "history of numbers", "model without config"])
def test_damaged_train_state_is_one_line(tmp_path, case):
    from squeezenet.io import atomic_write_safetensors, read_safetensors
    from squeezenet.train import Trainer
    cfg, path = _state(tmp_path)
    tensors, meta = read_safetensors(path)
    info = json.loads(meta["state"])
    _edit(info, tensors, case)
    meta["state"] = json.dumps(info)
    atomic_write_safetensors(path, tensors, meta)
    t = Trainer(tiny_model().train(), cfg, Items(), out_dir=path.parent)
    refused(lambda: t.resume(path), str(path))


def test_train_resume_on_a_damaged_state_exits_2(cli, tmp_path):
    from squeezenet.io import atomic_write_safetensors, read_safetensors
    _, path = _state(tmp_path)
    tensors, meta = read_safetensors(path)
    info = json.loads(meta["state"])
    del info["train_config"]
    meta["state"] = json.dumps(info)
    atomic_write_safetensors(path, tensors, meta)
    code, _, err = cli("train", "--out", path.parent, "--resume")
    assert code == 2 and "no 'train_config'" in one_line(err)


# --------------------------------------------------------------- signals, encodings, full disks

def test_ctrl_c_in_an_explore_trial_is_one_line(cli, tmp_path, monkeypatch):
    import logging

    from squeezenet.explore import study
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
    keep = Keep()
    logging.getLogger("optuna").addHandler(keep)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "run_point", interrupted)
    try:
        code, out, err = cli("explore", "search", "--strategy", "random", "--trials", "1", "--study", "s",
                             "--storage", tmp_path / "s.db", "--data", "digits")
    finally:
        logging.getLogger("optuna").removeHandler(keep)
    assert code == 130 and "Traceback" not in err and "interrupted" in err
    assert not [r for r in records if r.exc_info or "failed with" in r.getMessage()]


def test_a_diverged_explore_trial_is_pruned_not_a_crash(monkeypatch):
    import optuna

    from squeezenet.explore import study
    from squeezenet.explore.space import load_space
    from squeezenet.train.trainer import TrainingDiverged

    def diverged(*a, **k):
        raise TrainingDiverged("loss became nan at step 3")
    monkeypatch.setattr(study, "run_point", diverged)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    s = optuna.create_study(direction="maximize")
    s.optimize(study.make_objective(load_space(None), study.Budget(), "accuracy", None, "random"), n_trials=1)
    row = study.trials_table(s)[0]
    assert row["state"] == "PRUNED" and "loss became nan" in row["note"]


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    from squeezenet import cli

    def interrupted(argv=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "main", interrupted)
    with pytest.raises(SystemExit) as e:
        cli.run()
    assert e.value.code == 130 and one_line(capsys.readouterr().err) == "squeezenet: interrupted"


def test_non_ascii_path_under_an_ascii_terminal(tmp_path, monkeypatch):
    import io
    import sys

    import squeezenet
    from squeezenet.cli import main
    folder = tmp_path / "caf\u00e9"
    folder.mkdir()
    squeezenet.save(tiny_model(), folder / "m.safetensors")
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["export-caffe", str(folder / "m.safetensors"), "-o", str(folder / "c")]) == 0
    out.flush()
    assert "caf\\xe9" in raw.getvalue().decode("ascii")


def test_full_disk_under_int8_quantization_is_one_line(tmp_path, monkeypatch):
    from squeezenet.errors import OutputError
    from squeezenet.interop.onnx_export import to_onnx_bytes
    from squeezenet.runtime import quantize
    fp32 = to_onnx_bytes(tiny_model(), input_size=32)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(quantize.Path, "write_bytes", full)
    refused(lambda: quantize.quantize_int8(fp32, [torch.randn(2, 3, 32, 32)]), "No space left", kind=OutputError)


def test_a_model_of_nan_weights_reports_no_figure(cli, tmp_path):
    import squeezenet
    from squeezenet.runtime.auto import choose_engine
    m = tiny_model()
    with torch.no_grad():
        m.classifier[1].weight.fill_(float("nan"))
    refused(lambda: choose_engine(m, (3, 32, 32), 1, ["eager"]), "non-finite")   # not "eager disagrees with eager"
    squeezenet.save(m, tmp_path / "nan.safetensors")
    data = image_folder(tmp_path / "d", tuple(f"c{i}" for i in range(5)), per_class=1)
    code, out, err = cli("eval", tmp_path / "nan.safetensors", "--data", data, "--engine", "eager", "--no-progress")
    assert code == 2 and "non-finite" in one_line(err) and "top-1" not in out
