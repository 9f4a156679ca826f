"""``load_pipeline``: a pipeline file (or dict) -> a validated :class:`Pipeline`.

Steps, each adding to one list of problems so that all are reported at once:

1. read the YAML into located data (:mod:`~compressflow.dsl.yaml_source`),
2. expand includes and templates (:mod:`~compressflow.dsl.reuse`),
3. apply ``--params`` files, then ``--set`` overrides (:mod:`~compressflow.dsl.overrides`),
4. resolve ``${params.x}`` (:mod:`~compressflow.dsl.interpolate`),
5. bring in the stages of sub-pipelines (:mod:`~compressflow.dsl.subpipelines`), then
   expand sweeps into their variants (:mod:`~compressflow.dsl.sweeps`),
6. validate with the pydantic model (:mod:`~compressflow.dsl.validate`),
7. check references and cycles (:mod:`~compressflow.dsl.references`) and what stages
   require of each other (:mod:`~compressflow.dsl.cross_checks`),
8. check what stages would reach outside the pipeline: paths leaving its folder, files
   and modules that are not there (:mod:`~compressflow.dsl.external`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from compressflow.errors import Location, PipelineError, Problem
from compressflow.dsl.gc_pause import cyclic_gc_paused
from compressflow.dsl.external import check_external, valid_entries
from compressflow.dsl.imports_check import check_imports, declared_imports
from compressflow.dsl.interpolate import interpolate
from compressflow.dsl.cross_checks import cross_check
from compressflow.dsl.located import LocatedDict, from_plain, locate_path
from compressflow.dsl.model import Pipeline
from compressflow.dsl.names import check_stage_names
from compressflow.dsl.problems import Problems
from compressflow.dsl.overrides import apply_overrides, params_file_overrides, parse_overrides
from compressflow.dsl.references import check_references
from compressflow.dsl.reuse import expand_reuse
from compressflow.dsl.subpipelines import expand_subpipelines
from compressflow.dsl.sweeps import expand_sweeps
from compressflow.dsl.validate import validate_document
from compressflow.dsl.yaml_source import ParsedYaml, read_yaml_file
from compressflow.stages.registry import load_plugins_beside, stage_types

DICT_SOURCE = "<dict>"


def load_pipeline(source: str | os.PathLike[str] | Mapping[str, Any],
                  overrides: Iterable[str] | Mapping[str, Any] | None = None,
                  params_files: Iterable[str | os.PathLike[str]] | None = None, *,
                  allow_outside_paths: bool = False) -> Pipeline:
    """Load, resolve and validate a pipeline.

    ``source`` is the path of a YAML file or a mapping (its locations then read
    ``<dict>:1:1``). ``overrides`` are ``"dotted.path=value"`` strings (values
    parsed with YAML rules) or a ``{"dotted.path": value}`` mapping;
    ``params_files`` are YAML files whose entries override ``params``.
    Included files, and paths that stages and datasets read or write, must be
    inside the pipeline's folder unless ``allow_outside_paths`` is set.

    Raises :class:`~compressflow.errors.PipelineError` carrying every problem
    found, sorted by location; bad input never raises anything else.
    """
    with cyclic_gc_paused():
        return _load(source, overrides, params_files, allow_outside_paths)


def _load(source: Any, overrides: Any, params_files: Any, allow_outside_paths: bool) -> Pipeline:
    problems = Problems()
    parsed, path, root = _read_source(source)
    load_plugins_beside(root)
    problems.extend(parsed.problems)
    for invalid_path in parsed.invalid_paths:
        problems.mark_invalid(invalid_path)
    document = _top_level_mapping(parsed)
    expand_reuse(document, path, root, allow_outside_paths, problems)
    apply_overrides(document, params_file_overrides(params_files, problems)
                    + parse_overrides(overrides, problems), problems)
    interpolate(document, problems)
    classes = stage_types()
    check_stage_names(document, problems)
    expand_subpipelines(document, path, root, allow_outside_paths, classes, problems)
    expand_sweeps(document, classes, problems)
    validated = validate_document(document, problems)
    graph = check_references(document, classes, problems)
    if not problems and validated is not None:
        cross_check(document, dict(validated.stages), problems)
    # NOTE: also beside other problems, so that a missing file is not found only once they are fixed
    problems.extend(check_imports(document, root))
    imports = declared_imports(document, validated)
    problems.extend(check_external(*valid_entries(document, validated), document, root, allow_outside_paths,
                                   imports=imports))
    if problems or validated is None:
        raise PipelineError(problems.report(document.location.file, lambda at: _note(document, at)))
    return Pipeline(
        name=validated.name, version=validated.version, seed=validated.seed,
        params=dict(validated.params), datasets=dict(validated.datasets), stages=dict(validated.stages),
        path=path, root=root, document=document, imports=imports, _graph=graph)


def _read_source(source: Any) -> tuple[ParsedYaml, Path | None, Path]:
    if isinstance(source, Mapping):
        problems: list[Problem] = []
        location = Location(DICT_SOURCE, 1, 1)
        value = from_plain(dict(source), location, problems)
        if problems:
            raise PipelineError(problems)
        return ParsedYaml(value, location), None, Path.cwd()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        parsed = read_yaml_file(path, str(source))
        resolved = path.resolve()
        return parsed, resolved, resolved.parent
    raise PipelineError([Problem(
        f"a pipeline is a path to a YAML file or a mapping, not {type(source).__name__}")])


def _top_level_mapping(parsed: ParsedYaml) -> LocatedDict:
    if parsed.empty:
        raise PipelineError([Problem(
            "the pipeline file is empty", parsed.location,
            hint="a pipeline file is a mapping with at least 'name:' and 'stages:'")])
    if not isinstance(parsed.value, LocatedDict):
        raise PipelineError(parsed.problems + [Problem(
            f"the top level of a pipeline must be a mapping (keys such as 'name:' and 'stages:'), "
            f"not {_kind(parsed.value)}", parsed.location)])
    return parsed.value


def _note(document: LocatedDict, path: tuple) -> str | None:
    found = locate_path(document, path)
    return found[1] if found else None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
