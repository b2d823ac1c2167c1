"""A :class:`~.net.CaffeNet` that *is* a SqueezeNet (v1.0, v1.1, bypass variants, any Fire
sizes) mapped onto :class:`~squeezenet.models.SqueezeNet` with torchvision keys;
:func:`import_caffe` does prototxt + caffemodel -> SqueezeNet in one call.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import FormatError, SqueezeNetError
from .net import CaffeNet, load_caffe

PREPROCESS = "caffe"


class NotSqueezeNet(SqueezeNetError):
    """The Caffe net is not a SqueezeNet this toolkit's model class can express."""


def squeezenet_layout(net: CaffeNet):
    """(SqueezeNetConfig, {caffe layer name: torch module path}) for a SqueezeNet-shaped net.

    The match is structural (on the data flow, not on layer names): conv1 + ReLU +
    max-pool 3/2, Fire modules (1x1 squeeze + ReLU -> 1x1 and 3x3 expands + ReLU ->
    concat in that order), optional Eltwise bypass (identity or 1x1-conv shortcut),
    max-pools 3/2 between Fires, optional dropout, 1x1 conv10 + ReLU, global average
    pooling and an optional softmax. Raises :class:`NotSqueezeNet` otherwise.
    """
    from ...models.squeezenet import BYPASS, STEMS, SqueezeNetConfig, fire_bypass_kinds
    producer, consumers = net.graph()
    if len(net.inputs) != 1:
        raise NotSqueezeNet("a SqueezeNet has one input")

    def bad(why):
        raise NotSqueezeNet(f"not a SqueezeNet: {why}")

    def only(vid, what, types):
        cs = consumers.get(vid, [])
        if len(cs) != 1 or cs[0].type not in types:
            bad(f"expected {what} after {producer[vid].name if vid in producer else 'the input'}")
        return cs[0]

    def is_plain_conv(op, k, pad):
        a = op.attrs
        return (op.type == "Convolution" and a["kernel"] == (k, k) and a["stride"] == (1, 1)
                and a["pad"] == (pad, pad) and a["dilation"] == (1, 1) and a["group"] == 1 and a["bias"])

    def is_pool32(op):
        a = op.attrs
        return (op.type == "Pooling" and a["method"] == "MAX" and not a["global"] and a["kernel"] == (3, 3)
                and a["stride"] == (2, 2) and a["pad"] == (0, 0) and a["ceil"])

    def relu_after(op):
        r = only(op.out_ids[0], f"a ReLU after {op.name}", ("ReLU",))
        if r.attrs["negative_slope"] != 0:
            bad(f"{r.name} is a leaky ReLU")
        return r

    mapping: dict[str, str] = {}
    conv1 = only(net.input_ids[net.inputs[0]], "conv1", ("Convolution",))
    a = conv1.attrs
    stem = None
    for sname, (c1, k, s, p) in STEMS.items():
        if (a["num_output"], a["kernel"], a["stride"], a["pad"]) == (c1, (k, k), (s, s), (p, p)) \
                and a["dilation"] == (1, 1) and a["group"] == 1 and a["bias"]:
            stem = sname
    if stem is None:
        bad(f"conv1 ({a['num_output']} filters {a['kernel']}/{a['stride']} pad {a['pad']}) is no known stem")
    in_channels = a["in_channels"]
    mapping[conv1.name] = "features.0"
    pool1 = only(relu_after(conv1).out_ids[0], "pool1", ("Pooling",))
    if not is_pool32(pool1):
        bad(f"{pool1.name} is not a 3x3/2 max-pool")
    v = pool1.out_ids[0]
    fires, bypass, pool_after, fire_layers = [], [], [], []
    dropout, head = 0.0, None
    while True:
        cs = consumers.get(v, [])
        convs = [c for c in cs if c.type == "Convolution"]
        if len(cs) == 1 and cs[0].type == "Dropout":
            dropout = cs[0].attrs["ratio"]
            head = only(cs[0].out_ids[0], "conv10", ("Convolution",))
            break
        squeeze = [c for c in convs if is_plain_conv(c, 1, 0) and
                   [x.type for x in consumers.get(c.out_ids[0], [])] == ["ReLU"]]
        if len(cs) == 1 and convs and not squeeze:
            head = convs[0]
            break
        if len(squeeze) != 1:
            bad(f"no Fire module or classifier after {producer[v].name}")
        sq = squeeze[0]
        r = relu_after(sq)
        ex = consumers.get(r.out_ids[0], [])
        if len(ex) != 2 or not all(e.type == "Convolution" for e in ex):
            bad(f"{sq.name} is not followed by two expand convolutions")
        e1 = next((e for e in ex if is_plain_conv(e, 1, 0)), None)
        e3 = next((e for e in ex if is_plain_conv(e, 3, 1)), None)
        if e1 is None or e3 is None:
            bad(f"the expands after {sq.name} are not a 1x1 and a 3x3 (pad 1) convolution")
        r1, r3 = relu_after(e1), relu_after(e3)
        cat = only(r1.out_ids[0], f"a concat after {e1.name}", ("Concat",))
        if cat.in_ids != [r1.out_ids[0], r3.out_ids[0]] or cat.attrs["axis"] != 1:
            bad(f"{cat.name} does not concatenate [expand1x1, expand3x3] on channels")
        out = cat.out_ids[0]
        kind, shortcut = "none", None
        rest = [c for c in cs if c is not sq]
        if rest:
            elt = only(out, f"an Eltwise bypass after {cat.name}", ("Eltwise",))
            if elt.attrs["operation"] != "SUM" or elt.attrs["coeff"] or len(elt.in_ids) != 2:
                bad(f"{elt.name} is not a plain sum")
            if len(rest) != 1:
                bad(f"the input of {sq.name} has unexpected extra consumers")
            if rest[0] is elt and sorted(elt.in_ids) == sorted([v, out]):
                kind = "identity"
            elif (rest[0].type == "Convolution" and is_plain_conv(rest[0], 1, 0)
                  and sorted(elt.in_ids) == sorted([rest[0].out_ids[0], out])
                  and consumers.get(rest[0].out_ids[0]) == [elt]):
                kind, shortcut = "conv", rest[0]
            else:
                bad(f"{elt.name} is not a bypass around the Fire module at {sq.name}")
            out = elt.out_ids[0]
        fires.append((sq.attrs["num_output"], e1.attrs["num_output"], e3.attrs["num_output"]))
        bypass.append(kind)
        fire_layers.append((sq, e1, e3, shortcut))
        v = out
        nxt = consumers.get(v, [])
        if len(nxt) == 1 and nxt[0].type == "Pooling" and not nxt[0].attrs["global"]:
            if not is_pool32(nxt[0]):
                bad(f"{nxt[0].name} is not a 3x3/2 max-pool")
            pool_after.append(len(fires) - 1)
            v = nxt[0].out_ids[0]
    if not fires:
        bad("no Fire modules")
    if not (is_plain_conv(head, 1, 0) or is_plain_conv(head, 1, 1)):
        bad(f"{head.name} is not a 1x1 convolution")
    gp = only(relu_after(head).out_ids[0], "global average pooling", ("Pooling",))
    if not (gp.attrs["global"] and gp.attrs["method"] == "AVE"):
        bad(f"{gp.name} is not a global average pooling")
    tail = consumers.get(gp.out_ids[0], [])
    if tail and not (len(tail) == 1 and tail[0].type == "Softmax" and not consumers.get(tail[0].out_ids[0])):
        bad(f"unexpected layers after {gp.name}")
    config = SqueezeNetConfig(stem=stem, fires=tuple(fires), pool_after=tuple(pool_after), bypass="none",
                              num_classes=head.attrs["num_output"], dropout=dropout,
                              conv10_padding=head.attrs["pad"][0], in_channels=in_channels)
    # which bypass variant of the paper is this? (the model's rule says which Fire gets which)
    mode = next((m for m in BYPASS if fire_bypass_kinds(config.replace(bypass=m)) == bypass), None)
    if mode is None:
        bad(f"bypass pattern {bypass} is neither the paper's simple nor complex bypass")
    config = config.replace(bypass=mode)
    idx = 3
    for i, (sq, e1, e3, shortcut) in enumerate(fire_layers):
        mapping[sq.name] = f"features.{idx}.squeeze"
        mapping[e1.name] = f"features.{idx}.expand1x1"
        mapping[e3.name] = f"features.{idx}.expand3x3"
        if shortcut is not None:
            mapping[shortcut.name] = f"features.{idx}.shortcut"
        idx += 2 if i in pool_after else 1
    mapping[head.name] = "classifier.1"
    return config, mapping


def to_squeezenet(net: CaffeNet):
    """The :class:`~squeezenet.models.SqueezeNet` equivalent of ``net``, weights copied.

    Its output is the logits (Caffe's ``pool10``, flattened; a deploy net's softmax is
    left to the caller).
    """
    from ...models import SqueezeNet
    config, mapping = squeezenet_layout(net)
    model = SqueezeNet(config)
    mods = dict(model.named_modules())
    src = net.param_layers()
    with torch.no_grad():
        for cname, tpath in mapping.items():
            dst = mods[tpath]
            if tuple(dst.weight.shape) != tuple(src[cname].weight.shape):  # pragma: no cover (structural match)
                raise NotSqueezeNet(f"{cname}: shape {tuple(src[cname].weight.shape)} does not fit {tpath}")
            dst.weight.copy_(src[cname].weight)
            dst.bias.copy_(src[cname].bias)
    model.preprocess = PREPROCESS
    model.metadata = {"caffe_layers": mapping}
    return model.eval()


def arch_name(config) -> str | None:
    """The registered model whose config equals ``config`` up to bypass/num_classes/dropout."""
    from ...models.builders import VARIANTS
    for name, base in VARIANTS.items():
        if base.replace(bypass=config.bypass, num_classes=config.num_classes, dropout=config.dropout,
                        in_channels=config.in_channels) == config:
            return name
    return None


def import_caffe(prototxt: str | os.PathLike | None, caffemodel: str | os.PathLike,
                 classes: list[str] | None = None, preprocess: str | None = None):
    """prototxt + caffemodel -> :class:`~squeezenet.models.SqueezeNet`, e.g.
    ``import_caffe("deploy.prototxt", "squeezenet_v1.0.caffemodel")``; the example of
    :func:`~.export.export_caffe` runs a round trip through it.

    The preprocessing preset is ``preprocess`` when given, else the one the prototxt's header
    notes (``# preprocessing: torchvision``, written by ``export-caffe``), else ``caffe`` (BGR,
    0-255, mean subtracted: the released Caffe files), recorded as assumed. Likewise the class
    list: ``classes``, else the file the header notes (``# classes: classes.txt`` beside the
    prototxt, ids and names). ``model.metadata`` says where each came from
    (``preprocess_from``, ``classes_from``: ``given``, ``prototxt``, ``assumed``/``none``,
    or ``missing:FILE`` when the noted class list is not there). The ``# source:`` and
    ``# license:`` notes (``export-caffe`` writes them from the data config) go back into
    ``model.data_config``; without a source note the source is ``caffe``.
    """
    from ...data import check_preset, read_class_names
    from ...data.transforms import PRESETS
    from .parse import prototxt_notes
    net = load_caffe(prototxt, caffemodel)
    try:
        model = to_squeezenet(net)
    except NotSqueezeNet as e:
        raise SqueezeNetError(f"{prototxt or caffemodel}: {e}") from None
    notes = prototxt_notes(prototxt) if prototxt else {}
    if preprocess is not None:
        model.preprocess, pre_from = check_preset(preprocess), "given"
    elif notes.get("preprocessing") in PRESETS:
        model.preprocess, pre_from = notes["preprocessing"], "prototxt"
    else:
        model.preprocess, pre_from = PREPROCESS, "assumed"
    names = None
    if classes is not None:
        classes, cls_from = list(classes), "given"
    elif notes.get("classes"):
        listed = notes["classes"]
        path = Path(prototxt).parent / listed
        if Path(listed).name != listed or not path.is_file():
            classes, cls_from = None, f"missing:{listed}"
        elif path.resolve().parent != Path(prototxt).resolve().parent:   # a link to a file elsewhere
            raise FormatError(path, f"the class list the prototxt notes is a link to {path.resolve()}, outside "
                                    f"the prototxt's folder; not read (give --classes FILE to use it)")
        else:
            classes, names = read_class_names(path)
            cls_from = "prototxt"
            if len(classes) != model.config.num_classes:
                raise SqueezeNetError(f"{path}: {len(classes)} classes, the model has "
                                      f"{model.config.num_classes} outputs")
    else:
        cls_from = "none"
    model.classes = classes
    model.metadata = {"source": notes.get("source") or "caffe", "prototxt": Path(prototxt).name if prototxt else None,
                      "caffemodel": Path(caffemodel).name, "arch": arch_name(model.config),
                      "caffe_transform": net.transform or None, "preprocess_from": pre_from,
                      "classes_from": cls_from}
    if names is not None:
        model.class_names = names
    if notes.get("license"):
        model.data_config = model.data_config.replace(license=notes["license"][:1000])
    return model
