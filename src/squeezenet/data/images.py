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


def to_rgb(img):
    """``img`` as 8-bit RGB, high bit depths scaled, not clipped: PIL's own ``convert("RGB")``
    clips a 16-bit grayscale image (``I;16``, ``I``: PNG, TIFF, PGM) at 255, so a photo turns into
    white noise. 16-bit integer modes are divided by 257 (65535 -> 255), 32-bit integers are
    taken as 16-bit values (what the decoders give), floats (``F``) as 0..1 when none is over 1,
    else as 0..255; NaN is 0.

    >>> from PIL import Image
    >>> to_rgb(Image.new("I;16", (2, 2), 65535)).getpixel((0, 0)), to_rgb(Image.new("F", (1, 1), 0.5)).getpixel((0, 0))
    ((255, 255, 255), (128, 128, 128))
    """
    from PIL import Image
    mode = img.mode
    if not (mode.startswith("I") or mode == "F"):
        return img.convert("RGB")
    import numpy as np
    a = np.asarray(img)
    if mode == "F":
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        a = a * 255.0 if a.size and a.max() <= 1.0 else a
    else:   # I;16, I;16B, I;16L, I;16N (16-bit) and I (32-bit, holding 16-bit samples)
        a = np.clip(a.astype(np.float64), 0, 65535) / 257.0
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "L").convert("RGB")


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
                return to_rgb(img)          # decodes; a truncated file fails here
        except UnidentifiedImageError:
            problem = "not an image file PIL can read"
        except Image.DecompressionBombError as e:   # PIL's own bound (2 x 89 M pixels), met in its header
            problem = f"over the {MAX_IMAGE_PIXELS:,}-pixel limit ({first_line(e, 60)}...)"
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            problem = first_line(e, 200)
    raise UnreadableImage(path, problem)
