"""Hostile and broken input (issue 15, the readers): every reader is bounded, cannot hang, and
refuses bad input with one line naming the file; each kind has a regression test here, on
files the tests make. The memory cases also run in a subprocess under ``RLIMIT_AS``
(:func:`test_memory_bombs_fail_fast_under_a_memory_limit`); the slow fuzz of every reader is
in ``tests/test_interop_fuzz.py`` (engine: ``tests/fuzz_readers.py``).
"""
from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import squeezenet
import squeezenet.io
from squeezenet.errors import ConfigError, FormatError, SqueezeNetError
from squeezenet.models import SqueezeNet, SqueezeNetConfig

from fuzz_readers import (ArchiveReader, ImageReader, NetReader, deep_json, refused, safetensors_bytes,
                          tiny_model, within)

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def png(path: Path, size=(8, 8)) -> Path:
    from PIL import Image
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


# ------------------------------------------------------------------------------------ images

@pytest.mark.parametrize("w,h,needle", [(1, 50000, "aspect ratio 50000:1"), (40000, 40000, "over the"),
                                        (8192, 8193, "over the"), (0, 5, "unreadable image")])
def test_image_size_checked_from_the_header(tmp_path, w, h, needle):
    from squeezenet.data import read_image
    p = tmp_path / "x.png"
    p.write_bytes(ImageReader.png(w, h))   # a few hundred bytes whatever the size it declares
    refused(lambda: read_image(p), str(p), needle)


def test_image_bounds_leave_real_photos_alone(tmp_path):
    from squeezenet.data import read_image
    from squeezenet.data.images import MAX_ASPECT, check_image_size
    assert read_image(png(tmp_path / "a.png", (640, 480))).size == (640, 480)
    assert check_image_size(6000, 4000) is None and check_image_size(MAX_ASPECT * 10, 10) is None
    assert check_image_size(MAX_ASPECT * 10 + 1, 10) is not None


def test_predict_tall_png_is_one_line(cli, tmp_path):
    m = squeezenet.save(tiny_model(), tmp_path / "m.safetensors")
    (tmp_path / "tall.png").write_bytes(ImageReader.png(1, 50000))
    code, _, err = cli("predict", m, tmp_path / "tall.png")
    assert code == 2 and "tall.png: unreadable image (1x50000 image: aspect ratio" in one_line(err)


def test_predict_fifo_named_like_an_image_does_not_block(cli, tmp_path):
    m = squeezenet.save(tiny_model(), tmp_path / "m.safetensors")
    os.mkfifo(tmp_path / "photo.png")
    with within():
        code, _, err = cli("predict", m, tmp_path / "photo.png")
    assert code == 2 and "photo.png: unreadable image (a FIFO, not a regular file)" in one_line(err)


def test_model_file_that_is_a_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "m.safetensors")
    os.mkfifo(tmp_path / "m.sqz")
    refused(lambda: squeezenet.load(tmp_path / "m.safetensors"), "a FIFO, not a regular file")
    refused(lambda: squeezenet.load(tmp_path / "m.sqz"), "a FIFO, not a regular file")


# ------------------------------------------------------------------------------- folder walk

def _classes(root: Path, n: int = 2) -> Path:
    for c in "ab"[:n]:
        (root / c).mkdir(parents=True)
        png(root / c / "0.png")
        png(root / c / "1.png")
    return root


def test_walk_skips_fifos_and_counts_them(tmp_path, capsys):
    from squeezenet.data import build_dataset
    root = _classes(tmp_path / "d")
    os.mkfifo(root / "a" / "stuck.jpg")
    with within():
        ds = build_dataset(root, "test", preset="small", preload=False)
        items = [ds[i] for i in range(len(ds))]
    assert len(items) == 4 and ds.skipped == {str(root / "a" / "stuck.jpg"): "not a regular file"}
    assert "skipped unreadable image" in capsys.readouterr().err


def test_walk_link_loops_are_linear_and_never_leave_the_class(tmp_path):
    """``up -> ..`` in every class (and deeper) made torchvision's walk exponential; now each
    real folder is visited once and no link leads out of its class folder."""
    from squeezenet.data import build_dataset
    from squeezenet.data.datasets import scan_images
    root = _classes(tmp_path / "d")
    for c in "ab":
        (root / c / "up").symlink_to("..")
        (root / c / "sub").mkdir()
        png(root / c / "sub" / "2.png")
        (root / c / "sub" / "back").symlink_to("..")          # a loop inside the class
        (root / c / "sub" / "self").symlink_to(".")
        for k in range(12):                                    # 12 levels of links to ..
            (root / c / "sub" / f"l{k}").symlink_to("..")
    (root / "up").symlink_to("..")                              # a "class" that holds the dataset
    (root / "a" / "out").symlink_to(tmp_path)                   # a link out of the tree
    with within(60):
        ds = build_dataset(root, "test", preset="small", preload=False)
    assert ds.classes == ["a", "b"]
    assert sorted(os.path.relpath(p, root) for p, _ in ds.samples) == sorted(
        f"{c}/{f}" for c in "ab" for f in ("0.png", "1.png", "sub/2.png"))
    assert all(Path(p).parts[len(root.parts)] == ds.classes[t] for p, t in ds.samples)
    paths, odd = scan_images(root / "a")
    assert len(paths) == 3 and not odd


def test_walk_order_matches_torchvision(tmp_path):
    """On a plain tree the sample list is torchvision ImageFolder's (order and labels)."""
    from torchvision.datasets import ImageFolder

    from squeezenet.data.datasets import ImageFolderDataset
    root = _classes(tmp_path / "d")
    (root / "b" / "z").mkdir()
    png(root / "b" / "z" / "9.png")
    (root / "b" / "Y.PNG").write_bytes((root / "b" / "0.png").read_bytes())
    (root / "b" / "notes.txt").write_text("x")
    assert ImageFolderDataset(root).samples == ImageFolder(str(root)).samples


# --------------------------------------------------------------------------- model configs

def _meta(**config):
    m = tiny_model()
    meta = squeezenet.io.model_metadata(m)
    cfg = json.loads(meta["config"])
    cfg.update(config)
    meta["config"] = json.dumps(cfg)
    return m, meta


@pytest.mark.parametrize("field,value,needle", [
    ("num_classes", 2200000, "num_classes=2200000"), ("in_channels", 2 * 10 ** 6, "in_channels=2000000"),
    ("in_channels", 10 ** 6, "parameters, over the"),
    ("in_channels", 0, "in_channels=0"), ("in_channels", -3, "in_channels=-3"),
    ("in_channels", True, "in_channels=True"), ("num_classes", 2.5, "num_classes=2.5"),
    ("fires", [[1, 1, 1]] * 200000, "at most 64 Fire modules"), ("fires", [[4, 8, 2 * 10 ** 6]] * 3, "fires[0]"),
    ("fires", [[1000000, 1000000, 1000000]] * 2, "parameters, over the"),
    ("dropout", "x", "dropout"), ("stem", ["v1.0"], "stem"), ("pool_after", [-1], "pool_after=-1"),
])
def test_safetensors_config_checked_before_anything_is_built(tmp_path, field, value, needle):
    m, meta = _meta(**{field: value})
    p = tmp_path / "m.safetensors"
    p.write_bytes(safetensors_bytes(m.state_dict(), meta))
    refused(lambda: squeezenet.load(p), "m.safetensors: bad model config", needle, kind=FormatError)


def test_sidecar_goes_through_the_same_checks(tmp_path):
    m = tiny_model()
    p = tmp_path / "w.safetensors"
    p.write_bytes(safetensors_bytes(m.state_dict(), None))
    side = p.with_suffix(".json")
    good = {"config": m.config.to_dict(), "classes": m.classes, "preprocess": "small"}
    side.write_text(json.dumps(good))
    assert squeezenet.load(p).classes == m.classes                     # a sidecar works
    for text, needle in [(json.dumps({**good, "config": {**good["config"], "num_classes": 2200000}}), "num_classes"),
                         (json.dumps({**good, "config": {**good["config"], "in_channels": 0}}), "in_channels=0"),
                         ("[1, 2]", "must be a JSON object, not list"),
                         ('{"config": ' + deep_json(100000) + "}", "nested"),
                         (json.dumps({**good, "classes": ["a", "b"]}), "2 classes for a model with 5 outputs"),
                         (json.dumps({**good, "classes": {"a": 1}}), "not dict"),
                         (json.dumps({**good, "preprocess": [1]}), "preprocess")]:
        side.write_text(text)
        refused(lambda: squeezenet.load(p), "w.json", needle, kind=FormatError)
    side.write_bytes(b"\xff\xfe{}")
    refused(lambda: squeezenet.load(p), "w.json", "not UTF-8")


@pytest.mark.parametrize("classes,needle", [
    (3, "not int"), ({"a": 0}, "not dict"), (["a", "b"], "2 classes for a model with 5 outputs"),
    (["c0", "c0", "c1", "c2", "c3"], "listed twice"), (["", "b", "c", "d", "e"], "empty name"),
    ([1, 2, 3, 4, 5], "not a name"), (["a\nb", "b", "c", "d", "e"], "control character"), ([], "empty"),
])
def test_header_class_list_is_checked(tmp_path, classes, needle):
    m, meta = _meta()
    meta["classes"] = json.dumps(classes)
    p = tmp_path / "m.safetensors"
    p.write_bytes(safetensors_bytes(m.state_dict(), meta))
    refused(lambda: squeezenet.load(p), "bad class list", needle, kind=FormatError)


@pytest.mark.parametrize("key", ["config", "classes", "extra", "preprocess"])
def test_deeply_nested_header_json_is_one_line(tmp_path, key):
    m, meta = _meta()
    meta[key] = deep_json(100000)
    p = tmp_path / "m.safetensors"
    p.write_bytes(safetensors_bytes(m.state_dict(), meta))
    refused(lambda: squeezenet.load(p), "nested over 64 levels", kind=FormatError)


def test_deeply_nested_sqz_header_is_one_line(tmp_path):
    from fuzz_readers import SqzReader
    r = SqzReader()
    r.setup(tmp_path)
    for text in (deep_json(100000), '{"format": "squeezenet-sqz", "config": ' + deep_json(500) + "}"):
        (tmp_path / "m.sqz").write_bytes(r.rewrite(text))
        refused(lambda: squeezenet.load(tmp_path / "m.sqz"), "m.sqz", "nested", kind=FormatError)


def test_tensor_shapes_checked_before_the_model_is_built(tmp_path, monkeypatch):
    """A header config of 56 M parameters (within the bound) over 5-class tensors: refused
    from the shapes in the header, before any tensor is read or the 225 MB model built."""
    m, meta = _meta(num_classes=110000)
    meta["classes"] = "null"
    p = tmp_path / "m.safetensors"
    p.write_bytes(safetensors_bytes(m.state_dict(), meta))

    def too_late(*a, **k):
        raise AssertionError("tensors read (and a model about to be built) before the shape check")
    monkeypatch.setattr(squeezenet.io, "read_safetensors", too_late)
    refused(lambda: squeezenet.io.load_safetensors(p), "classifier.1.weight: shape (5, 16, 1, 1) in file, "
            "model needs (110000, 16, 1, 1)", kind=FormatError)


def test_config_count_and_sides_match_pytorch():
    """num_params and output_side are computed from the numbers alone: they must agree with
    the built network (random small configs, every input side up to 40)."""
    from squeezenet.models.squeezenet import STEMS
    rng = random.Random(0)
    for _ in range(25):
        nf = rng.randint(0, 5)
        fires = tuple((rng.randint(1, 6), rng.randint(1, 6), rng.randint(1, 6)) for _ in range(nf))
        cfg = SqueezeNetConfig(stem=rng.choice(list(STEMS)), fires=fires,
                               pool_after=tuple(rng.sample(range(max(nf, 1)), rng.randint(0, max(nf, 1)))),
                               bypass=rng.choice(["none", "simple", "complex"]), num_classes=rng.randint(1, 9),
                               in_channels=rng.randint(1, 4), batch_norm=rng.random() < 0.5,
                               conv10_padding=rng.randint(0, 1))
        m = SqueezeNet(cfg).eval()
        assert cfg.num_params() == sum(p.numel() for p in m.parameters())
        for n in range(1, 41):
            try:
                want = m.classifier[1](m.features(torch.zeros(1, cfg.in_channels, n, n))).shape[-1]
            except RuntimeError:
                want = None
            if want is None:
                with pytest.raises(ConfigError, match="shrinks to nothing"):
                    cfg.output_side(n)
            else:
                assert cfg.output_side(n) == want


def test_pooling_to_nothing_is_one_line_in_predict_and_eval(cli, tmp_path):
    m = SqueezeNet(SqueezeNetConfig(stem="small", fires=((4, 8, 8),) * 6, pool_after=tuple(range(6)), num_classes=3))
    m.preprocess = "small"
    p = squeezenet.save(m, tmp_path / "m.safetensors")
    code, _, err = cli("predict", p, png(tmp_path / "x.png"))
    assert code == 2 and "m.safetensors: the small preset's 32x32 input shrinks to nothing" in one_line(err)
    code, _, err = cli("eval", p, "--data", "digits")
    assert code == 2 and "shrinks to nothing at the max-pool after fire" in one_line(err)


def test_metaparams_and_space_values_are_bounded_before_building():
    from squeezenet.models import MetaParams, create_model
    with pytest.raises(ConfigError, match="parameters, over the"):
        create_model("squeezenet_small", meta=MetaParams(base_e=1000000, incr_e=0))
    with pytest.raises(ConfigError, match="base_e"):
        MetaParams(base_e=10 ** 9)
    with pytest.raises(ConfigError, match="num_fires"):
        MetaParams(num_fires=10 ** 9)
    with pytest.raises(ConfigError, match="SR"):
        MetaParams(sr=float("nan"))


# ----------------------------------------------------------------------- imported weights

def test_pth_checks(tmp_path):
    from squeezenet.interop.importers import import_model
    sd = squeezenet.create_model("squeezenet1_1").state_dict()
    torch.save(sd, tmp_path / "ok.pth")
    assert import_model("torchvision", [tmp_path / "ok.pth"]).num_classes == 1000
    cases = {
        "huge.pth": ({**sd, "classifier.1.weight": torch.zeros(1).expand(3000000, 512, 1, 1),
                      "classifier.1.bias": torch.zeros(1).expand(3000000)}, "over the 67,108,864 limit"),
        "view.pth": ({**sd, "classifier.1.weight": torch.zeros(1).expand(20000, 512, 1, 1),
                      "classifier.1.bias": torch.zeros(1).expand(20000)}, "repeating view"),
        "nan.pth": ({**sd, "features.0.weight": sd["features.0.weight"].clone().index_fill_(0, torch.tensor([3]),
                                                                                         float("nan"))}, "non-finite"),
        "shape.pth": ({**sd, "features.3.squeeze.weight": torch.zeros(16, 64, 3, 3)}, "model needs (16, 64, 1, 1)"),
    }
    for name, (state, needle) in cases.items():
        torch.save(state, tmp_path / name)
        refused(lambda: import_model("torchvision", [tmp_path / name]), name, needle, kind=FormatError)
    import zipfile
    with zipfile.ZipFile(tmp_path / "ok.pth") as z, zipfile.ZipFile(tmp_path / "zip.pth", "w",
                                                                    zipfile.ZIP_DEFLATED) as out:
        for i in z.infolist():
            out.writestr(i.filename, z.read(i.filename))
    refused(lambda: import_model("torchvision", [tmp_path / "zip.pth"]), "is compressed", kind=FormatError)


def test_net_with_nan_is_refused(tmp_path):
    from squeezenet.interop.deep_compression import read_net
    r = NetReader()
    r.setup(tmp_path)
    (tmp_path / "ok.net").write_bytes(r.build(random.Random(0), poison=False))
    assert len(read_net(tmp_path / "ok.net")) == 26
    for seed in range(4):
        (tmp_path / "bad.net").write_bytes(r.build(random.Random(seed), poison=True))
        refused(lambda: read_net(tmp_path / "bad.net"), "bad.net: layer", "non-finite", kind=FormatError)


def test_npy_shape_holding_true_is_one_line(tmp_path):
    from squeezenet.interop.onnx_zoo import read_npy
    h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (True, 3), }"
    (tmp_path / "a.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + bytes(12))
    refused(lambda: read_npy(tmp_path / "a.npy"), "a.npy", "shape (True, 3)", kind=FormatError)


# ------------------------------------------------------------------------------ YAML, text

@pytest.mark.parametrize("text,needle", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "aliases (*a) are not allowed"),
    ("a: " + "[" * 5000 + "]" * 5000, "nested over 32 levels"),
    ("version: 1\nparams:\n  base_e: {low: 8, high: 16, step: .nan}\n", "params.base_e.step: nan"),
    ("version: 1\nparams:\n  sr: {low: 0.1, high: .inf, step: 0.1}\n", "params.sr.high: inf"),
    ("version: 1\nparams:\n  sr: {values: [.nan]}\n", "params.sr.values: nan"),
    ("- 1\n" * 100001, "over 100,000 values"),
])
def test_space_yaml_is_bounded(tmp_path, text, needle):
    from squeezenet.explore import load_space
    p = tmp_path / "s.yaml"
    p.write_text(text)
    refused(lambda: load_space(p), "s.yaml", needle, kind=FormatError)


def test_space_yaml_binary_and_oversized(tmp_path):
    from squeezenet.explore import load_space
    from squeezenet.train import TrainConfig
    (tmp_path / "b.yaml").write_bytes(b"version: 1\n\xff\xfe: 1\n")
    refused(lambda: load_space(tmp_path / "b.yaml"), "b.yaml", "not UTF-8")
    (tmp_path / "big.yaml").write_bytes(b"#" * (2 << 20))
    refused(lambda: load_space(tmp_path / "big.yaml"), "big.yaml", "over the 1,048,576-byte limit")
    (tmp_path / "t.yaml").write_text("lr: &x 0.1\nmomentum: *x\n")   # train --config reads YAML the same way
    refused(lambda: TrainConfig.from_file(tmp_path / "t.yaml"), "t.yaml", "aliases")


def test_labels_and_class_lists_refuse_binary_files(cli, tmp_path):
    from squeezenet.data import read_class_list
    m = squeezenet.save(tiny_model(), tmp_path / "m.safetensors")
    (tmp_path / "labels.bin").write_bytes(bytes(range(256)) * 10)
    code, _, err = cli("predict", m, png(tmp_path / "x.png"), "--labels", tmp_path / "labels.bin")
    assert code == 2 and "labels.bin: class list file is not UTF-8 text" in one_line(err)   # --labels = --classes
    refused(lambda: read_class_list(tmp_path / "labels.bin"), "labels.bin", "not UTF-8")
    os.mkfifo(tmp_path / "fifo.txt")
    refused(lambda: read_class_list(tmp_path / "fifo.txt"), "a FIFO, not a regular file")


# -------------------------------------------------------------------------------- archives

def _tar(members, compress=True) -> bytes:
    return ArchiveReader.build(members, compress)


def _images():
    r = ArchiveReader()
    r.setup(None)
    return r


def test_gzip_bomb_refused_from_the_declared_size(tmp_path, monkeypatch):
    from squeezenet.data import build_dataset
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "bomb.tar.gz"
    p.write_bytes(_tar([("test/a/zeros.png", "file", b"\0" * (96 << 20))]))   # 96 MiB of zeros -> ~100 kB
    assert p.stat().st_size < 200_000
    msg = refused(lambda: build_dataset(p, "test"), "bomb.tar.gz: unpacks to over", "a compression bomb",
                  kind=FormatError)
    assert "declares 100,663,296" in msg
    assert not any((tmp_path / "cache").rglob("zeros.png"))        # nothing of it was written, nothing kept


def test_many_members_refused(tmp_path, monkeypatch):
    from squeezenet.data import unpack
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "many.tar.gz"
    p.write_bytes(_tar([(f"test/a/{i}.png", "file", b"") for i in range(12000)]))
    refused(lambda: unpack(p), "members", "the cap for a", kind=FormatError)
    assert not [d for d in (tmp_path / "cache").iterdir() if (d / ".complete").exists()]


def test_gzip_crc_is_verified(tmp_path, monkeypatch):
    from squeezenet.data import build_dataset
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    good = _images().base
    (tmp_path / "good.tar.gz").write_bytes(good)
    assert len(build_dataset(tmp_path / "good.tar.gz", "test", preset="small")) == 4
    bad = bytearray(good)
    bad[-8] ^= 1                      # the CRC-32 of the gzip trailer
    (tmp_path / "crc.tar.gz").write_bytes(bytes(bad))
    refused(lambda: build_dataset(tmp_path / "crc.tar.gz", "test"), "crc.tar.gz", "CRC check failed",
            kind=FormatError)
    bad = bytearray(good)
    bad[-2] ^= 1                      # the length of the gzip trailer
    (tmp_path / "len.tar.gz").write_bytes(bytes(bad))
    refused(lambda: build_dataset(tmp_path / "len.tar.gz", "test"), "len.tar.gz", "length", kind=FormatError)


def test_nested_archives_and_deep_members(tmp_path, monkeypatch):
    from squeezenet.data import build_dataset, unpack
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    inner = _images().base
    for _ in range(50):
        inner = gzip.compress(_tar([("test.tar.gz", "file", inner)], compress=False), 1)
    (tmp_path / "nested.tar.gz").write_bytes(inner)
    refused(lambda: build_dataset(tmp_path / "nested.tar.gz", "test"), "nested.tar.gz: archives nested over 3 deep",
            kind=FormatError)
    assert len(list((tmp_path / "cache").iterdir())) <= 4
    (tmp_path / "deep.tar.gz").write_bytes(_tar([("/".join(["d"] * 40) + "/x.png", "file", b"x")]))
    refused(lambda: unpack(tmp_path / "deep.tar.gz"), "41 path components (limit 32)", kind=FormatError)


# ------------------------------------------------------------------------------ int8 calibration

def test_int8_calibration_with_only_unreadable_images_is_one_line(cli, tmp_path):
    m = squeezenet.save(tiny_model(), tmp_path / "m.safetensors")
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "a.jpg").write_bytes(b"not a jpeg")
    png(tmp_path / "cal" / "b.png", (32, 32))
    code, _, err = cli("export", m, "-o", tmp_path / "q.onnx", "--int8", "--calibration", tmp_path / "cal",
                       "--calibration-count", "1")
    assert code == 2 and "no readable calibration images" in err.strip().splitlines()[-1]
    assert not (tmp_path / "q.onnx").exists()
    code, out, err = cli("export", m, "-o", tmp_path / "q.onnx", "--int8", "--calibration", tmp_path / "cal")
    assert code == 0 and "int8 from 1 calibration images (1 unreadable skipped)" in out, err


# ------------------------------------------------------------------------- under a memory limit

MEMORY_SCRIPT = textwrap.dedent('''
    import json, resource, sys, torch
    from pathlib import Path
    import squeezenet
    from squeezenet.data import read_image
    from squeezenet.errors import SqueezeNetError
    from squeezenet.explore import load_space
    from squeezenet.interop.importers import import_model
    tmp = Path(sys.argv[1])
    def vm():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    limit = vm() + (400 << 20)      # 400 MiB over what the imports took: a bomb needs gigabytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cases = {"tall.png": lambda p: read_image(p), "big.safetensors": squeezenet.load,
             "side.safetensors": squeezenet.load, "view.pth": lambda p: import_model("torchvision", [p]),
             "bomb.yaml": load_space, "wide.yaml": lambda p: [squeezenet.create_model(
                 "squeezenet_small", meta=load_space(p).to_meta({"base_e": 1000000})[0])]}
    out = {}
    for name, fn in cases.items():
        try:
            fn(tmp / name)
            out[name] = "accepted"
        except SqueezeNetError as e:
            out[name] = "refused: " + str(e)
        except BaseException as e:
            out[name] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
''')


def test_memory_bombs_fail_fast_under_a_memory_limit(tmp_path):
    """Tiny files that used to ask for gigabytes, read under RLIMIT_AS = 400 MiB over the
    process's size: each is refused with a one-line error, none runs out of memory."""
    from squeezenet.io import model_metadata
    (tmp_path / "tall.png").write_bytes(ImageReader.png(1, 50000))
    m, meta = _meta(num_classes=2200000)
    (tmp_path / "big.safetensors").write_bytes(safetensors_bytes(m.state_dict(), meta))
    (tmp_path / "side.safetensors").write_bytes(safetensors_bytes(m.state_dict(), None))
    side = {k: json.loads(v) if k not in ("format", "format_version") else v for k, v in model_metadata(m).items()}
    side["config"]["fires"] = [[64, 256, 256]] * 200000
    (tmp_path / "side.json").write_text(json.dumps(side))
    sd = squeezenet.create_model("squeezenet1_1").state_dict()
    torch.save({**sd, "classifier.1.weight": torch.zeros(1).expand(3000000, 512, 1, 1),
                "classifier.1.bias": torch.zeros(1).expand(3000000)}, tmp_path / "view.pth")
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
        f"{k}: &{k} [" + ",".join([f"*{chr(ord(k) - 1)}"] * 9) + "]" for k in "bcdefghi"]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "wide.yaml").write_text("version: 1\nmodel: squeezenet_small\nparams:\n  base_e: {values: [1000000]}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"tall.png", "big.safetensors", "side.safetensors", "view.pth", "bomb.yaml", "wide.yaml"}
    for name, result in out.items():
        assert result.startswith("refused: ") and "\n" not in result, (name, result)
    assert "aspect ratio" in out["tall.png"] and "num_classes=2200000" in out["big.safetensors"]
    assert "64 Fire modules" in out["side.safetensors"] and "aliases" in out["bomb.yaml"]
    assert "classifier.1.weight" in out["view.pth"] and "parameters, over the" in out["wide.yaml"]


def test_engine_cache_that_is_hostile_is_measured_again(tmp_path, monkeypatch):
    """The ``auto`` engine cache is read through the bounded JSON reader: nesting, a huge file
    or a non-object is ignored (measured again), never a RecursionError or a MemoryError."""
    from squeezenet.runtime import auto
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path))
    cache = tmp_path / auto.CACHE_FILE
    for text in [deep_json(5000), "[1, 2]", "{" * 10, '{"k": {"engine": "eager"}}' + " " * (17 << 20)]:
        cache.write_text(text)
        assert auto._read_cache() == {}
    cache.write_text('{"k": {"engine": "eager"}}')
    assert auto._read_cache() == {"k": {"engine": "eager"}}


def test_onnx_metadata_values_are_bounded(tmp_path):
    """A metadata value nested deeper than the JSON bound stays a string (the file is read, the
    value not trusted); ordinary JSON values are decoded."""
    import onnx
    from onnx import TensorProto, helper
    from squeezenet.interop.onnx_export import read_onnx_metadata
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g)
    deep = deep_json(5000)
    helper.set_model_props(m, {"deep": deep, "classes": '["a", "b"]'})
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    meta = read_onnx_metadata(p)
    assert meta["classes"] == ["a", "b"] and meta["deep"] == deep
