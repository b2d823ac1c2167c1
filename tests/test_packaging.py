"""The wheel as a user meets it: built from a copy of the tree, it holds the entry point, the
bundled weights (<= 1.5 MB), the YAML spaces and py.typed, and nothing else binary; installed
alone (unpacked onto sys.path, away from the repository and the fixtures, no mirror, no
network needed) `squeezenet predict` names the same top-1 classes as the released v1.1."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

from conftest import REPO, shared_path

pytestmark = pytest.mark.slow   # builds a wheel and starts a Python (~20-30 s here)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    tree.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, tree / f)
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp / "dist"), str(tree)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = (tmp / "dist").glob("squeezenet-*.whl")
    return whl


def test_wheel_contents_and_size(wheel):
    z = zipfile.ZipFile(wheel)
    names = z.namelist()
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "squeezenet = squeezenet.cli:run" in z.read(entry).decode()
    assert "squeezenet/py.typed" in names
    assert {"squeezenet/explore/spaces/paper.yaml", "squeezenet/explore/spaces/small.yaml"} <= set(names)
    sqz = [i for i in z.infolist() if i.filename.endswith(".sqz")]
    assert sorted(i.filename.rsplit("/", 1)[1] for i in sqz) == ["squeezenet1_0_deep_compression.sqz",
                                                                  "squeezenet1_1_onnx_zoo.sqz"]
    assert sum(i.file_size for i in sqz) <= 1_500_000
    other = [n for n in names if not n.endswith((".py", ".yaml", ".sqz", "py.typed")) and ".dist-info/" not in n]
    assert other == [], other   # no other data in the package
    assert wheel.stat().st_size < 2_000_000


def test_installed_wheel_predicts_offline_like_the_released_v1_1(wheel, tmp_path):
    photos = sorted(shared_path("fixtures/photos").glob("*.png"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQUEEZENET_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path), SQUEEZENET_CACHE=str(tmp_path / "cache"),
               SQUEEZENET_MIRROR=str(tmp_path / "no-mirror"), OMP_NUM_THREADS="1")
    code = ("import sys, squeezenet; assert squeezenet.__file__.startswith(sys.argv[1]), squeezenet.__file__; "
            "from squeezenet.cli import main; sys.exit(main(['predict', *sys.argv[2:], '--top', '1', "
            "'--engine', 'eager', '--json']))")
    r = subprocess.run([sys.executable, "-c", code, str(site), *map(str, photos)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import json
    got = [row["top"][0]["class"] for row in json.loads(r.stdout)]
    # the released v1.1 (full precision, from the fixtures) on the same photos
    from squeezenet.data import get_transform, read_image
    from squeezenet.interop.importers import import_model
    dense = import_model("onnx-zoo", [shared_path("fixtures/onnx_zoo_squeezenet1.1/weights")],
                         classes=[l.split()[0] for l in
                                  shared_path("fixtures/imagenet/synsets.txt").read_text().split()]).eval()
    tf = get_transform("torchvision")
    with torch.inference_mode():
        want = [dense.classes[i] for i in dense(torch.stack([tf(read_image(p)) for p in photos])).argmax(1)]
    assert got == want
