"""The house's layers only look down, and no modules import each other in a circle.

Every module under ``src/squeezenet`` is parsed (``ast``, not imported): every import counts,
at module level or inside a function, absolute or relative. Order, lowest first:

    errors < models < io < data < evaluate < train < {compress, explore, interop} < runtime < cli

A module may import its own layer and the layers below it. The package face (``__init__``,
``__main__``) may import anything; a module in a layer may take only ``__version__`` from it
(anything else it offers lives in a lower module: import it from there).
"""
from __future__ import annotations

import ast
from pathlib import Path

import squeezenet

LAYERS = [("errors",), ("models",), ("io",), ("data",), ("evaluate",), ("train",),
          ("compress", "explore", "interop"), ("runtime",), ("cli",)]
FACE = ("__init__", "__main__")
FACE_CONSTANTS = {"__version__"}


def _modules(root: Path, pkg: str) -> dict[str, Path]:
    """Module name -> file for every .py file under ``root`` (a package called ``pkg``)."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = [pkg, *p.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path], pkg: str):
    """(imported module, names taken from it, line) for every import of the package in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == pkg or a.name.startswith(pkg + "."):
                    yield a.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == pkg or target.startswith(pkg + ".")):
                continue
            plain = []
            for a in node.names:   # `from pkg.sub import module` imports that module
                if f"{target}.{a.name}" in modules:
                    yield f"{target}.{a.name}", (), node.lineno
                else:
                    plain.append(a.name)
            if plain:
                yield target, tuple(plain), node.lineno


def _layer(name: str, pkg: str) -> int | None:
    """Index into LAYERS; None for the package face. Raises for a module in no layer."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in FACE:
        return None
    for i, group in enumerate(LAYERS):
        if parts[1] in group:
            return i
    raise AssertionError(f"{name} is in no layer: add {parts[1]!r} to LAYERS in tests/test_layers.py")


def layer_problems(root: Path, pkg: str = "squeezenet") -> list[str]:
    """Upward imports and import cycles in the package at ``root``, one line each."""
    modules = _modules(root, pkg)
    problems, graph = [], {m: set() for m in modules}
    for name, path in modules.items():
        here = _layer(name, pkg)
        for target, names, line in _imports(name, path, modules, pkg):
            if target not in modules:
                problems.append(f"{name} (line {line}) imports {target}, which does not exist")
                continue
            if target != name:
                graph[name].add(target)
            if here is None:
                continue
            there = _layer(target, pkg)
            if there is None:
                if not set(names) <= FACE_CONSTANTS:
                    problems.append(f"{name} (line {line}) imports {', '.join(names)} from the package face "
                                    f"{target}: import it from the module that defines it")
            elif there > here:
                problems.append(f"{name} (line {line}) imports {target}: layer "
                                f"{'/'.join(LAYERS[here])} must not import the higher layer "
                                f"{'/'.join(LAYERS[there])}")
    problems += [f"import cycle: {' -> '.join(c + [c[0]])}" for c in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a list of modules) per strongly connected component with more than one module."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):   # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:   # walk inside the component from its first module back to it
        members, start = set(comp), min(comp)
        path, seen, v = [start], {start}, start
        while True:
            nxt = sorted(w for w in graph[v] if w in members)
            back = start in nxt
            if back:
                break
            w = next((w for w in nxt if w not in seen), nxt[0])
            if w in seen:
                path = path[path.index(w):]
                break
            path.append(w)
            seen.add(w)
            v = w
        out.append(path)
    return out


def test_layers_only_look_down_and_nothing_imports_in_a_circle():
    root = Path(squeezenet.__file__).parent
    problems = layer_problems(root)
    assert not problems, "\n".join(problems)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "squeezenet"
    for rel, text in {"__init__.py": "__version__ = '0'\n", "errors.py": "", "models/__init__.py": "",
                      "data/__init__.py": "", "cli/__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_checker_finds_an_upward_import_even_inside_a_function(tmp_path):
    root = _package(tmp_path, {"models/fold.py": "def f():\n    from ..data.x import y\n", "data/x.py": "y = 1\n"})
    problems = layer_problems(root)
    assert len(problems) == 1 and "squeezenet.models.fold (line 2) imports squeezenet.data.x" in problems[0]
    assert "layer models must not import the higher layer data" in problems[0]


def test_checker_finds_absolute_imports_and_face_imports(tmp_path):
    root = _package(tmp_path, {"errors.py": "import squeezenet.cli\n",
                               "data/d.py": "from squeezenet import __version__\nfrom .. import load\n"})
    problems = sorted(layer_problems(root))
    assert len(problems) == 2, problems
    assert "squeezenet.data.d (line 2) imports load from the package face squeezenet" in problems[0]
    assert "squeezenet.errors (line 1) imports squeezenet.cli" in problems[1]


def test_checker_finds_a_cycle_inside_one_layer(tmp_path):
    root = _package(tmp_path, {"data/a.py": "from . import b\n", "data/b.py": "def f():\n    from .c import g\n",
                               "data/c.py": "from squeezenet.data.a import x\n"})
    assert layer_problems(root) == [
        "import cycle: squeezenet.data.a -> squeezenet.data.b -> squeezenet.data.c -> squeezenet.data.a"]


def test_checker_refuses_a_module_in_no_layer(tmp_path):
    root = _package(tmp_path, {"newroom.py": ""})
    try:
        layer_problems(root)
    except AssertionError as e:
        assert "squeezenet.newroom is in no layer" in str(e)
    else:
        raise AssertionError("a module outside every layer was accepted")


def test_loaders_named_by_string_look_down_too():
    # io.LOADERS imports its readers by name at call time, which the ast walk cannot see:
    # each must exist and sit in io's layer or below (the .sqz reader once lived in compress)
    import importlib

    from squeezenet.io import LOADERS
    io_layer = _layer("squeezenet.io", "squeezenet")
    for suffix, target in LOADERS.items():
        mod, fn = target.split(":")
        assert _layer(mod, "squeezenet") <= io_layer, f"{suffix}: {mod} is above io"
        assert callable(getattr(importlib.import_module(mod), fn)), target
