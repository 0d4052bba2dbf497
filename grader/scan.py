"""What a student's cell visibly does to the test machinery, read from its code (never run).

Best effort, and the grade never depends on it (the tests run outside the student's process): it
names, for the instructor, assignments to numpy/torch/builtins/sys attributes, ``sys.modules``
edits, redefined test helpers and frame inspection. IPython magics are translated first.
"""

from __future__ import annotations

import ast

GUARDED = {"numpy", "torch", "builtins", "sys", "unittest", "nbgrader", "IPython", "math", "scipy"}
HELPERS = ("_check_", "_tc_")
PROTECTED = ("AssertionError", "CheckFailed", "__import__", "__builtins__")  # tests rely on them
SPY = {
    "sys._getframe": "inspects the caller's frames (sys._getframe)",
    "inspect.currentframe": "inspects the caller's frames (inspect.currentframe)",
    "inspect.stack": "inspects the caller's frames (inspect.stack)",
    "gc.get_referrers": "searches the interpreter's objects (gc.get_referrers)",
    "gc.get_objects": "searches the interpreter's objects (gc.get_objects)",
    "sys.settrace": "sets a trace function (sys.settrace)",
    "sys.setprofile": "sets a profile function (sys.setprofile)",
}
EDITS = ("__setitem__", "update", "pop", "setdefault", "clear", "__delitem__")


def contract_names(sources: list[str]) -> list[str]:
    """The top-level functions the solution cells define (the graded contract)."""
    names = []
    for tree in filter(None, map(_parse, sources)):
        names += [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    return list(dict.fromkeys(names))


def _parse(source: str):
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:  # noqa: BLE001 - unparsable code is the runner's business, not tampering
        return None


def _dotted(node, aliases: dict) -> str | None:
    """``np.testing.x`` -> 'numpy.testing.x' when its root is a guarded module (else None)."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        parts.append(node.attr if isinstance(node, ast.Attribute) else "")
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed([p for p in parts if p])])


def module_aliases(sources: list[str]) -> dict[str, str]:
    """{name: module} for the guarded modules, as the cells import them (``np`` by default)."""
    aliases = {m: m for m in GUARDED} | {"np": "numpy", "__builtins__": "builtins"}
    for tree in filter(None, map(_parse, sources)):
        _add_aliases(tree, aliases)
    return aliases


def _add_aliases(tree, aliases: dict):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top in GUARDED:
                    aliases[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in GUARDED:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"


def _target(t, verb: str, aliases: dict) -> list[str]:
    if isinstance(t, (ast.Tuple, ast.List)):
        return [f for e in t.elts for f in _target(e, verb, aliases)]
    name = _dotted(t, aliases) if isinstance(t, (ast.Attribute, ast.Subscript)) else None
    if name is not None:
        return [f"{verb} an entry of {name}" if isinstance(t, ast.Subscript) else f"{verb} {name}"]
    if isinstance(t, ast.Name) and t.id.startswith(HELPERS):
        return [f"redefines the test helper {t.id}"]
    if isinstance(t, ast.Name) and t.id in PROTECTED:
        return [f"redefines {t.id}"]
    return []


def _call(node: ast.Call, aliases: dict) -> list[str]:
    func, args = node.func, node.args
    if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and args:
        what = _dotted(args[0], aliases)
        if what is None:
            return []
        if len(args) > 1 and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str):
            what += f".{args[1].value}"
        return [f"patches {what} ({func.id})"]
    full = _dotted(func, aliases) or ""
    plain = ""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        plain = f"{func.value.id}.{func.attr}"  # inspect.stack, gc.get_objects: not guarded
    edit = full.startswith("sys.modules.") and full.split(".")[-1] in EDITS
    found = ["edits sys.modules"] if edit else []
    return found + [text for call, text in SPY.items() if call in (full, plain)]


def scan_source(source: str, aliases: dict | None = None) -> list[str]:
    """Tampering visible in one cell's code (see the module doc); ``aliases``: module_aliases."""
    tree = _parse(source)
    if tree is None:
        return []
    aliases = dict(aliases or module_aliases([]))
    _add_aliases(tree, aliases)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                found += _target(t, "patches", aliases)
        elif isinstance(node, ast.Delete):
            found += [f for t in node.targets for f in _target(t, "deletes", aliases)]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            if node.name.startswith(HELPERS) or node.name in PROTECTED[:2]:
                found.append(f"redefines the test helper {node.name}")
        elif isinstance(node, ast.Call):
            found += _call(node, aliases)
    return list(dict.fromkeys(found))
