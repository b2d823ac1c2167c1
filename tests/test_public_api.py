"""The packages' public faces (issue 21, item 5): what ``squeezenet.compress`` exports, lazily,
and the ``py.typed`` marker shipped with the package."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_compress_exports_its_entry_points():
    import squeezenet.compress as C
    from squeezenet.compress import pipeline

    assert set(C.__all__) == {"compress_model", "CompressConfig"}
    assert C.compress_model is pipeline.compress_model
    assert C.CompressConfig is pipeline.CompressConfig
    assert "compress_model" in dir(C)
    try:
        C.no_such_thing
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_importing_compress_does_not_import_the_pipeline():
    code = ("import sys, squeezenet.compress as C; "
            "print('squeezenet.compress.pipeline' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}).stdout.split()
    assert out == ["False", "False"]


def test_py_typed_ships_with_the_package():
    assert (REPO / "src/squeezenet/py.typed").is_file()
    text = (REPO / "pyproject.toml").read_text()   # tomllib is 3.11+; the project supports 3.10
    data = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"py.typed"' in data
