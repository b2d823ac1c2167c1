"""The released Deep-Compression SqueezeNet (``compressed_SqueezeNet.net``, songhan).

Layout (little-endian, spec.md section 9): 26 x uint32 stored-entry counts ``n``, then per
conv layer in forward order: a codebook of 256 float32 (``codebook[0] == 0``), ``num_output``
float32 biases, ``n`` uint8 codes, ``(n - 1) // 2 + 1`` bytes of 4-bit gaps (low nibble
first). Entry ``i`` sits at flat index ``cumsum(gap + 1)[i] - 1`` of the (O, I, kH, kW)
weight; a gap over 15 is bridged by filler entries with gap 15 and code 0.

Layer order and shapes come from our ``squeezenet1_0_caffe`` model (conv layers in
state_dict order == Caffe forward order); a prototxt, when given, is checked against them.

With the released file (not shipped; tests read it from the shared fixtures)::

    recs = read_net("compressed_SqueezeNet.net")
    model = import_net("compressed_SqueezeNet.net")
    net_to_sqz("compressed_SqueezeNet.net", "dc.sqz")
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import as_class_list
from ..errors import FormatError, read_input

#: Caffe names of the 26 conv layers of the Deep-Compression prototxt, in forward order.
CAFFE_NAMES = (["conv1"] + [f"fire{i}/{n}" for i in range(2, 10)
                            for n in ("conv1x1_1", "conv1x1_2", "conv3x3_2")] + ["conv_final"])
ARCH = "squeezenet1_0_caffe"
GAP_BITS = 4
MAX_NET_BYTES = 64 << 20   # the released file is 0.48 MB; the layout's largest is about 6 MB


@dataclass
class NetLayer:
    """One layer of a ``.net`` file: everything needed to rebuild its weight bit-exactly."""

    name: str               # our state_dict key of the weight (e.g. ``features.3.squeeze.weight``)
    caffe_name: str         # the prototxt layer name (e.g. ``fire2/conv1x1_1``)
    shape: tuple            # (O, I, kH, kW)
    bits: int               # code width: 8 for conv layers, 4 for fc/ip layers
    codebook: np.ndarray    # float32 (2**bits,), codebook[0] == 0
    bias: np.ndarray        # float32 (O,)
    codes: np.ndarray       # uint8 (n,) indices into codebook
    gaps: np.ndarray        # uint8 (n,) 4-bit gaps (entry i sits gaps[i] + 1 after entry i-1)

    @property
    def positions(self) -> np.ndarray:
        """Flat index of every stored entry in the (O, I, kH, kW) weight."""
        return np.cumsum(self.gaps.astype(np.int64) + 1) - 1

    def weight(self) -> np.ndarray:
        """The dense float32 weight exactly as the reference decoder builds it."""
        w = np.zeros(int(np.prod(self.shape)), dtype=np.float32)
        w[self.positions] = self.codebook[self.codes]
        return w.reshape(self.shape)


def _layer_specs() -> list[tuple[str, str, tuple, str]]:
    """(weight key, caffe name, shape, bias key) of the 26 convs of squeezenet1_0_caffe."""
    from ..models import create_model
    sd = create_model(ARCH).state_dict()
    keys = [k for k in sd if k.endswith(".weight") and sd[k].ndim == 4]
    assert len(keys) == len(CAFFE_NAMES)
    return [(k, c, tuple(sd[k].shape), k[:-len("weight")] + "bias") for k, c in zip(keys, CAFFE_NAMES)]


def prototxt_convs(path: str | os.PathLike) -> list[tuple[str, int]]:
    """(name, num_output) of every Convolution layer of a deploy prototxt, in file order."""
    path = Path(path)
    text = read_input(path, "prototxt", 16 << 20).decode("utf-8", errors="replace")
    out = []
    for block in re.split(r"\blayers?\s*\{", text)[1:]:
        ty = re.search(r'type:\s*"?(\w+)"?', block)
        name = re.search(r'name:\s*"([^"]+)"', block)
        if ty and name and ty.group(1) in ("Convolution", "CONVOLUTION"):
            num = re.search(r"num_output:\s*(\d+)", block)
            out.append((name.group(1), int(num.group(1)) if num else -1))
    return out


def check_prototxt(path: str | os.PathLike) -> None:
    """Raise :class:`FormatError` unless the prototxt's convs are our 26 layers in order."""
    convs = prototxt_convs(path)
    specs = _layer_specs()
    if len(convs) != len(specs):
        raise FormatError(path, f"{len(convs)} Convolution layers, the Deep-Compression "
                                f"SqueezeNet v1.0 has {len(specs)}")
    for (name, num), (_, caffe, shape, _) in zip(convs, specs):
        if name != caffe or num != shape[0]:
            raise FormatError(path, f"conv layer {name!r} with {num} outputs where {caffe!r} "
                                    f"with {shape[0]} was expected (not SqueezeNet v1.0)")


def read_net(path: str | os.PathLike, prototxt: str | os.PathLike | None = None) -> list[NetLayer]:
    """Parse a Deep-Compression ``.net`` file into per-layer records, checking every count.

    With the released file::

        layers = read_net("compressed_SqueezeNet.net")
        layers[0].caffe_name, layers[0].shape, layers[0].bits   # ('conv1', (96, 3, 7, 7), 8)
    """
    path = Path(path)
    if prototxt is not None:
        check_prototxt(prototxt)
    data = read_input(path, "file", MAX_NET_BYTES)
    buf = np.frombuffer(data, dtype=np.uint8)
    size = buf.size
    specs = _layer_specs()
    nl = len(specs)
    if size < 4 * nl:
        raise FormatError(path, f"{size} bytes: too short for the {nl}-entry header")
    counts = buf[:4 * nl].view("<u4").astype(np.int64)
    off = 4 * nl
    layers = []
    for i, (key, caffe, shape, _) in enumerate(specs):
        n = int(counts[i])
        numel = int(np.prod(shape))
        bits = 8 if "conv" in caffe else 4
        k = 1 << bits
        if n < 1 or n > numel:
            raise FormatError(path, f"layer {caffe}: stored-entry count {n} outside 1..{numel}")
        code_bytes = n if bits == 8 else (n - 1) // 2 + 1
        gap_bytes = (n - 1) // 2 + 1
        need = 4 * k + 4 * shape[0] + code_bytes + gap_bytes
        if off + need > size:
            raise FormatError(path, f"layer {caffe}: needs {need} bytes at offset {off}, "
                                    f"file has {size} (truncated?)")
        codebook = buf[off:off + 4 * k].view("<f4").astype(np.float32)
        off += 4 * k
        bias = buf[off:off + 4 * shape[0]].view("<f4").astype(np.float32)
        off += 4 * shape[0]
        raw = buf[off:off + code_bytes]
        off += code_bytes
        codes = raw.copy() if bits == 8 else _unnibble(raw, n)
        gaps = _unnibble(buf[off:off + gap_bytes], n)
        off += gap_bytes
        last = int(gaps.astype(np.int64).sum()) + n - 1
        if last >= numel:
            raise FormatError(path, f"layer {caffe}: positions run to {last}, past the "
                                    f"{numel} weights of shape {shape}")
        if not (np.isfinite(codebook).all() and np.isfinite(bias).all()):
            raise FormatError(path, f"layer {caffe}: non-finite values (NaN or infinity) in its "
                                    f"{'codebook' if not np.isfinite(codebook).all() else 'bias'}")
        layers.append(NetLayer(key, caffe, shape, bits, codebook, bias, codes, gaps))
    if off != size:
        raise FormatError(path, f"{size - off} trailing bytes after the last layer "
                                f"(not the SqueezeNet v1.0 .net layout)")
    return layers


def _unnibble(raw: np.ndarray, n: int) -> np.ndarray:
    """4-bit values, low nibble = even entry."""
    out = np.empty(raw.size * 2, dtype=np.uint8)
    out[0::2] = raw & 0x0F
    out[1::2] = raw >> 4
    return out[:n]


def _find_prototxt(path: Path) -> Path | None:
    for name in ("SqueezeNet_deploy.prototxt", "deploy.prototxt"):
        p = path.parent / name
        if p.is_file():
            return p
    return None


def import_net(path: str | os.PathLike, prototxt: str | os.PathLike | None = None,
               classes: list[str] | str | os.PathLike | None = None):
    """A runnable ``squeezenet1_0_caffe`` with the ``.net`` weights (preprocess "caffe").

    ``prototxt`` defaults to ``SqueezeNet_deploy.prototxt`` beside the file (checked when
    present). ``classes``: a list or a file with one class id per line (model index order).

    Example: ``m = import_net("compressed_SqueezeNet.net", classes="synsets.txt")``.
    """
    import torch
    from ..models import create_model
    path = Path(path)
    if prototxt is None:
        prototxt = _find_prototxt(path)
    layers = read_net(path, prototxt)
    model = create_model(ARCH)
    sd = model.state_dict()
    for layer, (_, _, _, bkey) in zip(layers, _layer_specs()):
        sd[layer.name] = torch.from_numpy(layer.weight())
        sd[bkey] = torch.from_numpy(layer.bias.copy())
    model.load_state_dict(sd)
    model.classes = as_class_list(classes)
    model.preprocess = "caffe"
    model.metadata = {"source": f"deep-compression:{path.name}", "arch": ARCH}
    return model.eval()


def net_to_sqz(path: str | os.PathLike, out: str | os.PathLike,
               prototxt: str | os.PathLike | None = None,
               classes: list[str] | str | os.PathLike | None = None,
               class_names: list[str] | None = None) -> dict:
    """Convert a ``.net`` to a ``.sqz`` losslessly (same codebooks, codes and positions,
    Huffman-coded). Returns the :func:`squeezenet.io.sqz.write_sqz` summary.

    With the released file::

        net_to_sqz("compressed_SqueezeNet.net", "dc.sqz")["bytes"] <= 560000   # True
    """
    from ..io.sqz import SparseLayer, write_sqz
    from ..models import create_model
    path = Path(path)
    if prototxt is None:
        prototxt = _find_prototxt(path)
    layers = read_net(path, prototxt)
    config = create_model(ARCH).config
    recs = [SparseLayer(name=l.name, shape=l.shape, codebook=l.codebook, codes=l.codes,
                        gaps=l.gaps, gap_bits=GAP_BITS, bias_name=b, bias=l.bias)
            for l, (_, _, _, b) in zip(layers, _layer_specs())]
    meta = {"source": f"deep-compression:{path.name}", "arch": ARCH}
    if class_names is not None:
        meta["class_names"] = list(class_names)   # as SqueezeNet.class_names keeps them
    return write_sqz(out, config, recs, dense={}, classes=as_class_list(classes),
                     preprocess="caffe", metadata=meta)
