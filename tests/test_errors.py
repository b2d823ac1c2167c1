"""squeezenet.errors.first_line: one line from any exception, even one with an empty message."""
import pytest

import squeezenet
from squeezenet.errors import FormatError, SqueezeNetError, first_line


@pytest.mark.parametrize("exc,want", [
    (ValueError("bad value\n  more detail"), "bad value"),
    (ValueError("\n\n  second line is the first real one\nthird"), "second line is the first real one"),
    (ValueError(""), "ValueError"),
    (RuntimeError("   \n  "), "RuntimeError"),
    (OSError(), "OSError"),
])
def test_first_line(exc, want):
    assert first_line(exc) == want


def test_first_line_limit():
    assert first_line(ValueError("abcdef\nxyz"), limit=3) == "abc"
    assert first_line(ValueError(""), limit=3) == "ValueError"   # the class name is never cut


# The five places that used to take str(e).splitlines()[0] and so raised IndexError when a
# library raised an exception with an empty message.

def test_empty_message_train_config(tmp_path, monkeypatch):
    import yaml

    from squeezenet.train import TrainConfig
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.1\n")

    def boom(*a, **k):
        raise yaml.YAMLError()
    monkeypatch.setattr(yaml.SafeLoader, "get_single_data", boom)   # under squeezenet.io.read_yaml
    with pytest.raises(FormatError, match=r"cannot parse config \(not valid YAML: YAMLError\)"):
        TrainConfig.from_file(p)


def test_empty_message_space_yaml(tmp_path, monkeypatch):
    import yaml

    from squeezenet.explore import load_space
    p = tmp_path / "s.yaml"
    p.write_text("model: squeezenet_small\n")

    def boom(*a, **k):
        raise yaml.YAMLError()
    monkeypatch.setattr(yaml.SafeLoader, "get_single_data", boom)   # under squeezenet.io.read_yaml
    with pytest.raises(FormatError, match=r"not valid YAML: YAMLError"):
        load_space(p)


def test_empty_message_onnx_export(monkeypatch):
    import torch

    from squeezenet.interop.onnx_export import to_onnx_bytes

    def boom(*a, **k):
        raise RuntimeError()
    monkeypatch.setattr(torch.onnx, "export", boom)
    with pytest.raises(SqueezeNetError, match=r"cannot export at 32x32: RuntimeError"):
        to_onnx_bytes(squeezenet.create_model("squeezenet_small"))


def test_empty_message_study(monkeypatch):
    import optuna

    from squeezenet.explore import Budget, load_space
    from squeezenet.explore.study import open_study

    def boom(*a, **k):
        raise ValueError()
    monkeypatch.setattr(optuna, "create_study", boom)
    with pytest.raises(SqueezeNetError, match=r"study 's': ValueError"):
        open_study(None, "s", "accuracy", load_space(), Budget(), None)


def test_empty_message_cli_summary(cli, monkeypatch):
    import squeezenet.models as models

    def boom(*a, **k):
        raise RuntimeError()
    monkeypatch.setattr(models, "summary", boom)
    code, out, err = cli("summary", "squeezenet_small")
    assert code == 2 and err.strip().splitlines() == [
        "squeezenet summary: error: squeezenet_small cannot run at 32x32: RuntimeError"]
