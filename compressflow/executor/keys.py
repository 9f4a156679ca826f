"""Cache keys: sha256 of a canonical JSON document of everything that can change a stage's output.

The key document of a stage holds its type and implementation version, its resolved
config (references left out), the keys of its inputs, the datasets it reads (config and
fingerprint), its seed, fingerprints of what it reads from outside the pipeline, the source
of the code behind its type and the types of the datasets it reads (built-in or plugin), the
source of the pipeline's ``imports:`` for a stage that loads models, the machine for a stage that
measures it (latency), and the versions of Python, compressflow and the libraries it uses.
Nothing else: renaming a stage, reordering the file or editing a description does not
invalidate it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from typing import Any

from compressflow.executor.process_setup import loads_models
from compressflow.fingerprints import distribution_version
from compressflow.stages.machine import machine_fingerprint
from compressflow.stages.base import Environment, Stage, derive_seed
from compressflow.stages.code_sources import code_fingerprints

KEY_FORMAT = 2  # 2: the source of the stage's (and its datasets') code is in "code"
# NOTE: the per-plan memo holds datasets by name; no dataset name has parentheses.
_IMPORTS_MEMO = "(imports)"


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace; NaN is refused."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def library_versions(stage: Stage) -> dict[str, str | None]:
    versions = {"python": platform.python_version(), "compressflow": distribution_version("compressflow")}
    for name in stage.libraries:
        versions[name] = distribution_version(name)
    return versions


@dataclass(frozen=True)
class StageKey:
    """A stage's cache key and the document it was computed from."""

    key: str
    doc: dict[str, Any]


def stage_key(name: str, stage: Stage, input_keys: dict[str, str | list[str]],
              env: Environment, seed_name: str | None = None,
              dataset_fingerprints: dict[str, dict] | None = None) -> StageKey:
    """Compute the key of ``stage`` given the keys of the stages it references.

    ``input_keys`` maps each reference field (except ``after``) to the key, or list of
    keys, of the referenced stage(s). ``seed_name`` is the name the stage's seed is
    derived from (defaults to ``name``). ``dataset_fingerprints``, when given, memoizes
    the dataset part by dataset name across the stages of one plan (a dataset file is
    hashed once, not once per stage that reads it).
    """
    memo = {} if dataset_fingerprints is None else dataset_fingerprints
    datasets = {}
    code_of: list[type] = [type(stage)]
    for field_name, dataset_name in stage.dataset_refs().items():
        dataset = env.datasets[dataset_name]
        code_of.append(type(dataset))
        if dataset_name not in memo:
            memo[dataset_name] = {
                "config": dataset.model_dump(mode="json"),
                "fingerprint": dataset.key_fingerprint(env),
                "split_seed": env.seed,
            }
        datasets[field_name] = memo[dataset_name]
    doc = {
        "format": KEY_FORMAT,
        "type": stage.kind,
        "implementation": stage.version,
        "config": stage.key_config(),
        "inputs": input_keys,
        "datasets": datasets,
        "seed": derive_seed(env.seed, seed_name or name),
        "external": stage.fingerprint(env),
        "code": code_fingerprints(code_of),
        "versions": library_versions(stage),
    }
    if stage.depends_on_machine():
        doc["machine"] = machine_fingerprint()
    if env.imports and loads_models(stage):
        if _IMPORTS_MEMO not in memo:
            memo[_IMPORTS_MEMO] = imports_fingerprints(env)
        doc["imports"] = memo[_IMPORTS_MEMO]
    return StageKey(digest(doc), doc)


def imports_fingerprints(env: Environment) -> dict[str, str | None]:
    """Module name -> sha256 of its source for the pipeline's ``imports:`` (found beside the pipeline first)."""
    from compressflow.user_modules import module_source_fingerprint

    return {name: module_source_fingerprint(name, env.pipeline_dir) for name in env.imports}
