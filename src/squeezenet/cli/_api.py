"""The Python path: ``squeezenet.finetune``, ``squeezenet.compress``, ``squeezenet.export`` and
``squeezenet.transforms`` do exactly what ``squeezenet train --model``, ``compress``, ``export``
do (they run those commands' own code, options parsed by the same parsers, so there is one
implementation and one set of defaults), with Python objects in and out.

Every keyword option is the command's flag with ``_`` for ``-`` (``max_steps=2`` is
``--max-steps 2``; ``True`` is a bare flag such as ``no_val=True``; a list is comma-joined).
A bad option or bad input raises :class:`squeezenet.SqueezeNetError` (the CLI's one line);
``verbose=False`` silences the report lines and progress bars.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any


def _flag_values(options: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _run(argv: list[str], verbose: bool) -> None:
    """Parse ``argv`` with the CLI's parser and run the command's function; errors raise."""
    from ..errors import ConfigError, SqueezeNetError
    from . import build_parser
    from ._common import apply_smoke
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit:
        msg = (err.getvalue().strip().splitlines() or ["bad options"])[-1]
        raise ConfigError(msg.split(": error: ", 1)[-1]) from None
    apply_smoke(args)   # SQUEEZENET_SMOKE=1 caps the budgets here as in the CLI
    if not verbose and hasattr(args, "no_progress"):
        args.no_progress = True
    out = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with out:
        code = args.func(args)
    if code not in (0, None):
        raise SqueezeNetError(f"squeezenet {argv[0]} stopped with exit status {code}")


@contextlib.contextmanager
def _model_path(model):
    """A model file for ``model`` (a path or registered name as is; an ``nn.Module`` saved to a
    temporary safetensors file with its config, classes and preset)."""
    if isinstance(model, (str, os.PathLike)):
        yield str(model)
        return
    from ..io import save
    with tempfile.TemporaryDirectory(prefix="squeezenet-") as d:
        yield str(save(model, Path(d) / "model.safetensors"))


def finetune(model, data, out, *, verbose: bool = True, **options):
    """Fine-tune ``model`` (a model file, or a model) on ``data`` (a folder of class folders,
    ``photos/train/<class>/``, ``digits``...): ``squeezenet train --model MODEL --data DATA
    -o OUT`` with its recipe (``finetune``), its head start (conv10 rebuilt for the data's
    classes from their class means, or kept rows) and its checkpoints in ``out``. Returns the
    final model (``out/last.safetensors``). Options: ``train``'s flags (``epochs=3``,
    ``freeze="features"``, ``val_split=0`` to choose ``best`` on the test split instead of 10 %
    of train held out, ``overwrite=True``...). The library objects it fills are
    :class:`squeezenet.train.FinetuneSetup` and :class:`~squeezenet.train.TrainRun`.

    >>> import os, tempfile, squeezenet
    >>> m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    >>> m.classes, m.preprocess = [str(i) for i in range(10)], "small"
    >>> run = os.path.join(tempfile.mkdtemp(), "run")
    >>> tuned = squeezenet.finetune(m, "digits", run, max_steps=2, no_val=True, verbose=False)
    >>> tuned.classes == m.classes, sorted(os.listdir(run))[:2]
    (True, ['best.json', 'best.safetensors'])
    """
    from ..io import load
    with _model_path(model) as path:
        _run(["train", "--model", path, "--data", str(data), "--out", str(out), *_flag_values(options)], verbose)
    return load(Path(out) / "last.safetensors")


def compress(model, data, out, *, verbose: bool = True, **options):
    """Deep Compression of ``model`` (a model file, or a model) into the ``.sqz`` file ``out``:
    ``squeezenet compress MODEL --data DATA -o OUT`` (pruning, retraining, k-means, Huffman;
    with ``target_size=`` and ``unlabeled=`` photos the mixed path). Prints the Table-2 style
    report; returns the compressed model, reloaded from ``out``.

    >>> import os, tempfile, squeezenet
    >>> m = squeezenet.create_model("squeezenet_small", meta=squeezenet.MetaParams(base_e=16, incr_e=16))
    >>> m.classes, m.preprocess = [str(i) for i in range(10)], "small"
    >>> sqz = os.path.join(tempfile.mkdtemp(), "m.sqz")
    >>> small = squeezenet.compress(m, "digits", sqz, bits=4, finetune_epochs=0, calibration_images=0,
    ...                             limit=40, verbose=False)
    >>> small.classes == m.classes, os.path.getsize(sqz) < 60_000
    (True, True)
    """
    from ..io import load
    with _model_path(model) as path:
        _run(["compress", path, "--data", str(data), "--out", str(out), *_flag_values(options)], verbose)
    return load(out)


def export(model, out, *, verbose: bool = True, **options) -> Path:
    """``model`` (a model file, a registered name, or a model) to ONNX at ``out``:
    ``squeezenet export MODEL -o OUT`` (opset 17, dynamic batch, the preset and classes in its
    metadata; ``int8=True, unlabeled="photos/"`` for static int8). Returns ``out``.

    >>> import os, tempfile, squeezenet
    >>> m = squeezenet.create_model("squeezenet_small"); m.preprocess = "small"
    >>> p = squeezenet.export(m, os.path.join(tempfile.mkdtemp(), "m.onnx"), verbose=False)
    >>> p.name, p.stat().st_size > 1_000_000
    ('m.onnx', True)
    """
    with _model_path(model) as path:
        _run(["export", path, "--out", str(out), *_flag_values(options)], verbose)
    return Path(out)


def transforms(model, train: bool = False):
    """The image -> tensor transform ``model`` expects (its stored preset, else its stem's:
    what ``eval`` and ``predict`` use); ``train=True``: that preset's training augmentation.

    >>> import squeezenet
    >>> from PIL import Image
    >>> tf = squeezenet.transforms(squeezenet.create_model("squeezenet1_1"))
    >>> tuple(tf(Image.new("RGB", (500, 375))).shape)
    (3, 224, 224)
    """
    from ..data import get_transform, preset_for
    return get_transform(preset_for(model), train=train)
