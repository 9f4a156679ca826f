"""The stages of one trial of a ``search``: its recipe with the trial's params, and their measurement.

A trial's stages are named ``<search>.<recipe stage>[<param>=<value>,...]`` (the variant part last,
as in a sweep), plus ``<search>.measure[...]``, which measures the recipe's output against the
baseline. With ``early_stop``, ``<search>.early_stop[...]`` measures the model of the recipe stage it
names, and the trial's stages split in two parts: that stage with what it needs and its measurement
(run first), and the rest (run only when the trial goes on).

Their keys are computed as :mod:`compressflow.executor.plan` computes any stage's, with the recipe's
inputs bound to the keys of the stages upstream: identical params give identical keys, so a trial
seen before is a cache hit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import networkx as nx
from pydantic import ValidationError

from compressflow.errors import PipelineError, StageFailed
from compressflow.dsl.names import format_value, namespaced, variant_name
from compressflow.dsl.subpipelines import instantiate_recipe
from compressflow.executor.graph import execution_order
from compressflow.executor.keys import stage_key
from compressflow.executor.plan import CACHED, RUN, Plan, PlannedStage, input_refs, seed_name_of
from compressflow.stages.base import Stage
from compressflow.stages.registry import stage_types

MEASURE_STAGE = "measure"
EARLY_STOP_STAGE = "early_stop"


@dataclass
class TrialStages:
    """One trial's stages (validated, in execution order), the recipe's output and the measurement."""

    number: int
    params: dict[str, Any]
    stages: dict[str, Stage]
    output: str
    measure: str
    # With early_stop: the recipe stage watched, its measurement, and the stages that run before the decision.
    watched: str | None = None
    early_measure: str | None = None
    first_part: frozenset[str] = frozenset()

    def part(self, names) -> "TrialStages":
        """The same trial with only the stages ``names``."""
        return TrialStages(self.number, self.params, {n: s for n, s in self.stages.items() if n in names},
                           self.output, self.measure, self.watched, self.early_measure, self.first_part)


def trial_variant(params: dict[str, Any]) -> str:
    """``[sparsity=0.83,clusters=8]`` for the params of a trial."""
    return variant_name("", [(name, format_value(value)) for name, value in params.items()])


def trial_stages(plan: Plan, search: str, number: int, params: dict[str, Any]) -> TrialStages:
    """Instantiate the recipe of search stage ``search`` with ``params``; a stage failure when it cannot be."""
    stage = plan.stages[search].stage
    variant = trial_variant(params)
    classes = stage_types()
    try:
        configs, output = instantiate_recipe(
            stage.recipe, search, params, dict(stage.inputs), variant, pipeline_file=plan.pipeline.path,
            root=plan.pipeline.root, allow_outside=plan.env.allow_outside_paths, stage_classes=classes)
    except PipelineError as exc:
        raise StageFailed(f"search {search!r}: recipe {stage.recipe} with {variant}: "
                          + "; ".join(p.render() for p in exc.problems)) from None
    measure = namespaced(search, MEASURE_STAGE) + variant
    configs[measure] = measure_config(stage, classes[stage.measure], output)
    watched = early_measure = None
    if stage.early_stop is not None:
        watched = namespaced(search, stage.early_stop.after) + variant
        if watched not in configs:
            raise StageFailed(f"search {search!r}: 'early_stop' names recipe stage {stage.early_stop.after!r}, "
                              f"which the recipe with {variant} does not have")
        early_measure = namespaced(search, EARLY_STOP_STAGE) + variant
        configs[early_measure] = measure_config(stage, classes[stage.measure], watched)
    stages: dict[str, Stage] = {}
    for name, config in configs.items():
        try:
            stages[name] = classes[config["type"]].model_validate_json(json.dumps(config), strict=True)
        except (ValidationError, KeyError) as exc:
            raise StageFailed(f"search {search!r}: stage {name!r} of the recipe with these params is "
                              f"invalid: {exc}") from None
    first_part = frozenset()
    if watched is not None:
        first_part = frozenset({early_measure, *_needed(stages, watched)})
    return TrialStages(number, dict(params), stages, output, measure, watched, early_measure, first_part)


def _needed(stages: dict[str, Stage], name: str) -> set[str]:
    """``name`` and the stages among ``stages`` it depends on."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in needed or current not in stages:
            continue
        needed.add(current)
        todo.extend(t for targets in stages[current].stage_refs().values() for t in targets)
    return needed


def measure_config(stage, measure_class: type[Stage], output: str) -> dict[str, Any]:
    """An evaluate-like stage measuring ``output`` against the search's baseline on its data."""
    config: dict[str, Any] = {"type": stage.measure, "models": [stage.baseline, output], "baseline": stage.baseline}
    if "data" in measure_class.model_fields and stage.data is not None:
        config["data"] = stage.data
    wants_latency = stage.constraints.max_latency_ms is not None or any(
        o.metric.startswith("latency") or o.metric == "speedup" for o in stage.objectives())
    if "latency" in measure_class.model_fields and not wants_latency:
        config["latency"] = None  # NOTE: a latency is machine-dependent; measure it only when it is asked for
    return config


def trials_plan(plan: Plan, cache, trials: list[TrialStages]) -> Plan:
    """A plan of the trials' stages (the stages upstream of them cached), keyed as ``make_plan`` keys them."""
    graph = nx.DiGraph()
    stages: dict[str, PlannedStage] = {}
    for trial in trials:
        for name, stage in trial.stages.items():
            graph.add_node(name, stage=stage)
    for trial in trials:
        for name, stage in trial.stages.items():
            for targets in stage.stage_refs().values():
                for target in targets:
                    if target not in graph:
                        _add_upstream(plan, graph, stages, target)
                    graph.add_edge(target, name)
    memo: dict[str, dict] = {}
    for name in execution_order(graph):
        if name in stages:
            continue
        stage = graph.nodes[name]["stage"]
        inputs = {field_name: [stages[t].key.key for t in ref] if isinstance(ref, list) else stages[ref].key.key
                  for field_name, ref in input_refs(stage).items()}
        key = stage_key(name, stage, inputs, plan.env, seed_name_of(name), memo)
        action = CACHED if cache.status(key.key) == "hit" else RUN
        stages[name] = PlannedStage(name, stage, key, action, [] if action == CACHED else ["new trial"])
    return Plan(plan.pipeline, graph, plan.env, stages)


def _add_upstream(plan: Plan, graph: nx.DiGraph, stages: dict[str, PlannedStage], name: str) -> None:
    if name not in plan.stages:
        raise StageFailed(f"a trial's stage names {name!r}, which is not a stage of the pipeline")
    item = plan.stages[name]
    graph.add_node(name, stage=item.stage)
    stages[name] = PlannedStage(name, item.stage, item.key, CACHED, requested=False)
