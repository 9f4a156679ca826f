"""Make a process ready to run a pipeline's stages, the same way in every process.

The main process, a ``--jobs`` worker and a Dask worker all go through here before a stage runs:

* the pipeline's folder comes first on the import path (:func:`compressflow.user_modules.use_pipeline_folder`),
  so ``builder:``, a dataset's ``function:``, plugins and ``imports:`` beside the pipeline import
  without ``PYTHONPATH``; a module of that name imported earlier from elsewhere is forgotten;
* TensorFlow is configured for tf-keras before anything imports it;
* before a stage that deserializes models runs, the modules of ``imports:`` are imported (once per
  process), so the custom objects they register are known, also when the stage that first needed
  them is cached and never ran in this process.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Iterable

from compressflow.errors import StageFailed
from compressflow.stages.base import Environment, Stage
from compressflow.user_modules import find_module_source, module_spec, use_pipeline_folder

#: A stage whose libraries include this deserializes Keras models: the modules of ``imports:`` are
#: imported before it runs and their sources are in its cache key.
MODEL_LIBRARY = "tf-keras"


def configure_tensorflow_environment() -> None:
    """Set what must be set before TensorFlow is first imported in this process."""
    # NOTE: tfmot needs Keras 2; a module of ``imports:`` may import TensorFlow before any stage does.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def loads_models(stage: Stage) -> bool:
    """Whether ``stage`` deserializes Keras models (so it needs the custom objects of ``imports:``)."""
    return MODEL_LIBRARY in stage.libraries


def user_modules_of(stage: Stage, env: Environment) -> list[str]:
    """Modules of the user's that running ``stage`` imports: its and its datasets' ``module_fields``, ``imports:``."""
    configs = [stage, *(env.datasets[name] for name in stage.dataset_refs().values() if name in env.datasets)]
    specs = [module_spec(getattr(config, field, None)) for config in configs for field in config.module_fields]
    names = [spec.partition(":")[0] for spec in specs if spec]
    return list(dict.fromkeys(names + list(env.imports)))


def prepare_for_stage(stage: Stage, env: Environment) -> None:
    """Ready this process for ``stage`` of the pipeline in ``env``; a module of ``imports:`` that fails says so.

    Raises :class:`StageFailed` naming the module of ``imports:`` that cannot be imported.
    """
    use_pipeline_folder(env.pipeline_dir)
    forget_stale_modules(user_modules_of(stage, env), env.pipeline_dir)
    configure_tensorflow_environment()
    if env.imports and loads_models(stage):
        import_modules(env.imports)


def forget_stale_modules(names: Iterable[str], root: Path) -> None:
    """Drop modules (and their submodules) that were imported from another file than ``names`` resolve to now.

    NOTE: a process that runs pipelines of several folders (the Python API, a Dask worker) may have
    imported another folder's ``models.py``; the next import must find this pipeline's.
    """
    for name in dict.fromkeys(part for name in names for part in (name.partition(".")[0], name)):
        module = sys.modules.get(name)
        loaded = getattr(module, "__file__", None) if module is not None else None
        expected = find_module_source(name, root) if loaded else None
        if expected is None or Path(loaded).resolve() == expected.resolve():
            continue
        for other in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
            del sys.modules[other]


def import_modules(names: Iterable[str]) -> None:
    """Import the modules of ``imports:`` (a module already imported is not run again)."""
    for name in names:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module: one clear error
            text = str(exc).strip().splitlines()
            raise StageFailed(f"module {name!r} of the pipeline's `imports:` failed to import: "
                              f"{type(exc).__name__}{': ' + text[0] if text else ''} "
                              f"(python -c 'import {name}' in the pipeline's folder shows the traceback)") from exc
