"""Which Keras names the modules of ``imports:`` register, read from their source without importing them.

Before anything runs, a model file's custom classes are compared with what the pipeline's
``imports:`` will register: ``@register_keras_serializable(package="p", name="N")`` (or called
as ``register_keras_serializable("p")(Cls)``) registers ``p>N`` (the package defaults to
``Custom``, the name to the class's or function's). The modules are read with :mod:`ast`, never
imported: the scan covers each module (for a package, every ``.py`` file below it) and the
modules beside the pipeline it imports.

The scan must not refuse what would load. A registration whose name is not written out
(``name=f"..."``) accepts every name of its package; one whose package is not written out, or a
module that registers through ``get_custom_objects()`` or passes the decorator around, accepts
everything: the stage then checks exactly when it loads the model, with the modules imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from compressflow.models.safety import IsKnownClass
from compressflow.user_modules import find_module_source, helpers_beside

REGISTER = "register_keras_serializable"
DEFAULT_PACKAGE = "Custom"
# Names whose use means objects are registered in ways the source does not spell out.
_DYNAMIC = frozenset({"get_custom_objects", "CustomObjectScope", "custom_object_scope", "SharedObjectLoadingScope"})
#: A package with more files than this is not read: anything it may register is accepted.
MAX_FILES = 500


@dataclass
class Registrations:
    """What some modules register: names, packages with unknown names, and whether anything goes."""

    names: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    dynamic: list[str] = field(default_factory=list)  # modules whose registrations reading cannot tell

    def registers(self, registered_name: str) -> bool:
        """Whether ``registered_name`` (``package>Name``) may be registered once the modules are imported."""
        if self.dynamic or registered_name in self.names:
            return True
        package, sep, _ = registered_name.partition(">")
        return bool(sep) and package in self.packages


def known_before_run(imports: tuple[str, ...], root: Path) -> IsKnownClass:
    """Whether a class a model file names will be registered when its stage runs, told without TensorFlow.

    A ``.keras`` config gives each custom class's registered name (``package>Name``), compared with what
    ``imports`` register. A legacy (``.h5``, SavedModel) config names tf-keras' classes and custom ones
    alike: there only a registered name (with ``>``) is compared, a plain one is left to the stage.
    """
    registrations: list[Registrations] = []

    def is_known(class_name: str, module: str | None, registered_name: str | None) -> bool:
        name = registered_name or class_name
        if module is None and ">" not in name:
            return True
        if not registrations:
            registrations.append(find_registrations(imports, root))  # NOTE: read only when a model needs it
        return registrations[0].registers(name)

    return is_known


def find_registrations(modules: list[str] | tuple[str, ...], root: Path) -> Registrations:
    """What importing ``modules`` (names as in ``imports:``, found beside the pipeline ``root`` first) registers."""
    found = Registrations()
    for module in modules:
        origin = find_module_source(module, root)
        if origin is None:
            continue  # reported where ``imports:`` is checked
        if origin.suffix != ".py":
            found.dynamic.append(module)  # compiled: only importing it would tell
            continue
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        if len(files) > MAX_FILES:
            found.dynamic.append(module)
            continue
        files += [path for path in helpers_beside(module, origin, root).values() if path.suffix == ".py"]
        for path in dict.fromkeys(files):
            if not _scan(path, found):
                found.dynamic.append(module)
                break
    return found


def _scan(path: Path, found: Registrations) -> bool:
    """Add the registrations ``path`` spells out to ``found``; False when it may register others too."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return True  # importing it fails and says why; it registers nothing
    aliases = {REGISTER} | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                            for alias in node.names if alias.name == REGISTER and alias.asname}
    understood: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if _is_register_call(decorator, aliases):
                    understood.add(id(decorator.func))
                    if not _add(decorator, node.name, found):
                        return False
        elif isinstance(node, ast.Call) and _is_register_call(node.func, aliases):
            # register_keras_serializable("pkg")(Thing)
            understood.add(id(node.func.func))
            target = node.args[0].id if len(node.args) == 1 and isinstance(node.args[0], ast.Name) else None
            if not _add(node.func, target, found):
                return False
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in _DYNAMIC or (name in aliases and id(node) not in understood):
            return False  # NOTE: the decorator passed around, or objects registered by hand
    return True


def _is_register_call(node: ast.AST, aliases: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return name in aliases


def _add(call: ast.Call, default_name: str | None, found: Registrations) -> bool:
    """Record what one ``register_keras_serializable(...)`` call registers; False when it cannot be told."""
    arguments = {keyword.arg: keyword.value for keyword in call.keywords}
    if any(arg is None for arg in arguments):
        return False  # **kwargs
    for position, arg_name in enumerate(("package", "name")):
        if position < len(call.args):
            arguments[arg_name] = call.args[position]
    package = _literal(arguments.get("package"), DEFAULT_PACKAGE)
    if not isinstance(package, str):
        return False
    name = _literal(arguments.get("name"), None)
    name = name if name is not None else default_name
    if isinstance(name, str):
        found.names.add(f"{package}>{name}")
    else:
        found.packages.add(package)
    return True


_UNKNOWN = object()


def _literal(node: ast.AST | None, default):
    """The value of a constant argument, ``default`` when it is absent, else a marker of not knowing."""
    if node is None:
        return default
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return default if node.value is None else node.value
    return _UNKNOWN
