"""Several --unlabeled sources: their images interleaved by source and class folder, so the
held-out choosing images and calibration picks draw on every source; the report lists each."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image


def _folder(root, classes: dict[str, int], colour: int):
    for c, n in classes.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 36), (colour, 10 * i % 250, 90)).save(root / c / f"{i}.png")
    return root


def test_sources_interleave_by_source_and_class_folder(tmp_path):
    from squeezenet.data import build_unlabeled, spread_indices
    a = _folder(tmp_path / "a", {"dog": 30, "fish": 30}, 10)        # 60 images, 2 folders
    b = _folder(tmp_path / "b", {f"c{k}": 2 for k in range(10)}, 200)  # 20 images, 10 folders
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(5):
        Image.new("RGB", (40, 36), (i, 0, 0)).save(flat / f"{i}.png")
    ds = build_unlabeled([a, b, flat], preset="small")
    assert len(ds) == 85 and ds.sources == [(str(a), 60, 2), (str(b), 20, 10), (str(flat), 5, 0)]
    assert len({p for p, _ in ds.samples}) == 85                     # nothing repeated or dropped
    # the first items take every source in turn, and within a source every class folder in turn
    first = [ds.source_of(i) for i in range(6)]
    assert first == [str(a), str(b), str(flat)] * 2
    assert [ds.samples[i][0].split("/")[-2] for i in (0, 3)] == ["dog", "fish"]
    assert [ds.samples[i][0].split("/")[-2] for i in (1, 4)] == ["c0", "c1"]
    # an evenly spread pick (the choosing split) holds images of every source
    picked = {ds.source_of(i) for i in spread_indices(len(ds), 17)}
    assert picked == {str(a), str(b), str(flat)}
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and y == 0


def test_one_source_is_the_dataset_as_before(tmp_path):
    from squeezenet.data import build_dataset, build_unlabeled
    a = _folder(tmp_path / "a", {"dog": 3, "fish": 2}, 10)
    one = build_unlabeled([a], preset="small", augment=False)
    ref = build_dataset(a, "train", preset="small", augment=False, unlabeled=True)
    assert type(one) is type(ref) and len(one) == len(ref) == 5
    assert torch.equal(one[3][0], ref[3][0]) and one.sources == [(str(a), 5, 2)]


def test_bad_sources_are_one_line_errors(tmp_path):
    from squeezenet.data import build_unlabeled
    from squeezenet.errors import SqueezeNetError
    a = _folder(tmp_path / "a", {"dog": 2}, 10)
    with pytest.raises(SqueezeNetError, match="given twice"):
        build_unlabeled([a, a])
    with pytest.raises(SqueezeNetError, match="only folders"):
        build_unlabeled([a, "digits"], preset="small")
    with pytest.raises(SqueezeNetError, match="no such dataset"):
        build_unlabeled([a, tmp_path / "missing"])


def test_compress_takes_several_unlabeled_sources_and_reports_them(tmp_path, cli, one_thread):
    from squeezenet import create_model, save
    torch.manual_seed(0)
    save(create_model("squeezenet_small", num_classes=10), tmp_path / "m.safetensors")
    a = _folder(tmp_path / "a", {"dog": 6, "fish": 6}, 10)
    b = _folder(tmp_path / "b", {"car": 4, "cup": 4, "hat": 4}, 200)
    code, out, err = cli("compress", tmp_path / "m.safetensors", "--data", "digits", "--limit", "40",
                         "--unlabeled", a, "--unlabeled", b, "--finetune-epochs", "0",
                         "--calibration-images", "8", "--bits", "4", "-o", tmp_path / "v.sqz")
    assert code == 0, err
    assert f"--unlabeled: {a}: 12 images in 2 class folder(s); {b}: 12 images in 3 class folder(s)" in out
