"""The one image reader: every image a command reads (datasets, ``predict``, ``eval``, int8
calibration, the preloaded 32x32 sets) is opened by :func:`read_image`.

It reads regular files only (a FIFO or device named ``x.jpg`` is refused, never waited on)
of at most :data:`MAX_IMAGE_BYTES`, into memory (so a length read from the file cannot make
PIL allocate more than the file holds), and checks the size in the image's header before any pixel is decoded: each side at most
:data:`MAX_IMAGE_SIDE`, at most :data:`MAX_IMAGE_PIXELS` pixels, and a long side at most
:data:`MAX_ASPECT` times the short one. The last bound also bounds the resize every preset
does first (short side to 256 pixels: at most 256 x 256 x MAX_ASPECT pixels after it), so a
274-byte 1 x 50000 PNG cannot ask for gigabytes.
"""
from __future__ import annotations

import io
import os

from ..errors import FormatError, first_line, read_input

MAX_IMAGE_SIDE = 1 << 15          # 32,768 pixels
MAX_IMAGE_PIXELS = 1 << 26        # 67 megapixels decoded (about 200 MB as RGB)
MAX_ASPECT = 64                   # long side / short side
MAX_IMAGE_BYTES = 1 << 28         # the file (256 MiB)


def check_image_size(width: int, height: int) -> str | None:
    """The problem with an image of ``width`` x ``height`` pixels, or None when it is within
    the bounds.

    >>> check_image_size(640, 480) is None
    True
    >>> check_image_size(1, 50000)
    '1x50000 image: aspect ratio 50000:1 is over the 64:1 limit'
    """
    if width < 1 or height < 1:
        return f"{width}x{height} image: empty"
    if max(width, height) > MAX_ASPECT * min(width, height):
        long, short = max(width, height), min(width, height)
        return f"{width}x{height} image: aspect ratio {long / short:.0f}:1 is over the {MAX_ASPECT}:1 limit"
    if max(width, height) > MAX_IMAGE_SIDE:
        return f"{width}x{height} image: a side over the {MAX_IMAGE_SIDE:,}-pixel limit"
    if width * height > MAX_IMAGE_PIXELS:
        return f"{width}x{height} image: {width * height:,} pixels, over the {MAX_IMAGE_PIXELS:,} limit"
    return None


class UnreadableImage(FormatError):
    """An image that cannot be read; ``reason`` is the problem alone (for skip warnings)."""

    def __init__(self, path, reason: str):
        self.reason = reason
        super().__init__(path, f"unreadable image ({reason})")


def read_image(path: str | os.PathLike):
    """The image at ``path`` decoded as an RGB ``PIL.Image``, or a one-line
    :class:`UnreadableImage` (a :class:`~squeezenet.errors.FormatError`) naming it: not a
    regular file, not an image, truncated, or over the size bounds (checked from the header,
    before decoding).

    >>> import tempfile, os
    >>> from PIL import Image
    >>> p = os.path.join(tempfile.mkdtemp(), "tall.png")
    >>> Image.new("L", (1, 50000)).save(p)
    >>> read_image(p)                                  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    squeezenet.data.images.UnreadableImage: ...tall.png: unreadable image (1x50000 image: aspect ratio 50000:1 is over the 64:1 limit)
    """
    from PIL import Image, UnidentifiedImageError
    try:   # the bytes, in memory: PIL may read(n) with n from the file (a PNG chunk declaring 2 GB)
        f = io.BytesIO(read_input(path, "image", MAX_IMAGE_BYTES))
    except FormatError as e:
        raise UnreadableImage(path, e.problem) from None
    with f:
        try:
            img = Image.open(f)           # reads the header only
            problem = check_image_size(*img.size)
            if problem is None:
                return img.convert("RGB")   # decodes; a truncated file fails here
        except UnidentifiedImageError:
            problem = "not an image file PIL can read"
        except Image.DecompressionBombError as e:   # PIL's own bound (2 x 89 M pixels), met in its header
            problem = f"over the {MAX_IMAGE_PIXELS:,}-pixel limit ({first_line(e, 60)}...)"
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            problem = first_line(e, 200)
    raise UnreadableImage(path, problem)
