"""One entry point for every foreign weight source (behind ``squeezenet import``).

>>> SOURCES
('caffe', 'deep-compression', 'onnx-zoo', 'torchvision')
"""
from __future__ import annotations

import os
from pathlib import Path

from ..data.datasets import read_class_list as read_classes  # noqa: F401  (the one class-list reader)
from ..errors import SqueezeNetError
from ..models.classes import check_classes

SOURCES = ("caffe", "deep-compression", "onnx-zoo", "torchvision")
#: preprocessing preset each source's weights were trained with
PRESETS = {"caffe": "caffe", "deep-compression": "caffe", "onnx-zoo": "torchvision",
           "torchvision": "torchvision"}
_PROTOTXT = (".prototxt", ".pbtxt", ".txt")
_CAFFEMODEL = (".caffemodel", ".caffemodel.h5")




def _split_caffe(srcs: list[str]) -> tuple[str | None, str]:
    protos = [s for s in srcs if s.lower().endswith(_PROTOTXT)]
    models = [s for s in srcs if s.lower().endswith(_CAFFEMODEL)]
    other = [s for s in srcs if s not in protos and s not in models]
    if other:
        raise SqueezeNetError(f"{other[0]}: give a .prototxt and a .caffemodel for --from caffe")
    if len(models) != 1 or len(protos) > 1:
        raise SqueezeNetError("--from caffe takes one .caffemodel and at most one .prototxt "
                              f"(got {len(models)} caffemodel, {len(protos)} prototxt)")
    return (protos[0] if protos else None), models[0]


def _one(srcs: list[str], source: str, what: str) -> str:
    if len(srcs) != 1:
        raise SqueezeNetError(f"--from {source} takes one {what}, got {len(srcs)} paths")
    return srcs[0]


def import_model(source: str, srcs: list[str | os.PathLike], classes: list[str] | None = None,
                 class_names: list[str] | None = None, preprocess: str | None = None, log=None):
    """A :class:`~squeezenet.models.SqueezeNet` from foreign files; ``classes`` (e.g. the
    ImageNet ids of ``synsets.txt``), their human-readable ``class_names`` (from
    ``synset_words.txt``) and the preprocessing preset travel with it.

    * ``caffe``: ``[deploy.prototxt] model.caffemodel`` (without a prototxt the caffemodel's
      own net definition is used); the preset and class list noted in the prototxt by
      ``export-caffe`` are honoured, else ``caffe`` is assumed (``log`` says so)
    * ``deep-compression``: ``compressed_SqueezeNet.net [SqueezeNet_deploy.prototxt]``
    * ``onnx-zoo``: the zoo's ``weights`` folder of ``.npy`` files
    * ``torchvision``: a ``squeezenet1_*.pth`` state_dict

    ``preprocess`` overrides the source's preset. ``log(message)`` gets one line for each
    thing assumed or missing.
    """
    from ..data import check_preset
    srcs = [str(s) for s in srcs]
    if source not in SOURCES:
        raise SqueezeNetError(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
    if not srcs:
        raise SqueezeNetError("no input files")
    if preprocess is not None:
        check_preset(preprocess)
    if source == "caffe":
        from .caffe import import_caffe
        proto, weights = _split_caffe(srcs)
        model = import_caffe(proto, weights, classes=classes, preprocess=preprocess)
        meta = model.metadata
        if meta.get("preprocess_from") == "assumed" and log:
            log(f"{proto or weights} does not say how its images are preprocessed: assumed '{model.preprocess}' "
                f"(the released Caffe files' BGR 0-255 mean-subtracted 227 crop); --preprocess NAME to choose")
        if str(meta.get("classes_from", "")).startswith("missing:") and classes is None and log:
            log(f"{proto} names the class list {meta['classes_from'][8:]}, which is not beside it: "
                f"the model has no class list (give --classes FILE)")
    elif source == "deep-compression":
        from .deep_compression import import_net
        net, proto = _deep_compression_args(srcs)
        model = import_net(net, prototxt=proto)
    elif source == "onnx-zoo":
        from .onnx_zoo import import_onnx_zoo
        model = import_onnx_zoo(_one(srcs, source, "weights folder"))
    else:
        from .torchvision import model_from_torchvision_checkpoint
        model = model_from_torchvision_checkpoint(_one(srcs, source, ".pth file"))
    if classes is not None:
        n = model.config.num_classes
        if isinstance(classes, (list, tuple)) and len(classes) != n:
            raise SqueezeNetError(f"the class list has {len(classes)} ids, the model has {n} outputs")
        model.classes = check_classes(classes, n)   # the one class-list check
        model.class_names = None
    if preprocess is not None:
        model.preprocess = preprocess
    if getattr(model, "preprocess", None) is None:
        model.preprocess = PRESETS[source]
    if model.data_config.source is None:
        model.data_config = model.data_config.replace(source=source)
    model.metadata = {**(model.metadata or {}), "imported_from": [Path(s).name for s in srcs]}
    if classes is not None and class_names is not None:
        if len(class_names) != len(classes):
            raise SqueezeNetError(f"{len(class_names)} class names for {len(classes)} class ids")
        model.class_names = list(class_names)
    return model


def _deep_compression_args(srcs: list[str]) -> tuple[str, str | None]:
    nets = [s for s in srcs if not s.lower().endswith(_PROTOTXT)]
    protos = [s for s in srcs if s.lower().endswith(_PROTOTXT)]
    if len(nets) != 1 or len(protos) > 1:
        raise SqueezeNetError("--from deep-compression takes one .net file and at most one prototxt")
    return nets[0], (protos[0] if protos else None)


def import_to_file(source: str, srcs: list[str | os.PathLike], out: str | os.PathLike,
                   classes: list[str] | None = None, class_names: list[str] | None = None,
                   preprocess: str | None = None, log=None) -> Path:
    """:func:`import_model` then save to ``out`` (``.safetensors``; for Deep-Compression also
    ``.sqz``, a lossless conversion of the compressed file)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if source == "deep-compression" and suffix == ".sqz":
        from .deep_compression import net_to_sqz
        net, proto = _deep_compression_args([str(s) for s in srcs])
        if preprocess is not None and preprocess != PRESETS[source]:
            raise SqueezeNetError(f"--preprocess {preprocess}: the Deep-Compression file was trained with "
                                  f"'{PRESETS[source]}' preprocessing")
        net_to_sqz(net, out, prototxt=proto, classes=classes,
                   class_names=class_names if classes is not None else None)
        return out
    if suffix != ".safetensors":
        hint = " (or .sqz for --from deep-compression)" if source == "deep-compression" else ""
        raise SqueezeNetError(f"{out}: the output must end in .safetensors{hint}")
    from ..io import save
    model = import_model(source, srcs, classes, class_names=class_names, preprocess=preprocess, log=log)
    return save(model, out)
