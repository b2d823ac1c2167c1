"""A model's data config (issue 21 item 5): one frozen DataConfig carried as model.data_config,
stored in and read back from every file format, and the one input-size rule."""
from __future__ import annotations

import json

import pytest
import torch

import squeezenet
from squeezenet.data import input_size_for
from squeezenet.errors import ConfigError, FormatError
from squeezenet.models import DataConfig, SqueezeNet, SqueezeNetConfig, data_config

FULL = DataConfig(input_size=(3, 40, 40), preset="small", classes=("n1", "n2", "n3"),
                  class_names=("cat", "dog", "fox"), source="https://example.org/w.bin", license="MIT")


def tiny(cfg: DataConfig | None = FULL) -> SqueezeNet:
    torch.manual_seed(0)
    m = SqueezeNet(SqueezeNetConfig(stem="small", fires=((8, 16, 16),), pool_after=(0,), num_classes=3)).eval()
    if cfg is not None:
        m.data_config = cfg
    m.metadata = {"arch": "tiny"}
    return m


def test_data_config_fields_checks_and_round_trip():
    assert DataConfig.from_dict(json.loads(json.dumps(FULL.to_dict()))) == FULL
    assert FULL.num_classes == 3 and DataConfig().num_classes is None
    assert DataConfig(input_size=32).input_size == (3, 32, 32)
    # names of other ids mean nothing: dropped with a class list of another length
    assert DataConfig(classes=("a",), class_names=("x", "y")).class_names is None
    for bad in ({"input_size": (3, 0, 32)}, {"input_size": "big"}, {"license": ""}, {"classes": "abc"}, {"classes": 7},
                {"preset": 7}, {"colour": "red"}):
        with pytest.raises(ConfigError):
            DataConfig.from_dict(bad)


def test_model_attributes_read_through_the_one_config():
    m = tiny()
    assert (m.classes, m.class_names, m.preprocess) == (["n1", "n2", "n3"], ["cat", "dog", "fox"], "small")
    m.preprocess = "torchvision"
    assert m.data_config.preset == "torchvision"
    m.classes = ["a", "b", "c"]                 # same length: the names stay (as before)
    assert m.class_names == ["cat", "dog", "fox"]
    m.classes = ["a", "b"]                      # another length: they go
    assert m.class_names is None and m.data_config.class_names is None
    # metadata assigned with data-config keys (as importers and old files do) lands in the config
    m.metadata = {"source": "caffe", "arch": "x", "license": "BSD-2-Clause"}
    assert m.metadata == {"arch": "x"} and (m.data_config.source, m.data_config.license) == ("caffe", "BSD-2-Clause")
    assert data_config(m) is m.data_config


def test_reset_classifier_keeps_the_names_of_kept_rows():
    m = tiny()
    m.reset_classifier(2, keep_rows=[2, 0])
    assert m.classes == ["n3", "n1"] and m.class_names == ["fox", "cat"]
    assert m.data_config.license == "MIT"       # the weights' license stays with the backbone
    m.reset_classifier(4)
    assert m.classes is None and m.class_names is None


def test_one_input_size_rule_config_then_preset_then_architecture():
    m = squeezenet.create_model("squeezenet1_0")
    assert input_size_for(m) == (3, 227, 227)              # the architecture's documented size
    m.preprocess = "torchvision"
    assert input_size_for(m) == (3, 224, 224)              # its own preset's crop (what eval feeds it)
    m.data_config = m.data_config.replace(input_size=(3, 160, 192))
    assert input_size_for(m) == (3, 160, 192)              # a recorded size wins
    from squeezenet.runtime import input_shape
    assert input_shape(m) == (3, 160, 192) and input_shape(m, 64) == (3, 64, 64)


def test_safetensors_round_trip_and_old_files(tmp_path):
    m = tiny()
    p = squeezenet.save(m, tmp_path / "m.safetensors")
    back = squeezenet.load(p)
    assert back.data_config == FULL and back.metadata == {"arch": "tiny"}
    # a file written before the config existed (no data-config keys) reads as it did
    old = tiny(None)
    old.classes, old.preprocess = ["a", "b", "c"], "small"
    back = squeezenet.load(squeezenet.save(old, tmp_path / "old.safetensors"))
    assert back.data_config == DataConfig(preset="small", classes=("a", "b", "c"))
    from squeezenet.io import model_metadata
    assert "license" not in json.loads(model_metadata(old)["extra"])   # nothing new is written for it


def test_bad_data_config_in_a_file_is_a_one_line_error(tmp_path):
    from safetensors.torch import save_file

    from squeezenet.io import model_metadata
    meta = model_metadata(tiny())
    extra = json.loads(meta["extra"])
    extra["input_size"] = [3, -1, 40]
    p = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in tiny().state_dict().items()}, str(p),
              metadata={**meta, "extra": json.dumps(extra)})
    with pytest.raises(FormatError, match="bad.safetensors.*input_size"):
        squeezenet.load(p)


def test_sqz_round_trip(tmp_path):
    from squeezenet.compress.quantize import quantize_model
    from squeezenet.compress.sizing import save_quantized
    from squeezenet.io.sqz import inspect_sqz, load_sqz
    m = tiny()
    save_quantized(m, quantize_model(m, 4), tmp_path / "m.sqz", metadata={"note": "x"})
    back = load_sqz(tmp_path / "m.sqz")
    assert back.data_config == FULL
    assert back.metadata["arch"] == "tiny" and back.metadata["note"] == "x"
    # the header keeps the fields where files before the config kept them
    assert inspect_sqz(tmp_path / "m.sqz")["metadata"]["class_names"] == ["cat", "dog", "fox"]


def test_onnx_openvino_ncnn_round_trip(tmp_path):
    import onnx

    from squeezenet.interop.onnx_export import export_onnx, to_onnx_bytes
    from squeezenet.runtime.onnx_model import load_onnx
    m = tiny()
    p = export_onnx(m, tmp_path / "m.onnx")          # at the config's 40x40 (the one input-size rule)
    dims = [d.dim_value for d in onnx.load(str(p)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 40, 40]
    got = load_onnx(p)
    assert got.data_config == FULL and data_config(got) == FULL
    assert (got.classes, got.class_names, got.preprocess) == (list(FULL.classes), list(FULL.class_names), "small")
    assert input_size_for(got) == (3, 40, 40)
    blob = to_onnx_bytes(m)
    pytest.importorskip("openvino")
    from squeezenet.runtime.openvino_model import export_openvino, load_openvino
    assert load_openvino(export_openvino(blob, tmp_path / "m.xml")[0]).data_config == FULL
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    from squeezenet.runtime.ncnn_model import export_ncnn, load_ncnn
    assert load_ncnn(export_ncnn(blob, tmp_path / "n.param")[0]).data_config == FULL


def test_caffe_export_notes_round_trip(tmp_path):
    from squeezenet.interop.caffe import export_caffe, import_caffe
    m = tiny(FULL.replace(input_size=None))
    proto, weights = export_caffe(m, tmp_path)
    back = import_caffe(proto, weights)
    assert back.data_config == m.data_config


def test_pretrained_records_give_their_data_config():
    from squeezenet.interop import pretrained as P
    w = P.get("squeezenet1_0.deep_compression")
    m = w.load()
    c = m.data_config
    assert (c.preset, c.license, c.source) == ("caffe", "BSD-2-Clause", w.url)
    assert c.classes[0] == "n01440764" and c.class_names[0].startswith("tench") and c.num_classes == 1000
    assert m.metadata["weights"] == w.name
    assert input_size_for(m) == (3, 227, 227)


def test_training_keeps_the_data_config_in_checkpoints_and_state(cli, tmp_path):
    from squeezenet.models import MetaParams
    from squeezenet.train import STATE_FILE, load_train_state
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=MetaParams(base_e=16, incr_e=16, sr=0.25))
    m.data_config = m.data_config.replace(source="my-lab", license="MIT")
    src = squeezenet.save(m, tmp_path / "tiny.safetensors")
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", "digits", "--out", out, "--model", src, "--max-steps", "1",
                       "--batch-size", "16", "--no-progress")
    assert code == 0, err
    got = squeezenet.load(out / "best.safetensors").data_config
    assert (got.source, got.license, got.preset, got.num_classes) == ("my-lab", "MIT", "small", 10)
    _, info = load_train_state(out / STATE_FILE)
    assert DataConfig.from_dict(info["model"]["data_config"]) == got
    # a resumed run rebuilds the model from the state with its whole data config
    from squeezenet.cli.train import _build_model
    assert _build_model(None, info, "digits", "small").data_config == got
