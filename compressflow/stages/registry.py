"""Registry of stage and dataset types.

Sources, read once per process, in this order:

1. built-in modules (``BUILTIN_MODULES``),
2. the ``compressflow.stages`` and ``compressflow.datasets`` entry point groups
   (an entry point names a :class:`Stage`/:class:`Dataset` subclass, or a module
   whose import registers them with :func:`register_stage`); set
   ``COMPRESSFLOW_NO_ENTRY_POINTS=1`` to skip them,
3. modules named in the ``COMPRESSFLOW_PLUGINS`` environment variable
   (comma separated), for plugins that are not installed as packages; one that is not
   found there is loaded from a pipeline's folder once it is known (:func:`load_plugins_beside`).

A plugin that fails to import (or to register its types) stops nothing: the failure is
recorded (:func:`plugin_failures`), the types it registered before failing are withdrawn,
and it is reported where it matters: where a pipeline names a type that is not registered
(:func:`failures_for` finds the plugins that would have defined it) and in
``compressflow stages``. A built-in module that fails is a bug, and raised.

A type's name is its ``type: Literal["name"]`` field (``kind`` is derived from it).
Importing a stage module must not import TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from compressflow.errors import CompressflowError
from compressflow.stages.base import Dataset, Stage, literal_type_name
from compressflow.stages.code_sources import module_source_path

BUILTIN_MODULES = (
    "compressflow.stages.load",
    "compressflow.stages.fine_tune",
    "compressflow.stages.prune",
    "compressflow.stages.cluster",
    "compressflow.stages.quantize",
    "compressflow.stages.distill",
    "compressflow.stages.evaluate",
    "compressflow.stages.export",
    "compressflow.stages.select",
    "compressflow.stages.search",
    "compressflow.stages.subpipeline",
    "compressflow.data.datasets",
    "compressflow.data.tfrecord",
)
STAGE_GROUP = "compressflow.stages"
DATASET_GROUP = "compressflow.datasets"
GROUPS = {"stage": STAGE_GROUP, "dataset": DATASET_GROUP}
PLUGINS_ENV = "COMPRESSFLOW_PLUGINS"
NO_ENTRY_POINTS_ENV = "COMPRESSFLOW_NO_ENTRY_POINTS"

_stages: dict[str, type[Stage]] = {}
_datasets: dict[str, type[Dataset]] = {}
_origins: dict[str, str] = {}
_failures: list["PluginFailure"] = []
_loaded = False
_lock = threading.RLock()

T = TypeVar("T", bound=type)


class RegistryError(CompressflowError):
    exit_code = 2


def register_stage(cls: T) -> T:
    """Class decorator: make a :class:`Stage` subclass available as ``type: <kind>``."""
    _register(cls, Stage, _stages, "stage")
    return cls


def register_dataset(cls: T) -> T:
    """Class decorator: make a :class:`Dataset` subclass available under ``datasets:``."""
    _register(cls, Dataset, _datasets, "dataset")
    return cls


def _register(cls: type, base: type, table: dict, what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise RegistryError(f"{cls!r} is not a {base.__name__} subclass")
    origin = f"{cls.__module__}:{cls.__qualname__}"
    try:
        kind = literal_type_name(cls)
    except TypeError as exc:
        raise RegistryError(str(exc)) from None
    if not kind:
        raise RegistryError(f"{what} class {origin} has no type name: give it a field "
                            "type: Literal['name'] = 'name'")
    if cls.kind != kind:
        # NOTE: kind is derived from the Literal when the class is made; this catches a later assignment.
        raise RegistryError(f"{what} class {origin} has kind {cls.kind!r} but its 'type' field is "
                            f"Literal[{kind!r}]; the type's name comes from the 'type' field")
    with _lock:
        existing = table.get(kind)
        if existing is not None and existing is not cls:
            if f"{existing.__module__}:{existing.__qualname__}" == origin:
                # The same class re-imported (e.g. a module run twice): keep the newest.
                table[kind] = cls
                return
            raise RegistryError(
                f"{what} type {kind!r} is registered twice: by {_origins[what + kind]} and by {origin}")
        table[kind] = cls
        _origins[what + kind] = origin


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    target: str  # the module, or module:attribute, that was loaded
    error: str  # "ZeroDivisionError: division by zero"
    group: str | None = None  # the entry point group; None for a COMPRESSFLOW_PLUGINS module
    entry_name: str | None = None
    distribution: str | None = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def source(self) -> str:
        """Where the plugin was named, in words."""
        if self.group is None:
            return f"plugin module {self.target!r} (named in {PLUGINS_ENV})"
        installed = f", installed by {self.distribution!r}" if self.distribution else ""
        return f"plugin {self.target!r} (entry point {self.entry_name!r} of {self.group}{installed})"

    def describe(self) -> str:
        """``plugin module 'x' (named in COMPRESSFLOW_PLUGINS) failed to import: ZeroDivisionError: ...``"""
        return f"{self.source} failed to import: {self.error}"

    def hint(self) -> str:
        """What to do about it."""
        shows = f"python -c 'import {self.module}' shows the traceback"
        if self.group is None:
            return f"fix the module ({shows}) or remove it from {PLUGINS_ENV}"
        owner = f"the distribution {self.distribution!r}" if self.distribution else "the plugin"
        return f"fix or reinstall {owner} ({shows}), or uninstall it"

    def may_define(self, kind: str, what: str = "stage") -> bool:
        """Whether this plugin would have registered the ``what`` type ``kind``.

        True when its entry point is named ``kind`` or its module's source spells ``'kind'``
        (its ``type: Literal["kind"]``): the module cannot be asked, it failed to import.
        """
        if self.group is not None and self.group != GROUPS.get(what):
            return False
        if self.entry_name == kind:
            return True
        path = module_source_path(self.module)
        if path is None or path.suffix != ".py":
            return False
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return False
        return re.search(r"""(['"])%s\1""" % re.escape(kind), text) is not None


def _load_target(target: str, **where: str | None) -> None:
    """Import a plugin and register what it names; a failure is recorded, not raised."""
    with _lock:
        before = {"stage": set(_stages), "dataset": set(_datasets)}
        try:
            obj = importlib.import_module(target) if ":" not in target else _import_attr(target)
            if isinstance(obj, type) and issubclass(obj, Stage):
                register_stage(obj)
            elif isinstance(obj, type) and issubclass(obj, Dataset):
                register_dataset(obj)
        except (Exception, SystemExit) as exc:  # NOTE: one broken plugin must not break the pipelines of others
            _withdraw_half_imported(before)
            text = str(exc).strip().splitlines()
            _failures.append(PluginFailure(target, type(exc).__name__ + (f": {text[0]}" if text else ""), **where))


def _withdraw_half_imported(before: dict[str, set[str]]) -> None:
    """Unregister the types added since ``before`` whose module failed to import (it left sys.modules)."""
    for what, table in (("stage", _stages), ("dataset", _datasets)):
        for kind in set(table) - before[what]:
            if table[kind].__module__ not in sys.modules:
                del table[kind]
                _origins.pop(what + kind, None)


def _import_attr(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_all() -> None:
    """Read every source of stage types (once per process); broken plugins are recorded, not raised."""
    global _loaded
    with _lock:
        if _loaded:
            return
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        if os.environ.get(NO_ENTRY_POINTS_ENV, "").strip().lower() not in ("1", "true", "yes"):
            _load_entry_points()
        for module in dict.fromkeys(filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")))):
            _load_target(module)
        _loaded = True


def load_plugins_beside(folder: Path) -> None:
    """Load the ``COMPRESSFLOW_PLUGINS`` modules that were not found on the import path from ``folder``
    (a pipeline's), where they are there; the folder then comes first on the import path."""
    from compressflow.user_modules import find_module_source, is_beside, use_pipeline_folder

    def found_there(module: str) -> bool:
        source = find_module_source(module, folder)
        return source is not None and is_beside(source, folder)

    load_all()
    with _lock:
        missing = [failure for failure in _failures if failure.group is None
                   and failure.error.startswith("ModuleNotFoundError") and found_there(failure.module)]
        if not missing:
            return
        use_pipeline_folder(folder)
        for failure in missing:
            _failures.remove(failure)
            _load_target(failure.target)


def _load_entry_points() -> None:
    installed = entry_points()  # NOTE: one scan of the installed distributions, not one per group
    for group in (STAGE_GROUP, DATASET_GROUP):
        for ep in installed.select(group=group):
            _load_target(ep.value, group=group, entry_name=ep.name, distribution=_distribution_name(ep))


def _distribution_name(ep) -> str | None:
    try:
        return ep.dist.name if ep.dist is not None else None
    except Exception:  # NOTE: damaged metadata must not hide the plugin's own failure
        return None


def stage_types() -> dict[str, type[Stage]]:
    """Every registered stage type by its ``type:`` name."""
    load_all()
    return dict(_stages)


def dataset_types() -> dict[str, type[Dataset]]:
    """Every registered dataset type by its ``type:`` name."""
    load_all()
    return dict(_datasets)


def stage_origin(kind: str) -> str:
    load_all()
    return _origins.get("stage" + kind, "?")


def plugin_failures() -> list[PluginFailure]:
    """The plugins that failed to load in this process, in the order they were tried."""
    load_all()
    return list(_failures)


def failures_for(kind: str, what: str = "stage") -> list[PluginFailure]:
    """The failed plugins that would have registered the ``what`` (stage / dataset) type ``kind``."""
    return [failure for failure in plugin_failures() if failure.may_define(kind, what)]
