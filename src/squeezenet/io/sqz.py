"""The ``.sqz`` file: a Deep-Compressed SqueezeNet that loads straight into a runnable model.

Layout (all little-endian; full specification in ``docs/sqz-format.md``)::

    magic      8 bytes  b"\\x89SQZ\\r\\n\\x1a\\n"
    version    uint16   1
    flags      uint16   0
    hlen       uint32   length of the compressed header
    hraw       uint32   length of the header JSON once decompressed (<= 16 MiB)
    crc        uint32   CRC-32 of the payload (every bit flip is caught)
    header     hlen bytes, zlib-compressed UTF-8 JSON
    payload    the rest; every [offset, length] in the header is relative to its start

The JSON header holds the model config, classes, preprocessing preset, metadata and one
record per compressed layer (shape, bits, count, codebook, Huffman-coded cluster indices and
sparse-position gaps, bias), plus plain float32 tensors for anything left dense. Every
offset, length, shape and count is checked against the file size and sane limits before
anything is allocated; every problem is a :class:`~squeezenet.errors.FormatError`.
``squeezenet.load("dc.sqz")`` gives a runnable model in eval mode (see :func:`load_sqz`).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FormatError, first_line, read_input
from ..models.classes import check_classes
from . import huffman, parse_json

MAGIC = b"\x89SQZ\r\n\x1a\n"
VERSION = 1
PREAMBLE = struct.Struct("<8sHHIII")

# sane limits, checked before anything is allocated
MAX_FILE = 1 << 30             # the file (the largest model config allowed is 256 MiB dense)
MAX_HEADER = 16 << 20          # decompressed JSON header
MAX_LAYERS = 4096
MAX_NUMEL = 1 << 27            # weights in one tensor
MAX_ALPHABET = 1 << 16
MAX_DIM = 1 << 20


@dataclass
class SparseLayer:
    """One weight-shared, (optionally) pruned tensor as stored in a ``.sqz``.

    ``codes[i]`` indexes ``codebook``; entry ``i`` sits ``gaps[i] + 1`` after entry ``i-1``
    in the flattened weight (the first at ``gaps[0]``), with filler entries of gap
    ``2**gap_bits - 1`` and code ``zero_code`` bridging longer runs of zeros. ``gaps=None``
    means dense order: one code for every weight.
    """

    name: str
    shape: tuple
    codebook: np.ndarray            # float32 (K,)
    codes: np.ndarray               # (n,) ints in [0, K)
    gaps: np.ndarray | None = None  # (n,) ints in [0, 2**gap_bits)
    gap_bits: int = 4
    zero_code: int = 0              # index of 0.0 in codebook (fillers use it)
    bias_name: str | None = None
    bias: np.ndarray | None = None  # float32 (O,)
    bits: int | None = None         # nominal bits per weight (log2 of the centroids)

    def weight(self) -> np.ndarray:
        numel = int(np.prod(self.shape))
        vals = np.take(np.asarray(self.codebook, dtype=np.float32), np.asarray(self.codes))
        if self.gaps is None:
            return vals.reshape(self.shape)
        w = np.zeros(numel, dtype=np.float32)
        gaps = np.asarray(self.gaps)
        small = gaps.size == 0 or gaps.size * (int(gaps.max()) + 1) < (1 << 31)
        at = gaps.astype(np.int32 if small else np.int64)   # flat index: cumsum(gap + 1) - 1
        at += 1
        np.cumsum(at, out=at)
        at -= 1
        w[at] = vals
        return w.reshape(self.shape)


def sparse_entries(positions: np.ndarray, codes: np.ndarray, gap_bits: int,
                   zero_code: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative gaps with filler entries for sorted flat ``positions`` (vectorised).

    >>> g, c = sparse_entries(np.array([1, 40]), np.array([5, 6]), 4, 0)
    >>> g.tolist(), c.tolist()
    ([1, 15, 15, 6], [5, 0, 0, 6])
    """
    positions = np.asarray(positions, dtype=np.int64)
    span = 1 << gap_bits
    d = np.diff(positions, prepend=-1) - 1
    if d.size and d.min() < 0:
        raise ValueError("positions must be strictly increasing")
    fill = d // span
    rem = d - fill * span
    counts = fill + 1
    total = int(counts.sum())
    at = np.cumsum(counts) - 1          # where each real entry lands
    gaps = np.full(total, span - 1, dtype=np.int64)
    out = np.full(total, zero_code, dtype=np.int64)
    gaps[at] = rem
    out[at] = np.asarray(codes, dtype=np.int64)
    return gaps, out


# ----------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class StreamPlan:
    """One Huffman-coded stream as the writer stores it: its symbols, their code lengths and
    its exact size (the 4-bit length table plus the data in whole bytes), without coding it."""

    symbols: np.ndarray
    alphabet: int
    lengths: np.ndarray
    nbits: int
    group: int = 1                  # gaps per symbol (position streams)

    @property
    def bytes(self) -> int:
        return (self.alphabet + 1) // 2 + (self.nbits + 7) // 8


@dataclass(frozen=True)
class LayerEncoding:
    """How :func:`write_sqz` stores one :class:`SparseLayer` and the payload bytes of each part
    (from :func:`encode_layer`): ``positions`` is None in dense order."""

    count: int                      # code symbols stored (numel in dense order)
    bits: int                       # nominal bits per weight (the header's)
    codes: StreamPlan
    positions: StreamPlan | None
    codebook: int                   # bytes of the float32 codebook
    bias: int                       # bytes of the float32 bias (0: none)

    @property
    def bytes(self) -> int:
        """The layer's payload bytes: codebook, codes, positions and bias."""
        return self.codebook + self.codes.bytes + (self.positions.bytes if self.positions else 0) + self.bias


def _plan_stream(symbols: np.ndarray, alphabet: int, group: int = 1) -> StreamPlan:
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet)[:alphabet])
    if symbols.size == 0:
        lengths[0] = 1
    nbits = int(np.asarray(lengths, dtype=np.int64)[symbols].sum()) if symbols.size else 0
    return StreamPlan(symbols, alphabet, lengths, nbits, group)


def _plan_gaps(gaps: np.ndarray, gap_bits: int) -> StreamPlan:
    """The gaps one per symbol or, when strictly cheaper, two per symbol."""
    g = np.asarray(gaps, dtype=np.int64)
    best = _plan_stream(g, 1 << gap_bits, 1)
    if 2 * gap_bits <= 12:
        g2 = np.concatenate([g, np.zeros(g.size % 2, dtype=np.int64)])
        pair = _plan_stream(g2[0::2] | (g2[1::2] << gap_bits), 1 << (2 * gap_bits), 2)
        if pair.bytes < best.bytes:
            best = pair
    return best


def encode_layer(layer: SparseLayer) -> LayerEncoding:
    """The exact payload bytes of ``layer`` in a ``.sqz`` and how they are laid out: sparse
    (Huffman-coded codes and position gaps) or dense order (one code per weight), whichever
    is smaller (a tie keeps sparse). Pure: no bit is coded, no file is written; the writer
    codes what this decides, and the size search and the allocator count with it.

    >>> gaps, codes = sparse_entries(np.array([1, 40]), np.array([1, 1]), 4, 0)   # 2 of 64 weights
    >>> e = encode_layer(SparseLayer("w", (64,), np.array([0, 1.5], np.float32), codes, gaps))
    >>> e.count, e.codebook, e.codes.bytes, e.positions.bytes, e.bytes   # 4 entries: 2 fillers
    (4, 8, 2, 9, 19)
    """
    numel = int(np.prod(layer.shape))
    K = int(np.asarray(layer.codebook).size)
    codes = np.asarray(layer.codes, dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= K):
        raise ValueError(f"{layer.name}: codes outside the codebook")
    # option A: as given (sparse); option B: dense order with the zero code
    cand = []
    if layer.gaps is not None:
        c = _plan_stream(codes, K)
        g = _plan_gaps(layer.gaps, layer.gap_bits)
        cand.append((c.bytes + g.bytes, codes.size, c, g))
    if layer.gaps is None or codes.size * 2 > numel // 2:
        dense_codes = _dense_codes(layer, numel)
        if dense_codes is not None:
            c = _plan_stream(dense_codes, K)
            cand.append((c.bytes, numel, c, None))
    if not cand:
        raise ValueError(f"{layer.name}: codebook has no zero entry for pruned weights")
    _, count, c, g = min(cand, key=lambda t: t[0])
    bits = int(layer.bits or max(1, int(np.ceil(np.log2(max(K, 2))))))
    bias = 0 if layer.bias is None else 4 * int(np.asarray(layer.bias).size)
    return LayerEncoding(int(count), bits, c, g, 4 * K, bias)


def layer_bytes(layer: SparseLayer) -> int:
    """Payload bytes of ``layer`` in a ``.sqz`` (codebook, codes, positions, bias): with
    :func:`sqz_size`'s header and the dense tensors, the file's size exactly."""
    return encode_layer(layer).bytes


class _Payload:
    def __init__(self, data: bool = True):
        self.chunks: list[bytes] = []
        self.size = 0
        self.data = data            # False: only lay out offsets and lengths (sizes)

    def add(self, data, n: int | None = None) -> list[int]:
        """Append ``data`` (bytes, or a callable making them) of ``n`` bytes."""
        off = self.size
        if self.data:
            data = data() if callable(data) else data
            if n is not None and len(data) != n:
                raise AssertionError(f"encoded {len(data)} bytes, planned {n}")
            self.chunks.append(data)
            n = len(data)
        self.size += n
        return [off, n]


def _stream_rec(payload: _Payload, plan: StreamPlan) -> dict:
    rec = {"alphabet": plan.alphabet, "nbits": plan.nbits}
    rec["lengths"] = payload.add(lambda: huffman.pack_lengths(plan.lengths), (plan.alphabet + 1) // 2)
    rec["data"] = payload.add(lambda: huffman.encode(plan.symbols, plan.lengths)[0], (plan.nbits + 7) // 8)
    return rec


def _layout(config, layers: list[SparseLayer], dense: dict[str, np.ndarray] | None, classes, preprocess,
            metadata, data: bool) -> tuple[bytes, bytes, _Payload, dict, int]:
    """(preamble, compressed header, payload, parts, layer count) of a ``.sqz``; with
    ``data=False`` the payload holds only sizes (nothing is Huffman-coded)."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    payload = _Payload(data)
    parts = {"header": 0, "codebook": 0, "codes": 0, "positions": 0, "bias": 0, "dense": 0}
    recs = []
    for layer in layers:
        enc = encode_layer(layer)
        rec: dict[str, Any] = {"name": layer.name, "shape": [int(s) for s in layer.shape],
                               "bits": enc.bits, "count": enc.count}
        rec["codebook"] = payload.add(lambda: np.asarray(layer.codebook, dtype="<f4").tobytes(), enc.codebook)
        parts["codebook"] += enc.codebook
        rec["codes"] = _stream_rec(payload, enc.codes)
        parts["codes"] += enc.codes.bytes
        if enc.positions is None:
            rec["positions"] = None
        else:
            g = enc.positions
            rec["positions"] = {"alphabet": g.alphabet, "nbits": g.nbits, "group": g.group,
                                "gap_bits": int(layer.gap_bits), "zero_code": int(layer.zero_code)}
            s = _stream_rec(payload, g)
            rec["positions"].update(lengths=s["lengths"], data=s["data"])
            parts["positions"] += g.bytes
        if layer.bias is not None:
            rec["bias"] = {"name": layer.bias_name,
                           "data": payload.add(lambda: np.asarray(layer.bias, dtype="<f4").tobytes(), enc.bias)}
            parts["bias"] += enc.bias
        else:
            rec["bias"] = None
        recs.append(rec)
    dense_recs = []
    for name, arr in (dense or {}).items():
        arr = np.asarray(arr, dtype="<f4")
        dense_recs.append({"name": name, "shape": list(arr.shape), "data": payload.add(arr.tobytes, arr.nbytes)})
        parts["dense"] += arr.nbytes
    header = {"format": "squeezenet-sqz", "version": VERSION, "config": cfg, "classes": classes,
              "preprocess": preprocess, "metadata": metadata or {}, "layers": recs,
              "dense": dense_recs}
    raw = json.dumps(header, separators=(",", ":")).encode()
    hz = zlib.compress(raw, 9)
    crc = zlib.crc32(b"".join(payload.chunks)) if data else 0
    pre = PREAMBLE.pack(MAGIC, VERSION, 0, len(hz), len(raw), crc)
    parts["header"] = len(pre) + len(hz)
    return pre, hz, payload, parts, len(recs)


def sqz_size(config, layers: list[SparseLayer], dense: dict[str, np.ndarray] | None = None,
             classes: list[str] | None = None, preprocess: str | None = None,
             metadata: dict[str, Any] | None = None) -> dict:
    """What :func:`write_sqz` with the same arguments would return (``{"bytes", "parts",
    "layers"}``), exactly, without coding the streams or writing a file."""
    pre, hz, payload, parts, n = _layout(config, layers, dense, classes, preprocess, metadata, data=False)
    return {"bytes": len(pre) + len(hz) + payload.size, "parts": parts, "layers": n}


def encode_sqz(config, layers: list[SparseLayer], dense: dict[str, np.ndarray] | None = None,
               classes: list[str] | None = None, preprocess: str | None = None,
               metadata: dict[str, Any] | None = None) -> tuple[bytes, dict]:
    """The bytes of the ``.sqz`` :func:`write_sqz` writes, and its info, in memory."""
    pre, hz, payload, parts, n = _layout(config, layers, dense, classes, preprocess, metadata, data=True)
    data = pre + hz + b"".join(payload.chunks)
    return data, {"bytes": len(data), "parts": parts, "layers": n}


def write_sqz(path: str | os.PathLike, config, layers: list[SparseLayer],
              dense: dict[str, np.ndarray] | None = None, classes: list[str] | None = None,
              preprocess: str | None = None, metadata: dict[str, Any] | None = None) -> dict:
    """Write a ``.sqz`` file atomically; returns ``{"bytes": total, "parts": {...}}``.

    ``config``: a SqueezeNetConfig (or its dict); ``layers``: the compressed tensors;
    ``dense``: any other tensors (stored as float32). Each layer is stored as
    :func:`encode_layer` decides (sparse or dense order, whichever is smaller).
    """
    from . import atomic_write
    data, info = encode_sqz(config, layers, dense, classes, preprocess, metadata)

    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, w)
    return info


def _dense_codes(layer: SparseLayer, numel: int) -> np.ndarray | None:
    if layer.gaps is None:
        return np.asarray(layer.codes, dtype=np.int64)
    zero = np.flatnonzero(layer.codebook == 0)
    if zero.size == 0:
        return None
    out = np.full(numel, int(zero[0]), dtype=np.int64)
    out[np.cumsum(np.asarray(layer.gaps, dtype=np.int64) + 1) - 1] = layer.codes
    return out


# ----------------------------------------------------------------------------- reading

class _Reader:
    """Bounds-checked access to a ``.sqz`` file's parts (raises FormatError naming it)."""

    def __init__(self, path: str | os.PathLike, data: bytes | None = None):
        self.path = Path(path)
        if data is None:
            data = read_input(self.path, "file", MAX_FILE)
        self.data = data
        if len(data) < PREAMBLE.size:
            self.fail(f"{len(data)} bytes: too short for a .sqz file")
        magic, version, flags, hlen, hraw, crc = PREAMBLE.unpack_from(data)
        if magic != MAGIC:
            self.fail("not a .sqz file (bad magic)")
        if version != VERSION:
            self.fail(f"format version {version} is not supported (this version reads {VERSION})")
        if flags != 0:
            self.fail(f"unknown flags {flags:#x}")
        if hlen > len(data) - PREAMBLE.size:
            self.fail(f"header length {hlen} runs past the end of the file ({len(data)} bytes)")
        if hraw > MAX_HEADER:
            self.fail(f"header of {hraw} bytes is over the {MAX_HEADER}-byte limit")
        start = PREAMBLE.size + hlen
        self.payload = memoryview(data)[start:]
        if zlib.crc32(self.payload) != crc:
            self.fail("payload checksum mismatch (corrupt or truncated file)")
        try:
            d = zlib.decompressobj()
            raw = d.decompress(data[PREAMBLE.size:start], hraw + 1)
            if len(raw) != hraw or not d.eof or d.unconsumed_tail or d.unused_data:
                raise ValueError("length mismatch")
        except (zlib.error, ValueError) as e:
            self.fail(f"corrupt header ({e})")
        self.header = parse_json(raw, self.path, "header")   # bounded nesting, one-line errors
        if not isinstance(self.header, dict) or self.header.get("format") != "squeezenet-sqz":
            self.fail("header is not a squeezenet-sqz header")

    def fail(self, problem: str):
        raise FormatError(self.path, problem)

    def part(self, ref, what: str, unit: int = 1) -> memoryview:
        if (not isinstance(ref, list) or len(ref) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in ref)):
            self.fail(f"{what}: bad [offset, length] {ref!r}")
        off, n = ref
        if off < 0 or n < 0 or off + n > len(self.payload):
            self.fail(f"{what}: bytes {off}..{off + n} run past the payload ({len(self.payload)} bytes)")
        if n % unit:
            self.fail(f"{what}: length {n} is not a multiple of {unit}")
        return self.payload[off:off + n]

    def floats(self, ref, what: str, count: int | None = None) -> np.ndarray:
        raw = self.part(ref, what, 4)
        if count is not None and len(raw) != 4 * count:
            self.fail(f"{what}: {len(raw) // 4} values, expected {count}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _int(r: _Reader, v, what: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        r.fail(f"{what}: {v!r} is not an integer in {lo}..{hi}")
    return v


def _stream(r: _Reader, rec, what: str, count: int) -> tuple[tuple, int]:
    """A validated Huffman stream record: ((data, nbits, count, lengths), alphabet)."""
    if not isinstance(rec, dict):
        r.fail(f"{what}: missing stream record")
    alphabet = _int(r, rec.get("alphabet"), f"{what}.alphabet", 1, MAX_ALPHABET)
    table = r.part(rec.get("lengths"), f"{what}.lengths")
    data = r.part(rec.get("data"), f"{what}.data")
    nbits = _int(r, rec.get("nbits"), f"{what}.nbits", 0, 8 * len(data))
    if (nbits + 7) // 8 != len(data):
        r.fail(f"{what}: {nbits} bits do not fill {len(data)} bytes")
    try:   # the code lengths themselves are checked by the decoder
        lengths = huffman.unpack_lengths(np.frombuffer(table, dtype=np.uint8), alphabet)
    except huffman.HuffmanError as e:
        r.fail(f"{what}: {e}")
    return (np.frombuffer(data, dtype=np.uint8), nbits, count, lengths), alphabet


def _check_config(r: _Reader, cfg) -> Any:
    """The header's model config, checked (types, ranges, size) by the one config checker,
    and its tensor shapes."""
    from ..models.squeezenet import SqueezeNetConfig, state_shapes
    if not isinstance(cfg, dict):
        r.fail("header has no model config")
    try:
        config = SqueezeNetConfig.from_dict(cfg)
    except ConfigError as e:
        r.fail(f"bad model config ({first_line(e)})")
    return config, dict(state_shapes(config))


def _plan_layer(r: _Reader, rec, shapes: dict, i: int) -> dict:
    """Validate one layer record; its Huffman streams are decoded later, with all others."""
    if not isinstance(rec, dict):
        r.fail(f"layers[{i}]: not a record")
    name = rec.get("name")
    what = f"layer {name!r}" if isinstance(name, str) else f"layers[{i}]"
    if not isinstance(name, str) or name not in shapes:
        r.fail(f"{what}: not a tensor of the model")
    shape = rec.get("shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 8
            or not all(isinstance(s, int) and 0 < s <= MAX_DIM for s in shape)):
        r.fail(f"{what}: bad shape {shape!r}")
    if tuple(shape) != shapes[name]:
        r.fail(f"{what}: shape {tuple(shape)} but the model needs {shapes[name]}")
    numel = int(np.prod(shape))
    if numel > MAX_NUMEL:
        r.fail(f"{what}: {numel} weights, over the {MAX_NUMEL} limit")
    count = _int(r, rec.get("count"), f"{what}.count", 0, numel)
    codebook = r.floats(rec.get("codebook"), f"{what}.codebook")
    if not 1 <= codebook.size <= MAX_ALPHABET:
        r.fail(f"{what}: codebook of {codebook.size} entries")
    codes, alphabet = _stream(r, rec.get("codes"), f"{what}.codes", count)
    if alphabet != codebook.size:
        r.fail(f"{what}: {alphabet} code symbols for {codebook.size} codebook entries")
    plan = {"what": what, "name": name, "shape": tuple(shape), "numel": numel, "count": count,
            "codebook": codebook, "streams": [codes], "names": [f"{what}.codes"],
            "gap_bits": 4, "group": 1, "zero_code": 0, "sparse": False,
            "bits": rec.get("bits") if isinstance(rec.get("bits"), int) else None}
    pos = rec.get("positions")
    if pos is None:
        if count != numel:
            r.fail(f"{what}: dense order needs {numel} codes, header says {count}")
    else:
        if not isinstance(pos, dict):
            r.fail(f"{what}: bad positions record")
        gap_bits = _int(r, pos.get("gap_bits"), f"{what}.gap_bits", 1, 16)
        group = _int(r, pos.get("group"), f"{what}.group", 1, 2)
        zero_code = _int(r, pos.get("zero_code"), f"{what}.zero_code", 0, codebook.size - 1)
        if pos.get("alphabet") != 1 << (gap_bits * group):
            r.fail(f"{what}: gap alphabet {pos.get('alphabet')!r} != 2**({gap_bits}*{group})")
        gaps, _ = _stream(r, pos, f"{what}.positions", (count + group - 1) // group)
        plan["streams"].append(gaps)
        plan["names"].append(f"{what}.positions")
        plan.update(gap_bits=gap_bits, group=group, zero_code=zero_code, sparse=True)
    bias_rec = rec.get("bias")
    plan["bias_name"], plan["bias"] = None, None
    if bias_rec is not None:
        if not isinstance(bias_rec, dict) or not isinstance(bias_rec.get("name"), str) \
                or bias_rec["name"] not in shapes:
            r.fail(f"{what}: bias is not a tensor of the model")
        plan["bias_name"] = bias_rec["name"]
        plan["bias"] = r.floats(bias_rec.get("data"), f"{what}.bias",
                                int(np.prod(shapes[plan["bias_name"]])))
    return plan


def _finish_layer(r: _Reader, plan: dict, decoded: list) -> tuple[SparseLayer, np.ndarray]:
    """The layer and its dense weight from the decoded symbols of its streams."""
    codes, gaps, count, gap_bits = decoded[0], None, plan["count"], plan["gap_bits"]
    if plan["sparse"]:
        syms = decoded[1]
        if plan["group"] == 2:
            gaps = np.empty(syms.size * 2, dtype=syms.dtype)
            np.bitwise_and(syms, (1 << gap_bits) - 1, out=gaps[0::2])
            np.right_shift(syms, gap_bits, out=gaps[1::2])
            gaps = gaps[:count]
        else:
            gaps = syms
        if count and int(gaps.sum(dtype=np.int64)) + count > plan["numel"]:
            r.fail(f"{plan['what']}: positions run past the {plan['numel']} weights")
    layer = SparseLayer(plan["name"], plan["shape"], plan["codebook"], codes, gaps, gap_bits,
                        plan["zero_code"], plan["bias_name"], plan["bias"], plan["bits"])
    return layer, layer.weight()


def read_sqz(path: str | os.PathLike, data: bytes | None = None) -> tuple[dict, dict[str, np.ndarray], list[SparseLayer]]:
    """(header, tensors, layers) of a ``.sqz`` file, fully validated."""
    r = _Reader(path, data)
    h = r.header
    config, shapes = _check_config(r, h.get("config"))
    layers_rec = h.get("layers")
    dense_rec = h.get("dense", [])
    if not isinstance(layers_rec, list) or not isinstance(dense_rec, list) or len(layers_rec) > MAX_LAYERS:
        r.fail("header has no valid layer list")
    plans, seen = [], set()
    for i, rec in enumerate(layers_rec):
        plan = _plan_layer(r, rec, shapes, i)
        if plan["name"] in seen or (plan["bias_name"] and plan["bias_name"] in seen):
            r.fail(f"layer {plan['name']!r}: stored twice")
        seen.update(k for k in (plan["name"], plan["bias_name"]) if k)
        plans.append(plan)
    # every Huffman stream of the file in one vectorised pass
    streams = [s for p in plans for s in p["streams"]]
    try:
        decoded = huffman.decode_many(streams)
    except huffman.HuffmanError as e:
        r.fail(f"{[n for p in plans for n in p['names']][e.index]}: {e}")
    tensors: dict[str, np.ndarray] = {}
    layers = []
    k = 0
    for plan in plans:
        layer, w = _finish_layer(r, plan, decoded[k:k + len(plan["streams"])])
        k += len(plan["streams"])
        tensors[layer.name] = w
        if layer.bias_name:
            tensors[layer.bias_name] = layer.bias
        layers.append(layer)
    for i, rec in enumerate(dense_rec):
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str) or rec["name"] not in shapes:
            r.fail(f"dense[{i}]: not a tensor of the model")
        name = rec["name"]
        if name in tensors:
            r.fail(f"dense tensor {name!r}: stored twice")
        if rec.get("shape") != list(shapes[name]):
            r.fail(f"dense tensor {name!r}: shape {rec.get('shape')!r}, model needs {list(shapes[name])}")
        tensors[name] = r.floats(rec.get("data"), f"dense tensor {name!r}",
                                 int(np.prod(shapes[name]))).reshape(shapes[name])
    missing = [k for k in shapes if k not in tensors]
    if missing:
        r.fail(f"no weights for {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
    classes = h.get("classes")
    if classes is not None:
        try:
            check_classes(classes, config.num_classes)
        except ConfigError as e:
            r.fail(f"bad class list ({first_line(e)})")
    from . import file_data_config   # the data config: classes, preset and the metadata's fields
    h["_data_config"], h["_extra"] = file_data_config(h.get("metadata"), classes, h.get("preprocess"), r.path)
    h["_config"] = config
    return h, tensors, layers


def load_sqz(path: str | os.PathLike, data: bytes | None = None):
    """Load a ``.sqz`` file into a runnable :class:`~squeezenet.models.SqueezeNet` (eval mode);
    ``data``: the file's bytes already in memory (``path`` then only names it in errors).

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from squeezenet.models import SqueezeNet, SqueezeNetConfig
    >>> from squeezenet.compress.quantize import quantize_model
    >>> from squeezenet.compress.sizing import save_quantized
    >>> m = SqueezeNet(SqueezeNetConfig(stem="small", fires=((8, 16, 16),), pool_after=(0,),
    ...                                 num_classes=3)).eval()
    >>> m.preprocess = "small"
    >>> layers = quantize_model(m, 4)                  # 16 shared values per layer
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_quantized(m, layers, Path(d) / "m.sqz")
    ...     r = load_sqz(Path(d) / "m.sqz")
    >>> x = torch.randn(2, 3, 16, 16)
    >>> r.preprocess, r.training, bool(torch.equal(r(x), m(x)))
    ('small', False, True)
    """
    import torch
    from ..models.squeezenet import skeleton
    h, tensors, _ = read_sqz(path, data)
    model = skeleton(h["_config"], "cpu")   # no random init: every tensor comes from the file
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()},
                          assign=True)
    model.data_config = h["_data_config"]
    model.metadata = {**h["_extra"], "compressed_bytes": len(data) if data is not None else os.path.getsize(path)}
    return model.eval()


def inspect_sqz(path: str | os.PathLike) -> dict:
    """Per-layer bits, density and bytes by part (codebook, codes, positions, bias), header."""
    r = _Reader(path)
    h, tensors, layers = read_sqz(path, r.data)
    rows = []
    tot = {"codebook": 0, "codes": 0, "positions": 0, "bias": 0}
    for rec, layer in zip(h["layers"], layers):
        numel = int(np.prod(layer.shape))
        nz = int(np.count_nonzero(tensors[layer.name]))

        def size(s):
            return 0 if s is None else s["lengths"][1] + s["data"][1]
        row = {"name": layer.name, "shape": list(layer.shape), "bits": rec.get("bits"),
               "centroids": int(layer.codebook.size), "count": rec["count"],
               "density": nz / numel, "codebook": rec["codebook"][1],
               "codes": size(rec["codes"]), "positions": size(rec["positions"]),
               "bias": rec["bias"]["data"][1] if rec["bias"] else 0}
        row["bytes"] = row["codebook"] + row["codes"] + row["positions"] + row["bias"]
        for k in tot:
            tot[k] += row[k]
        rows.append(row)
    dense = sum(rec["data"][1] for rec in h.get("dense", []))
    total = len(r.data)
    header = PREAMBLE.size + (total - PREAMBLE.size - len(r.payload))
    params = sum(v.size for v in tensors.values())
    return {"file": str(path), "bytes": total, "header": header, "dense": dense, **tot,
            "params": int(params), "fp32_bytes": int(params) * 4,
            "ratio_vs_fp32": params * 4 / total, "config": h["config"],
            "classes": len(h["classes"]) if h.get("classes") else None,
            "preprocess": h.get("preprocess"), "metadata": h.get("metadata"), "layers": rows}
