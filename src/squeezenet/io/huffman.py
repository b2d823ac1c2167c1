"""Canonical Huffman coding with vectorised (numpy) encode and decode.

Codes are canonical: a code is fully described by the code length of each symbol, which is
all a file stores (4 bits per symbol, lengths 1..15, 0 = unused). Encoding and decoding never
loop over symbols in Python:

* encode: every symbol's code bits are laid out with ``np.repeat`` and packed with
  ``np.packbits``;
* decode (:func:`decode_many`, :func:`decode`): all streams of a file at once, cut into
  lanes that are decoded in lockstep, one symbol per lane per numpy step, and stitched
  where they resynchronise (see the comment above :data:`LANE_FACTOR`): ``O(symbols)``
  numpy element operations in ``O(sqrt(symbols))`` Python steps;
* :func:`decode_doubling`, the robust path for small batches and for streams the lockstep
  decoder cannot settle: a ``2**L``-entry table gives, for *every* bit position, the symbol
  and code length that would start there; the chain of real symbol starts is found in
  blocks of ``B = 2**K`` symbols by ``K`` pointer doublings. ``O(bits * K + count)`` numpy
  work in ``O(count / B + B)`` Python steps.

>>> import numpy as np
>>> x = np.array([0, 0, 0, 1, 2, 0, 1, 0], dtype=np.int64)
>>> lengths = code_lengths(np.bincount(x, minlength=3))
>>> data, nbits = encode(x, lengths)
>>> decode(data, nbits, len(x), lengths).tolist()
[0, 0, 0, 1, 2, 0, 1, 0]
"""
from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

import numpy as np

#: Longest code; a decode table has 2**MAX_LEN entries and lengths fit in a nibble.
MAX_LEN = 15


class HuffmanError(ValueError):
    """A corrupt table or stream (the caller turns it into a FormatError naming the file)."""


def code_lengths(freqs: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code length per symbol (0 for unused symbols), at most ``max_len`` bits.

    The heap loop runs over the alphabet, not the data. When the optimal tree is deeper
    than ``max_len``, frequencies are flattened (halved, keeping them >= 1) and the tree is
    rebuilt: a little longer on average, never invalid.

    >>> code_lengths(np.array([5, 1, 1, 0])).tolist()
    [1, 2, 2, 0]
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    used = np.flatnonzero(freqs > 0)
    lengths = np.zeros(freqs.size, dtype=np.uint8)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size > (1 << max_len):
        raise ValueError(f"{used.size} symbols cannot have codes of at most {max_len} bits")
    f = freqs[used].copy()
    while True:
        depth = np.zeros(used.size, dtype=np.int64)
        # heap of (weight, tiebreak, node); leaves 0..m-1, internal nodes get parent links
        m = used.size
        parent = np.full(2 * m - 1, -1, dtype=np.int64)
        heap = [(int(w), i, i) for i, w in enumerate(f)]
        heapq.heapify(heap)
        nxt = m
        while len(heap) > 1:
            wa, _, a = heapq.heappop(heap)
            wb, _, b = heapq.heappop(heap)
            parent[a] = parent[b] = nxt
            heapq.heappush(heap, (wa + wb, nxt, nxt))
            nxt += 1
        # depth of each node: parents are created after children, so walk top-down
        node_depth = np.zeros(2 * m - 1, dtype=np.int64)
        for node in range(2 * m - 3, -1, -1):
            node_depth[node] = node_depth[parent[node]] + 1
        depth = node_depth[:m]
        if depth.max() <= max_len:
            lengths[used] = depth
            return lengths
        f = np.maximum(f >> 1, 1)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code value of each symbol (symbols sorted by (length, symbol))."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    used = np.flatnonzero(lengths > 0)
    if used.size == 0:
        return codes
    order = used[np.lexsort((used, lengths[used]))]
    ls = lengths[order]
    # code_k = (code_{k-1} + 1) << (l_k - l_{k-1}); closed form via the Kraft prefix sum:
    # code_k = sum_{j<k} 2^(l_k - l_j)  (exact integers because l is sorted ascending)
    maxl = int(ls.max())
    kraft = np.concatenate([[0], np.cumsum(1 << (maxl - ls[:-1]))])  # in units of 2^-maxl
    codes[order] = kraft >> (maxl - ls)
    return codes


def check_lengths(lengths: np.ndarray, max_len: int = MAX_LEN) -> None:
    """Raise :class:`HuffmanError` unless ``lengths`` describe a prefix code."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > max_len):
        raise HuffmanError(f"code lengths outside 0..{max_len}")
    used = lengths[lengths > 0]
    if used.size == 0:
        raise HuffmanError("empty code table")
    if int(np.sum(1 << (max_len - used))) > (1 << max_len):
        raise HuffmanError("code lengths over-subscribe the code space (Kraft sum > 1)")


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Encode ``symbols`` with the canonical code of ``lengths``: (bytes, number of bits)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if symbols.size == 0:
        return b"", 0
    sl = lengths[symbols]
    if sl.min() <= 0:
        raise ValueError("a symbol has no code (zero length)")
    codes = canonical_codes(lengths)[symbols]
    total = int(sl.sum())
    starts = np.cumsum(sl) - sl
    which = np.repeat(np.arange(symbols.size), sl)
    within = np.arange(total) - starts[which]
    bits = ((codes[which] >> (sl[which] - 1 - within)) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes(), total


def decode_table(lengths: np.ndarray, max_len: int = MAX_LEN) -> tuple[np.ndarray, np.ndarray, int]:
    """(symbol, length) for every ``L``-bit window, L = longest code; length 0 = invalid."""
    lengths = np.asarray(lengths, dtype=np.int64)
    check_lengths(lengths, max_len)
    L = int(lengths.max())
    used = np.flatnonzero(lengths > 0)
    codes = canonical_codes(lengths)
    span = 1 << (L - lengths[used])
    sym = np.zeros(1 << L, dtype=np.int32)
    ln = np.zeros(1 << L, dtype=np.int32)
    first = codes[used] << (L - lengths[used])
    idx = np.repeat(first, span) + (np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span))
    sym[idx] = np.repeat(used, span)
    ln[idx] = np.repeat(lengths[used], span)
    return sym, ln, L


def decode(data: bytes | np.ndarray, nbits: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``count`` symbols (int32) from the first ``nbits`` bits of ``data`` (vectorised).

    Raises :class:`HuffmanError` on any inconsistency (invalid code, stream too short or
    too long); the work and memory are bounded by ``len(data)``, never by ``count``.
    """
    return decode_many([(data, nbits, count, lengths)])[0]


# ------------------------------------------------------------------ lockstep decoding
#
# Every stream is cut into lanes of about M symbols (sized by the stream's mean
# code length, nbits / count), and all lanes of all streams are decoded at once, one symbol
# per lane per numpy step, each from its first bit. That start is a guess (a code may
# straddle the cut), but Huffman codes resynchronise: a wrong start soon lands on a true
# symbol boundary, after which the two decodings agree. So each lane decodes on past its
# cut (OVERLAP steps, more for the few that need it) and hands over to the lane whose path
# it meets first (a bitmap of every position each lane visited before its cut); the symbols
# of a lane before the point where the previous lane met it are dropped. Following the
# hand-overs from each stream's first lane (which starts on a true boundary) gives exactly
# the sequential decoding. One-length codes never resynchronise, so their cuts are put on
# code boundaries. A stream whose lanes do not settle within the step budget goes to
# decode_doubling. Work: O(symbols) numpy element operations in O(M) Python steps, where
# M ~ sqrt(symbols) balances the Python steps against the per-lane overlap; memory O(bits).

#: Symbols per lane M = sqrt(LANE_FACTOR * all symbols), within these bounds: fewer lanes
#: cost more Python steps, more lanes more overlap (tuned on the Deep-Compression file:
#: 600k symbols, M ~ 300).
LANE_FACTOR, MIN_LANE_SYMBOLS, MAX_LANE_SYMBOLS = 0.15, 32, 512
#: Shortest lane in bits (more than the longest code).
MIN_LANE_BITS = 64
#: Steps each lane decodes past its cut in the main pass (resynchronisation takes a few).
OVERLAP = 48
#: The main pass stops after BUDGET x max(M, mean lane bits) steps (lanes still before
#: their cut then go on with the others below).
BUDGET = 4
#: Steps, beyond the main pass, for the few lanes that have not met the next lane's path
#: (or reached their cut) by then; a stream with one still unsettled goes to decode_doubling.
EXTRA_STEPS = 256
#: Small batches go stream by stream through decode_doubling (fewer numpy calls): when
#: 40 * streams + symbols / 20 < SMALL_BATCH (a cost model fitted on this machine's timings).
SMALL_BATCH = 500
#: Table length of an invalid window: the lane moves on; on the true path it is an error.
_BAD = 16
#: Bytes of lockstep work arrays each thread keeps for its next call (about 35 bytes per
#: byte of Huffman data: 18 MB for the Deep-Compression file): fresh memory costs a page
#: fault per 4 KiB, which was 40 % of a decode of that file here. 0 keeps nothing.
SCRATCH_BYTES = 64 << 20
_scratch = threading.local()


def _work(name: str, size: int, dtype) -> np.ndarray:
    """A 1-D work array of ``size`` items, contents undefined, reused across calls (per
    thread) while all kept arrays fit in SCRATCH_BYTES. Never returned to callers."""
    pool = _scratch.__dict__.setdefault("pool", {})
    nbytes = size * np.dtype(dtype).itemsize
    buf = pool.get(name)
    if buf is None or buf.nbytes < nbytes:
        pool.pop(name, None)
        buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        if sum(b.nbytes for b in pool.values()) + buf.nbytes <= SCRATCH_BYTES:
            pool[name] = buf
    return buf[:nbytes].view(dtype)


def clear_scratch() -> None:
    """Free this thread's decoder work arrays."""
    _scratch.__dict__.pop("pool", None)


def code_runs(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The decode table of ``lengths`` as runs: (entries, run lengths, L).

    The table has an entry ``symbol << 5 | length`` for every ``L``-bit window (L = longest
    code). Canonical codes sorted by (length, symbol) fill the window space in order, each
    over ``2**(L - length)`` windows, so the table is ``np.repeat(entries, runs)``; windows
    past the last code (an incomplete code) hold the invalid entry 16.

    >>> e, r, L = code_runs(np.array([2, 1, 0, 2]))
    >>> L, np.repeat(e, r).tolist()       # 1 -> "0", 0 -> "10", 3 -> "11"
    (2, [33, 33, 2, 98])
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    check_lengths(lengths)
    L = int(lengths.max())
    order = np.argsort(np.where(lengths > 0, lengths, MAX_LEN + 1), kind="stable")
    order = order[:int(np.count_nonzero(lengths))]
    ls = lengths[order]
    runs = np.int64(1) << (L - ls)
    entries = order << 5 | ls
    rest = (1 << L) - int(runs.sum())
    if rest:
        entries, runs = np.append(entries, _BAD), np.append(runs, rest)
    return entries, runs, L


def decode_many(streams) -> list[np.ndarray]:
    """Decode several streams in one pass: ``[(data, nbits, count, lengths), ...]``.

    Returns one int32 symbol array per stream. A bad stream raises :class:`HuffmanError`
    whose ``index`` is that stream's position in ``streams``. Work and memory are bounded
    by the bytes of ``data`` present, never by ``count``.

    >>> x, y = np.array([0, 1, 1, 2]), np.array([3, 3, 0])
    >>> lx, ly = code_lengths(np.bincount(x)), code_lengths(np.bincount(y))
    >>> [s.tolist() for s in decode_many([(*encode(x, lx), 4, lx), (*encode(y, ly), 3, ly)])]
    [[0, 1, 1, 2], [3, 3, 0]]
    """
    out: list = [None] * len(streams)
    batch = []                      # _Stream records for the lockstep decoder
    for i, (data, nbits, count, lengths) in enumerate(streams):
        try:
            buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
            if nbits < 0 or nbits > buf.size * 8:
                raise HuffmanError(f"stream of {nbits} bits does not fit in {buf.size} bytes")
            if count < 0 or count > nbits:
                raise HuffmanError(f"{count} symbols cannot come from {nbits} bits")
            entries, runs, L = code_runs(lengths)
            if count == 0:
                if nbits:
                    raise HuffmanError("bits left over after the last symbol")
                out[i] = np.zeros(0, dtype=np.int32)
                continue
        except HuffmanError as e:
            e.index = i
            raise
        lengths = np.asarray(lengths)
        used = lengths[lengths > 0]
        fixed = int(used[0]) if used.min() == used.max() else 0
        batch.append(_Stream(i, buf[:(nbits + 7) // 8], nbits, count, lengths, entries, runs, L, fixed))
    # a table costs 2**L entries whatever the data: when the tables outweigh the bits (many
    # tiny streams with long codes), streams whose table is larger than their data go one
    # by one through decode_doubling, which holds one table at a time
    if sum(1 << b.L for b in batch) > (1 << 20) + 4 * sum(b.nbits for b in batch):
        for b in [b for b in batch if (1 << b.L) > 4 * b.nbits + 64]:
            out[b.index] = _doubling(b).astype(np.int32)
        batch = [b for b in batch if out[b.index] is None]
    if batch and 40 * len(batch) + sum(b.count for b in batch) / 20 < SMALL_BATCH:
        for b in batch:
            out[b.index] = _doubling(b).astype(np.int32)
        batch = []
    if batch:
        out_batch = _decode_lockstep(batch)
        for b, syms in zip(batch, out_batch):
            out[b.index] = syms if syms is not None else _doubling(b).astype(np.int32)
    return out


@dataclass
class _Stream:
    index: int
    data: np.ndarray
    nbits: int
    count: int
    lengths: np.ndarray
    entries: np.ndarray     # the decode table as runs (see code_runs)
    runs: np.ndarray
    L: int
    fixed: int          # the one code length when all codes have it, else 0


def _doubling(b: _Stream) -> np.ndarray:
    try:
        return decode_doubling(b.data, b.nbits, b.count, b.lengths)
    except HuffmanError as e:
        e.index = b.index
        raise


def _decode_lockstep(streams: list[_Stream]) -> list[np.ndarray | None]:
    """Symbols of every stream (None for a stream left to :func:`decode_doubling`)."""
    ns = len(streams)
    byte0 = np.zeros(ns + 1, dtype=np.int64)
    np.cumsum([b.data.size for b in streams], out=byte0[1:])
    nbits = np.array([b.nbits for b in streams], dtype=np.int64)
    # lanes: cut each stream into q nearly equal lanes of about S bits, S ~ M mean codes
    # (cuts on code boundaries for one-length codes)
    M = int(np.clip(np.sqrt(LANE_FACTOR * sum(b.count for b in streams)), MIN_LANE_SYMBOLS,
                    MAX_LANE_SYMBOLS))
    count = np.array([b.count for b in streams], dtype=np.int64)
    fixed = np.array([b.fixed for b in streams], dtype=np.int64)
    S = np.clip(M * nbits // count, MIN_LANE_BITS, MAX_LEN * M)
    q = np.where(nbits >= 2 * MIN_LANE_BITS, -(-nbits // S), 1)
    sid = np.repeat(np.arange(ns), q)
    k = np.arange(sid.size) - np.repeat(np.cumsum(q) - q, q)      # lane number in its stream
    cut = k * nbits[sid] // q[sid]
    f = fixed[sid]
    cut -= np.where(f > 0, cut % np.maximum(f, 1), 0)
    start = 8 * byte0[sid] + cut
    C = start.size
    send = 8 * byte0[sid] + nbits[sid]                  # each lane's stream end
    stop = np.append(start[1:], 0)                      # each lane's cut: the next lane's start
    last = np.append(sid[1:] != sid[:-1], True)         # last lane of its stream
    stop[last] = send[last]
    budget = int(BUDGET * max(M, 8 * int(byte0[-1]) // C))   # steps: T x C stays O(bits)
    pad = 2 * (budget + OVERLAP + EXTRA_STEPS) + 8      # bytes a lane can run past the data
    dt = np.uint32 if 8 * (byte0[-1] + pad) < (1 << 32) else np.uint64

    # 32-bit big-endian word at every byte; one table for all streams
    raw = _work("raw", int(byte0[-1]) + pad, np.uint8)
    for k, b in enumerate(streams):
        raw[byte0[k]:byte0[k + 1]] = b.data
    raw[byte0[-1]:] = 0
    w32 = _work("w32", raw.size - 3, dt)
    for r in range(4):
        w32[r::4] = np.frombuffer(raw.data, dtype=">u4", count=len(range(r, w32.size, 4)), offset=r)
    tbase = np.zeros(ns, dtype=np.int64)
    np.cumsum([1 << b.L for b in streams[:-1]], out=tbase[1:])
    # entries symbol << 5 | length fit 16 bits for alphabets up to 2048 (half the memory)
    et = np.uint16 if max(b.lengths.size for b in streams) <= 2048 else dt
    table = _work("table", int(tbase[-1]) + (1 << streams[-1].L), et)
    for k, b in enumerate(streams):
        table[tbase[k]:tbase[k] + (1 << b.L)] = np.repeat(b.entries, b.runs)
    L = np.array([b.L for b in streams])
    tb = tbase[sid].astype(dt)
    sh = (32 - L[sid]).astype(dt)
    start_d, stop_d, send_d = start.astype(dt), stop.astype(dt), send.astype(dt)

    # main pass: every lane decodes up to its cut, then OVERLAP steps on (the last 1 % of
    # lanes to reach their cut, and lanes slow to meet a path, go on alone below).
    # P[c, t] is lane c's position before step t, E[c, t] the table entry there
    # (step-major: a step writes one contiguous row)
    height = M + M // 2 + OVERLAP + 8
    P = _work("P", height * C, dt).reshape(height, C)
    E = _work("E", height * C, et).reshape(height, C)
    P[0] = start_d
    byte, shift, win, ln = (np.empty(C, dtype=d) for d in (dt, dt, dt, et))
    t_end = budget + OVERLAP
    waiting = True     # for 99 % of the lanes to reach their cut
    t = 0
    while t < t_end:   # one step: every lane decodes one symbol (in place, no allocation)
        pos = P[t]
        if waiting and t % 8 == 0 and np.count_nonzero(pos < stop_d) <= C // 100:
            t_end = min(t_end, t + OVERLAP)
            waiting = False
        if t + 1 >= P.shape[0]:
            P, E = _grow(P), _grow(E)
            pos = P[t]
        np.right_shift(pos, 3, out=byte)
        np.take(w32, byte, out=win, mode="clip")
        np.bitwise_and(pos, 7, out=shift)
        np.left_shift(win, shift, out=win)            # the next L bits at the top ...
        np.right_shift(win, sh, out=win)              # ... brought down
        np.add(win, tb, out=win)
        np.take(table, win, out=E[t], mode="clip")
        np.bitwise_and(E[t], 31, out=ln)
        np.add(pos, ln, out=P[t + 1])
        t += 1
    T = t
    valid = np.full(C, T + 1)                          # columns of P written per lane
    inA = np.less(P[:T + 1], stop_d, out=_work("inA", (T + 1) * C, bool).reshape(T + 1, C))
    n = inA.sum(axis=0)                                # steps before the cut (T + 1: not yet)
    # positions lanes visited before their cut, early rows only: merges happen there
    mark = _work("mark", 8 * raw.size, bool)
    mark.fill(False)
    K = min(T + 1, 2 * OVERLAP)
    mark[P[:K][inA[:K]]] = True
    # each lane's hand-over: the first row past its cut that is on another lane's path
    # (a merge) or at/after its stream's end
    cols = np.arange(C)
    band = P[np.minimum(n + np.arange(OVERLAP)[:, None], T), cols]
    ev = mark[band]
    at_end = band >= send_d
    ev |= at_end
    first = ev.argmax(axis=0)
    settled = ev[first, cols] & (n <= T)
    ho_row = n + first                                 # rows [.., ho_row) are the lane's own
    ho_pos = band[first, cols]
    ho_end = at_end[first, cols]

    # the rest go on alone from row r0, still marking their path before their cut
    U = np.flatnonzero(~settled)
    if U.size:
        near = np.zeros(C, dtype=bool)                  # U and the lanes after them (no
        near[U] = near[np.minimum(U + 1, C - 1)] = True  # np.union1d: it imports numpy.ma)
        near = np.flatnonzero(near)
        mark[P[K:T + 1, near][inA[K:, near]]] = True   # the later rows they may walk into
        r0 = np.where(n[U] <= T, np.minimum(n[U] + OVERLAP, T), T)
        pos = P[r0, U]
        u_stop, u_send, u_tb, u_sh = stop_d[U], send_d[U], tb[U], sh[U]
        stragglers = bool((n[U] > T).any())             # lanes still before their cut
        done = np.zeros(U.size, dtype=bool)
        rows = r0.copy()                                # a settled lane stays where it settled
        for t in range(EXTRA_STEPS + 1):
            if stragglers:
                before = pos < u_stop
                mark[pos[before]] = True
                done |= ~before & (mark[pos] | (pos >= u_send))
            else:
                done |= mark[pos] | (pos >= u_send)
            if t == EXTRA_STEPS or done.all():
                break
            if int(rows.max()) + 1 >= P.shape[0]:
                P, E = _grow(P), _grow(E)
            w = w32[pos >> 3]
            w <<= pos & 7
            w >>= u_sh
            w += u_tb
            e = table[w]
            P[rows, U] = pos
            E[rows, U] = e
            go = ~done
            rows += go
            pos = pos + (e & 31) * go
        P[rows, U] = pos
        valid[U] = rows + 1
        ok = done
        settled[U[ok]] = True
        ho_row[U[ok]] = rows[ok]
        ho_pos[U[ok]] = pos[ok]
        ho_end[U[ok]] = ho_pos[U[ok]] >= send_d[U[ok]]
    fallback = np.zeros(ns, dtype=bool)
    fallback[sid[~settled]] = True

    # follow the hand-overs from each stream's first lane: lane c hands over to the lane
    # whose region holds ho_pos[c] (normally c + 1; a lane that never resynchronised is
    # skipped); that lane's own symbols start at the row where it visited ho_pos[c]
    succ = np.where(ho_end, -1, np.searchsorted(start_d, ho_pos, side="right") - 1)
    chain = ~fallback[sid]
    odd = np.flatnonzero(chain & (succ != cols + 1) & ~(last & ho_end))
    stream_last = np.flatnonzero(last)
    for c in odd.tolist():
        if chain[c]:
            stop_at = succ[c] if succ[c] >= 0 else stream_last[sid[c]] + 1
            chain[c + 1:stop_at] = False
    i0 = np.zeros(C, dtype=np.int64)
    into = np.flatnonzero(chain & ~ho_end)             # lanes handing over to succ
    if into.size:
        i0[succ[into]] = _rows_of(P, valid, succ[into], ho_pos[into])
    lanes = np.flatnonzero(chain)
    lanes = lanes[ho_row[lanes] > i0[lanes]]          # (every lane on a chain has symbols)
    if not lanes.size:
        return [None] * ns

    # gather the symbols: rows [i0, ho_row) of each lane on the chain. E[t, c] is flat
    # entry t * C + c (one lane's rows share cache lines with its neighbours'); the flat
    # index steps by C within a lane and jumps between lanes: a cumulative sum of steps
    cnt = ho_row[lanes] - i0[lanes]
    base = lanes + i0[lanes] * C
    it = np.int32 if E.size < (1 << 31) else np.int64
    step = _work("step", int(cnt.sum()), it)
    step.fill(C)
    cum = np.cumsum(cnt) - cnt
    step[cum[0]] = base[0]
    step[cum[1:]] = base[1:] - base[:-1] - (cnt[:-1] - 1) * C
    idx = np.cumsum(step, out=step)
    vals = np.take(E.reshape(-1), idx, out=_work("vals", idx.size, E.dtype), mode="clip")
    per = np.bincount(sid[lanes], weights=cnt, minlength=ns).astype(np.int64)
    bounds = np.zeros(ns + 1, dtype=np.int64)
    np.cumsum(per, out=bounds[1:])
    invalid = np.zeros(ns, dtype=bool)
    bad = np.flatnonzero((vals & 31) == _BAD)
    if bad.size:
        invalid[np.searchsorted(bounds, bad, side="right") - 1] = True
    # where the chain of each stream ends
    end = np.zeros(ns, dtype=np.int64)
    ends = lanes[ho_end[lanes]]
    end[sid[ends]] = ho_pos[ends].astype(np.int64) - 8 * byte0[sid[ends]]
    syms = np.right_shift(vals, 5, dtype=np.int32)
    out = []
    for k, b in enumerate(streams):
        if fallback[k]:
            out.append(None)
            continue
        problem = None
        if invalid[k]:
            problem = "invalid code in the stream"
        elif end[k] > b.nbits:
            problem = "stream too short: its last code runs past its end"
        elif per[k] > b.count:
            problem = f"stream has bits left over after {b.count} symbols"
        elif per[k] < b.count:
            problem = f"stream too short: {per[k]} of {b.count} symbols"
        if problem:
            e = HuffmanError(problem)
            e.index = b.index
            raise e
        out.append(syms[bounds[k]:bounds[k + 1]])
    return out


def _grow(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.empty_like(a)])


def _rows_of(P: np.ndarray, valid: np.ndarray, lanes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row of ``values[j]`` on the path ``P[:valid[lanes[j]], lanes[j]]`` (it is there)."""
    rows = np.zeros(lanes.size, dtype=np.int64)
    j = np.arange(lanes.size)
    lo = 0
    for hi in (16, 64, P.shape[0]):   # a wrong start resynchronises within a few symbols
        hi = min(hi, P.shape[0])
        if lo >= hi or not j.size:
            break
        hit = P[lo:hi, lanes[j]] == values[j]
        hit &= np.arange(lo, hi)[:, None] < valid[lanes[j]]
        ok = hit.any(axis=0)
        rows[j[ok]] = lo + hit[:, ok].argmax(axis=0)
        j = j[~ok]
        lo = hi
    if j.size:
        raise AssertionError("hand-over position not on the lane's path")
    return rows


def decode_doubling(data: bytes | np.ndarray, nbits: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``count`` symbols by pointer doubling over every bit position (vectorised).

    The robust path: ``O(nbits * K)`` numpy work whatever the code. :func:`decode_many` uses
    it for streams its lockstep decoder cannot settle.

    Raises :class:`HuffmanError` on any inconsistency (invalid code, stream too short or
    too long); the work and memory are bounded by ``len(data)``, never by ``count``.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if nbits < 0 or nbits > buf.size * 8:
        raise HuffmanError(f"stream of {nbits} bits does not fit in {buf.size} bytes")
    if count < 0 or count > nbits:
        raise HuffmanError(f"{count} symbols cannot come from {nbits} bits")
    sym_t, len_t, L = decode_table(lengths)
    if count == 0:
        if nbits:
            raise HuffmanError("bits left over after the last symbol")
        return np.zeros(0, dtype=np.int64)
    win = _windows(buf, nbits, L)
    ln = len_t.astype(np.int8)[win]
    # next symbol start from every bit position; invalid codes and overruns go to the sink
    # nbits + 1 (nbits itself is the clean end of the stream)
    it = np.int32 if nbits < (1 << 30) else np.int64
    nxt = np.empty(nbits + 2, dtype=it)
    nxt[:nbits] = np.arange(nbits, dtype=it)
    nxt[:nbits] += ln
    sink = nbits + 1
    nxt[:nbits][(ln == 0) | (nxt[:nbits] > nbits)] = sink
    nxt[nbits:] = sink
    # jump tables next^(2^k) up to a block of B = 2^K symbols; the block starts are chained
    # in one Python step per block, then each block is expanded in B vectorised steps
    K = max(0, min(12, round((int(count).bit_length() - 1) / 5)))
    jump = nxt
    for _ in range(K):
        jump = jump[jump]
    B = 1 << K
    nblocks = -(-count // B)
    anchors = np.empty(nblocks, dtype=it)
    p = 0
    for a in range(nblocks):
        anchors[a] = p
        p = int(jump[p])
    pos = np.empty((B, nblocks), dtype=it)
    pos[0] = anchors
    for j in range(1, B):
        pos[j] = nxt[pos[j - 1]]
    pos = pos.T.reshape(-1)[:count]
    if int(pos.max()) >= nbits:
        raise HuffmanError("invalid code or stream too short")
    end = int(pos[-1]) + int(ln[pos[-1]])
    if end != nbits:
        raise HuffmanError(f"stream has {nbits - end} bits left over after {count} symbols")
    return sym_t[win[pos]].astype(np.int64)


def _windows(buf: np.ndarray, nbits: int, L: int) -> np.ndarray:
    """The ``L``-bit window starting at every bit position (zero-padded past the end)."""
    nb = (nbits + 7) // 8
    b = np.zeros(nb + 4, dtype=np.uint32)
    b[:nb] = buf[:nb]
    w32 = (b[:nb] << 24) | (b[1:nb + 1] << 16) | (b[2:nb + 2] << 8) | b[3:nb + 3]
    mask = np.uint32((1 << L) - 1)
    win = np.empty(nbits, dtype=np.int32)
    for r in range(8):   # bit offset within the byte: 8 vectorised steps
        n = len(range(r, nbits, 8))
        if n:
            win[r::8] = (w32[:n] >> np.uint32(32 - L - r)) & mask
    return win


def pack_lengths(lengths: np.ndarray) -> bytes:
    """Code lengths (0..15) as nibbles, low nibble first."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    if lengths.size % 2:
        lengths = np.concatenate([lengths, [0]]).astype(np.uint8)
    return (lengths[0::2] | (lengths[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_lengths(raw: bytes | np.ndarray, alphabet: int) -> np.ndarray:
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw
    if buf.size != (alphabet + 1) // 2:
        raise HuffmanError(f"length table of {buf.size} bytes for {alphabet} symbols")
    out = np.empty(buf.size * 2, dtype=np.uint8)
    out[0::2] = buf & 15
    out[1::2] = buf >> 4
    if alphabet % 2 and out[-1]:
        raise HuffmanError("length table padding is not zero")
    return out[:alphabet]
