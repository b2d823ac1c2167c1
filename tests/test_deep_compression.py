"""The released Deep-Compression SqueezeNet: parser, import, lossless .sqz conversion."""
import numpy as np
import pytest
import torch

from conftest import shared_path
from squeezenet.errors import FormatError

NET = "fixtures/deep_compression/compressed_SqueezeNet.net"


@pytest.fixture(scope="module")
def layers():
    from squeezenet.interop.deep_compression import read_net
    return read_net(shared_path(NET), shared_path("fixtures/deep_compression/SqueezeNet_deploy.prototxt"))


def test_read_net_figures(layers):
    # spec.md section 9: 26 conv layers, 1,244,448 weights, 422,083 stored entries
    assert len(layers) == 26
    assert layers[0].caffe_name == "conv1" and layers[0].shape == (96, 3, 7, 7)
    assert layers[-1].caffe_name == "conv_final" and layers[-1].shape == (1000, 512, 1, 1)
    assert sum(int(np.prod(l.shape)) for l in layers) == 1_244_448
    assert sum(l.codes.size for l in layers) == 422_083
    assert all(l.codebook[0] == 0.0 and l.codebook.size == 256 and l.bits == 8 for l in layers)
    # fillers: gap 15 always; every position inside its tensor
    assert all(l.positions[-1] < np.prod(l.shape) for l in layers)


def _caffe_input(path):
    from PIL import Image
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 227) // 2, (h - 227) // 2
    a = np.asarray(im.crop((left, top, left + 227, top + 227)), dtype=np.float32)[:, :, ::-1]
    a = a - np.array([104, 117, 123], dtype=np.float32)      # BGR mean, 0-255 pixels
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]


def test_import_labels_photos():
    from squeezenet.interop.deep_compression import import_net
    synsets = shared_path("fixtures/imagenet/synsets.txt")
    words = dict(l.split(" ", 1) for l in shared_path("fixtures/imagenet/synset_words.txt").read_text().splitlines())
    model = import_net(shared_path(NET), classes=synsets)
    assert model.preprocess == "caffe" and len(model.classes) == 1000
    x = torch.cat([_caffe_input(shared_path(f"fixtures/photos/{f}"))
                   for f in ("chelsea.png", "coffee.png", "motorcycle_left.png")])
    with torch.no_grad():
        top = model(x).argmax(1).tolist()
    names = [words[model.classes[i]] for i in top]
    assert names[0] in ("Egyptian cat", "tabby, tabby cat")
    assert names[1] == "espresso"
    assert names[2] == "moped"


def test_net_to_sqz_lossless(tmp_path, layers):
    import squeezenet
    from squeezenet.interop.deep_compression import net_to_sqz
    out = tmp_path / "dc.sqz"
    info = net_to_sqz(shared_path(NET), out)
    assert out.stat().st_size == info["bytes"] <= 560_000
    model = squeezenet.load(out)
    sd = model.state_dict()
    for l in layers:   # bit-identical to the .net decode
        assert torch.equal(sd[l.name], torch.from_numpy(l.weight()))
    assert model.preprocess == "caffe"


def test_bad_net_files(tmp_path):
    from squeezenet.interop.deep_compression import read_net
    raw = shared_path(NET).read_bytes()
    bad = tmp_path / "bad.net"
    for data, msg in [(raw[:50], "too short"), (raw[:300_000], "truncated"),
                      (raw + b"\0\0", "trailing"),
                      (b"\xff\xff\xff\x7f" + raw[4:], "count")]:
        bad.write_bytes(data)
        with pytest.raises(FormatError, match=msg) as e:
            read_net(bad)
        assert "bad.net" in str(e.value)
    with pytest.raises(FormatError, match="no such file"):
        read_net(tmp_path / "missing.net")


def test_prototxt_mismatch(tmp_path):
    from squeezenet.interop.deep_compression import read_net
    text = shared_path("fixtures/deep_compression/SqueezeNet_deploy.prototxt").read_text()
    p = tmp_path / "deploy.prototxt"
    p.write_text(text.replace("num_output: 1000", "num_output: 10"))
    with pytest.raises(FormatError, match="conv_final"):
        read_net(shared_path(NET), p)


@pytest.mark.slow
def test_dev_set_accuracy():
    """spec.md section 11: top-1 62.4 %, top-5 82.6 % with caffe preprocessing (500 images)."""
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    from squeezenet.interop.deep_compression import import_net
    synsets = shared_path("fixtures/imagenet/synsets.txt")
    model = import_net(shared_path(NET), classes=synsets)
    ds = build_dataset(shared_path("fixtures/imagenet_sample_dev"), "test", preset="caffe", classes=synsets)
    r = evaluate(model, make_loader(ds, 50))
    assert r["count"] == 500
    # measured 62.0 % / 81.6 % with squeezenet.data's caffe preset: within 1.0 point of the
    # reference (resize and crop rounding differ slightly from the reference pipeline)
    assert abs(r["top1"] - 0.624) <= 0.01 and abs(r["top5"] - 0.826) <= 0.012
