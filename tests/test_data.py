"""squeezenet.data: presets, digits, image folders with class lists, archives, bad images."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import shared_path
from squeezenet.data import build_dataset, get_transform, make_loader, read_class_list, unpack
from squeezenet.errors import ConfigError, FormatError, SqueezeNetError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))


def _png(path: Path, color=(200, 100, 50), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _folder(root: Path, classes=("cat", "dog"), n=3) -> Path:
    for c in classes:
        for i in range(n):
            _png(root / c / f"{i}.png", color=(10 * i, 50, 90))
    return root


# ---------------------------------------------------------------- presets

def test_caffe_preset_is_bgr_0_255_mean_subtracted():
    x = get_transform("caffe")(Image.new("RGB", (300, 260), (200, 100, 50)))
    assert x.shape == (3, 227, 227)
    # channel 0 is blue: 50 - 104; channel 2 is red: 200 - 123
    assert torch.allclose(x[:, 100, 100], torch.tensor([50 - 104.0, 100 - 117.0, 200 - 123.0]))


def test_torchvision_preset_is_rgb_normalised():
    x = get_transform("torchvision")(Image.new("RGB", (300, 260), (200, 100, 50)))
    assert x.shape == (3, 224, 224)
    want = torch.tensor([(200 / 255 - 0.485) / 0.229, (100 / 255 - 0.456) / 0.224, (50 / 255 - 0.406) / 0.225])
    assert torch.allclose(x[:, 5, 5], want, atol=1e-5)


def test_small_preset_train_augments_test_does_not():
    img = Image.fromarray((torch.arange(32 * 32 * 3) % 251).to(torch.uint8).reshape(32, 32, 3).numpy())
    ev = get_transform("small", train=False)
    assert torch.equal(ev(img), ev(img)) and ev(img).shape == (3, 32, 32)
    tr = get_transform("small", train=True)
    torch.manual_seed(0)
    outs = [tr(img) for _ in range(6)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean caffe"):
        get_transform("cafe")


def test_preset_table_is_the_one_source():
    """The ONNX metadata spells out exactly the Preset rows, and get_transform follows them."""
    from squeezenet.data import PRESETS
    from squeezenet.interop.onnx_export import PREPROCESS_SPECS
    assert set(PREPROCESS_SPECS) == set(PRESETS) == {"torchvision", "caffe", "small"}
    for name, p in PRESETS.items():
        assert PREPROCESS_SPECS[name] == p.spec()
        assert p.spec()["crop"] == p.input_size
        x = get_transform(name)(Image.new("RGB", (300, 260), (200, 100, 50)))
        assert x.shape == (3, p.input_size, p.input_size)
        rgb = torch.tensor([200.0, 100.0, 50.0])
        px = (rgb.flip(0) if p.color == "BGR" else rgb) * p.scale
        assert torch.allclose(x[:, 3, 3], (px - torch.tensor(p.mean)) / torch.tensor(p.std), atol=1e-5)


def test_preset_for_decides_every_default():
    import squeezenet
    from squeezenet.data import preset_for
    small, v11 = squeezenet.create_model("squeezenet_small"), squeezenet.create_model("squeezenet1_1")
    assert preset_for(small) == "small" and preset_for(small, "photos/") == "small"
    assert preset_for(v11) == "torchvision" and preset_for(v11, "digits") == "small"
    assert preset_for(data="cifar10") == "small" and preset_for(data="photos/") == "torchvision"
    assert preset_for() == "torchvision"
    v11.preprocess = "caffe"   # the model's own preset (stored in its file) wins
    assert preset_for(v11, "digits") == "caffe"
    assert build_dataset("digits", "test").transform is not None   # digits default: small at 32x32
    assert build_dataset("digits", "test")[0][0].shape == (3, 32, 32)


# ---------------------------------------------------------------- digits

def test_digits_fixed_split():
    tr, te = build_dataset("digits", "train"), build_dataset("digits", "test")
    assert (len(tr), len(te)) == (1437, 360)
    assert tr.classes == [str(i) for i in range(10)]
    assert sorted(set(te.targets)) == list(range(10))
    assert build_dataset("digits", "test").targets == te.targets  # deterministic
    x, y = te[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10
    with pytest.raises(SqueezeNetError, match="split"):
        build_dataset("digits", "val")


# ---------------------------------------------------------------- folders and class lists

def test_folder_sorted_classes(tmp_path):
    ds = build_dataset(_folder(tmp_path / "d", ("zebra", "ant")), "test", preset="small")
    assert ds.classes == ["ant", "zebra"] and len(ds) == 6
    x, y = next(iter(make_loader(ds, 4)))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 0, 0, 1]


def test_folder_train_test_subfolders(tmp_path):
    _folder(tmp_path / "d" / "train", n=4)
    _folder(tmp_path / "d" / "test", n=2)
    assert len(build_dataset(tmp_path / "d", "train")) == 8
    assert len(build_dataset(tmp_path / "d", "test")) == 4


def test_folder_with_class_list_subset(tmp_path):
    (tmp_path / "classes.txt").write_text("n001 fish\nn002 bird\nn003 cat, kitty\nn004 dog\n")
    ds = build_dataset(_folder(tmp_path / "d", ("n004", "n002"), n=1), "test",
                       classes=tmp_path / "classes.txt")
    assert ds.classes == ["n001", "n002", "n003", "n004"]
    assert sorted(ds.targets) == [1, 3]


def test_folder_not_in_class_list_is_named(tmp_path):
    (tmp_path / "classes.txt").write_text("n001\nn002\n")
    with pytest.raises(SqueezeNetError, match="'n999'"):
        build_dataset(_folder(tmp_path / "d", ("n001", "n999"), n=1), "test", classes=tmp_path / "classes.txt")


def test_bad_inputs(tmp_path):
    with pytest.raises(FormatError, match="no such dataset"):
        build_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no class folders"):
        build_dataset(tmp_path / "empty")
    (tmp_path / "e2" / "cat").mkdir(parents=True)
    with pytest.raises(FormatError, match="no images"):
        build_dataset(tmp_path / "e2")
    with pytest.raises(FormatError, match="no such class list file"):
        build_dataset(_folder(tmp_path / "d"), classes=tmp_path / "nope.txt")
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(FormatError, match="duplicate ids: a"):
        read_class_list(tmp_path / "dup.txt")


def test_one_class_list_reader(tmp_path):
    """synsets.txt and synset_words.txt both work (first word of each line); bad lists are one
    line naming the file; the importers read lists with the same function."""
    from squeezenet.interop import importers
    (tmp_path / "words.txt").write_text("n01440764 tench, Tinca tinca\n\nn01443537 goldfish\n")
    (tmp_path / "ids.txt").write_text("n01440764\nn01443537\n")
    assert read_class_list(tmp_path / "words.txt") == read_class_list(tmp_path / "ids.txt") == ["n01440764", "n01443537"]
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    for name, needle in [("empty.txt", "class list is empty"), ("latin1.txt", "not UTF-8"),
                         ("missing.txt", "no such class list file")]:
        with pytest.raises(FormatError, match=needle) as e:
            read_class_list(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
    assert importers.read_classes is read_class_list


def test_pickled_cifar_is_refused(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_1").write_bytes(b"\x80\x04")
    with pytest.raises(SqueezeNetError, match="unpickling"):
        build_dataset(d)


# ---------------------------------------------------------------- bad images

def test_truncated_image_skipped_once_and_counted(tmp_path, capsys):
    root = _folder(tmp_path / "d", n=3)
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "bad.png").write_bytes(good[: len(good) // 2])
    jpg = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpg, "JPEG")
    (root / "dog" / "cut.jpg").write_bytes(jpg.getvalue()[:200])
    ds = build_dataset(root, "test", preset="small")
    assert len(ds) == 8
    loader = make_loader(ds, 3)
    for _ in range(2):  # two epochs: still one warning per file
        n = sum(len(y) for _, y in loader)
        assert n == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("skipped unreadable image" in l for l in err)
    assert any("bad.png" in l for l in err) and any("cut.jpg" in l for l in err)
    assert len(ds.skipped) == 2
    from squeezenet.evaluate import evaluate
    r = evaluate(None, loader, forward=lambda x: torch.zeros(len(x), 2))
    assert r["count"] == 6 and r["skipped"] == 2


def test_truncated_image_strict_is_error(tmp_path):
    root = _folder(tmp_path / "d", n=1)
    (root / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(FormatError, match="bad.png"):   # at load time (preloaded small images)
        build_dataset(root, "test", preset="small", strict=True)
    ds = build_dataset(root, "test", preset="torchvision", strict=True)
    with pytest.raises(FormatError, match="bad.png"):   # or when the loader reaches it
        list(make_loader(ds, 4))


def test_all_bad_batch_is_dropped(tmp_path):
    root = tmp_path / "d"
    for i in range(2):
        (root / "a").mkdir(parents=True, exist_ok=True)
        (root / "a" / f"{i}.png").write_bytes(b"not an image")
    _png(root / "b" / "ok.png")
    batches = list(make_loader(build_dataset(root, "test", preset="small"), 2))
    assert len(batches) == 1 and batches[0][1].tolist() == [1]


# ---------------------------------------------------------------- archives

def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_tarball_unpacked_into_cache_once(tmp_path):
    src = _folder(tmp_path / "src" / "test", ("a", "b"), n=2)
    arc = tmp_path / "set.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="test")
    ds = build_dataset(arc, "test", preset="small")
    assert ds.classes == ["a", "b"] and len(ds) == 4
    cache = Path(os.environ["SQUEEZENET_CACHE"])
    assert cache in ds.root.parents
    assert unpack(arc) == unpack(arc)  # reused, not unpacked again
    assert len([p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1


@pytest.mark.parametrize("name,kind", [("../evil.png", "escapes"), ("/tmp/evil.png", "absolute"),
                                       ("a/../../evil.png", "escapes")])
def test_tarball_path_escape_refused(tmp_path, name, kind):
    png = _png(tmp_path / "x.png").read_bytes()
    arc = _tar(tmp_path / "bad.tar.gz", [_file("a/ok.png", png), _file(name, png)])
    with pytest.raises(FormatError, match=kind):
        build_dataset(arc)
    assert not (tmp_path / "evil.png").exists()
    cache = Path(os.environ["SQUEEZENET_CACHE"])
    assert not cache.exists() or not any(p.name.startswith("bad-") for p in cache.iterdir())


def test_tarball_links_refused(tmp_path):
    png = _png(tmp_path / "x.png").read_bytes()
    link = tarfile.TarInfo("a/link.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    arc = _tar(tmp_path / "bad.tar.gz", [_file("a/ok.png", png), (link, None)])
    with pytest.raises(FormatError, match="link"):
        build_dataset(arc)


def test_corrupt_tarball(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not gzip")
    with pytest.raises(FormatError, match="not a readable tar"):
        build_dataset(tmp_path / "x.tar.gz")


# ---------------------------------------------------------------- shared fixtures

def test_cifar10_shared_test_split(monkeypatch):
    shared_path("data/cifar10/test.tar.gz")
    monkeypatch.delenv("SQUEEZENET_CACHE")  # share the real cache: unpack once per machine
    ds = build_dataset("cifar10", "test")
    assert len(ds) == 10000 and len(ds.classes) == 10 and ds.classes[0] == "airplane"
    assert sorted(set(ds.targets)) == list(range(10))
    assert ds[0][0].shape == (3, 32, 32)


def test_imagenet_sample_with_synsets():
    root = shared_path("fixtures/imagenet_sample_dev")
    syn = shared_path("fixtures/imagenet/synsets.txt")
    ds = build_dataset(root, "test", preset="caffe", classes=syn)
    assert len(ds.classes) == 1000 and len(ds) == 500
    assert all(t % 2 == 0 for t in ds.targets)  # one photo per even class index
    assert ds.samples[0][1] == 0 and ds[0][0].shape == (3, 227, 227)


def test_preloaded_small_images_match_the_folder_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZENET_CACHE", str(tmp_path / "cache"))
    import numpy as np
    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i, size in enumerate([(32, 32), (40, 30), (32, 32)]):   # noise; one needs resizing
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    fast = build_dataset(root, "test", preset="small")
    slow = build_dataset(root, "test", preset="small", preload=False)
    assert type(fast).__name__ == "PreloadedSmallDataset" and type(slow).__name__ == "ImageFolderDataset"
    assert fast.classes == slow.classes and fast.targets == slow.targets
    for i in range(len(slow)):
        assert torch.allclose(fast[i][0], slow[i][0], atol=1e-5) and fast[i][1] == slow[i][1]
    assert len(list((tmp_path / "cache").glob("small32-*.npy"))) == 1
    again = build_dataset(root, "test", preset="small")   # from the cache
    assert torch.equal(again.images, fast.images)
    # training augmentation: a crop of the reflect-padded image, maybe mirrored
    train = build_dataset(root, "test", preset="small", augment=True)
    torch.manual_seed(0)
    x, _ = train[0]
    base = (train.images[0].float() - train._mean) / train._std
    padded = torch.nn.functional.pad(base[None], (4, 4, 4, 4), mode="reflect")[0]
    crops = [padded[:, y:y + 32, x0:x0 + 32] for y in range(9) for x0 in range(9)]
    assert any(torch.allclose(x, c, atol=1e-5) or torch.allclose(x, c.flip(-1), atol=1e-5) for c in crops)


def test_unlabeled_images_may_sit_in_one_flat_folder(tmp_path):
    from PIL import Image
    from squeezenet.data import build_dataset
    from squeezenet.errors import SqueezeNetError
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 10, 200)).save(tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = build_dataset(tmp_path, "train", preset="small", unlabeled=True)
    assert len(ds) == 3 and ds[0][0].shape == (3, 32, 32)
    with pytest.raises(SqueezeNetError, match="class folders"):
        build_dataset(tmp_path, "train", preset="small")
