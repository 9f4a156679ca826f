"""``search``: the best model a recipe makes over a space of its params, every trial cached, resumable.

The stage is driven by the executor in the main process (see
:mod:`compressflow.executor.search_driver`): Optuna asks for params, each trial's stages (the
recipe's, named ``<search>.<recipe stage>[<param>=<value>,...]``, and a measurement of its output
against ``baseline``) run through the ordinary scheduler and cache, and the result is told back.
This module is only the config model and what can be checked before anything runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.errors import did_you_mean
from compressflow.stages.base import STAGE_REF, DatasetName, FieldProblem, Stage, StageName, check_path_fields
from compressflow.stages.registry import register_stage
from compressflow.stages.selection import METRICS as RANKABLE
from compressflow.stages.selection import Constraints as SelectionConstraints

MetricName = Literal[tuple(RANKABLE)]  # type: ignore[valid-type]
SAMPLERS = ("tpe", "random", "grid", "nsga2")
TRIALS_FILE = "trials.json"
TABLE_FILE = "table.txt"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


class ParamSpace(BaseModel):
    """One param of the recipe: a range (`low`, `high`, optionally `log`, `step`, `int`) or `choices`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = Field(None, description="Smallest value.")
    high: float | None = Field(None, description="Largest value.")
    log: bool = Field(False, description="Sample on a log scale.")
    step: float | None = Field(None, gt=0, description="Only values low + k * step.")
    int: bool = Field(False, description="Integer values.")
    choices: list[Any] | None = Field(None, description="The values to choose from (categorical).")

    @model_validator(mode="after")
    def _range_or_choices(self):
        if self.choices is not None:
            if not self.choices:
                raise ValueError("'choices' is empty: list at least one value")
            if self.low is not None or self.high is not None:
                raise ValueError("give either 'choices' or 'low' and 'high', not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a param needs 'low' and 'high' (a range) or 'choices'")
        if self.low >= self.high:
            raise ValueError(f"'low' ({self.low:g}) must be below 'high' ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs 'low' above 0")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined")
        if self.int and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an integer param needs integer 'low' and 'high'")
        return self


class Objective(BaseModel):
    """What a trial is scored by: a metric of evaluate's and whether smaller or larger is better."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: MetricName = Field(description="One of: " + ", ".join(RANKABLE) + ".")
    goal: Literal["min", "max"] | None = Field(None, description="Default: the metric's own (min for sizes and "
                                                                 "latencies, max for accuracy and ratios).")

    def direction(self) -> str:
        goal = self.goal or RANKABLE[self.metric].goal[:3]
        return "minimize" if goal == "min" else "maximize"


class SearchConstraints(BaseModel):
    """What a trial's output must meet against the baseline to count (the gates of evaluate's `require:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0,
                                            description="Largest accuracy loss against the baseline (0.01 = 1 point).")
    min_compression: float | None = Field(None, gt=0.0, description="Smallest gzip-size ratio baseline / model.")
    max_latency_ms: float | None = Field(None, gt=0.0, description="Largest median latency per sample, in ms.")

    def as_selection(self) -> SelectionConstraints:
        return SelectionConstraints(self.max_accuracy_drop, self.min_compression, self.max_latency_ms)


#: The metrics early stopping can watch, and the constraint each is checked against.
EARLY_STOP_METRICS = {"accuracy": "max_accuracy_drop", "gzip_compression": "min_compression",
                      "latency_ms": "max_latency_ms"}


class EarlyStop(BaseModel):
    """Stop a trial early when the model of one recipe stage already misses a constraint by more than `margin`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: str = Field(description="A stage of the recipe (not its output): when it finishes, its model is "
                                   "measured on `data` against the baseline, as the trial's output will be.",
                       examples=["prune"])
    metric: Literal[tuple(EARLY_STOP_METRICS)] = Field(  # type: ignore[valid-type]
        "accuracy", description="What is watched: accuracy (against `max_accuracy_drop`), gzip_compression "
                                "(against `min_compression`) or latency_ms (against `max_latency_ms`).")
    margin: float = Field(0.0, ge=0.0, description="How far past its constraint the intermediate model may be "
                                                   "and the trial still go on, in the metric's unit "
                                                   "(0.02 = 2 accuracy points).")

    def constraint(self) -> str:
        """The name of the constraint the metric is checked against."""
        return EARLY_STOP_METRICS[self.metric]


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``30m``, ``2h``, ``90s`` or a plain number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"timeout {text!r} is not a duration: write e.g. 90s, 30m or 2h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


@register_stage
class SearchStage(Stage):
    """Search a recipe's params with Optuna for the best output under constraints; every trial is cached."""

    example: ClassVar[str] = """\
recipe: recipes/compress.yaml
inputs: {model: trained}
space:
  sparsity: {low: 0.6, high: 0.97}
  clusters: {choices: [4, 8, 16, 32]}
data: digits
baseline: float
objective: {metric: gzip_size, goal: min}
constraints: {max_accuracy_drop: 0.01}
trials: 20
"""
    produces: ClassVar[str] = "the best trial's output (the recipe output's artifact)"
    # NOTE: the executor runs this stage itself (trials are dynamic), never a runner.
    driven_by_executor: ClassVar[bool] = True
    code_dependencies: ClassVar[tuple[str, ...]] = ("compressflow.stages.selection", "compressflow.stages.report_table",
                                                    "compressflow.stages.gates", "compressflow.stages.tasks",
                                                    "compressflow.stages.keras_names")
    path_fields: ClassVar[dict[str, str]] = {"recipe": "recipe file"}

    type: Literal["search"] = "search"
    recipe: str = Field(description="The recipe file (as `type: pipeline` takes), relative to this file; it "
                                    "declares the params of `space`, its `inputs` and `output`.",
                        examples=["recipes/compress.yaml"])
    inputs: Annotated[dict[str, str], STAGE_REF] = Field(
        default_factory=dict, description="The recipe's inputs bound to stages of this pipeline.",
        examples=[{"model": "trained"}])
    space: dict[str, ParamSpace] = Field(min_length=1, description="The recipe's params to search, each a range "
                                         "or a list of choices.")
    data: DatasetName | None = Field(None, description="The dataset each trial's output is measured on "
                                                      "(required by evaluate).")
    baseline: StageName = Field(description="The model each trial's output is compared with.")
    objective: Objective | list[Objective] = Field(description="The metric to optimize, or several (a Pareto "
                                                               "front; use sampler nsga2 or tpe).")
    constraints: SearchConstraints = Field(default_factory=SearchConstraints,
                                           description="What a trial must meet to count (feasible).")
    trials: int | None = Field(None, ge=1, le=100_000, description="How many trials in all (a journal beside "
                                                                  "the cache keeps those done: more trials "
                                                                  "later run only the new ones).")
    timeout: str | float | None = Field(None, description="Stop asking for new trials after this long "
                                                          "(e.g. 30m, 2h, 90s).")
    sampler: Literal["tpe", "random", "grid", "nsga2"] = Field("tpe", description="How params are chosen.")
    measure: str = Field("evaluate", description="The stage type measuring each trial's output against the "
                                                 "baseline (it takes `models`, `baseline` and `data`).")
    early_stop: EarlyStop | None = Field(None, description="Stop a trial after one of its recipe's stages when "
                                                           "that model already misses a constraint by more than "
                                                           "a margin: it is recorded `pruned` and its later "
                                                           "stages do not run.")

    @model_validator(mode="after")
    def _budget(self):
        if self.trials is None and self.timeout is None:
            raise ValueError("a search needs a budget: set 'trials' (e.g. trials: 20) or 'timeout' (e.g. 30m)")
        if self.timeout is not None:
            seconds = parse_duration(self.timeout)
            if seconds <= 0:
                raise ValueError("'timeout' must be above zero")
        if self.sampler == "grid":
            unbounded = [name for name, p in self.space.items()
                         if p.choices is None and not p.int and p.step is None]
            if unbounded:
                raise ValueError(f"sampler 'grid' needs choices, int or step for every param; "
                                 f"{', '.join(unbounded)} has none")
        return self

    def objectives(self) -> list[Objective]:
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    def depends_on_machine(self) -> bool:
        """A trial ranked or bounded by latency is chosen on the machine that measured it."""
        return (self.constraints.max_latency_ms is not None
                or any(o.metric.startswith("latency") or o.metric == "speedup" for o in self.objectives()))

    def stage_refs(self) -> dict[str, list[str]]:
        refs = super().stage_refs()
        if "inputs" in refs:
            refs["inputs"] = list(self.inputs.values())
        return refs

    def fingerprint(self, env) -> dict[str, Any]:
        from compressflow.stages.base import tree_sha256

        path = env.resolve_path(self.recipe, what="recipe file")
        return {"recipe": tree_sha256(path)} if path.exists() else {}

    def check(self, env) -> list[FieldProblem]:
        """The recipe must declare every param of ``space`` and the inputs bound here, and name its output."""
        problems = check_path_fields(self, env)
        if problems:
            return problems
        recipe = _read_recipe_head(env.resolve_path(self.recipe, what="recipe file"))
        if recipe is None:
            return problems  # missing or unreadable: the file checks and the trial say why
        declared = recipe.get("params") if isinstance(recipe.get("params"), dict) else {}
        for name in self.space:
            if name not in declared:
                hint = did_you_mean(name, declared) or (f"its params: {', '.join(declared)}" if declared
                                                        else "the recipe declares no params")
                problems.append(FieldProblem("space", f"'space' names param '{name}', which recipe {self.recipe} "
                                                      f"does not declare ({hint})"))
        inputs = recipe.get("inputs") if isinstance(recipe.get("inputs"), list) else []
        for name in self.inputs:
            if name not in inputs:
                hint = did_you_mean(name, inputs) or f"its inputs: {', '.join(map(str, inputs)) or 'none'}"
                problems.append(FieldProblem("inputs", f"unknown recipe input '{name}' ({hint})"))
        for name in inputs:
            if name not in self.inputs:
                problems.append(FieldProblem("inputs", f"recipe input '{name}' is not bound: add it to 'inputs', "
                                                       f"e.g. inputs: {{{name}: STAGE}}"))
        if not recipe.get("output"):
            problems.append(FieldProblem("recipe", f"recipe {self.recipe} declares no 'output': add 'output: STAGE' "
                                                   "so a search knows which model each trial makes"))
        problems.extend(self._measure_problems())
        problems.extend(self._early_stop_problems(recipe))
        return problems

    def _early_stop_problems(self, recipe: dict) -> list[FieldProblem]:
        if self.early_stop is None:
            return []
        early = self.early_stop
        stages = recipe.get("stages") if isinstance(recipe.get("stages"), dict) else {}
        if early.after not in stages:
            hint = did_you_mean(early.after, stages) or f"its stages: {', '.join(map(str, stages)) or 'none'}"
            return [FieldProblem("early_stop", f"'early_stop' names recipe stage '{early.after}', which recipe "
                                               f"{self.recipe} does not have ({hint})")]
        if early.after == recipe.get("output"):
            return [FieldProblem("early_stop", f"'early_stop' is after '{early.after}', the recipe's output, "
                                               "which every trial measures anyway: name an earlier stage")]
        if getattr(self.constraints, early.constraint()) is None:
            return [FieldProblem("early_stop", f"'early_stop' watches {early.metric}, but 'constraints' has no "
                                               f"{early.constraint()} to check it against: add one, e.g. "
                                               f"constraints: {{{early.constraint()}: ...}}")]
        return []

    def _measure_problems(self) -> list[FieldProblem]:
        from compressflow.stages.registry import stage_types

        types = stage_types()
        cls = types.get(self.measure)
        if cls is None:
            hint = did_you_mean(self.measure, types) or "e.g. evaluate"
            return [FieldProblem("measure", f"unknown stage type '{self.measure}' ({hint})")]
        missing = [f for f in ("models", "baseline") if f not in cls.model_fields]
        if missing:
            return [FieldProblem("measure", f"stage type '{self.measure}' cannot measure trials: it has no "
                                            f"{' or '.join(missing)} field")]
        if "data" in cls.model_fields and cls.model_fields["data"].is_required() and self.data is None:
            return [FieldProblem("measure", f"stage type '{self.measure}' measures on a dataset: add 'data: "
                                            "DATASET' (a name under 'datasets:')")]
        return []

    def summary(self, output) -> str | None:
        """The trials table, printed at the end of a run."""
        path = output.path / output.meta.get("search_table", TABLE_FILE)
        return path.read_text() if path.exists() else None


def _read_recipe_head(path: Path) -> dict | None:
    """The recipe's top level as plain data, or None when it cannot be read (reported elsewhere)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
