"""Deep Compression (prune, quantize, Huffman-code into ``.sqz``): the public face.

:func:`compress_model` runs the whole pipeline on a trained model and writes a ``.sqz`` file;
:class:`CompressConfig` holds its options (each checked when the config is made). Both live in
:mod:`squeezenet.compress.pipeline` and are imported from there on first use, so importing
this package stays cheap.

>>> from squeezenet.compress import CompressConfig, compress_model
>>> CompressConfig(prune="uniform:0.5", bits=5).bits
5
>>> compress_model.__module__
'squeezenet.compress.pipeline'
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the attributes load lazily
    from .pipeline import CompressConfig, compress_model

from ..errors import lazy_attributes

_LAZY = {"compress_model": "pipeline", "CompressConfig": "pipeline"}

__all__ = ["compress_model", "CompressConfig"]


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__():
    return sorted(set(globals()) | set(__all__))
