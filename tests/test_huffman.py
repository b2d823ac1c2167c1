"""Canonical Huffman: optimal lengths, canonical codes, vectorised round trips, corrupt streams."""
import numpy as np
import pytest

from squeezenet.io import huffman as H


def test_hand_computed_code():
    # frequencies 5,2,1,1 -> lengths 1,2,3,3; canonical codes 0, 10, 110, 111
    lengths = H.code_lengths(np.array([5, 2, 1, 1]))
    assert lengths.tolist() == [1, 2, 3, 3]
    assert H.canonical_codes(lengths).tolist() == [0b0, 0b10, 0b110, 0b111]
    data, nbits = H.encode(np.array([0, 1, 2, 3, 0]), lengths)
    assert nbits == 1 + 2 + 3 + 3 + 1
    assert data == bytes([0b01011011, 0b10000000])


@pytest.mark.parametrize("alphabet", [1, 2, 3, 16, 257, 4096])
def test_round_trip(alphabet):
    rng = np.random.default_rng(alphabet)
    x = rng.geometric(0.1, size=20000) % alphabet
    lengths = H.code_lengths(np.bincount(x, minlength=alphabet))
    data, nbits = H.encode(x, lengths)
    assert np.array_equal(H.decode(data, nbits, x.size, lengths), x)
    # within 1 bit/symbol of the order-0 entropy (Huffman's bound)
    p = np.bincount(x) / x.size
    p = p[p > 0]
    assert nbits / x.size <= -(p * np.log2(p)).sum() + 1
    assert np.array_equal(H.unpack_lengths(H.pack_lengths(lengths), alphabet), lengths)


def test_length_limit_keeps_a_prefix_code():
    freqs = np.array([2 ** i for i in range(30)])  # Fibonacci-like: optimal depth 29
    lengths = H.code_lengths(freqs)
    assert lengths.max() <= H.MAX_LEN
    H.check_lengths(lengths)
    x = np.repeat(np.arange(30), 3)
    data, nbits = H.encode(x, lengths)
    assert np.array_equal(H.decode(data, nbits, x.size, lengths), x)


def test_corrupt_streams_raise():
    lengths = np.array([1, 2, 2])
    data, nbits = H.encode(np.array([0, 1, 2, 0]), lengths)
    with pytest.raises(H.HuffmanError):
        H.decode(data, nbits, 5, lengths)          # too few bits for 5 symbols
    with pytest.raises(H.HuffmanError):
        H.decode(data, nbits, 3, lengths)          # bits left over
    with pytest.raises(H.HuffmanError):
        H.decode(data, nbits + 100, 4, lengths)    # more bits than bytes
    with pytest.raises(H.HuffmanError):
        H.decode(data, nbits, 4, np.array([1, 1, 1]))  # over-subscribed table
    # an incomplete table (code "11" unassigned) hit by the stream
    with pytest.raises(H.HuffmanError):
        H.decode(bytes([0b11000000]), 2, 1, np.array([1, 2, 0]))


def test_round_trip_across_block_sizes():
    # the decoder chains blocks of 2**K symbols; counts around every block size and stream
    # lengths that are not a whole number of bytes must all decode exactly
    rng = np.random.default_rng(7)
    for count in [1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1023, 1025, 70001]:
        x = rng.geometric(0.3, size=count) % 37
        lengths = H.code_lengths(np.bincount(x, minlength=37))
        data, nbits = H.encode(x, lengths)
        assert np.array_equal(H.decode(data, nbits, count, lengths), x), count
        if count > 1:   # one symbol short: the stream has bits left over
            with pytest.raises(H.HuffmanError):
                H.decode(data, nbits, count - 1, lengths)


# --------------------------------------------------------------- the lockstep decoder
def reference_decode(data, nbits, count, lengths):
    """Bit by bit: the obviously right canonical Huffman decoder (slow; the oracle)."""
    lengths = np.asarray(lengths)
    H.check_lengths(lengths)
    codes = H.canonical_codes(lengths)
    table = {(int(l), int(c)): s for s, (l, c) in enumerate(zip(lengths, codes)) if l}
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    if nbits > bits.size:
        raise H.HuffmanError("short")
    out, code, n = [], 0, 0
    for b in bits[:nbits].tolist():
        code, n = code << 1 | b, n + 1
        if (n, code) in table:
            out.append(table[(n, code)])
            code, n = 0, 0
        elif n >= H.MAX_LEN:
            raise H.HuffmanError("invalid code")
    if n or len(out) != count:
        raise H.HuffmanError("count")
    return np.array(out, dtype=np.int64)


def _stream(x, alphabet):
    lengths = H.code_lengths(np.bincount(x, minlength=alphabet))
    data, nbits = H.encode(x, lengths)
    return data, nbits, x.size, lengths


def _sample_streams(rng):
    """Streams the fast path finds hard: one symbol, all the same, one-length codes (never
    resynchronise), near one-length codes, 15-bit codes, odd bit counts, lane-size counts."""
    out = []
    for count in [1, 2, 3, 7, 31, 32, 33, 100, 257, 1000, 4099]:
        out.append(rng.geometric(0.2, size=count) % 40)
    out.append(np.zeros(500, dtype=np.int64))                       # one symbol: length-1 code
    out.append(np.full(333, 17))                                    # all the same, big alphabet
    out.append(rng.integers(0, 64, size=5000))                      # ~one length (6 bits)
    out.append(rng.integers(0, 256, size=3001))                     # ~one length (8 bits)
    x = rng.integers(0, 256, size=6000)                             # 8 bits except a few 7/9
    x[: 300] = 5
    out.append(x)
    out.append(rng.permutation(np.repeat(np.arange(16), 2 ** np.arange(16))))  # 15-bit codes
    out.append(rng.geometric(0.02, size=20000) % 1000)              # long codes, big alphabet
    return out


@pytest.fixture
def lockstep_always(monkeypatch):
    """Small batches normally go to decode_doubling: force the lockstep decoder."""
    monkeypatch.setattr(H, "SMALL_BATCH", 0)


@pytest.mark.parametrize("scratch", [0, H.SCRATCH_BYTES])
def test_lockstep_matches_reference_on_hard_streams(monkeypatch, lockstep_always, scratch):
    monkeypatch.setattr(H, "SCRATCH_BYTES", scratch)      # 0: fresh work arrays every call
    H.clear_scratch()
    rng = np.random.default_rng(11)
    xs = _sample_streams(rng)
    streams = [_stream(x, int(x.max()) + 1 + k % 3) for k, x in enumerate(xs)]
    assert any(np.ptp(s[3][s[3] > 0]) == 0 and s[3].max() > 1 for s in streams)  # a one-length code
    assert max(int(s[3].max()) for s in streams) == H.MAX_LEN
    assert {s[1] % 8 for s in streams} != {0}                        # odd bit counts
    got = H.decode_many(streams)                                    # all at once
    for x, s, g in zip(xs, streams, got):
        assert g.dtype == np.int32 and np.array_equal(g, x)
        assert np.array_equal(reference_decode(*s), x)
        assert np.array_equal(H.decode(*s), x)                     # one at a time
        assert np.array_equal(H.decode_doubling(*s), x)


def test_lockstep_empty_and_single_streams(lockstep_always):
    one = _stream(np.array([3]), 4)
    empty = (b"", 0, 0, np.array([1, 0, 0, 0]))
    got = H.decode_many([empty, one, empty])
    assert [g.tolist() for g in got] == [[], [3], []]
    assert H.decode_many([]) == []


@pytest.mark.parametrize("overlap,extra", [(1, 0), (1, 3), (2, 40), (8, 1)])
def test_lockstep_slow_resynchronisation_paths(monkeypatch, lockstep_always, overlap, extra):
    """Tiny overlaps force the continuation pass and the decode_doubling fallback."""
    monkeypatch.setattr(H, "OVERLAP", overlap)
    monkeypatch.setattr(H, "EXTRA_STEPS", extra)
    monkeypatch.setattr(H, "MIN_LANE_SYMBOLS", 8)
    fallbacks = []
    doubling = H.decode_doubling
    monkeypatch.setattr(H, "decode_doubling", lambda *a: fallbacks.append(1) or doubling(*a))
    rng = np.random.default_rng(overlap * 100 + extra)
    xs = _sample_streams(rng)
    streams = [_stream(x, int(x.max()) + 1) for x in xs]
    for x, g in zip(xs, H.decode_many(streams)):
        assert np.array_equal(g, x)
    if extra == 0:
        assert fallbacks        # lanes left unsettled: those streams went to decode_doubling


@pytest.mark.parametrize("budget", [0.01, 0.15, 0.3, 1.0])
@pytest.mark.parametrize("extra", [0, 300])
def test_lockstep_step_budget(monkeypatch, lockstep_always, budget, extra):
    """Main passes cut short (lanes still before their cut, possibly every lane unsettled and
    every stream sent to the fallback) terminate and decode exactly."""
    monkeypatch.setattr(H, "LANE_FACTOR", 0.0)              # lanes of MIN_LANE_SYMBOLS
    monkeypatch.setattr(H, "BUDGET", budget)
    monkeypatch.setattr(H, "EXTRA_STEPS", extra)
    rng = np.random.default_rng(3)
    xs = [rng.geometric(0.2, size=4000) % 40, rng.integers(0, 256, size=3000)]
    streams = [_stream(x, int(x.max()) + 1) for x in xs]
    for x, g in zip(xs, H.decode_many(streams)):
        assert np.array_equal(g, x)


@pytest.mark.parametrize("small_batch", [0, H.SMALL_BATCH])
def test_lockstep_differential_fuzz(monkeypatch, small_batch):
    """Bit flips, truncations and wrong counts: the fast decoder agrees with the oracle
    (same symbols, or both reject); in a batch, the error names the first bad stream.
    Run with the lockstep decoder forced, and with the default small-batch path."""
    monkeypatch.setattr(H, "SMALL_BATCH", small_batch)
    rng = np.random.default_rng(5)
    base = [_stream(rng.geometric(p, size=n) % a, a)
            for p, n, a in [(0.3, 300, 8), (0.05, 900, 256), (0.5, 120, 3), (0.1, 2000, 40)]]
    # an incomplete code (one symbol of three used): invalid windows exist
    base.append((b"\x00\x00", 16, 16, np.array([1, 0, 0])))
    agree = rejected = 0
    for trial in range(400):
        k = int(rng.integers(len(base)))
        data, nbits, count, lengths = base[k]
        data = bytearray(data)
        kind = trial % 4
        if kind == 0 and data:
            for j in rng.integers(len(data), size=rng.integers(1, 4)):
                data[j] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            nbits = int(rng.integers(0, nbits + 1))
            data = data[:(nbits + 7) // 8]
        elif kind == 2:
            count = max(0, count + int(rng.integers(-3, 4)))
        else:
            data[-1] ^= 1 << int(rng.integers(8)) if data else 0
        s = (bytes(data), nbits, count, lengths)
        try:
            want = reference_decode(*s)
        except H.HuffmanError:
            want = None
        others = [base[(k + 1) % len(base)], base[(k + 2) % len(base)]]
        try:
            got = H.decode_many([others[0], s, others[1]])
        except H.HuffmanError as e:
            assert want is None and e.index == 1, (trial, kind)
            rejected += 1
            continue
        assert want is not None and np.array_equal(got[1], want), (trial, kind)
        assert all(np.array_equal(g, reference_decode(*o)) for g, o in zip(got[::2], others))
        agree += 1
    assert agree > 50 and rejected > 100


def test_code_runs_is_the_decode_table():
    rng = np.random.default_rng(2)
    for alphabet in [1, 2, 5, 256, 3000]:
        x = rng.geometric(0.05, size=5000) % alphabet
        lengths = H.code_lengths(np.bincount(x, minlength=alphabet))
        entries, runs, L = H.code_runs(lengths)
        table = np.repeat(entries, runs)
        sym, ln, L2 = H.decode_table(lengths)
        assert L == L2 and table.size == 1 << L
        assert np.array_equal(table & 31, np.where(ln == 0, 16, ln))
        assert np.array_equal((table >> 5)[ln > 0], sym[ln > 0])


def test_lockstep_threads_keep_their_own_work_arrays(lockstep_always):
    """Work arrays are reused per thread: concurrent decodes do not share them."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(9)
    jobs = [[_stream(rng.geometric(p, size=n) % 50, 50) for _ in range(3)]
            for p, n in [(0.1, 20000), (0.3, 15000), (0.05, 25000), (0.2, 18000)]] * 2
    want = [[reference_decode(*s) for s in job] for job in jobs]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(H.decode_many, jobs))
    for w, g in zip(want, got):
        assert all(np.array_equal(a, b) for a, b in zip(w, g))
    H.clear_scratch()
    assert all(np.array_equal(a, b) for a, b in zip(want[0], H.decode_many(jobs[0])))
