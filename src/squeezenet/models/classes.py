"""The one class-list check: every class list a reader meets (a class-list file, a model
header, a ``.json`` sidecar, a ``.sqz`` header, ``--classes`` for an import) goes through
:func:`check_classes` before it is used.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .squeezenet import MAX_WIDTH

#: longest class name (characters)
MAX_CLASS_NAME = 1024


def check_classes(classes: Any, num_classes: int | None = None) -> list[str]:
    """``classes`` as a list of names, or a one-line :class:`ConfigError`: a list (or tuple) of
    unique, non-empty strings without control characters, ``num_classes`` of them if given.

    >>> check_classes(["cat", "dog"], 2)
    ['cat', 'dog']
    >>> check_classes({"cat": 0})
    Traceback (most recent call last):
    ...
    squeezenet.errors.ConfigError: classes must be a list of names, not dict
    >>> check_classes(["cat", "cat"])
    Traceback (most recent call last):
    ...
    squeezenet.errors.ConfigError: class 'cat' is listed twice (classes[0] and classes[1])
    """
    if not isinstance(classes, (list, tuple)):
        raise ConfigError(f"classes must be a list of names, not {type(classes).__name__}")
    if not classes:
        raise ConfigError("the class list is empty")
    if len(classes) > MAX_WIDTH:
        raise ConfigError(f"{len(classes):,} classes: over the {MAX_WIDTH:,} limit")
    seen: dict[str, int] = {}
    for i, c in enumerate(classes):
        if not isinstance(c, str):
            raise ConfigError(f"classes[{i}]: {_short(c)} is not a name (a string)")
        if not c.strip():
            raise ConfigError(f"classes[{i}]: empty name")
        if len(c) > MAX_CLASS_NAME:
            raise ConfigError(f"classes[{i}]: a name of {len(c):,} characters (limit {MAX_CLASS_NAME})")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in c):
            raise ConfigError(f"classes[{i}]: {_short(c)} holds a control character")
        if c in seen:
            raise ConfigError(f"class {_short(c)} is listed twice (classes[{seen[c]}] and classes[{i}])")
        seen[c] = i
    if num_classes is not None and len(classes) != num_classes:
        raise ConfigError(f"{len(classes)} classes for a model with {num_classes} outputs")
    return list(classes)


def class_line(cid: str, name: str | None = None) -> str:
    """One line of a class-list file: the id, then its name if it has one (``n02124075
    Egyptian cat``). An id that holds whitespace (a class folder ``egyptian cat``) or starts
    with a quote is written as a JSON string, so that :func:`split_class_line` reads back the
    same id.

    >>> class_line("n02124075", "Egyptian cat"), class_line("egyptian cat")
    ('n02124075 Egyptian cat', '"egyptian cat"')
    >>> split_class_line(class_line("egyptian cat", "a cat")), split_class_line("n1 tench, Tinca tinca")
    (['egyptian cat', 'a cat'], ['n1', 'tench, Tinca tinca'])
    """
    import json
    text = json.dumps(cid, ensure_ascii=False) if (cid != cid.strip() or any(ch.isspace() for ch in cid)
                                                    or cid.startswith('"')) else cid
    return f"{text} {name}" if name is not None and name != cid else text


def split_class_line(line: str) -> list[str]:
    """``[id]`` or ``[id, name]`` of one non-blank line of a class-list file (the inverse of
    :func:`class_line`): the first word is the id, or a leading JSON string is."""
    import json
    line = line.strip()
    if line.startswith('"'):
        try:
            cid, end = json.JSONDecoder().raw_decode(line)
        except ValueError:
            cid = None
        if isinstance(cid, str):
            rest = line[end:].strip()
            return [cid, rest] if rest else [cid]
    return line.split(None, 1)


def _short(v: Any, limit: int = 40) -> str:
    r = repr(v) if not isinstance(v, (list, dict, tuple)) else type(v).__name__
    return r if len(r) <= limit else r[:limit] + "..."
