"""ONNX-zoo weights, torchvision checkpoints, the import dispatcher and the
Deep-Compression route of ``squeezenet import``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import squeezenet
from squeezenet.errors import FormatError, SqueezeNetError
from squeezenet.interop.importers import import_model, read_classes
from squeezenet.interop.onnx_zoo import import_onnx_zoo, read_npy

from conftest import shared_path

ZOO = "fixtures/onnx_zoo_squeezenet1.1"


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ ONNX zoo

def test_onnx_zoo_matches_reference_outputs():
    model = import_onnx_zoo(shared_path(f"{ZOO}/weights"))
    assert model.config == squeezenet.create_model("squeezenet1_1").config
    assert model.preprocess == "torchvision"
    diffs = []
    for i in range(3):
        x = torch.from_numpy(read_npy(shared_path(f"{ZOO}/test_data_set_{i}/input_0.npy")))
        ref = read_npy(shared_path(f"{ZOO}/test_data_set_{i}/output_0.npy"))
        with torch.no_grad():
            y = model(x).numpy()
        assert y.shape == ref.shape == (1, 1000)
        assert y.argmax() == ref.argmax()
        diffs.append(float(np.abs(y - ref).max()))
    print(f"ONNX-zoo max abs output difference per test set: {diffs}")
    assert max(diffs) < 2e-4


def test_onnx_zoo_parent_folder_and_bad_files(tmp_path):
    src = shared_path(f"{ZOO}/weights")
    # the zoo folder itself (holding weights/) works too
    assert import_onnx_zoo(src.parent).data_config.source == "onnx-zoo"
    d = tmp_path / "weights"
    d.mkdir()
    for f in src.glob("*.npy"):
        (d / f.name).symlink_to(f)
    (d / "squeezenet0_conv7_bias.npy").unlink()
    with pytest.raises(FormatError, match="squeezenet0_conv7_bias.npy: missing"):
        import_onnx_zoo(d)
    np.save(d / "squeezenet0_conv7_bias.npy", np.zeros(5, np.float32))
    with pytest.raises(FormatError, match=r"shape \(5,\), features.6.squeeze.bias needs \(32,\)"):
        import_onnx_zoo(d)


def test_read_npy_refuses_pickles_and_lying_headers(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="unsupported .npy dtype"):
        read_npy(p)
    good = tmp_path / "good.npy"
    np.save(good, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert read_npy(good).shape == (3, 4)
    data = good.read_bytes()
    # a header declaring a huge shape is refused from the file size, before any allocation
    huge = data.replace(b"(3, 4)", b"(9999999999, 4)".ljust(6)[:15])
    header_len = int.from_bytes(data[8:10], "little")
    lying = data[:10] + data[10:10 + header_len].replace(b"(3, 4),", b"(3000000000000, 4),"[:19]) + data[10 + header_len:]
    for name, blob in (("trunc", data[:-5]), ("magic", b"XXNUMPY" + data[7:]), ("short", data[:9]),
                       ("huge", huge), ("lying", lying)):
        (tmp_path / f"{name}.npy").write_bytes(blob)
        with pytest.raises(FormatError):
            read_npy(tmp_path / f"{name}.npy")


# ---------------------------------------------------------------------------- torchvision

def test_torchvision_state_dict_imports_with_weights_only(tmp_path, cli):
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.squeezenet1_1(weights=None).eval()
    torch.save(tv.state_dict(), tmp_path / "squeezenet1_1-test.pth")
    code, out, err = cli("import", tmp_path / "squeezenet1_1-test.pth", "--from", "torchvision",
                         "-o", tmp_path / "tv.safetensors")
    assert code == 0, err
    model = squeezenet.load(tmp_path / "tv.safetensors")
    assert model.preprocess == "torchvision" and model.classes is None
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():   # the same computation as torchvision's on the NHWC layout ours runs in
        assert torch.equal(model(x), tv(x.contiguous(memory_format=torch.channels_last)))
    # a checkpoint that needs unpickling of arbitrary objects is refused
    torch.save({"state_dict": tv.state_dict(), "obj": _Evil()}, tmp_path / "evil.pth")
    code, out, err = cli("import", tmp_path / "evil.pth", "--from", "torchvision", "-o", tmp_path / "e.safetensors")
    assert code == 2 and "not a readable torchvision checkpoint" in err and len(err.strip().splitlines()) == 1


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_weights_torchvision_offline_is_one_line(monkeypatch, tmp_path):
    import torch.hub

    def offline(*a, **k):
        import urllib.error
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached copy
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(SqueezeNetError) as e:
        squeezenet.create_model("squeezenet1_1", weights="torchvision")
    msg = str(e.value)
    assert "\n" not in msg and "cannot download" in msg and ".pth" in msg


# -------------------------------------------------------------------------- dispatcher / CLI

def test_cli_import_onnx_zoo_with_classes(tmp_path, cli, shared):
    synsets = shared("fixtures/imagenet/synsets.txt")
    code, out, err = cli("import", shared(f"{ZOO}/weights"), "--from", "onnx-zoo", "--classes", synsets,
                         "-o", tmp_path / "zoo.safetensors")
    assert code == 0, err
    m = squeezenet.load(tmp_path / "zoo.safetensors")
    assert m.classes == read_classes(synsets) and len(m.classes) == 1000
    assert m.preprocess == "torchvision" and m.data_config.source == "onnx-zoo"
    x = torch.from_numpy(read_npy(shared(f"{ZOO}/test_data_set_0/input_0.npy")))
    ref = read_npy(shared(f"{ZOO}/test_data_set_0/output_0.npy"))
    with torch.no_grad():
        assert np.abs(m(x).numpy() - ref).max() < 2e-4


def test_import_errors(tmp_path, cli, shared):
    (tmp_path / "ten.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    with pytest.raises(SqueezeNetError, match="10 ids, the model has 1000 outputs"):
        import_model("onnx-zoo", [shared(f"{ZOO}/weights")], read_classes(tmp_path / "ten.txt"))
    (tmp_path / "dup.txt").write_text("a\na\n")
    code, out, err = cli("import", shared(f"{ZOO}/weights"), "--from", "onnx-zoo", "--classes",
                         tmp_path / "dup.txt", "-o", tmp_path / "z.safetensors")
    assert code == 2 and "duplicate" in err
    code, out, err = cli("import", tmp_path, "--from", "onnx-zoo", "-o", tmp_path / "z.safetensors")
    assert code == 2 and "missing" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("import", tmp_path / "x", "--from", "tensorflow", "-o", tmp_path / "z.safetensors")
    assert code == 2 and "invalid choice" in err


def test_cli_import_deep_compression(tmp_path, cli, shared):
    net = shared("fixtures/deep_compression/compressed_SqueezeNet.net")
    synsets = shared("fixtures/imagenet/synsets.txt")
    # no prototxt given: SqueezeNet_deploy.prototxt beside the .net is used
    code, out, err = cli("import", net, "--from", "deep-compression", "--classes", synsets,
                         "-o", tmp_path / "dc.safetensors")
    assert code == 0, err
    m = squeezenet.load(tmp_path / "dc.safetensors")
    assert m.preprocess == "caffe" and len(m.classes) == 1000 and m.config.conv10_padding == 1
    code, out, err = cli("import", net, "--from", "deep-compression", "--classes", synsets,
                         "-o", tmp_path / "dc.sqz")
    assert code == 0, err
    sqz = squeezenet.load(tmp_path / "dc.sqz")
    assert sqz.classes == m.classes and sqz.preprocess == "caffe"
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        torch.testing.assert_close(sqz(x), m(x))


@pytest.mark.parametrize("photo,wnids", [("chelsea.png", {"n02124075", "n02123045"}),   # Egyptian cat / tabby
                                         ("coffee.png", {"n07920052"}),                 # espresso
                                         ("motorcycle_left.png", {"n03785016"})])       # moped
def test_onnx_zoo_labels_real_photos(photo, wnids):
    from PIL import Image
    from squeezenet.data import get_transform
    model = import_onnx_zoo(shared_path(f"{ZOO}/weights"), read_classes(shared_path("fixtures/imagenet/synsets.txt")))
    x = get_transform(model.preprocess)(Image.open(shared_path(f"fixtures/photos/{photo}"))).unsqueeze(0)
    with torch.no_grad():
        assert model.classes[int(model(x).argmax())] in wnids
