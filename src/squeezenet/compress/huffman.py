"""Canonical Huffman coding with vectorised (numpy) encode and decode.

Codes are canonical: a code is fully described by the code length of each symbol, which is
all a file stores (4 bits per symbol, lengths 1..15, 0 = unused). Encoding and decoding never
loop over symbols in Python:

* encode: every symbol's code bits are laid out with ``np.repeat`` and packed with
  ``np.packbits``;
* decode: a ``2**L``-entry table gives, for *every* bit position of the stream, the symbol
  and code length that would start there; the chain of real symbol starts
  ``0 -> next[0] -> ...`` is then found in blocks of ``B = 2**K`` symbols: ``K`` pointer
  doublings give ``next^B`` for every position, one Python step per block chains the block
  starts, and ``B`` vectorised gathers fill in the symbols of all blocks at once. The work
  is ``O(bits * K + count)`` numpy operations in ``O(count / B + B)`` Python steps (a
  block, never a symbol, per step).

>>> import numpy as np
>>> x = np.array([0, 0, 0, 1, 2, 0, 1, 0], dtype=np.int64)
>>> lengths = code_lengths(np.bincount(x, minlength=3))
>>> data, nbits = encode(x, lengths)
>>> decode(data, nbits, len(x), lengths).tolist()
[0, 0, 0, 1, 2, 0, 1, 0]
"""
from __future__ import annotations

import heapq

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
    """Decode ``count`` symbols from the first ``nbits`` bits of ``data`` (vectorised).

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
