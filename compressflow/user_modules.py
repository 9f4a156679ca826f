"""The user's own Python modules: found beside the pipeline first, fingerprinted by their source.

A pipeline names modules of its user's in ``builder:``, a python dataset's ``function:`` and
``imports:``. They are looked up in the pipeline's folder first, then on the import path (the
installed packages), the same way in validation, planning and every process a stage runs in
(see :mod:`compressflow.executor.process_setup`), so nobody has to set ``PYTHONPATH``.

Nothing here imports (runs) a module: sources are found through the import system's finders
and read. A fingerprint is the sha256 of source bytes only, never of a folder's absolute path,
so a pipeline folder that moves, or a different ``PYTHONPATH``, keeps its cache keys.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from importlib.machinery import PathFinder
from pathlib import Path

from compressflow.fingerprints import tree_sha256


def find_module_source(module: str, root: Path | None = None) -> Path | None:
    """The source file of ``module`` (``__init__.py`` for a package), found without running any of it.

    With ``root`` (the pipeline's folder), a module there comes first. ``importlib.util.find_spec("a.b")``
    would import package ``a``; here only the top-level name goes through the finders, submodules
    are looked up on their package's path.
    """
    parts = module.split(".")
    try:
        spec = PathFinder.find_spec(parts[0], [str(root)]) if root is not None else None
        if spec is None or spec.origin is None:  # NOTE: as for import, a plain folder there hides no package
            spec = importlib.util.find_spec(parts[0]) or spec
        for depth in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = PathFinder.find_spec(".".join(parts[:depth + 1]), list(spec.submodule_search_locations))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


def module_spec(value: object) -> str | None:
    """The ``module:function`` a field of ``module_fields`` holds: the text, or a step's ``function`` (else None)."""
    if isinstance(value, str):
        return value
    function = getattr(value, "function", None)
    return function if isinstance(function, str) else None


def use_pipeline_folder(root: Path) -> None:
    """Put the pipeline's folder first on this process's import path (as a script's folder is for ``python``)."""
    folder = str(Path(root).resolve())
    if sys.path[:1] == [folder]:
        return
    while folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    importlib.invalidate_caches()


def is_beside(source: Path, root: Path | None) -> bool:
    """Whether ``source`` lies in the pipeline's folder ``root`` (the user's own code, not a package)."""
    if root is None:
        return False
    resolved, folder = source.resolve(), Path(root).resolve()
    return folder in resolved.parents


def module_source_fingerprint(module: str, root: Path | None = None) -> str | None:
    """sha256 of a module's source, found without importing (running) it; None when there is none.

    For a package, the ``.py`` files directly in its folder are hashed together, since
    ``__init__.py`` often only re-exports what its sibling modules define. A module beside the
    pipeline brings the modules beside the pipeline that it imports (at any depth), by name:
    editing a helper that a builder imports changes the builder's fingerprint too.
    """
    origin = find_module_source(module, root)
    if origin is None:
        return None
    own = _own_fingerprint(origin)
    if not is_beside(origin, root):
        return own
    helpers = helpers_beside(module, origin, root)
    if not helpers:
        return own
    digest = hashlib.sha256(own.encode())
    for name in sorted(helpers):
        digest.update(b"\0" + name.encode() + b"\0" + _own_fingerprint(helpers[name]).encode())
    return digest.hexdigest()


def _own_fingerprint(origin: Path) -> str:
    if origin.name != "__init__.py":
        return tree_sha256(origin)
    digest = hashlib.sha256()
    for source in sorted(origin.parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + tree_sha256(source).encode())
    return digest.hexdigest()


def helpers_beside(module: str, origin: Path, root: Path) -> dict[str, Path]:
    """Modules beside the pipeline that ``module`` (whose source is ``origin``) imports, at any depth, by name."""
    found: dict[str, Path] = {}
    queue = [(module, origin)]
    seen = {module}
    while queue:
        name, source = queue.pop()
        for imported in imported_names(name, source):
            if imported in seen:
                continue
            seen.add(imported)
            path = find_module_source(imported, root) if _top_level_beside(imported, root) else None
            if path is not None and is_beside(path, root):
                found[imported] = path
                queue.append((imported, path))
    return found


def _top_level_beside(module: str, root: Path) -> bool:
    """Whether the top-level package of ``module`` is in ``root`` (cheap: no search of the import path)."""
    try:
        return PathFinder.find_spec(module.partition(".")[0], [str(root)]) is not None
    except (ImportError, ValueError):
        return False


def imported_names(module: str, source: Path) -> list[str]:
    """Absolute names of the modules that ``source`` (the code of ``module``) imports, in order.

    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule); relative imports are
    resolved against ``module``'s package. A source that does not parse imports nothing here
    (importing it reports the syntax error).
    """
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError, OSError):
        return []
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    names: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.setdefault(alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            names.setdefault(base, None)
            for alias in node.names:
                if alias.name != "*":
                    names.setdefault(f"{base}.{alias.name}", None)
    return list(names)


def _absolute(name: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return name
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None  # beyond the top-level package: Python refuses it too
    base = parts[:len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else [])) or None
