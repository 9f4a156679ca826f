"""Registry of stage and dataset types.

Sources, read once per process, in this order:

1. built-in modules (``BUILTIN_MODULES``),
2. the ``compressflow.stages`` and ``compressflow.datasets`` entry point groups
   (an entry point names a :class:`Stage`/:class:`Dataset` subclass, or a module
   whose import registers them with :func:`register_stage`),
3. modules named in the ``COMPRESSFLOW_PLUGINS`` environment variable
   (comma separated), for plugins that are not installed as packages.

Importing a stage module must not import TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import threading
from importlib.metadata import entry_points
from typing import TypeVar

from compressflow.errors import CompressflowError
from compressflow.stages.base import Dataset, Stage

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
    "compressflow.stages.subpipeline",
    "compressflow.data.datasets",
)
STAGE_GROUP = "compressflow.stages"
DATASET_GROUP = "compressflow.datasets"
PLUGINS_ENV = "COMPRESSFLOW_PLUGINS"

_stages: dict[str, type[Stage]] = {}
_datasets: dict[str, type[Dataset]] = {}
_origins: dict[str, str] = {}
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
    kind = getattr(cls, "kind", "")
    if not kind:
        raise RegistryError(f"{what} class {cls.__qualname__} has no 'kind'")
    origin = f"{cls.__module__}:{cls.__qualname__}"
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


def _load_target(target: str, source: str) -> None:
    try:
        obj = importlib.import_module(target) if ":" not in target else _import_attr(target)
    except Exception as exc:  # a broken plugin must say which one
        raise RegistryError(f"cannot load {source} {target!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, type):
        if issubclass(obj, Stage):
            register_stage(obj)
        elif issubclass(obj, Dataset):
            register_dataset(obj)


def _import_attr(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_all() -> None:
    """Read every source of stage types (once per process)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        installed = entry_points()  # NOTE: one scan of the installed distributions, not one per group
        for group in (STAGE_GROUP, DATASET_GROUP):
            for ep in installed.select(group=group):
                _load_target(ep.value, f"entry point {ep.name!r} of {group}")
        for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
            _load_target(module, f"{PLUGINS_ENV} module")
        _loaded = True


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
