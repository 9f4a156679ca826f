"""``module:function`` specs (a load stage's ``builder``, a python dataset's ``function``) that cannot work.

The module is looked up beside the pipeline, then the way ``import`` would find it, without
running any of it: a module that is not there used to fail only when its stage ran. When the
module's source is plain Python, its top level is read (``ast``) to see that it binds the
function's name; a module that defines names dynamically (``from x import *``, ``__getattr__``,
``globals()``) is given the benefit of the doubt.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import pkgutil
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from compressflow.errors import did_you_mean

#: Names whose use at any depth means a module may bind names that ``ast`` cannot see.
DYNAMIC_NAMES = frozenset({"globals", "vars", "locals", "exec", "eval", "setattr", "__import__"})
#: Names of a module listed when none is close to the one asked for.
MAX_NAMES_SHOWN = 10


def module_problem(spec: str, what: str, root: Path) -> tuple[str, str | None] | None:
    """``(message, hint)`` when the module of ``spec`` cannot be found or lacks its function, else None.

    The module is looked for in ``root`` (the pipeline's folder) first, then on the import path.
    """
    module, _, function = spec.partition(":")
    parts = module.split(".")
    depth, locations, found = _locate(parts, root)
    if depth == len(parts) and found is None:
        return None
    if found is not None:
        if found.origin and Path(found.origin).is_file():
            return _function_problem(spec, what, module, function, Path(found.origin))
        if found.origin is None and found.submodule_search_locations is not None:
            # NOTE: a folder without __init__.py imports as a namespace package, which defines nothing
            return (f"{what} {spec!r}: module {module!r} is a folder without __init__.py, so it defines no "
                    f"{function!r}", "give the module that defines the function, e.g. package.module:function")
        return None  # built into the interpreter: only importing it would tell
    searched = f"not beside the pipeline in {root} and not installed" if depth == 0 else (
        f"package {'.'.join(parts[:depth])!r} has no module {parts[depth]!r}")
    known = _module_names(locations, root if depth == 0 else None)
    close = difflib.get_close_matches(parts[depth], known, n=1, cutoff=0.6)
    hint = None
    if close:
        fixed = ".".join(parts[:depth] + close + parts[depth + 1:])
        hint = f"did you mean '{fixed}:{function}'?"
    return f"{what} {spec!r}: no module {module!r} ({searched})", hint


def _locate(parts: list[str], root: Path) -> tuple[int, list[str] | None, ModuleSpec | None]:
    """How many leading parts of a dotted module name are found, where the next one was looked
    for, and the module's spec when every part is found (all found and no spec: cannot tell)."""
    try:
        spec = PathFinder.find_spec(parts[0], [str(root)])
        if spec is None or spec.origin is None:  # NOTE: a plain folder there does not hide a package
            spec = importlib.util.find_spec(parts[0]) or spec
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return 0, None, None
    for depth in range(1, len(parts)):
        if spec.submodule_search_locations is None:
            return len(parts), None, None  # a plain module: only importing it tells (os.path is os's attribute)
        locations = list(spec.submodule_search_locations)
        spec = PathFinder.find_spec(".".join(parts[:depth + 1]), locations)
        if spec is None:
            return depth, locations, None
    return len(parts), None, spec


def _module_names(locations: list[str] | None, root: Path | None) -> list[str]:
    """Modules in ``locations`` (every importable top-level module when None), and beside the pipeline."""
    names = {info.name for info in pkgutil.iter_modules(locations)}
    if root is not None:
        names.update(info.name for info in pkgutil.iter_modules([str(root)]))
    return sorted(names)


def _function_problem(spec: str, what: str, module: str, function: str,
                      source: Path) -> tuple[str, str | None] | None:
    if source.suffix != ".py":
        return None  # compiled: only importing it would tell
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as exc:
        return (f"{what} {spec!r}: module {module!r} ({source}) does not parse: {exc.msg} "
                f"at line {exc.lineno}", None)
    except (OSError, ValueError):
        return None  # unreadable or NUL bytes: importing it says what is wrong
    names = _top_level_names(tree)
    if names is None or function in names:
        return None
    public = [name for name in names if not name.startswith("_")]
    shown = ", ".join(public[:MAX_NAMES_SHOWN]) + (", ..." if len(public) > MAX_NAMES_SHOWN else "")
    hint = did_you_mean(function, public) or (f"it defines: {shown}" if public else None)
    return f"{what} {spec!r}: module {module!r} ({source}) defines no {function!r}", hint


def _top_level_names(tree: ast.Module) -> list[str] | None:
    """Names the module's top level binds, in order; None when it may bind names dynamically."""
    if any(_is_dynamic(node) for node in ast.walk(tree)):
        return None
    names: dict[str, None] = {}
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.setdefault(node.name, None)
            continue  # NOTE: their bodies are scopes of their own; decorators and defaults bind nothing
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.setdefault(node.id, None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.setdefault(alias.asname or alias.name.split(".")[0], None)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.setdefault(node.name, None)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return list(names)


def _is_dynamic(node: ast.AST) -> bool:
    """Whether ``node`` may bind module names that reading the source does not show."""
    if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
        return True
    if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
        return True
    if isinstance(node, ast.Attribute) and node.attr in ("modules", "__dict__"):
        return True  # sys.modules[__name__] = ..., module.__dict__.update(...)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__":
        return True
    return isinstance(node, ast.Global)
