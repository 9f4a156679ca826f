"""Where the Python code behind stage and dataset types is, and its fingerprints for cache keys.

A type's code is the source of the modules :meth:`~compressflow.stages.base.Stage.code_modules`
names: where the type is defined, and the helpers it declares. Sources are found without
importing anything anew: a module already imported (as every registered type's own module is)
gives its file through :func:`inspect.getsourcefile`; another is looked up on the import path.
Each module is read and hashed once per process, so planning many stages of a few types reads
each source file once, and no TensorFlow is imported. The registry reads the source of a plugin
that failed to import from here too.
"""

from __future__ import annotations

import inspect
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from compressflow.stages.base import file_sha256


@lru_cache(maxsize=None)
def module_fingerprint(name: str) -> str | None:
    """sha256 of the source of module ``name`` (None when it has no file, e.g. an interactive ``__main__``)."""
    path = module_source_path(name)
    return None if path is None else file_sha256(path)


def module_source_path(name: str) -> Path | None:
    """The file holding module ``name``'s code: its ``.py`` source, else its compiled file."""
    module = sys.modules.get(name)
    if module is not None:
        try:
            source = inspect.getsourcefile(module)
        except TypeError:  # built into the interpreter
            return None
        found = source or getattr(module, "__file__", None)  # NOTE: no source: hash the .pyc / .so itself
        return Path(found) if found and os.path.isfile(found) else None
    return _find_without_importing(name)


def _find_without_importing(name: str) -> Path | None:
    from compressflow.user_modules import find_module_source  # NOTE: lazily: user_modules imports stages.base

    return find_module_source(name)


@lru_cache(maxsize=None)
def _type_code(cls: type) -> tuple[tuple[str, str | None], ...]:
    return tuple((module, module_fingerprint(module)) for module in cls.code_modules())


def code_fingerprints(classes: Iterable[type]) -> dict[str, str | None]:
    """Module name -> source sha256 for the code of every stage or dataset type in ``classes``."""
    code: dict[str, str | None] = {}
    for cls in classes:
        code.update(_type_code(cls))
    return code
