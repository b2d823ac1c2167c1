"""The .sqz container: round trips, sparse/dense storage, and a seeded fuzz of bad files."""
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch

import squeezenet
from conftest import shared_path
from squeezenet.io import huffman, sqz
from squeezenet.errors import FormatError
from squeezenet.models import SqueezeNet, SqueezeNetConfig

TINY = SqueezeNetConfig(stem="small", fires=((4, 8, 8), (4, 8, 8)), pool_after=(0,), num_classes=5)


def tiny_layers(seed=0, bits=3, density=0.4):
    """Random weight-shared sparse layers for every conv of the TINY model."""
    rng = np.random.default_rng(seed)
    sd = SqueezeNet(TINY).state_dict()
    layers = []
    for k, v in sd.items():
        if not k.endswith("weight"):
            continue
        numel = v.numel()
        pos = np.flatnonzero(rng.random(numel) < density)
        codebook = np.concatenate([[0.0], rng.normal(size=2 ** bits)]).astype(np.float32)
        codes = rng.integers(1, 2 ** bits + 1, size=pos.size)
        gaps, codes = sqz.sparse_entries(pos, codes, 2, 0)
        layers.append(sqz.SparseLayer(k, tuple(v.shape), codebook, codes, gaps, gap_bits=2,
                                      bias_name=k[:-6] + "bias", bias=rng.normal(size=v.shape[0]).astype(np.float32),
                                      bits=bits))
    return layers


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("sqz") / "tiny.sqz"
    sqz.write_sqz(p, TINY, tiny_layers(), classes=list("abcde"), preprocess="small",
                  metadata={"note": "test"})
    return p


def test_round_trip(tiny_file):
    model = squeezenet.load(tiny_file)
    layers = tiny_layers()
    sd = model.state_dict()
    for l in layers:
        assert torch.equal(sd[l.name], torch.from_numpy(l.weight()))
        assert torch.equal(sd[l.bias_name], torch.from_numpy(l.bias))
    assert model.classes == list("abcde") and model.preprocess == "small"
    assert model.metadata["note"] == "test" and not model.training
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_sparse_entries_fillers():
    gaps, codes = sqz.sparse_entries(np.array([0, 3, 40]), np.array([7, 8, 9]), 3, 0)
    # 40 - 3 - 1 = 36 zeros = 4 fillers of 8 positions + gap 4
    assert gaps.tolist() == [0, 2, 7, 7, 7, 7, 4] and codes.tolist() == [7, 8, 0, 0, 0, 0, 9]
    assert (np.cumsum(gaps + 1) - 1)[[0, 1, 6]].tolist() == [0, 3, 40]


def test_dense_order_when_smaller(tmp_path):
    layers = tiny_layers(density=1.0)   # nothing pruned: one code per weight, no positions
    info = sqz.write_sqz(tmp_path / "d.sqz", TINY, layers)
    h, tensors, _ = sqz.read_sqz(tmp_path / "d.sqz")
    assert all(rec["positions"] is None for rec in h["layers"]) and info["parts"]["positions"] == 0
    for l in layers:
        assert np.array_equal(tensors[l.name], l.weight())


@pytest.mark.parametrize("bits,density,gap_bits", [(1, 0.05, 2), (3, 0.4, 2), (5, 0.7, 4), (8, 1.0, 3),
                                                   (2, 0.0, 6)])
def test_encode_layer_sums_to_the_written_file(tmp_path, bits, density, gap_bits):
    """encode_layer's bytes per layer + the header + the dense tensors = the file's size,
    exactly, across bit widths, sparsities (dense order, one or two gaps a symbol, empty
    layers) and gap widths; sqz_size says the same without writing, and the file's layout
    is the one encode_layer decided."""
    rng = np.random.default_rng(bits)
    layers = []
    for l in tiny_layers(seed=bits, bits=bits, density=density):
        pos = np.flatnonzero(l.weight().ravel())
        gaps, codes = sqz.sparse_entries(pos, rng.integers(1, l.codebook.size, size=pos.size), gap_bits, 0)
        own_bias = l.bias_name != "classifier.1.bias"      # that one is stored dense
        layers.append(sqz.SparseLayer(l.name, l.shape, l.codebook, codes, gaps, gap_bits, 0,
                                      l.bias_name if own_bias else None, l.bias if own_bias else None, bits))
    dense = {"classifier.1.bias": rng.normal(size=5).astype(np.float32)}
    info = sqz.write_sqz(tmp_path / "m.sqz", TINY, layers, dense, classes=list("abcde"))
    size = (tmp_path / "m.sqz").stat().st_size
    encs = [sqz.encode_layer(l) for l in layers]
    assert sum(e.bytes for e in encs) + info["parts"]["header"] + 4 * 5 == size == info["bytes"]
    assert [sqz.layer_bytes(l) for l in layers] == [e.bytes for e in encs]
    assert sqz.sqz_size(TINY, layers, dense, classes=list("abcde")) == info
    h, _, _ = sqz.read_sqz(tmp_path / "m.sqz")
    for rec, e in zip(h["layers"], encs):
        assert rec["count"] == e.count and (rec["positions"] is None) == (e.positions is None)
        assert rec["codes"]["data"][1] + rec["codes"]["lengths"][1] == e.codes.bytes
        if e.positions is not None:
            assert rec["positions"]["group"] == e.positions.group
    if density == 1.0:
        assert all(e.positions is None for e in encs)
    if density == 0.05:
        assert all(e.positions is not None for e in encs)


def test_inspect_parts(tiny_file, cli):
    info = sqz.inspect_sqz(tiny_file)
    assert info["bytes"] == tiny_file.stat().st_size
    assert info["bytes"] == (info["header"] + info["codebook"] + info["codes"] + info["positions"]
                             + info["bias"] + info["dense"])
    assert all(0.2 < r["density"] < 0.6 and r["bits"] == 3 for r in info["layers"])
    code, out, err = cli("inspect", tiny_file)
    assert code == 0 and "features.0.weight" in out and "codebook" in out
    code, out, err = cli("inspect", tiny_file, "--json")
    assert code == 0 and json.loads(out)["bytes"] == info["bytes"]


def _rewrite(header: dict, payload: bytes, **pre) -> bytes:
    raw = json.dumps(header).encode()
    hz = zlib.compress(raw)
    fields = dict(magic=sqz.MAGIC, version=sqz.VERSION, flags=0, hlen=len(hz), hraw=len(raw),
                  crc=zlib.crc32(payload))
    fields.update(pre)
    return sqz.PREAMBLE.pack(*fields.values()) + hz + payload


def _split(data: bytes):
    _, _, _, hlen, _, _ = sqz.PREAMBLE.unpack_from(data)
    start = sqz.PREAMBLE.size + hlen
    return json.loads(zlib.decompress(data[sqz.PREAMBLE.size:start])), data[start:]


HOSTILE_VALUES = [10 ** 12, 2 ** 31, -1, 0, 1, 3, "x", None, [], [0, 10 ** 9], [-4, 4], [10 ** 9, 4],
                  [0, 3], 1.5, True, {"a": 1}, [10 ** 6] * 3, [2 ** 20] * 4, [1, 1, 1, 1]]
LAYER_PATHS = [("shape",), ("count",), ("bits",), ("codebook",), ("codes", "alphabet"), ("codes", "nbits"),
               ("codes", "lengths"), ("codes", "data"), ("positions", "gap_bits"),
               ("positions", "group"), ("positions", "zero_code"), ("positions", "alphabet"),
               ("positions", "nbits"), ("positions", "data"), ("positions", "lengths"), ("positions",),
               ("bias", "name"), ("bias", "data"), ("bias",), ("name",), ("codes",)]
TOP_PATHS = [("config", "num_classes"), ("config", "fires"), ("config", "in_channels"), ("config",),
             ("classes",), ("layers",), ("dense",), ("format",), ("config", "stem"), ("config", "bogus")]


def _hostile_cases(data: bytes, rng, n):
    header, payload = _split(data)
    for _ in range(n):
        h = json.loads(json.dumps(header))
        kind = rng.integers(6)
        if kind <= 2:   # one layer field
            rec = h["layers"][rng.integers(len(h["layers"]))]
            path = LAYER_PATHS[rng.integers(len(LAYER_PATHS))]
            for key in path[:-1]:
                if not isinstance(rec.get(key), dict):
                    rec[key] = {}
                rec = rec[key]
            rec[path[-1]] = HOSTILE_VALUES[rng.integers(len(HOSTILE_VALUES))]
        elif kind == 3:  # one top-level field
            path = TOP_PATHS[rng.integers(len(TOP_PATHS))]
            obj = h
            for key in path[:-1]:
                obj = obj[key]
            obj[path[-1]] = HOSTILE_VALUES[rng.integers(len(HOSTILE_VALUES))]
        elif kind == 4:  # drop or duplicate a layer
            i = rng.integers(len(h["layers"]))
            if rng.random() < 0.5:
                del h["layers"][i]
            else:
                h["layers"].append(h["layers"][i])
        else:            # corrupt the payload but keep the checksum right (reaches the decoders)
            p = bytearray(payload)
            for j in rng.integers(len(p), size=rng.integers(1, 4)):
                p[j] ^= 1 << rng.integers(8)
            yield _rewrite(h, bytes(p))
            continue
        yield _rewrite(h, payload)
    # hostile preambles
    for fields in [dict(hlen=2 ** 32 - 1), dict(hraw=2 ** 32 - 1), dict(version=9), dict(flags=1),
                   dict(magic=b"PK\x03\x04\0\0\0\0"), dict(crc=0), dict(hraw=3)]:
        yield _rewrite(header, payload, **fields)


def _expect_format_error(path, data):
    try:
        sqz.read_sqz(path, data)   # everything load_sqz checks, without the file system
    except FormatError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return True
    return False  # a corruption that still decodes (e.g. another valid Huffman stream)


def test_fuzz_truncated_flipped_hostile(tiny_file, tmp_path):
    """Thousands of bad files: only FormatError, never a crash or a large allocation."""
    rng = np.random.default_rng(1234)
    data = tiny_file.read_bytes()
    bad = tmp_path / "bad.sqz"
    errors = 0
    for n in rng.integers(0, len(data), size=700):           # truncated
        errors += _expect_format_error(bad, data[:n])
    for _ in range(800):                                     # bit flips (1-3 bits)
        b = bytearray(data)
        for j in rng.integers(len(b), size=rng.integers(1, 4)):
            b[j] ^= 1 << rng.integers(8)
        errors += _expect_format_error(bad, bytes(b))
    assert errors == 1500   # every truncation and flip is caught (checksums)
    hostile = 0
    sqz.read_sqz(tiny_file)   # warm up: first-call imports and caches are not the file's doing
    for i, case in enumerate(_hostile_cases(data, rng, 700)):
        if i == 0:
            tracemalloc.start()   # traced for a sample only: tracing triples the run time
        hostile += _expect_format_error(bad, case)
        if i == 200:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 32 << 20, f"peak allocation {peak} bytes"
    assert hostile > 450


def test_hostile_messages(tiny_file, tmp_path):
    header, payload = _split(tiny_file.read_bytes())
    bad = tmp_path / "bad.sqz"
    cases = []
    h = json.loads(json.dumps(header)); h["layers"][0]["shape"] = [2 ** 20] * 4
    cases.append((h, "bad shape|shape"))
    h = json.loads(json.dumps(header)); h["layers"][0]["codebook"] = [0, 10 ** 12]
    cases.append((h, "run past the payload"))
    h = json.loads(json.dumps(header)); h["layers"][0]["count"] = 10 ** 12
    cases.append((h, "count"))
    h = json.loads(json.dumps(header)); h["config"]["num_classes"] = 10 ** 9
    cases.append((h, "num_classes=1000000000: must be an integer"))
    for h, msg in cases:
        bad.write_bytes(_rewrite(h, payload))
        with pytest.raises(FormatError, match=msg):
            squeezenet.load(bad)
    bad.write_bytes(tiny_file.read_bytes()[:-1])
    with pytest.raises(FormatError, match="checksum"):
        squeezenet.load(bad)
    bad.write_bytes(b"hello")
    with pytest.raises(FormatError, match="too short"):
        squeezenet.load(bad)


def test_inspect_bad_inputs(tmp_path, cli):
    code, _, err = cli("inspect", tmp_path / "missing.sqz")
    assert code == 2 and "no such file" in err
    (tmp_path / "x.safetensors").write_bytes(b"0")
    code, _, err = cli("inspect", tmp_path / "x.safetensors")
    assert code == 2 and ".sqz" in err
    (tmp_path / "junk.sqz").write_bytes(b"\x89SQZ\r\n\x1a\n" + b"\0" * 40)
    code, _, err = cli("inspect", tmp_path / "junk.sqz")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "junk.sqz" in err


def _layer_streams(path):
    """Every Huffman stream of a .sqz as (what, (data, nbits, count, lengths))."""
    r = sqz._Reader(path)
    out = []
    for rec in r.header["layers"]:
        for key in ("codes", "positions"):
            s = rec[key]
            if s is None:
                continue
            count = rec["count"] if key == "codes" else -(-rec["count"] // s["group"])
            lengths = huffman.unpack_lengths(np.frombuffer(r.part(s["lengths"], key), np.uint8), s["alphabet"])
            out.append((f"{rec['name']}.{key}", (np.frombuffer(r.part(s["data"], key), np.uint8),
                                                  s["nbits"], count, lengths)))
    return out


@pytest.fixture(scope="module")
def dc_file(tmp_path_factory):
    from squeezenet.interop.deep_compression import net_to_sqz
    p = tmp_path_factory.mktemp("dc") / "dc.sqz"
    net_to_sqz(shared_path("fixtures/deep_compression/compressed_SqueezeNet.net"), p)
    return p


def test_dc_streams_decode_like_the_doubling_decoder(dc_file):
    """All 35 streams of the Deep-Compression file in one pass == one by one, the robust way."""
    streams = _layer_streams(dc_file)
    assert len(streams) == 35
    fast = huffman.decode_many([s for _, s in streams])
    for (what, s), got in zip(streams, fast):
        assert np.array_equal(got, huffman.decode_doubling(*s)), what


@pytest.mark.parametrize("overlap", [1, 4])
def test_dc_weights_bit_identical_on_every_decoder_path(dc_file, monkeypatch, overlap):
    """Short overlaps send many lanes through the continuation pass (and streams to the
    fallback): the weights stay bit-identical to the .net reader's."""
    from squeezenet.interop.deep_compression import read_net
    monkeypatch.setattr(huffman, "OVERLAP", overlap)
    monkeypatch.setattr(huffman, "EXTRA_STEPS", 8 * overlap)
    _, tensors, _ = sqz.read_sqz(dc_file)
    for l in read_net(shared_path("fixtures/deep_compression/compressed_SqueezeNet.net")):
        assert np.array_equal(tensors[l.name], l.weight()), l.name
        assert np.array_equal(tensors[l.name[:-len("weight")] + "bias"], l.bias)


def test_corrupt_stream_error_names_its_layer(tiny_file, tmp_path):
    """Streams are decoded together; the error still names the stream that is bad."""
    header, payload = _split(tiny_file.read_bytes())
    bad = tmp_path / "bad.sqz"
    cases = [(i, key) for i in range(len(header["layers"])) for key in ("codes", "positions")
             if header["layers"][i][key] is not None]
    assert len(cases) >= 3
    for i, key in cases[:2] + cases[-1:]:
        h = json.loads(json.dumps(header))
        h["layers"][i][key]["nbits"] -= 1          # one bit short: last code runs past
        off, n = h["layers"][i][key]["data"]
        h["layers"][i][key]["data"] = [off, (h["layers"][i][key]["nbits"] + 7) // 8]
        bad.write_bytes(_rewrite(h, payload))
        with pytest.raises(FormatError, match=f"{h['layers'][i]['name']}'.{key}"):
            squeezenet.load(bad)
