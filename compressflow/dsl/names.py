"""Stage names: the ones users write and the ones sub-pipelines and sweeps generate.

* Users write plain names (``pruned``): see :data:`~compressflow.dsl.schema.NAME_PATTERN`.
* The stages of a sub-pipeline are ``<pipeline stage>.<recipe stage>`` (``int8_recipe.prune``).
* The variants of a sweep are ``<stage>[<label>=<value>,...]`` (``pruned[final_sparsity=0.7]``).

Only the loader makes names with ``.`` or ``[...]``: a user cannot write them as keys,
so a generated name never collides with a written one. The variant part, when there is
one, is always last, and it starts at the first ``[``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from compressflow.errors import Problem
from compressflow.dsl.errors_text import describe
from compressflow.dsl.limits import MAX_NAME_LENGTH
from compressflow.dsl.located import LocatedDict
from compressflow.dsl.problems import Problems
from compressflow.dsl.schema import NAME_PATTERN, NAME_RULE

NAMESPACE_SEPARATOR = "."
VARIANT_OPEN, VARIANT_CLOSE = "[", "]"

_USER_NAME = re.compile(NAME_PATTERN)


def is_user_name(name: Any) -> bool:
    """Whether ``name`` is a name a user may write (a stage, dataset, param or template name)."""
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and bool(_USER_NAME.match(name))


def split_variant(name: str) -> tuple[str, str]:
    """``("pruned", "[final_sparsity=0.7]")`` for ``pruned[final_sparsity=0.7]``; ``(name, "")`` otherwise."""
    index = name.find(VARIANT_OPEN)
    return (name, "") if index < 0 else (name[:index], name[index:])


def base_name(name: str) -> str:
    """The stage a variant belongs to: ``int8_recipe.prune[final_sparsity=0.7]`` -> ``int8_recipe.prune``."""
    return split_variant(name)[0]


def local_name(name: str) -> str:
    """The name a stage has in its own file: ``int8_recipe.prune[final_sparsity=0.7]`` -> ``prune``."""
    return base_name(name).rsplit(NAMESPACE_SEPARATOR, 1)[-1]


def namespaced(namespace: str, name: str) -> str:
    """``int8_recipe`` + ``prune`` -> ``int8_recipe.prune``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def variant_name(stage: str, labels: list[tuple[str, str]]) -> str:
    """``pruned`` + ``[("final_sparsity", "0.7")]`` -> ``pruned[final_sparsity=0.7]`` (no labels: ``pruned``)."""
    if not labels:
        return stage
    return stage + VARIANT_OPEN + ",".join(f"{label}={text}" for label, text in labels) + VARIANT_CLOSE


def format_value(value: Any) -> str:
    """A sweep value as it appears in a variant name: short, readable and deterministic.

    Numbers use the shortest text that reads back as the same number (``0.7``, ``1e-05``),
    booleans and null are written as in YAML, lists and mappings in compact flow style.
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{format_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def check_stage_names(document: LocatedDict, problems: Problems) -> None:
    """Report stage names a user may not write; names that look generated are dropped.

    ``document`` is a located pipeline (or recipe) document.
    """
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict):
        return
    for name in list(stages):
        if is_user_name(name):
            continue
        generated = isinstance(name, str) and any(mark in name for mark in
                                                  (NAMESPACE_SEPARATOR, VARIANT_OPEN, VARIANT_CLOSE))
        hint = ("'.' and '[...]' only appear in names the loader makes: stages of a sub-pipeline "
                "(recipe_stage.stage) and variants of a sweep (stage[field=value])") if generated else None
        problems.invalid(Problem(f"invalid stage name {describe(name)}: {NAME_RULE}", stages.key_location(name),
                                 ("stages", name), hint))
        if generated:
            stages.drop(name)
