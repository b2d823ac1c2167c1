"""A SqueezeNet written as Caffe ``deploy.prototxt`` + ``.caffemodel`` with the DeepScale layer
names, which :func:`~.mapping.import_caffe` reads back to identical outputs.
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ...errors import SqueezeNetError
from . import pb
from .parse import array_to_blob


#: The class list written beside the prototxt (model index order; ``id name`` lines, as
#: ``synset_words.txt``, when the model has class names).
CLASSES_FILE = "classes.txt"


def squeezenet_to_netparameter(model, with_weights: bool, input_size: int | None = None):
    """A Caffe ``NetParameter`` for our SqueezeNet (DeepScale layer names, deploy form)."""
    from ...data.transforms import PRESETS
    from ...models import Fire, default_input_size
    cfg = model.config
    # ImageNet models declare the caffe preset's crop (227, as DeepScale's v1.0 and v1.1 deploy
    # files do); a 32x32 model its own size
    # (a side the model's data config records wins: squeezenet.data.input_size_for's first rule)
    recorded = getattr(getattr(model, "data_config", None), "input_size", None)
    size = input_size or (recorded[-1] if recorded and recorded[1] == recorded[2] else None) or (
        default_input_size(model) if cfg.stem == "small" else PRESETS["caffe"].input_size)
    net = pb.NetParameter(name=f"SqueezeNet_{cfg.stem}")

    def layer(name, type_, bottoms, tops):
        lp = net.layer.add(name=name, type=type_)
        lp.bottom.extend(bottoms)
        lp.top.extend(tops)
        return lp

    def conv(name, bottom, mod: nn.Conv2d):
        lp = layer(name, "Convolution", [bottom], [name])
        p = lp.convolution_param
        p.num_output = mod.out_channels
        kh, kw = mod.kernel_size
        if kh == kw:
            p.kernel_size.append(kh)
        else:
            p.kernel_h, p.kernel_w = kh, kw
        if mod.padding[0] == mod.padding[1]:
            if mod.padding[0]:
                p.pad.append(mod.padding[0])
        else:
            p.pad_h, p.pad_w = mod.padding
        if mod.stride[0] == mod.stride[1]:
            if mod.stride[0] != 1:
                p.stride.append(mod.stride[0])
        else:
            p.stride_h, p.stride_w = mod.stride
        if with_weights:
            array_to_blob(mod.weight, lp.blobs.add())
            array_to_blob(mod.bias, lp.blobs.add())
        return name

    def relu(name, blob):
        layer(name, "ReLU", [blob], [blob])
        return blob

    def maxpool(name, bottom):
        lp = layer(name, "Pooling", [bottom], [name])
        lp.pooling_param.pool = 0
        lp.pooling_param.kernel_size = 3
        lp.pooling_param.stride = 2
        return name

    inp = layer("data", "Input", [], ["data"])
    inp.input_param.shape.add().dim.extend([1, cfg.in_channels, size, size])
    feats = list(model.features)
    x = conv("conv1", "data", feats[0])
    relu("relu_conv1", x)
    x = maxpool("pool1", x)
    fire_i = 1
    for mod in feats[3:]:
        if isinstance(mod, Fire):
            fire_i += 1
            f = f"fire{fire_i}"
            s = relu(f"{f}/relu_squeeze1x1", conv(f"{f}/squeeze1x1", x, mod.squeeze))
            e1 = relu(f"{f}/relu_expand1x1", conv(f"{f}/expand1x1", s, mod.expand1x1))
            e3 = relu(f"{f}/relu_expand3x3", conv(f"{f}/expand3x3", s, mod.expand3x3))
            layer(f"{f}/concat", "Concat", [e1, e3], [f"{f}/concat"])
            out = f"{f}/concat"
            if mod.bypass == "identity":
                layer(f"{f}/bypass", "Eltwise", [x, out], [f"{f}/bypass"])
                out = f"{f}/bypass"
            elif mod.bypass == "conv":
                sc = conv(f"{f}/shortcut", x, mod.shortcut)
                layer(f"{f}/bypass", "Eltwise", [sc, out], [f"{f}/bypass"])
                out = f"{f}/bypass"
            x = out
        elif isinstance(mod, nn.MaxPool2d):
            x = maxpool(f"pool{fire_i}", x)
        else:  # pragma: no cover
            raise SqueezeNetError(f"cannot export feature layer {type(mod).__name__}")
    drop = layer(f"drop{fire_i}", "Dropout", [x], [x])
    drop.dropout_param.dropout_ratio = float(cfg.dropout)
    x = conv("conv10", x, model.classifier[1])
    relu("relu_conv10", x)
    gp = layer("pool10", "Pooling", [x], ["pool10"])
    gp.pooling_param.pool = 1
    gp.pooling_param.global_pooling = True
    layer("prob", "Softmax", ["pool10"], ["prob"])
    return net


def export_caffe(model, out_dir: str | os.PathLike, name: str = "squeezenet",
                 input_size: int | None = None) -> tuple[Path, Path]:
    """Write ``deploy.prototxt`` and ``<name>.caffemodel`` for a SqueezeNet into ``out_dir``,
    with ``classes.txt`` when the model has a class list, as one set
    (:func:`squeezenet.io.atomic_write_files`: a kill leaves the old set or the new one, never
    a new prototxt beside an old caffemodel). ``name`` is a plain file name: a folder part,
    ``..`` or an absolute path is a one-line error (nothing is written outside ``out_dir``).
    The prototxt's header notes the preprocessing preset, the class-list file and the data
    config's source and license, which :func:`~.mapping.import_caffe` reads back
    (``parse.prototxt_notes``).

    >>> import squeezenet, tempfile, torch
    >>> from squeezenet.interop.caffe import export_caffe, import_caffe
    >>> m = squeezenet.create_model("squeezenet1_1").eval()
    >>> proto, weights = export_caffe(m, tempfile.mkdtemp())
    >>> back = import_caffe(proto, weights)
    >>> x = torch.randn(1, 3, 224, 224)
    >>> bool(torch.equal(back(x), m(x)))
    True
    """
    from google.protobuf import text_format
    from ...io import atomic_write_files, check_file_name
    from ...models import SqueezeNet
    check_file_name(name, "--name")
    if not isinstance(model, SqueezeNet):
        raise SqueezeNetError(f"export-caffe needs a SqueezeNet, got {type(model).__name__}")
    if getattr(model.config, "batch_norm", False):
        raise SqueezeNetError("export-caffe: models with --batch-norm are not exported to Caffe (the "
                              "released SqueezeNets have no BatchNorm); use `squeezenet export` (ONNX)")
    out_dir = Path(out_dir)
    deploy = squeezenet_to_netparameter(model, with_weights=False, input_size=input_size)
    full = squeezenet_to_netparameter(model, with_weights=True, input_size=input_size)
    proto_path, weights_path = out_dir / "deploy.prototxt", out_dir / f"{name}.caffemodel"
    # the notes import_caffe reads back (parse.prototxt_notes): the preset and the class list
    header = (f"# SqueezeNet exported by squeezenet (config: {model.config.to_dict()})\n"
              f"# preprocessing: {getattr(model, 'preprocess', None) or 'unspecified'}\n")
    for key in ("source", "license"):   # the rest of the data config, one line each
        value = getattr(model.data_config, key)
        if value:
            header += f"# {key}: {' '.join(value.split())}\n"
    files = {}
    classes, names = model.data_config.classes, model.data_config.class_names
    if classes:
        from ...models.classes import class_line
        lines = [class_line(str(c), n if names else None) for c, n in zip(classes, names or classes)]
        files[CLASSES_FILE] = "\n".join(lines) + "\n"
        header += f"# classes: {CLASSES_FILE}\n"
    files[proto_path.name] = header + text_format.MessageToString(deploy)
    files[weights_path.name] = full.SerializeToString()
    atomic_write_files(out_dir, files, remove=() if classes else (CLASSES_FILE,))
    return proto_path, weights_path
