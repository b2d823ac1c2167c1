"""Pretrained SqueezeNet weights by name: the registry, the bundled files and the loaders.

One :class:`Weights` record per set of weights (torchvision's ``Weights`` shape): its name
(``<model>.<source>``), where it comes from (the official URL and, where one could be checked
against the file, its sha256), the preprocessing preset and class list, the license, the
figures measured on the shared dev photos, and the ``.sqz`` bundled inside the package where
one exists (``scripts/make_bundled_weights.py`` makes them byte-identically from the fixtures).

>>> w = get("squeezenet1_1.onnx_zoo")
>>> w.arch, w.preset, w.bundled is not None, len(w.categories)
('squeezenet1_1', 'torchvision', True, 1000)
>>> default_for("squeezenet1_1").name
'squeezenet1_1.onnx_zoo'

``create_model(name, pretrained=True)`` loads an architecture's default weights (bundled
where the registry has a bundled file: no network), ``weights="squeezenet1_1.onnx_zoo"`` a
named set, ``num_classes=N`` then gives the model a new head
(:meth:`~squeezenet.models.SqueezeNet.reset_classifier`, as fine-tuning does).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import SqueezeNetError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
#: the shared dev photos the figures were measured on (500 ImageNet validation photos)
DEV_SET = "fixtures/imagenet_sample_dev"


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights (see the module docstring)."""

    name: str                          # "<family>.<source>", e.g. "squeezenet1_1.onnx_zoo"
    arch: str                          # the registered model it loads into (v1.0 from Caffe:
                                       # squeezenet1_0_caffe, conv10 padding 1)
    source: str                        # the importer that reads the downloaded file (interop SOURCES)
    url: str | None                    # the official full-precision file
    file_name: str | None              # its name in the cache and in a mirror
    sha256: str | None                 # of the file at ``url``: None where it could not be checked here
    preset: str                        # preprocessing (squeezenet.data.PRESETS)
    license: str
    description: str
    sha256_prefix: str | None = None   # leading hex digits of the sha256 (torchvision's file names)
    bundled: str | None = None         # .sqz file name under squeezenet/interop/bundled
    bundled_sha256: str | None = None
    bundled_note: str | None = None    # how the bundled file relates to the released weights
    dev: dict[str, Any] = field(default_factory=dict)   # figures on DEV_SET: {"bundled": {...}, "full": {...}}
    published: str | None = None       # the figure the authors published (not measured here)

    @property
    def family(self) -> str:
        """The model name the record is filed under (``squeezenet1_0`` for ``squeezenet1_0.deepscale``)."""
        return self.name.split(".")[0]

    @property
    def categories(self) -> list[str]:
        """The class names in output order (ImageNet-1k, ``synset_words.txt``)."""
        return list(imagenet_classes()[1])

    @property
    def class_ids(self) -> list[str]:
        """The WordNet ids in output order (``n01440764`` ...)."""
        return list(imagenet_classes()[0])

    @property
    def meta(self) -> dict[str, Any]:
        """torchvision-style ``meta``: categories, figures, file sizes, license, ..."""
        return {"categories": self.categories, "preset": self.preset, "license": self.license,
                "url": self.url, "sha256": self.sha256, "bundled": self.bundled, "dev": self.dev,
                "published": self.published}

    @property
    def data_config(self):
        """The :class:`~squeezenet.models.DataConfig` the weights give the models they load:
        the preset, the ImageNet class ids and names, the source (the official file's URL, else
        the record's name) and the license; the input size is the preset's
        (:func:`squeezenet.data.input_size_for`).

        >>> c = get("squeezenet1_0.deep_compression").data_config
        >>> c.preset, c.license, c.num_classes, c.source.endswith("compressed_SqueezeNet.net")
        ('caffe', 'BSD-2-Clause', 1000, True)
        """
        from ..models.data_config import DataConfig
        ids, names = imagenet_classes()
        return DataConfig(preset=self.preset, classes=tuple(ids), class_names=tuple(names),
                          source=self.url or self.name, license=self.license)

    def give_config(self, model):
        """``model`` (just loaded from these weights) with the record's data config (an input
        size its file recorded is kept) and ``metadata["weights"]`` naming the record."""
        model.data_config = self.data_config.replace(input_size=model.data_config.input_size)
        model.metadata = {**(model.metadata or {}), "weights": self.name}
        return model

    def transforms(self) -> Callable:
        """The preprocessing the weights expect (eval: resize, centre crop, normalise), a
        callable from a PIL image to a ``(3, H, W)`` tensor."""
        from ..data.transforms import get_transform
        return get_transform(self.preset, train=False)

    def bundled_path(self) -> Path | None:
        return BUNDLED_DIR / self.bundled if self.bundled else None

    def load(self, full: bool = False, progress: bool = True):
        """The model in eval mode, with the record's data config (class ids, names, preset,
        source, license: :attr:`data_config`).

        The bundled ``.sqz`` unless ``full`` (or there is none); else the full-precision file
        from the cache, downloaded once from the URL (or ``$SQUEEZENET_MIRROR``) and read by
        the matching importer.
        """
        if self.bundled and not full:
            from ..io import load
            return self.give_config(load(self.bundled_path()))
        return self._load_full(progress)

    def _load_full(self, progress: bool):
        if self.url is None or self.file_name is None:
            raise SqueezeNetError(f"{self.name}: no full-precision file to download")
        from .download import fetch
        if self.sha256 is None and self.sha256_prefix is None:
            import sys
            print(f"squeezenet: no sha256 is recorded for {self.file_name} ({self.name}): the download is "
                  f"not checked", file=sys.stderr)
        path = fetch(self.url, self.file_name, self.sha256, self.sha256_prefix, progress=progress)
        return CONVERTERS[self.source](self, path)

    def card(self) -> str:
        """Several lines describing the weights (``squeezenet list --pretrained``)."""
        lines = [f"{self.name}  ({self.arch}, preset {self.preset}, license {self.license})",
                 f"  {self.description}"]
        if self.bundled:
            size = os.path.getsize(self.bundled_path()) if self.bundled_path().is_file() else None
            lines.append(f"  bundled: {self.bundled}" + (f" ({size / 1000:.0f} KB)" if size else " (missing)")
                         + (f": {self.bundled_note}" if self.bundled_note else ""))
        if self.url:
            h = self.sha256 or (f"{self.sha256_prefix}... (prefix from the file name)" if self.sha256_prefix
                                else "not recorded (no copy was at hand to check)")
            lines.append(f"  url: {self.url}")
            lines.append(f"  sha256: {h}")
        for which, fig in self.dev.items():
            if fig.get("top1") is None:
                continue
            lines.append(f"  dev ({which}): top-1 {fig['top1'] * 100:.1f} %, top-5 {fig['top5'] * 100:.1f} % "
                         f"on {fig['images']} photos ({DEV_SET}), {fig['bytes'] / 1000:.0f} KB")
        if self.published:
            lines.append(f"  published: {self.published}")
        return "\n".join(lines)


def _convert(source: str):
    def convert(w: Weights, path: Path):
        from .importers import import_model
        ids, names = imagenet_classes()
        model = import_model(source, [path], classes=list(ids), class_names=list(names))
        if model.config.to_dict() != _config_of(w.arch):
            raise SqueezeNetError(f"{path}: the file holds a model that is not {w.arch}")
        return w.give_config(model).eval()
    return convert


def _config_of(arch: str) -> dict:
    from ..models import create_model as build
    return build(arch).config.to_dict()


def _convert_zoo_onnx(w: Weights, path: Path):
    """The zoo's ``.onnx`` file: its 52 ``squeezenet0_conv*`` initializers (protobuf, no
    pickles; tensors stored outside the file are refused) through the ``onnx-zoo`` importer."""
    import tempfile

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from ..errors import FormatError, first_line, read_input
    from .onnx_zoo import MAX_NPY_BYTES, NUM_CONVS, PREFIX
    data = read_input(path, "ONNX file", MAX_NPY_BYTES)
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:   # DecodeError, ValueError ...
        raise FormatError(path, f"not a readable ONNX model ({first_line(e, 160)})") from None
    want = [f"{PREFIX}{i}_{k}" for i in range(NUM_CONVS) for k in ("weight", "bias")]
    inits = {t.name: t for t in proto.graph.initializer if t.name in set(want)}
    missing = [n for n in want if n not in inits]
    if missing:
        raise FormatError(path, f"no initializer {missing[0]} (not the zoo's SqueezeNet 1.1)")
    with tempfile.TemporaryDirectory(prefix="squeezenet-zoo-") as d:
        for name in want:
            t = inits[name]
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise FormatError(path, f"{name}: stored outside the file (external data is not read)")
            try:
                arr = numpy_helper.to_array(t)
            except Exception as e:
                raise FormatError(path, f"{name}: unreadable tensor ({first_line(e, 120)})") from None
            np.save(Path(d) / f"{name}.npy", np.ascontiguousarray(arr, dtype=np.float32))
        return _convert("onnx-zoo")(w, Path(d))


#: importer for each downloadable source (the downloaded file is never unpickled: the
#: torchvision reader uses ``torch.load(weights_only=True)`` after bounding the zip)
CONVERTERS = {**{s: _convert(s) for s in ("caffe", "deep-compression", "torchvision")},
              "onnx-zoo": _convert_zoo_onnx}

_DEEPSCALE = "https://raw.githubusercontent.com/DeepScale/SqueezeNet/master"
_ZOO = "https://github.com/onnx/models/raw/main/validated/vision/classification/squeezenet/model"

#: the registry: name -> record (the first record of an architecture is its default)
REGISTRY: dict[str, Weights] = {w.name: w for w in (
    Weights("squeezenet1_1.onnx_zoo", "squeezenet1_1", "onnx-zoo",
            f"{_ZOO}/squeezenet1.1-7.onnx", "squeezenet1.1-7.onnx", None, "torchvision", "Apache-2.0",
            "SqueezeNet v1.1 from the ONNX model zoo (exported from Gluon; torchvision preprocessing)",
            bundled="squeezenet1_1_onnx_zoo.sqz",
            bundled_sha256="21ed9ddcc59cf67fbecf2c7315b90cc6638cc5a1cd26f92df53055ad2c85b07d",
            bundled_note="every conv weight k-means quantized to 7 bits per layer (no pruning, no "
                         "retraining; scripts/make_bundled_weights.py)",
            dev={"bundled": {"top1": 0.604, "top5": 0.810, "images": 500, "bytes": 907870},
                 # the released float32 weights (1,235,496 x 4 bytes), imported from the zoo's .npy files
                 "full": {"top1": 0.598, "top5": 0.814, "images": 500, "bytes": 4941984}}),
    Weights("squeezenet1_0.deep_compression", "squeezenet1_0_caffe", "deep-compression",
            "https://github.com/songhan/SqueezeNet-Deep-Compression/raw/master/compressed_SqueezeNet.net",
            "compressed_SqueezeNet.net", "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261",
            "caffe", "BSD-2-Clause",
            "the released Deep-Compression SqueezeNet v1.0 (pruned, 6/8-bit shared weights; Caffe preprocessing)",
            bundled="squeezenet1_0_deep_compression.sqz",
            bundled_sha256="8723c3ca02602996654d03d05856c0ec82b339edfb86bfd3187e06ccf421f39e",
            bundled_note="the released file converted losslessly (same codebooks, codes and positions)",
            dev={"bundled": {"top1": 0.620, "top5": 0.816, "images": 500, "bytes": 564032}},
            published="57.5 % top-1 / 80.3 % top-5 on ImageNet val (Han et al., 2016)"),
    Weights("squeezenet1_0.deepscale", "squeezenet1_0_caffe", "caffe",
            f"{_DEEPSCALE}/SqueezeNet_v1.0/squeezenet_v1.0.caffemodel", "squeezenet_v1.0.caffemodel", None,
            "caffe", "BSD-2-Clause", "the released Caffe SqueezeNet v1.0 (DeepScale; Caffe preprocessing)",
            published="57.5 % top-1 / 80.3 % top-5 on ImageNet val (Iandola et al., 2016)"),
    Weights("squeezenet1_1.deepscale", "squeezenet1_1", "caffe",
            f"{_DEEPSCALE}/SqueezeNet_v1.1/squeezenet_v1.1.caffemodel", "squeezenet_v1.1.caffemodel", None,
            "caffe", "BSD-2-Clause", "the released Caffe SqueezeNet v1.1 (DeepScale; Caffe preprocessing)"),
    Weights("squeezenet1_0.torchvision", "squeezenet1_0", "torchvision",
            "https://download.pytorch.org/models/squeezenet1_0-b66bff10.pth", "squeezenet1_0-b66bff10.pth",
            None, "torchvision", "BSD-3-Clause", "torchvision's SqueezeNet 1.0 (IMAGENET1K_V1)",
            sha256_prefix="b66bff10", published="58.092 % top-1 / 80.420 % top-5 on ImageNet val (torchvision)"),
    Weights("squeezenet1_1.torchvision", "squeezenet1_1", "torchvision",
            "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", "squeezenet1_1-b8a52dc0.pth",
            None, "torchvision", "BSD-3-Clause", "torchvision's SqueezeNet 1.1 (IMAGENET1K_V1)",
            sha256_prefix="b8a52dc0", published="58.178 % top-1 / 80.624 % top-5 on ImageNet val (torchvision)"),
)}


def list_weights(arch: str | None = None) -> list[str]:
    """Names of the registered weights (of one architecture)."""
    return [n for n, w in REGISTRY.items() if arch is None or arch in (w.arch, w.family)]


def is_weights_name(name) -> bool:
    return isinstance(name, str) and name in REGISTRY


def get(name: str) -> Weights:
    """The record named ``name`` (a one-line error with the close names otherwise).

    >>> get("squeezenet1_0.deep_compression").arch
    'squeezenet1_0_caffe'
    """
    if str(name) in REGISTRY:
        return REGISTRY[str(name)]
    import difflib
    close = difflib.get_close_matches(str(name), list(REGISTRY), n=3, cutoff=0.5)
    raise SqueezeNetError(f"unknown weights {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                         f"; known: {', '.join(REGISTRY)}"))


def default_for(arch: str) -> Weights:
    """An architecture's default weights: its first record (bundled where one is).
    ``squeezenet1_0`` and ``squeezenet1_0_caffe`` get the Deep-Compression v1.0 (bundled; a
    ``squeezenet1_0_caffe``, as the released v1.0 files are), ``squeezenet1_1`` the ONNX-zoo v1.1."""
    from ..models.registry import get_model_entry
    get_model_entry(arch)   # unknown model: the registry's one-line error
    names = list_weights(arch)
    if not names:
        raise SqueezeNetError(f"no pretrained weights for {arch} (those with weights: "
                              f"{', '.join(sorted({w.arch for w in REGISTRY.values()}))})")
    return REGISTRY[names[0]]


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(WordNet ids, names) of the 1,000 ImageNet classes in output order, from the bundled
    v1.1 file (which carries ``synset_words.txt``)."""
    from ..io.sqz import read_sqz
    h, _, _ = read_sqz(BUNDLED_DIR / REGISTRY["squeezenet1_1.onnx_zoo"].bundled)
    return tuple(h["classes"]), tuple(h["metadata"]["class_names"])


def load_weights(name: str, full: bool = False, progress: bool = True):
    """``get(name).load(full, progress)``."""
    return get(name).load(full=full, progress=progress)


def create_model(name: str, pretrained: bool = False, weights: Any = None, num_classes: int | None = None,
                 progress: bool = True, **kwargs):
    """timm's ``create_model``: a registered model, with pretrained weights if asked.

    ``pretrained=True``: the architecture's default weights (:func:`default_for`);
    ``weights``: a registry name (``"squeezenet1_1.onnx_zoo"``), or anything
    :func:`squeezenet.models.create_model` takes (a torchvision ``.pth`` path); ``num_classes``
    with pretrained weights replaces the head (a new conv10, everything else kept).

    >>> m = create_model("squeezenet1_1", pretrained=True, num_classes=10)
    >>> m.num_classes, m.classes
    (10, None)
    """
    from ..models import create_model as build
    if weights is None and not pretrained:
        return build(name, **({"num_classes": num_classes} if num_classes is not None else {}), **kwargs)
    if weights is not None and not is_weights_name(weights):
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return build(name, weights=weights, progress=progress, **kwargs)
    w = get(weights) if weights is not None else default_for(name)
    if name not in (w.arch, w.family):
        raise SqueezeNetError(f"weights {w.name} are for {w.arch}, not {name}")
    if kwargs:
        raise SqueezeNetError(f"pretrained {name} takes no {', '.join(sorted(kwargs))} (the weights fix the "
                              f"architecture); num_classes=N gives it a new head")
    model = w.load(progress=progress)
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
