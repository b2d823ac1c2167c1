"""Fuzzing every reader of user files with mutated and hostile inputs.

Each reader (images, model files, sidecars, weights for ``import``, YAML spaces, archives,
class lists...) gets a valid base input made here, then ``cases`` inputs that are either
byte mutations of it (truncation, bit flips, chunk deletion/duplication/insertion) or
structured hostile variants (sizes, nesting, aliases, NaN, links, FIFOs...). A case passes
when the reader returns or raises a one-line :class:`squeezenet.errors.SqueezeNetError`; it
fails on any other exception (a traceback), a multi-line message, a hang (over ``timeout``
seconds) or a memory blow-up (the worker runs under ``RLIMIT_AS`` = its size after the
imports + ``mem_mb``; a ``MemoryError``, or an error that mentions failing to allocate, is a
blow-up even when a reader turned it into one line).

Run it as a script to print the table (one memory-limited worker process per reader)::

    PYTHONPATH=src python tests/fuzz_readers.py --cases 2000

The slow test in ``tests/test_interop_fuzz.py`` runs it and asserts zero failures; its fast
tests run a few cases of every reader in-process to keep the generators working.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SQUEEZENET_SHARED", HERE.parents[0].parent / "shared"))
MEMORY_WORDS = ("memoryerror", "cannot allocate", "can't allocate", "out of memory", "bad_alloc")

# ------------------------------------------------------------------------------ mutations


def mutate(rng: random.Random, data: bytes, head: int | None = None) -> bytes:
    """A byte-level mutation of ``data``: truncation, 1-8 bit flips (within the first ``head``
    bytes when given), a deleted, duplicated or inserted chunk, or random bytes spliced in."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    kind = rng.random()
    b = bytearray(data)
    if kind < 0.2:
        return bytes(b[:rng.randrange(len(b))])
    if kind < 0.65:
        span = min(len(b), head) if head else len(b)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(span)] ^= 1 << rng.randrange(8)
        return bytes(b)
    i = rng.randrange(len(b))
    n = rng.randint(1, max(1, min(len(b) - i, 256)))
    if kind < 0.75:
        del b[i:i + n]
    elif kind < 0.85:
        b[i:i] = b[i:i + n] * rng.randint(2, 50)
    elif kind < 0.95:
        b[i:i] = bytes(rng.randrange(256) for _ in range(n))
    else:
        for j in range(i, min(len(b), i + n)):
            b[j] = rng.choice((0, 0xFF, 0x7F, 0x80))
    return bytes(b)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


#: values a hostile file puts where a number, a name or a list belongs
HOSTILE = [0, -1, 1, 3, 2 ** 31, 2 ** 63, 10 ** 30, 1048577, 2200000, 1e6, 1.5, -0.5, 1e308, True, False, None,
           "", "x", "x" * 5000, "1e6", [], {}, [1, 2, 3], [[1, 1, 1]] * 70, [[10 ** 6] * 3] * 8, {"a": 1},
           [None], ["a", "a"]]
RAW_HOSTILE = ["NaN", "Infinity", "-Infinity", deep_json(5000), deep_json(70), "1e999", "-0"]


def hostile_value(rng: random.Random):
    """A hostile JSON value, as JSON text."""
    if rng.random() < 0.2:
        return rng.choice(RAW_HOSTILE)
    return json.dumps(rng.choice(HOSTILE))


# --------------------------------------------------------------------------- model bases

def tiny_config():
    from squeezenet.models import SqueezeNetConfig
    return SqueezeNetConfig(stem="small", fires=((4, 8, 8), (4, 8, 8)), pool_after=(0,), num_classes=5)


def tiny_model():
    import torch

    from squeezenet.models import SqueezeNet
    torch.manual_seed(0)
    m = SqueezeNet(tiny_config()).eval()
    m.classes = [f"c{i}" for i in range(5)]
    m.preprocess = "small"
    return m


def safetensors_bytes(tensors: dict, header_meta: dict[str, str] | None) -> bytes:
    """A safetensors file written by hand, so a hostile header (a lone surrogate, a value that
    is not a string) can be written too."""
    import torch
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.uint8: "U8", torch.int32: "I32",
              torch.bool: "BOOL"}
    header, body = {}, bytearray()
    for k, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[k] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [len(body), len(body) + len(b)]}
        body += b
    if header_meta is not None:
        header["__metadata__"] = header_meta
    return raw_safetensors(json.dumps(header, ensure_ascii=False), bytes(body))


def raw_safetensors(header: str, body: bytes = b"") -> bytes:
    h = header.encode("utf-8", "surrogatepass")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def clear(p: Path) -> None:
    """Remove whatever is at ``p`` (file, FIFO, link, folder)."""
    if p.is_symlink() or (os.path.lexists(p) and not p.is_dir()):
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def hostile_header(rng: random.Random, meta: dict[str, str]) -> dict[str, str]:
    """``meta`` (a squeezenet header: JSON strings) with one to three fields made hostile:
    a config field, the class list, preprocess/extra, or nesting."""
    meta = dict(meta)
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.55:
            try:
                cfg = json.loads(meta.get("config", "{}"))
            except (ValueError, TypeError, RecursionError):
                cfg = {}
            if not isinstance(cfg, dict):
                cfg = {}
            key = rng.choice(["num_classes", "in_channels", "fires", "pool_after", "stem", "bypass", "dropout",
                              "conv10_padding", "batch_norm", "unknown_key"])
            text = json.dumps(cfg)
            val = hostile_value(rng)
            if key == "fires" and rng.random() < 0.3:
                val = json.dumps([[1, 1, 1]] * rng.choice([65, 1000, 200000]))
            text = text[:-1] + (", " if cfg else "") + json.dumps(key) + ": " + val + "}"
            meta["config"] = text
        elif r < 0.8:
            meta["classes"] = rng.choice([hostile_value(rng), json.dumps(["a"] * 4),
                                          json.dumps([f"c{i}" for i in range(6)]), json.dumps(["c0", "c0", "c1", "c2", "c3"]),
                                          json.dumps(["", "b", "c", "d", "e"]), json.dumps(["a\nb", "b", "c", "d", "e"])])
        elif r < 0.9:
            meta[rng.choice(["preprocess", "extra"])] = hostile_value(rng)
        else:
            meta[rng.choice(["config", "classes", "extra", "format_version"])] = rng.choice(
                [deep_json(100000), "{" * 3000, "not json", "\udcff"])
    return meta


# ------------------------------------------------------------------------------- readers

class Reader:
    """One reader under fuzz: ``setup(tmp)`` makes the base inputs once, ``case(rng, tmp, i)``
    writes case ``i`` and returns the callable that reads it."""

    name = ""

    def setup(self, tmp: Path) -> None:
        pass

    def case(self, rng: random.Random, tmp: Path, i: int) -> Callable[[], object]:
        raise NotImplementedError


class ImageReader(Reader):
    name = "image"

    def setup(self, tmp):
        from PIL import Image
        img = Image.new("RGB", (23, 17))
        img.putdata([(x * 11 % 256, x * 7 % 256, x % 256) for x in range(23 * 17)])
        self.bases = {}
        for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif"),
                         ("WEBP", "webp")):
            b = io.BytesIO()
            img.save(b, fmt)
            self.bases[ext] = b.getvalue()

    @staticmethod
    def png(w: int, h: int, idat: bytes = b"") -> bytes:
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat or zlib.compress(b"\0" * 64)) + \
            chunk(b"IEND", b"")

    @staticmethod
    def bmp(w: int, h: int) -> bytes:
        return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 16,
                                                                               0, 0, 0, 0) + b"\0" * 16

    def case(self, rng, tmp, i):
        from squeezenet.data import read_image
        p = tmp / "case.png"
        clear(p)
        r = rng.random()
        if r < 0.25:
            sides = [0, 1, 2, 63, 64, 65, 8193, 32768, 32769, 50000, 65535, 2 ** 31 - 1]
            w, h = rng.choice(sides), rng.choice(sides)
            p.write_bytes(self.png(w, h) if rng.random() < 0.6 else self.bmp(w, rng.choice([h, -h])))
        elif r < 0.27:
            os.mkfifo(p)
        elif r < 0.28:
            p.mkdir()
        elif r < 0.29:
            p.symlink_to("/dev/zero")
        else:
            ext = rng.choice(sorted(self.bases))
            p.write_bytes(mutate(rng, self.bases[ext], head=rng.choice([None, 64])))
        return lambda: read_image(p)


class SafetensorsReader(Reader):
    name = "safetensors"

    def setup(self, tmp):
        from squeezenet.io import model_metadata
        m = tiny_model()
        self.tensors = m.state_dict()
        self.meta = model_metadata(m)
        self.base = safetensors_bytes(self.tensors, self.meta)

    def case(self, rng, tmp, i):
        import squeezenet
        p = tmp / "m.safetensors"
        r = rng.random()
        if r < 0.45:
            p.write_bytes(safetensors_bytes(self.tensors, hostile_header(rng, self.meta)))
        elif r < 0.55:
            h = json.loads(self.base[8:8 + struct.unpack("<Q", self.base[:8])[0]])
            h["__metadata__"] = rng.choice([{"config": {"a": 1}}, [1], deep_json(200), {"format": 1}])
            if rng.random() < 0.5:
                k = rng.choice([k for k in h if k != "__metadata__"])
                h[k]["shape"] = rng.choice([[10 ** 12], [-1], [True], [2 ** 40, 2 ** 40], "x"])
            text = json.dumps(h)
            if isinstance(h["__metadata__"], str):
                text = text.replace(json.dumps(h["__metadata__"]), h["__metadata__"])
            p.write_bytes(raw_safetensors(text, self.base[8 + struct.unpack("<Q", self.base[:8])[0]:]))
        else:
            p.write_bytes(mutate(rng, self.base, head=rng.choice([None, 600])))
        return lambda: squeezenet.load(p)


class SidecarReader(SafetensorsReader):
    name = "sidecar"

    def case(self, rng, tmp, i):
        import squeezenet
        p = tmp / "w.safetensors"
        if not p.exists():
            p.write_bytes(safetensors_bytes(self.tensors, None))
        enc = {k: (v if k not in ("format", "format_version") else json.dumps(v)) for k, v in self.meta.items()}
        r = rng.random()
        if r < 0.5:   # values are JSON texts; a hostile one may not be JSON at all (the file is then bad JSON)
            enc = hostile_header(rng, enc)
            enc.update({k: json.dumps(v) for k, v in enc.items() if k in ("format", "format_version")
                        and not v.startswith(('"', "[", "{"))})
            text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in enc.items()) + "}"
        elif r < 0.6:
            text = rng.choice(["[1, 2]", "3", "null", '"x"', deep_json(100000), "{" * 5000])
        else:
            text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in enc.items()) + "}"
            text = mutate(rng, text.encode()).decode("latin-1")
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.05:
            data = b"\xff\xfe" + data
        p.with_suffix(".json").write_bytes(data)
        return lambda: squeezenet.load(p)


class SqzReader(Reader):
    name = "sqz"

    def setup(self, tmp):
        from squeezenet.compress.quantize import quantize_model
        from squeezenet.compress.sizing import save_quantized
        m = tiny_model()
        layers = quantize_model(m, 4)
        save_quantized(m, layers, tmp / "base.sqz")
        self.base = (tmp / "base.sqz").read_bytes()

    def rewrite(self, header: str) -> bytes:
        from squeezenet.io.sqz import PREAMBLE
        magic, version, flags, hlen, hraw, crc = PREAMBLE.unpack_from(self.base)
        payload = self.base[PREAMBLE.size + hlen:]
        raw = header.encode("utf-8", "surrogatepass")
        comp = zlib.compress(raw)
        return PREAMBLE.pack(magic, version, flags, len(comp), len(raw), crc) + comp + payload

    def header(self) -> dict:
        from squeezenet.io.sqz import PREAMBLE
        hlen = PREAMBLE.unpack_from(self.base)[3]
        return json.loads(zlib.decompress(self.base[PREAMBLE.size:PREAMBLE.size + hlen]))

    def case(self, rng, tmp, i):
        import squeezenet
        p = tmp / "m.sqz"
        r = rng.random()
        if r < 0.45:
            h = self.header()
            meta = hostile_header(rng, {"config": json.dumps(h["config"]), "classes": json.dumps(h.get("classes"))})
            text = json.dumps({k: v for k, v in h.items() if k not in ("config", "classes")})
            text = text[:-1] + ', "config": ' + meta["config"] + ', "classes": ' + meta["classes"] + "}"
            if rng.random() < 0.3:
                layer = rng.randrange(len(h["layers"]))
                h["layers"][layer][rng.choice(["shape", "count", "codebook", "bias", "positions"])] = \
                    rng.choice(HOSTILE)
                text = json.dumps(h)
            p.write_bytes(self.rewrite(text))
        elif r < 0.5:
            p.write_bytes(self.rewrite(rng.choice([deep_json(100000), deep_json(1000), "[]", "{}", "\udcff"])))
        else:
            p.write_bytes(mutate(rng, self.base))
        return lambda: squeezenet.load(p)


class NetReader(Reader):
    """Deep-Compression ``.net``: a synthetic file of the released layout (not the fixture)."""
    name = "net"

    def setup(self, tmp):
        import numpy as np

        from squeezenet.interop.deep_compression import _layer_specs
        self.specs = _layer_specs()
        rng = np.random.default_rng(0)
        self.layers = []
        for key, caffe, shape, _ in self.specs:
            bits = 8 if "conv" in caffe else 4
            n = min(int(np.prod(shape)), 64)
            cb = rng.standard_normal(1 << bits).astype("<f4")
            cb[0] = 0
            bias = rng.standard_normal(shape[0]).astype("<f4")
            codes = rng.integers(0, 1 << bits, n).astype(np.uint8)
            gaps = rng.integers(0, 16, n).astype(np.uint8)
            self.layers.append((n, bits, cb, bias, codes, gaps))

    def build(self, rng: random.Random, poison: bool) -> bytes:
        import numpy as np
        out = [struct.pack(f"<{len(self.layers)}I", *[l[0] for l in self.layers])]
        target = rng.randrange(len(self.layers)) if poison else -1
        for j, (n, bits, cb, bias, codes, gaps) in enumerate(self.layers):
            cb, bias = cb.copy(), bias.copy()
            if j == target:
                arr = cb if rng.random() < 0.5 else bias
                arr[rng.randrange(1, arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
            out += [cb.tobytes(), bias.tobytes()]
            pack = lambda v: (v[0::2] | (np.append(v, 0)[1::2][:len(v[0::2])] << 4)).astype(np.uint8).tobytes()
            out.append(codes.tobytes() if bits == 8 else pack(codes))
            out.append(pack(gaps))
        return b"".join(out)

    def case(self, rng, tmp, i):
        from squeezenet.interop.importers import import_model
        p = tmp / "m.net"
        r = rng.random()
        p.write_bytes(self.build(rng, poison=True) if r < 0.3 else mutate(rng, self.build(rng, False)))
        return lambda: import_model("deep-compression", [p])


class PthReader(Reader):
    name = "pth"

    def setup(self, tmp):
        import torch

        import squeezenet
        self.sd = squeezenet.create_model("squeezenet1_1").state_dict()
        b = io.BytesIO()
        torch.save(self.sd, b)
        self.base = b.getvalue()

    def case(self, rng, tmp, i):
        import zipfile

        import torch

        from squeezenet.interop.importers import import_model
        p = tmp / "m.pth"
        r = rng.random()
        if r < 0.4:
            sd = dict(self.sd)
            k = rng.choice(sorted(sd))
            kind = rng.randrange(6)
            if kind == 0:
                n = rng.choice([1001, 10 ** 5, 3 * 10 ** 6])
                sd["classifier.1.weight"] = torch.zeros(1).expand(n, 512, 1, 1)
                sd["classifier.1.bias"] = torch.zeros(1).expand(n)
            elif kind == 1:
                t = sd[k].clone().float()
                t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf")])
                sd[k] = t
            elif kind == 2:
                sd[k] = torch.zeros(rng.choice([(1,), (3, 3), (2, 2, 2, 2, 2)]))
            elif kind == 3:
                del sd[k]
            elif kind == 4:
                sd["extra"] = torch.zeros(1).expand(10 ** 9)
            else:
                sd[k] = sd[k].to(rng.choice([torch.int64, torch.bool, torch.float16, torch.uint8]))
            torch.save(sd, p)
        elif r < 0.45:
            with zipfile.ZipFile(io.BytesIO(self.base)) as z, zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as out:
                for info in z.infolist():
                    out.writestr(info.filename, z.read(info.filename))
        elif r < 0.5:
            torch.save(rng.choice([[1, 2], {"a": 1}, torch.zeros(3), {"state_dict": 3}, None]), p)
        else:
            p.write_bytes(mutate(rng, self.base, head=rng.choice([None, 2000])))
        return lambda: import_model("torchvision", [p])


class ZooReader(Reader):
    """ONNX-zoo ``.npy`` weights folder (the shared fixture, one file mutated per case)."""
    name = "npy-zoo"

    def setup(self, tmp):
        src = SHARED / "fixtures/onnx_zoo_squeezenet1.1/weights"
        if not src.is_dir():
            raise FileNotFoundError(src)
        self.dir = tmp / "weights"
        self.dir.mkdir(exist_ok=True)
        self.files = sorted(src.glob("*.npy"))
        for f in self.files:
            (self.dir / f.name).symlink_to(f)
        self.last = None

    def case(self, rng, tmp, i):
        from squeezenet.interop.importers import import_model
        if self.last is not None:
            (self.dir / self.last.name).unlink()
            (self.dir / self.last.name).symlink_to(self.last)
        victim = self.last = rng.choice(self.files)
        target = self.dir / victim.name
        target.unlink()
        data = victim.read_bytes()
        if rng.random() < 0.3:
            hdr = rng.choice(["{'descr': '<f4', 'fortran_order': False, 'shape': (True, 3), }",
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627775, 1099511627775), }",
                              "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                              "{'descr': [('a', '<f4', (1073741824,))], 'fortran_order': False, 'shape': (1,), }",
                              "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
                              "(" * 300 + ")" * 300, "{'descr': '<f4', " + "'x': 1, " * 5000 + "}"])
            h = hdr.encode("latin1")
            data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data[-64:]
        else:
            data = mutate(rng, data, head=rng.choice([None, 128]))
        target.write_bytes(data)
        return lambda: import_model("onnx-zoo", [self.dir])


class CaffeReader(Reader):
    """Caffe: mutated real prototxts (shared fixtures) and an exported caffemodel."""
    name = "caffe"

    def setup(self, tmp):
        import squeezenet
        from squeezenet.interop.caffe import export_caffe
        self.protos = [p.read_bytes() for p in (SHARED / "fixtures/caffe/squeezenet_v1.1/deploy.prototxt",
                                                SHARED / "fixtures/caffe/squeezenet_v1.0/deploy.prototxt")
                       if p.is_file()]
        if not self.protos:
            raise FileNotFoundError(SHARED / "fixtures/caffe")
        m = squeezenet.create_model("squeezenet1_1").eval()
        proto, weights = export_caffe(m, tmp / "exported")
        self.proto, self.weights = proto, weights.read_bytes()

    def case(self, rng, tmp, i):
        from squeezenet.interop.importers import import_model
        r = rng.random()
        if r < 0.5:
            p = tmp / "f.prototxt"
            if rng.random() < 0.2:
                p.write_text(rng.choice(["layer {" * 5000, 'input_dim: 1000000 ' * 4 + 'input: "data"',
                                         "layer { name: \"c\" type: \"Convolution\" convolution_param { "
                                         "num_output: 4000000000 kernel_size: 3 } bottom: \"data\" top: \"c\" }"]))
            else:
                p.write_bytes(mutate(rng, rng.choice(self.protos)))
            model = tmp / "f.caffemodel"
            if not model.exists():
                model.write_bytes(self.weights)
            return lambda: import_model("caffe", [p, model])
        p = tmp / "g.caffemodel"
        p.write_bytes(mutate(rng, self.weights, head=rng.choice([None, 4096])))
        return lambda: import_model("caffe", [self.proto, p])


class SpaceReader(Reader):
    name = "yaml-space"

    def setup(self, tmp):
        from importlib import resources
        self.base = (resources.files("squeezenet.explore") / "spaces" / "paper.yaml").read_bytes()

    def case(self, rng, tmp, i):
        from squeezenet.explore.space import load_space
        from squeezenet.models import VARIANTS
        p = tmp / "s.yaml"
        r = rng.random()
        if r < 0.4:
            param = rng.choice(["base_e", "incr_e", "pct_3x3", "freq", "sr"])
            val = rng.choice([".nan", ".inf", "-.inf", "1e6", "1000000", "1e300", "-1", "0", "[]", "{}", "*x",
                              "!!binary AAAA", "2.5", "10000000000000000000000", "'x'"])
            spec = rng.choice([f"{{values: [{val}]}}", f"{{low: 8, high: {val}, step: 8}}",
                               f"{{low: 8, high: 16, step: {val}}}", f"{{low: {val}, high: 16, step: 1}}"])
            text = f"version: 1\nmodel: squeezenet_small\nparams:\n  {param}: {spec}\n"
        elif r < 0.5:
            lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
            for k in "bcdefghi":
                prev = chr(ord(k) - 1)
                lines.append(f"{k}: &{k} [" + ",".join([f"*{prev}"] * 9) + "]")
            text = rng.choice(["\n".join(lines), "a: " + "[" * 5000 + "]" * 5000, "a: " + "{b: " * 500 + "1" + "}" * 500,
                               "- 1\n" * 200000, "version: 1\nparams: " + "x" * (2 << 20)])
        else:
            text = None
            p.write_bytes(mutate(rng, self.base))
        if text is not None:
            p.write_bytes(text.encode() if rng.random() > 0.05 else b"\xff\xfe" + text.encode())

        def read():
            space = load_space(p)
            point = {n: rng.choice(par.values) for n, par in space.params.items()}
            meta, bypass = space.to_meta(point)
            return VARIANTS[space.model].replace(fires=tuple(meta.fires()), bypass=bypass)   # checked, not built
        return read


class ArchiveReader(Reader):
    name = "tar.gz"

    def setup(self, tmp):
        from PIL import Image
        self.images = []
        for i in range(2):
            b = io.BytesIO()
            Image.new("RGB", (12, 10), (40 * i, 9, 9)).save(b, "PNG")
            self.images.append(b.getvalue())
        self.base = self.build([(f"test/{c}/{i}.png", "file", self.images[i]) for c in "ab" for i in range(2)])
        self.heavy = {}

    @staticmethod
    def build(members, compress=True) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
            for name, kind, data in members:
                ti = tarfile.TarInfo(name)
                if kind == "file":
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
                else:
                    ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE,
                               "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[kind]
                    ti.linkname = data.decode() if kind in ("sym", "lnk") else ""
                    tf.addfile(ti)
        raw = buf.getvalue()
        return gzip.compress(raw, 6, mtime=0) if compress else raw

    def case(self, rng, tmp, i):
        from squeezenet.data import build_dataset
        p = tmp / "c.tar.gz"
        r = rng.random()
        img = self.images[0]
        if r < 0.35:   # many members (kind 4) costs seconds per case (~10,000 files are written first)
            kind = rng.choices(range(9), weights=[1, 1, 1, 1, 0.1, 0.5, 1, 1, 1])[0]
            if kind == 0:
                members = [("test/a/x.png", "file", img), (rng.choice(["../evil.png", "/abs.png", "test/../../e.png",
                                                                        "C:/x.png"]), "file", img)]
            elif kind == 1:
                members = [("test/a/x.png", "file", img),
                           ("test/a/l.png", rng.choice(["sym", "lnk"]), rng.choice([b"/etc/passwd", b"../../x"]))]
            elif kind == 2:
                members = [("test/a/x.png", "file", img), ("test/a/f.png", rng.choice(["fifo", "chr"]), b"")]
            elif kind == 3:
                members = [("/".join(["d"] * rng.choice([33, 200])) + "/x.png", "file", img)]
            elif kind in (4, 5):   # many members; a gzip bomb (a member of zeros, 1000:1)
                key = (kind, rng.randrange(2))
                if key not in self.heavy:
                    self.heavy[key] = self.build(
                        [(f"test/a/{j}.png", "file", b"") for j in range((11000, 20000)[key[1]])] if kind == 4
                        else [("test/a/zeros.png", "file", b"\0" * ((70, 100)[key[1]] << 20))])
                p.write_bytes(self.heavy[key])
                return self.read(p)
            elif kind == 6:   # archives nested in archives
                inner = self.base
                for _ in range(rng.choice([2, 5, 50])):
                    inner = self.build([("test.tar.gz", "file", inner)])
                p.write_bytes(inner)
                return lambda: build_dataset(p, "test", preset="small", preload=False)
            elif kind == 7:   # gzip trailer (CRC-32, length) flipped
                b = bytearray(self.base)
                b[-rng.randint(1, 8)] ^= 1 << rng.randrange(8)
                p.write_bytes(bytes(b))
                return self.read(p)
            else:
                members = [("test/a/x.png", "file", mutate(rng, img))] * 2
            p.write_bytes(self.build(members, compress=rng.random() < 0.9))
        else:
            p.write_bytes(mutate(rng, self.base, head=rng.choice([None, 1024])))
        return self.read(p)

    @staticmethod
    def read(p):
        from squeezenet.data import Skipped, build_dataset

        def run():
            ds = build_dataset(p, "test", preset="small", preload=False)
            return [ds[j] for j in range(len(ds)) if not isinstance(ds[j], Skipped)]
        return run


class ClassListReader(Reader):
    name = "class-list"

    def setup(self, tmp):
        self.base = "".join(f"n{i:08d} thing {i}, other\n" for i in range(50)).encode()

    def case(self, rng, tmp, i):
        from squeezenet.data import read_class_list, read_labels
        p = tmp / "classes.txt"
        clear(p)
        r = rng.random()
        if r < 0.3:
            p.write_bytes(rng.choice([bytes(range(256)) * 40, b"a\nb\na\n", b"\n \n", b"x",
                                      b"a\x00b\nc\n", "\u00e9\u4e2d\n".encode(), b"\xef\xbb\xbfa\nb\n",
                                      ("c " * 2000 + "\n").encode(), b"a\rb\rc"]))
            if p.read_bytes() == b"x":
                os.truncate(p, 17 << 20)   # a 17 MB (sparse) file: over the size limit
        elif r < 0.32:
            os.mkfifo(p)
        else:
            p.write_bytes(mutate(rng, self.base))
        fn = read_class_list if rng.random() < 0.7 else read_labels

        return lambda: fn(p)


class FolderReader(Reader):
    """Image folders with hostile entries: FIFOs named like images, link loops, links out."""
    name = "image-folder"

    def case(self, rng, tmp, i):
        from PIL import Image

        from squeezenet.data import Skipped, build_dataset
        root = tmp / "d"
        clear(root)
        classes = [root / c for c in ("a", "b", "c")[:rng.randint(1, 3)]]
        for c in classes:
            (c / "sub").mkdir(parents=True)
            Image.new("RGB", (9, 9)).save(c / "0.png")
        for _ in range(rng.randint(1, 6)):
            c = rng.choice(classes)
            where = rng.choice([c, c / "sub", root])
            name = where / f"x{rng.randrange(1000)}{rng.choice(['.png', '.jpg', ''])}"
            if name.exists() or name.is_symlink():
                continue
            kind = rng.randrange(6)
            if kind == 0:
                os.mkfifo(name)
            elif kind == 1:
                name.symlink_to(rng.choice(["..", ".", "../..", "/", str(root), "/dev/zero", "missing"]))
            elif kind == 2:
                name.symlink_to(rng.choice(["..", "../.."]), target_is_directory=True)
            elif kind == 3:
                name.write_bytes(b"\x89PNG\r\n" + bytes(rng.randrange(256) for _ in range(30)))
            elif kind == 4:
                name.mkdir()
            else:
                name.symlink_to(c / "0.png")

        def run():
            ds = build_dataset(root, "test", preset="small", preload=rng.random() < 0.5)
            return [ds[j] for j in range(len(ds)) if not isinstance(ds[j], Skipped)]
        return run


class OnnxReader(Reader):
    """Foreign ``.onnx`` files as ``eval``/``predict``/``bench`` open and run them: byte
    mutations of an exported tiny model, and structured hostile graphs (control flow, ops that
    allocate from values, custom domains, huge declared initializers, odd output ranks, class
    lists that do not match, hostile metadata)."""
    name = "onnx"

    def setup(self, tmp):
        from squeezenet.interop.onnx_export import to_onnx_bytes
        self.base = to_onnx_bytes(tiny_model(), input_size=32)

    def _structured(self, rng):
        import onnx
        from onnx import TensorProto, helper
        m = onnx.load_from_string(self.base)
        g = m.graph
        r = rng.random()
        if r < 0.25:   # a node of an op no classifier uses (or a custom domain), in place of one
            op = rng.choice(["Loop", "Scan", "If", "ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad",
                             "NonMaxSuppression", "RandomNormal", "custom"])
            n = g.node[rng.randrange(len(g.node))]
            if op == "custom":
                n.domain = "com.evil"
            else:
                n.op_type = op
        elif r < 0.45:   # an initializer declaring far more than it holds
            t = g.initializer[rng.randrange(len(g.initializer))]
            del t.dims[:]
            t.dims.extend(rng.choice([[1 << 32], [4, 1 << 30], [2 ** 62], [-1, 8], [1 << 20, 1 << 20], [0]]))
            if rng.random() < 0.3:
                t.data_type = rng.choice([0, 99, TensorProto.STRING, TensorProto.DOUBLE])
        elif r < 0.6:    # output of another rank
            out = g.output[0].type.tensor_type.shape
            del out.dim[:]
            for d in rng.choice([[1], [1, 5, 1, 1], [], [1, 5, 7], [2 ** 40, 5]]):
                out.dim.add().dim_value = d
        elif r < 0.8:    # metadata that does not describe the graph
            props = {p.key: p.value for p in m.metadata_props}
            key = rng.choice(["classes", "preprocess", "config", "class_names", "format"])
            props[key] = rng.choice([hostile_value(rng), json.dumps(["a", "b"]), json.dumps([f"c{i}" for i in range(9)]),
                                     json.dumps({"preset": "nope"}), deep_json(5000)])
            del m.metadata_props[:]
            helper.set_model_props(m, props)
        elif r < 0.9:    # no input, two outputs, a local function
            c = rng.random()
            if c < 0.4:
                del g.input[:]
            elif c < 0.7:
                g.output.append(g.output[0])
            else:
                m.functions.append(helper.make_function("evil", "f", ["x"], ["y"],
                                                        [helper.make_node("Identity", ["x"], ["y"])],
                                                        [helper.make_opsetid("", 17)]))
        else:            # data kept in a file beside it
            t = g.initializer[rng.randrange(len(g.initializer))]
            t.data_location = TensorProto.EXTERNAL
            t.external_data.add(key="location", value=rng.choice(["/etc/passwd", "../x", "w.bin"]))
        return m.SerializeToString()

    def case(self, rng, tmp, i):
        import torch

        from squeezenet.runtime.onnx_model import load_onnx
        p = tmp / "m.onnx"
        clear(p)
        p.write_bytes(self._structured(rng) if rng.random() < 0.6 else mutate(rng, self.base))

        def read():
            model = load_onnx(p, preprocess=rng.choice([None, "small"]))
            model(torch.zeros(2, 3, 32, 32))
        return read


class _Items:
    classes = [f"c{i}" for i in range(5)]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        import torch
        return torch.full((3, 32, 32), float(i) / 8), i % 5


class TrainStateReader(Reader):
    """``train --resume``'s training-state file, damaged or hand-edited: hostile values in its
    JSON header, odd tensor keys and shapes, byte mutations."""
    name = "train_state"

    def setup(self, tmp):
        from squeezenet.io import read_safetensors
        from squeezenet.train import TrainConfig, Trainer
        self.cfg = TrainConfig(epochs=1, batch_size=4, accum_steps=1, lr=0.01, max_steps=1, progress=False)
        Trainer(tiny_model().train(), self.cfg, _Items(), out_dir=tmp / "base").fit()
        self.path = tmp / "base" / "train_state.safetensors"
        self.base = self.path.read_bytes()
        self.tensors, self.meta = read_safetensors(self.path)

    def case(self, rng, tmp, i):
        from squeezenet.train import Trainer
        p = tmp / "run" / "train_state.safetensors"
        p.parent.mkdir(exist_ok=True)
        clear(p)
        r = rng.random()
        if r < 0.5:    # a hostile value where a header field belongs (or the field gone)
            info = json.loads(self.meta["state"])
            values = {}
            for j in range(rng.randint(1, 3)):
                key = rng.choice(sorted(info) + ["rng.python", "rng.numpy", "optimizer.param_groups",
                                                 "optimizer.state", "model.config"])
                head, _, sub = key.partition(".")
                if rng.random() < 0.2:
                    info.pop(head, None)
                    continue
                mark = f"@@{j}@@"
                values[mark] = hostile_value(rng)
                if sub and head == "rng" and isinstance(info.get("rng"), list) and info["rng"] \
                        and isinstance(info["rng"][0], dict):
                    info["rng"][0][sub] = mark
                elif sub and isinstance(info.get(head), dict):
                    info[head][sub] = mark
                else:
                    info[head] = mark
            text = json.dumps(info)
            for mark, val in values.items():
                text = text.replace(json.dumps(mark), val)
            meta = {**self.meta, "state": text}
            p.write_bytes(safetensors_bytes(self.tensors, meta))
        elif r < 0.7:  # odd tensor keys, shapes and dtypes
            import torch
            tensors = dict(self.tensors)
            k = rng.choice(sorted(tensors))
            c = rng.random()
            if c < 0.3:
                tensors[rng.choice(["weird", "rng.x.torch", "rng.9.torch", "optim.a.b", "model.", "optim.0"])] = \
                    torch.zeros(2)
            elif c < 0.6:
                tensors[k] = torch.zeros(rng.choice([(0,), (3,), (2, 2), (1000,)]), dtype=tensors[k].dtype)
            elif c < 0.8:
                del tensors[k]
            else:
                tensors[k] = tensors[k].to(rng.choice([torch.float16, torch.int64, torch.float32]))
            p.write_bytes(safetensors_bytes(tensors, self.meta))
        else:
            p.write_bytes(mutate(rng, self.base, head=rng.choice([None, 4000])))
        return lambda: Trainer(tiny_model().train(), self.cfg, _Items(), out_dir=p.parent).resume(p)


READERS: dict[str, type[Reader]] = {r.name: r for r in (
    ImageReader, FolderReader, SafetensorsReader, SidecarReader, SqzReader, NetReader, PthReader, ZooReader,
    CaffeReader, SpaceReader, ArchiveReader, ClassListReader, OnnxReader, TrainStateReader)}


# --------------------------------------------------------------------------------- running

class Hang(BaseException):
    pass


def run_reader(name: str, cases: int, seed: int, tmp: Path, timeout: float = 20.0, log=None) -> dict:
    """Run ``cases`` cases of reader ``name`` in this process; {"reader", "tried", "refused",
    "failures", "examples", "seconds"} (``tried``: cases run; a setup that needs a missing
    fixture gives ``tried == 0`` and ``skipped``)."""
    reader = READERS[name]()
    tmp.mkdir(parents=True, exist_ok=True)
    old_cache = os.environ.get("SQUEEZENET_CACHE")
    os.environ["SQUEEZENET_CACHE"] = str(tmp / "cache")   # archives unpack here (emptied after each case)
    try:
        return _run(reader, name, cases, seed, tmp, timeout, log)
    finally:
        if old_cache is None:
            os.environ.pop("SQUEEZENET_CACHE", None)
        else:
            os.environ["SQUEEZENET_CACHE"] = old_cache


def _run(reader: Reader, name: str, cases: int, seed: int, tmp: Path, timeout: float, log) -> dict:
    from squeezenet.errors import SqueezeNetError
    out = {"reader": name, "tried": 0, "refused": 0, "failures": 0, "examples": [], "seconds": 0.0}
    try:
        reader.setup(tmp)
    except FileNotFoundError as e:
        out["skipped"] = f"fixture missing: {e}"
        return out
    rng = random.Random(f"{name}/{seed}")

    def on_alarm(signum, frame):
        raise Hang()
    old = signal.signal(signal.SIGALRM, on_alarm)
    t0 = time.perf_counter()
    try:
        for i in range(cases):
            case_rng = random.Random(rng.random())
            problem = None
            try:
                read = reader.case(case_rng, tmp, i)
            except Exception as e:   # noqa: BLE001  a bug of this harness: reported, never hidden
                read, problem = None, f"generator error: {type(e).__name__}: {str(e)[:200]}"
            try:
                if read is None:
                    raise StopIteration
                signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    read()
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except StopIteration:
                pass
            except Hang:
                problem = f"hang (over {timeout:g} s)"
            except SqueezeNetError as e:
                msg = str(e)
                if not msg.strip() or "\n" in msg.strip():
                    problem = f"multi-line error: {msg[:200]!r}"
                elif any(w in msg.lower() for w in MEMORY_WORDS):
                    problem = f"memory blow-up behind a one-line error: {msg[:200]}"
                out["refused"] += 1
            except MemoryError:
                problem = "memory blow-up (MemoryError)"
            except Exception as e:   # noqa: BLE001 (anything else is a traceback)
                problem = f"traceback: {type(e).__name__}: {str(e)[:200]}"
            out["tried"] += 1
            if problem:
                out["failures"] += 1
                if len(out["examples"]) < 5:
                    out["examples"].append(f"case {i}: {problem}")
                if log:
                    log(f"{name} case {i}: {problem}")
            cache = tmp / "cache"
            if cache.exists():
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        signal.signal(signal.SIGALRM, old)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def worker(name: str, cases: int, seed: int, tmp: Path, mem_mb: int, timeout: float) -> dict:
    """:func:`run_reader` under ``RLIMIT_AS`` = this process's size now + ``mem_mb``."""
    import numpy  # noqa: F401  (the imports a reader needs count before the limit)
    import torch
    torch.set_num_threads(1)
    import PIL.Image  # noqa: F401
    import safetensors.torch  # noqa: F401
    import yaml  # noqa: F401

    import squeezenet  # noqa: F401
    import squeezenet.interop.caffe  # noqa: F401
    limit = _vm_size() + (mem_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return run_reader(name, cases, seed, tmp, timeout, log=lambda m: print(m, file=sys.stderr, flush=True))


def run_all(readers: list[str], cases: int, seed: int = 0, mem_mb: int = 1024, timeout: float = 20.0,
            tmp: Path | None = None, log=print) -> list[dict]:
    """Every reader in its own memory-limited worker process (:func:`_run_worker`)."""
    import tempfile
    rows = []
    base = Path(tmp or tempfile.mkdtemp(prefix="sqz-fuzz-"))
    try:
        for name in readers:
            rows.append(_run_worker(name, cases, seed, mem_mb, timeout, base, log))
    finally:
        if tmp is None:
            shutil.rmtree(base, ignore_errors=True)
    return rows


def _run_worker(name: str, cases: int, seed: int, mem_mb: int, timeout: float, base: Path, log) -> dict:
    """One reader in a worker process (see :func:`worker`); a worker that dies counts all its
    cases as failures."""
    out_file = base / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--cases", str(cases),
           "--seed", str(seed), "--mem-mb", str(mem_mb), "--timeout", str(timeout), "--tmp", str(base / name),
           "--result", str(out_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=cases * timeout + 600)
    if out_file.is_file():
        row = json.loads(out_file.read_text())
    else:
        row = {"reader": name, "tried": cases, "refused": 0, "failures": cases,
               "examples": [f"worker died (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"],
               "seconds": round(time.perf_counter() - t0, 1)}
    if log:
        log(f"{name}: {row['tried']} cases, {row['failures']} failures ({row['seconds']} s)"
            + (f" [{row['skipped']}]" if row.get("skipped") else ""))
    shutil.rmtree(base / name, ignore_errors=True)
    return row


def table(rows: list[dict]) -> str:
    lines = [f"{'reader':<14} {'cases':>7} {'refused':>8} {'failures':>9} {'seconds':>8}"]
    for r in rows:
        lines.append(f"{r['reader']:<14} {r['tried']:>7} {r['refused']:>8} {r['failures']:>9} {r['seconds']:>8}"
                     + (f"  (skipped: {r['skipped']})" if r.get("skipped") else ""))
    lines.append(f"{'total':<14} {sum(r['tried'] for r in rows):>7} {sum(r['refused'] for r in rows):>8} "
                 f"{sum(r['failures'] for r in rows):>9} {sum(r['seconds'] for r in rows):>8.1f}")
    for r in rows:
        for ex in r["examples"]:
            lines.append(f"  {r['reader']}: {ex}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2000, help="cases per reader (default 2000)")
    ap.add_argument("--readers", default=",".join(READERS), help=f"comma-separated (default all: {', '.join(READERS)})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-mb", type=int, default=1024, help="memory a worker may grow by (RLIMIT_AS), MiB")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        row = worker(args.worker, args.cases, args.seed, Path(args.tmp), args.mem_mb, args.timeout)
        Path(args.result).write_text(json.dumps(row))
        return 0
    names = [n.strip() for n in args.readers.split(",") if n.strip()]
    unknown = [n for n in names if n not in READERS]
    if unknown:
        ap.error(f"unknown reader {unknown[0]!r} (known: {', '.join(READERS)})")
    rows = run_all(names, args.cases, args.seed, args.mem_mb, args.timeout, log=lambda m: print(m, file=sys.stderr))
    print(table(rows))
    return 1 if any(r["failures"] for r in rows) else 0



# ------------------------------------------------------------- shared by the hostile-input tests

@contextmanager
def within(seconds: int = 30):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""
    def hang(signum, frame):
        raise AssertionError(f"hung for over {seconds} s")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def refused(fn, *needles, kind=None) -> str:
    """``fn()`` raises a one-line ``kind`` (default :class:`SqueezeNetError`) whose message
    holds every needle, within 30 s."""
    import pytest
    from squeezenet.errors import SqueezeNetError
    with within():
        with pytest.raises(kind or SqueezeNetError) as e:
            fn()
    msg = str(e.value)
    assert "\n" not in msg.strip(), msg
    for n in needles:
        assert n in msg, msg
    return msg

if __name__ == "__main__":
    sys.exit(main())
