"""Canonical Huffman: optimal lengths, canonical codes, vectorised round trips, corrupt streams."""
import numpy as np
import pytest

from squeezenet.compress import huffman as H


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
