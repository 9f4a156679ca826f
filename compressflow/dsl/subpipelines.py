"""Sub-pipelines: a ``type: pipeline`` stage brings in the stages of another pipeline file (a recipe).

A recipe is a pipeline file that may declare ``inputs: [model]`` (names its stages use as
if they were stages) and ``output: STAGE`` (what a reference to the ``pipeline`` stage
means)::

    int8_recipe:
      type: pipeline
      path: recipes/prune-int8.yaml      # relative to this file
      params: {sparsity: 0.8}            # the recipe's params (it must declare them)
      inputs: {model: trained}           # its inputs bound to this pipeline's stages

The recipe's stages join this pipeline as ``int8_recipe.prune``, ``int8_recipe.int8``;
``model: int8_recipe`` elsewhere means ``int8_recipe.<output>``. A recipe has its own
``params``, ``include`` and ``templates``; its stages may use other recipes (nested names:
``a.b.prune``). A recipe that uses itself, directly or not, is an error.

Datasets: the names a recipe's stages use are this pipeline's datasets
(``datasets: {digits: mnist}`` on the pipeline stage renames one). A recipe's own
``datasets:`` are defaults, added when the pipeline defines no dataset of that name: the
pipeline's definition wins. Two recipes that add different datasets under one name conflict.

Relative paths inside a recipe's stages (a model file, an export target) are, like every
path a stage reads, relative to the pipeline that is run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compressflow.errors import Location, PipelineError, Problem, did_you_mean
from compressflow.dsl.errors_text import problem_from_pydantic
from compressflow.dsl.includes import expand_includes, resolve_relative
from compressflow.dsl.interpolate import interpolate
from compressflow.dsl.located import LocatedDict, LocatedList, copy_located
from compressflow.dsl.names import base_name, check_stage_names, is_user_name, namespaced, split_variant
from compressflow.dsl.problems import Problems
from compressflow.dsl.schema import TOP_LEVEL_KEYS, pipeline_model
from compressflow.dsl.templates import apply_templates
from compressflow.dsl.yaml_source import read_yaml_file
from compressflow.stages.base import Stage

PIPELINE_TYPE = "pipeline"
#: Deepest nesting of recipes using recipes.
MAX_RECIPE_DEPTH = 16
#: Most recipe files one pipeline may expand (each use counts).
MAX_RECIPE_USES = 500

Chain = list[tuple[Path, str, Location | None]]  # files being expanded, each with where it is used


@dataclass
class _State:
    root: Path
    allow_outside: bool
    problems: Problems
    classes: dict[str, type[Stage]]
    uses: int = 0
    # (id of a datasets mapping, name) -> (location, plain value) of a dataset a recipe added there
    added_datasets: dict[tuple[int, str], tuple[Location, Any]] = field(default_factory=dict)


def expand_subpipelines(document: LocatedDict, file: Path | None, root: Path, allow_outside: bool,
                        stage_classes: dict[str, type[Stage]], problems: Problems) -> None:
    """Replace every ``pipeline`` stage of ``document`` by its recipe's namespaced stages (in place)."""
    inputs = document.get("inputs")
    if isinstance(inputs, list) and inputs:
        problems.append(Problem(
            "this file is a recipe (it declares 'inputs'), not a pipeline that can run on its own",
            document.key_location("inputs"), ("inputs",),
            hint="use it from a pipeline: a stage with 'type: pipeline', 'path:' this file and 'inputs:' bound"))
    state = _State(root.resolve(), allow_outside, problems, stage_classes)
    here = file.resolve() if file is not None else None
    chain: Chain = [(here, document.location.file, None)] if here is not None else []
    _expand_document(document, here, document.location.file, chain, state, ())


def _expand_document(document: LocatedDict, file: Path | None, display: str, chain: Chain, state: _State,
                     inputs: tuple[str, ...]) -> dict[str, str | None]:
    """Expand the ``pipeline`` stages of one document; return what their names now mean."""
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict) or not any(_is_pipeline(c) for c in stages.values()):
        return {}
    known = [*stages, *inputs]
    aliases: dict[str, str | None] = {}
    expanded = LocatedDict(stages.location)
    for name, config in stages.items():
        result = _expand_stage(document, name, config, file, display, chain, state, known) \
            if _is_pipeline(config) else None
        if result is None:
            expanded.put_like(name, config, stages, name)
            continue
        recipe_stages, stage_aliases = result
        for sub_name in recipe_stages:
            expanded.put_like(sub_name, recipe_stages[sub_name], recipe_stages, sub_name)
        aliases.update(stage_aliases)
    document.put("stages", expanded, document.key_location("stages"), document.value_location("stages"))
    _resolve_aliases(expanded, aliases, state)
    return aliases


def _is_pipeline(config: Any) -> bool:
    return isinstance(config, LocatedDict) and config.get("type") == PIPELINE_TYPE


# --------------------------------------------------------------------------- one pipeline stage


def _expand_stage(document: LocatedDict, name: str, config: LocatedDict, file: Path | None, display: str,
                  chain: Chain, state: _State, known: list[str]) -> tuple[LocatedDict, dict[str, str | None]] | None:
    """``(namespaced stages, aliases)`` of one ``pipeline`` stage, or None after reporting why not."""
    problems, at = state.problems, ("stages", name)
    stage = _validated(document, name, config, state)
    recipe_file = _recipe_file(name, config, stage, file, display, chain, state) if stage is not None else None
    if recipe_file is None:
        problems.mark_invalid(at)
        return None
    target, shown, location = recipe_file
    recipe = _read_recipe(target, shown, location, at + ("path",), state)
    if recipe is None:
        problems.mark_invalid(at)
        return None
    expand_includes(recipe, target, shown, state.root, state.allow_outside, problems)
    apply_templates(recipe, problems)
    declared = _declared_inputs(recipe, problems)
    _set_params(recipe, name, config, shown, problems)
    interpolate(recipe, problems)
    check_stage_names(recipe, problems)
    inner = _expand_document(recipe, target, shown, chain + [(target, shown, location)], state, tuple(declared))
    recipe_stages = recipe.get("stages")
    if not isinstance(recipe_stages, LocatedDict) or not recipe_stages:
        problems.append(Problem("a recipe needs at least one stage under 'stages'", recipe.location, ("stages",)))
        problems.mark_invalid(at)
        return None
    bindings = _bindings(name, config, stage, declared, shown, known, document["stages"].key_location(name),
                         problems)
    mapping: dict[str, tuple[str, str | None]] = {local: (namespaced(name, local), None) for local in recipe_stages}
    mapping.update(bindings)
    renamed = _namespace(recipe_stages, mapping, list(declared), shown, config, state)
    _rename_datasets(renamed, stage.datasets, recipe, name, config, state)
    _merge_datasets(document, recipe, stage.datasets, state)
    aliases = {namespaced(name, inner_name): namespaced(name, inner_target) if inner_target else inner_target
               for inner_name, inner_target in inner.items()}
    aliases[name] = _output(recipe, recipe_stages, inner, name, shown, problems)
    return renamed, aliases


def _validated(document: LocatedDict, name: str, config: LocatedDict, state: _State) -> Stage | None:
    cls = state.classes.get(PIPELINE_TYPE)
    if cls is None:  # pragma: no cover - the type is built in
        return None
    try:
        return cls.model_validate_json(json.dumps(config), strict=True)
    except (ValidationError, ValueError) as exc:
        errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else []
        model = pipeline_model()
        for error in errors:
            state.problems.append(problem_from_pydantic({**error, "loc": ("stages", name, *error["loc"])},
                                                        document, model))
        if not errors:
            state.problems.append(Problem(f"invalid 'pipeline' stage: {exc}", document["stages"].key_location(name),
                                          ("stages", name)))
        return None


def _recipe_file(name: str, config: LocatedDict, stage: Stage, file: Path | None, display: str, chain: Chain,
                 state: _State) -> tuple[Path, str, Location] | None:
    location, at = config.value_location("path"), ("stages", name, "path")
    target, shown, problem = resolve_relative(stage.path, file, display, location, at, "recipe",
                                              state.root, state.allow_outside)
    if problem is not None:
        state.problems.append(problem)
        return None
    if any(target == path for path, _, _ in chain):
        start = next(i for i, (path, _, _) in enumerate(chain) if path == target)
        cycle = chain[start:] + [(target, shown, location)]
        steps = "; ".join(f"{cycle[i][1]} uses {cycle[i + 1][1]} at {cycle[i + 1][2]}" for i in range(len(cycle) - 1))
        state.problems.append(Problem("recipe cycle: " + " -> ".join(shown for _, shown, _ in cycle), location, at,
                                      hint=steps))
        return None
    if len(chain) > MAX_RECIPE_DEPTH or state.uses >= MAX_RECIPE_USES:
        state.problems.append(Problem(f"recipes nest deeper than {MAX_RECIPE_DEPTH} levels or are used more than "
                                      f"{MAX_RECIPE_USES} times", location, at))
        return None
    state.uses += 1
    return target, shown, location


def _read_recipe(target: Path, shown: str, location: Location, at: tuple, state: _State) -> LocatedDict | None:
    try:
        parsed = read_yaml_file(target, shown)
    except PipelineError as exc:
        # A file that cannot be read at all is reported where it is used.
        state.problems.extend(problem if problem.location else Problem(problem.message, location, at, problem.hint)
                              for problem in exc.problems)
        return None
    state.problems.extend(parsed.problems)
    if parsed.empty or not isinstance(parsed.value, LocatedDict):
        state.problems.append(Problem("a recipe is a pipeline file: a mapping with 'stages' (and 'inputs', "
                                      "'output', 'params' as it needs)", parsed.location))
        return None
    recipe = parsed.value
    for key in list(recipe):
        if key == "imports":
            state.problems.append(Problem("a recipe has no 'imports' of its own", recipe.key_location(key), (key,),
                                          hint="list the modules under 'imports' of the pipeline that uses it"))
            recipe.drop(key)
        elif key not in TOP_LEVEL_KEYS:
            state.problems.append(Problem(f"unknown top-level key '{key}' in a recipe", recipe.key_location(key),
                                          (key,), hint=did_you_mean(str(key), TOP_LEVEL_KEYS)
                                          or "known: " + ", ".join(TOP_LEVEL_KEYS)))
            recipe.drop(key)
    return recipe


def _declared_inputs(recipe: LocatedDict, problems: Problems) -> dict[str, Location]:
    value = recipe.get("inputs")
    if value is None:
        return {}
    if not isinstance(value, LocatedList) or not all(isinstance(item, str) for item in value):
        problems.append(Problem("'inputs' is a list of names, e.g. [model]", recipe.value_location("inputs"),
                                ("inputs",)))
        return {}
    declared: dict[str, Location] = {}
    stages = recipe.get("stages") if isinstance(recipe.get("stages"), LocatedDict) else {}
    for index, item in enumerate(value):
        location = value.item_location(index)
        if not is_user_name(item) or item in declared or item in stages:
            why = ("it is also a stage of the recipe" if item in stages
                   else "it is listed twice" if item in declared else "it is not a valid name")
            problems.append(Problem(f"invalid recipe input '{item}': {why}", location, ("inputs", index)))
            continue
        declared[item] = location
    return declared


def _set_params(recipe: LocatedDict, name: str, config: LocatedDict, shown: str, problems: Problems) -> None:
    given = config.get("params")
    if not isinstance(given, LocatedDict) or not given:
        return
    params = recipe.get("params")
    if not isinstance(params, LocatedDict):
        params = LocatedDict(recipe.location)
        recipe.put("params", params, recipe.location, recipe.location)
    for key in given:
        if key not in params:
            known = list(params)
            problems.append(Problem(
                f"unknown recipe param '{key}': {shown} declares no such param", given.key_location(key),
                ("stages", name, "params", key),
                hint=did_you_mean(str(key), known) or (f"its params: {', '.join(known)}" if known
                                                      else "the recipe declares no params")))
            continue
        params.put(key, _escaped(copy_located(given[key])), given.key_location(key), given.value_location(key),
                   f"the value comes from params of stage '{name}' ({given.value_location(key)})")


def _escaped(value: Any) -> Any:
    """``value`` with ``${`` written ``$${``: it was resolved already and must stay literal in the recipe."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, LocatedDict):
        for key in value:
            value[key] = _escaped(value[key])
    elif isinstance(value, LocatedList):
        for index in range(len(value)):
            value[index] = _escaped(value[index])
    return value


def _bindings(name: str, config: LocatedDict, stage: Stage, declared: dict[str, Location], shown: str,
              known: list[str], stage_location: Location, problems: Problems) -> dict[str, tuple[str, str | None]]:
    """Recipe input -> (stage of the using file, note) for every valid binding; problems for the others."""
    given = config.get("inputs") if isinstance(config.get("inputs"), LocatedDict) else LocatedDict(config.location)
    bindings: dict[str, tuple[str, str | None]] = {}
    for input_name, target in stage.inputs.items():
        at = ("stages", name, "inputs", input_name)
        if input_name not in declared:
            hint = did_you_mean(input_name, declared) or (f"its inputs: {', '.join(declared)}" if declared
                                                          else "the recipe declares no inputs")
            problems.append(Problem(f"unknown recipe input '{input_name}': {shown} declares no such input",
                                    given.key_location(input_name), at, hint=hint))
            continue
        head = base_name(target).split(".", 1)[0]
        if head not in known:
            problems.append(Problem(f"input '{input_name}' of stage '{name}' is bound to an unknown stage '{target}'",
                                    given.value_location(input_name), at,
                                    hint=did_you_mean(target, known) or "known: " + ", ".join(known[:20])))
            continue
        bindings[input_name] = (target, f"bound by 'inputs' of stage '{name}' ({given.value_location(input_name)})")
    for input_name, location in declared.items():
        if input_name not in stage.inputs:
            where = config.key_location("inputs") if "inputs" in config else stage_location
            problems.append(Problem(
                f"recipe input '{input_name}' is not bound: add it to 'inputs' of stage '{name}'", where,
                ("stages", name, "inputs"),
                hint=f"{shown} declares it at {location}; e.g. inputs: {{{input_name}: STAGE}}"))
    return bindings


def _namespace(recipe_stages: LocatedDict, mapping: dict[str, tuple[str, str | None]], inputs: list[str],
               shown: str, config: LocatedDict, state: _State) -> LocatedDict:
    """The recipe's stages under their new names, their references renamed, ``after`` added."""
    out = LocatedDict(recipe_stages.location)
    after = config.get("after") if isinstance(config.get("after"), LocatedList) else None
    for local, stage_config in recipe_stages.items():
        new_name = mapping[local][0]
        if isinstance(stage_config, LocatedDict):
            for field_name in _rename_references(local, stage_config, mapping, inputs, shown, state):
                # Left unrenamed and reported already: the reference check would only repeat it.
                state.problems.mark_invalid(("stages", new_name, field_name))
            if after:
                _add_after(stage_config, after)
        out.put_like(new_name, stage_config, recipe_stages, local)
    return out


def _rename_references(local: str, config: LocatedDict, mapping: dict[str, tuple[str, str | None]],
                       inputs: list[str], shown: str, state: _State) -> list[str]:
    """Rename the references of one recipe stage; return the fields holding a name that could not be."""
    known = [name for name in mapping if name not in inputs] + inputs
    unresolved = []
    for field_name, container, key, value in _reference_values(config, state.classes):
        base, suffix = split_variant(value)
        location = container.value_location(key) if isinstance(container, LocatedDict) \
            else container.item_location(key)
        if base not in mapping:
            unresolved.append(field_name)
            if base in inputs:
                continue  # an input left unbound: reported at the pipeline stage
            at = ("stages", local, field_name) + (() if isinstance(container, LocatedDict) else (key,))
            state.problems.append(Problem(
                f"'{field_name}' of stage '{local}' in recipe {shown} names an unknown stage '{value}'", location, at,
                hint=did_you_mean(base, known) or "a recipe's stages may name its own stages and its inputs"
                + (f" ({', '.join(inputs)})" if inputs else "")))
            continue
        target, note = mapping[base]
        _replace(container, key, target + suffix, location, note)
    return unresolved


def _reference_values(config: LocatedDict, classes: dict[str, type[Stage]]):
    """``(field, container, key, name)`` of every stage name in the reference fields of ``config``."""
    kind = config.get("type")
    cls = classes.get(kind) if isinstance(kind, str) else None
    fields = cls.stage_ref_fields() if cls is not None else (["after"] if "after" in config else [])
    for field_name in fields:
        value = config.get(field_name)
        if isinstance(value, str):
            yield field_name, config, field_name, value
        elif isinstance(value, LocatedList):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield field_name, value, index, item
    for path in (cls.stage_name_paths if cls is not None else ()):
        value: Any = config
        for part in path:
            value = value.get(part) if isinstance(value, LocatedDict) else None
        if isinstance(value, LocatedList):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield path[0], value, index, item


def _replace(container, key, value: str, location: Location, note: str | None) -> None:
    if isinstance(container, LocatedDict):
        container.put(key, value, container.key_location(key), location, note or container.note(key))
    else:
        container.replace(key, value, location, note or container.note(key))


def _add_after(config: LocatedDict, after: LocatedList) -> None:
    own = config.get("after")
    merged = LocatedList(after.location)
    if isinstance(own, LocatedList):
        for index, item in enumerate(own):
            merged.add(item, own.item_location(index), own.note(index))
    for index, item in enumerate(after):
        merged.add(item, after.item_location(index), "from 'after' of the pipeline stage")
    config.put("after", merged, config.key_location("after") if "after" in config else after.location,
               merged.location)


# --------------------------------------------------------------------------- datasets and output


def _dataset_fields(config: Any, classes: dict[str, type[Stage]]) -> list[str]:
    kind = config.get("type") if isinstance(config, LocatedDict) else None
    cls = classes.get(kind) if isinstance(kind, str) else None
    return cls.dataset_ref_fields() if cls is not None else []


def _rename_datasets(stages: LocatedDict, renames: dict[str, str], recipe: LocatedDict, name: str,
                     config: LocatedDict, state: _State) -> None:
    used = set()
    for stage_config in stages.values():
        for field_name in _dataset_fields(stage_config, state.classes):
            value = stage_config.get(field_name)
            if not isinstance(value, str):
                continue
            used.add(value)
            if value in renames:
                given = config["datasets"]
                _replace(stage_config, field_name, renames[value], stage_config.value_location(field_name),
                         f"renamed by 'datasets' of stage '{name}' ({given.value_location(value)})")
    declared = recipe.get("datasets") if isinstance(recipe.get("datasets"), LocatedDict) else {}
    known = sorted(used | set(declared))
    for dataset in renames:
        if dataset not in known:
            given = config["datasets"]
            state.problems.append(Problem(
                f"'datasets' of stage '{name}' renames '{dataset}', which the recipe does not use",
                given.key_location(dataset), ("stages", name, "datasets", dataset),
                hint=did_you_mean(dataset, known) or (f"it uses: {', '.join(known)}" if known else None)))


def _merge_datasets(document: LocatedDict, recipe: LocatedDict, renames: dict[str, str], state: _State) -> None:
    """Add the recipe's datasets the using document does not define (its own definitions win)."""
    incoming = recipe.get("datasets")
    if not isinstance(incoming, LocatedDict) or not incoming:
        return
    target = document.get("datasets")
    if not isinstance(target, LocatedDict):
        if target is not None:
            return  # validation reports the using file's own section
        target = LocatedDict(incoming.location)
        document.put("datasets", target, incoming.location, incoming.location)
    for dataset, definition in incoming.items():
        new_name = renames.get(dataset, dataset)
        location = incoming.key_location(dataset)
        added = state.added_datasets.get((id(target), new_name))
        if new_name in target:
            if added is not None and added[1] != _plain(definition):
                state.problems.append(Problem(
                    f"dataset '{new_name}' is defined differently by two recipes: at {added[0]} and at {location}",
                    location, ("datasets", dataset),
                    hint="define it in the pipeline itself: the pipeline's definition is used by every recipe"))
            continue
        target.put(new_name, copy_located(definition), location, incoming.value_location(dataset))
        state.added_datasets[(id(target), new_name)] = (location, _plain(definition))


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _output(recipe: LocatedDict, stages: LocatedDict, inner: dict[str, str | None], name: str, shown: str,
            problems: Problems) -> str | None:
    """The stage ``name`` stands for: None when the recipe has no output, ``""`` when its output is wrong."""
    output = recipe.get("output")
    if output is None:
        return None
    location = recipe.value_location("output")
    if isinstance(output, str) and output in stages:
        return namespaced(name, output)
    if isinstance(output, str) and output in inner:
        return namespaced(name, inner[output]) if inner[output] else inner[output]
    problems.append(Problem(f"'output' of recipe {shown} names an unknown stage {output!r}", location, ("output",),
                            hint=did_you_mean(str(output), list(stages)) or "its stages: " + ", ".join(stages)))
    return ""


def _resolve_aliases(stages: LocatedDict, aliases: dict[str, str | None], state: _State) -> None:
    """References to a ``pipeline`` stage now name the stage its recipe's ``output`` says."""
    if not aliases:
        return
    for name, config in stages.items():
        if not isinstance(config, LocatedDict):
            continue
        for field_name, container, key, value in list(_reference_values(config, state.classes)):
            base, suffix = split_variant(value)
            if base not in aliases:
                continue
            location = container.value_location(key) if isinstance(container, LocatedDict) \
                else container.item_location(key)
            target = aliases[base]
            if target == "":  # the recipe's output is wrong, and reported
                state.problems.mark_invalid(("stages", name, field_name))
                continue
            if target is None:
                members = [stage for stage in stages if stage.startswith(base + ".")]
                state.problems.invalid(Problem(
                    f"'{field_name}' of stage '{name}' names the sub-pipeline '{base}', whose recipe declares no "
                    "'output'", location, ("stages", name, field_name),
                    hint="add 'output: STAGE' to the recipe, or name one of its stages: " + ", ".join(members[:10])))
                continue
            _replace(container, key, target + suffix, location, f"'{base}' means its recipe's output '{target}'")


# --------------------------------------------------------------------------- one recipe, given params


def instantiate_recipe(recipe: str, namespace: str, params: dict[str, Any], inputs: dict[str, str],
                       variant: str, *, pipeline_file: Path | None, root: Path, allow_outside: bool,
                       stage_classes: dict[str, type[Stage]]) -> tuple[dict[str, dict[str, Any]], str]:
    """The stages of ``recipe`` with ``params``, as a ``type: pipeline`` stage ``namespace`` would bring them in.

    Each stage is named ``<namespace>.<recipe stage><variant>`` (``variant`` as a sweep writes it,
    ``[sparsity=0.8]``, or ``""``), and references between them are renamed alike; the recipe's
    inputs name the stages of ``inputs``. Returns ``(plain configs by name, the output's name)``;
    raises :class:`~compressflow.errors.PipelineError` when the recipe cannot be used so.
    """
    from compressflow.dsl.located import from_plain

    problems = Problems()
    where = Location(f"<{namespace}>", 1, 1)
    heads = {base_name(target).split(".", 1)[0] for target in inputs.values()}
    plain = {"stages": {**{head: {"type": "bound input"} for head in heads},
                        namespace: {"type": PIPELINE_TYPE, "path": recipe, "params": dict(params),
                                    "inputs": dict(inputs)}}}
    document = from_plain(plain, where, problems)
    expand_subpipelines(document, pipeline_file, root, allow_outside, stage_classes, problems)
    if problems:
        raise PipelineError(problems.report(where.file))
    stages = document["stages"]
    generated = [name for name in stages if name.startswith(namespace + ".")]
    for name in generated:
        config = stages[name]
        if not isinstance(config, LocatedDict):
            continue
        for _, container, key, value in list(_reference_values(config, stage_classes)):
            if value in generated:
                location = container.value_location(key) if isinstance(container, LocatedDict) \
                    else container.item_location(key)
                _replace(container, key, value + variant, location, None)
    configs = {name + variant: _plain(stages[name]) for name in generated}
    target = _recipe_output(recipe, pipeline_file, root)
    if target is None:
        raise PipelineError([Problem(f"recipe {recipe} declares no 'output'", where)])
    return configs, namespaced(namespace, target) + variant


def _recipe_output(recipe: str, pipeline_file: Path | None, root: Path) -> str | None:
    """The ``output:`` a recipe file declares (read again: expansion keeps only the stages)."""
    base = pipeline_file.parent if pipeline_file is not None else root
    parsed = read_yaml_file(base / recipe, recipe)
    value = parsed.value if isinstance(parsed.value, LocatedDict) else {}
    output = value.get("output")
    return output if isinstance(output, str) else None
