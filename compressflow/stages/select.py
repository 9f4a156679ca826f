"""``select``: pick the best candidate model by one metric, under constraints against a baseline.

It reads the ``metrics.json`` of an ``evaluate`` stage that measured the candidates (no
TensorFlow), and outputs a copy of the chosen candidate's artifact: the same kind and
files, so ``export`` (or any stage taking a model) can follow. It also writes
``selection.json`` (the choice, every candidate's figures and verdict) and ``table.txt``,
printed at the end of a run. When no candidate passes, the stage fails with the table.
"""

from __future__ import annotations

import shutil
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from compressflow.errors import GateFailed, StageFailed
from compressflow.stages.base import ARTIFACT_FILE, METRICS, Stage, StageName, StageNames
from compressflow.stages.code_sets import EVALUATE_CODE
from compressflow.stages.gates import MetricBound, metric_bounds
from compressflow.stages.registry import register_stage
from compressflow.stages.selection import METRICS as RANKABLE
from compressflow.stages.selection import Constraints, Metric, choose, judge, selection_table

SELECTION_FILE = "selection.json"
TABLE_FILE = "table.txt"
# Files of a cache entry that belong to the cache, not to the stage that made it.
_CACHE_FILES = {ARTIFACT_FILE, "manifest.json", "key.json"}

CONSTRAINT_FIELDS = ("max_accuracy_drop", "min_compression", "max_latency_ms", "metrics")


@register_stage
class SelectStage(Stage):
    """Pick the best candidate model by one metric of an evaluation, under constraints against its baseline."""

    example: ClassVar[str] = """\
candidates: [pruned]         # a swept stage stands for all its variants
evaluation: check            # an evaluate stage that measured them, with a baseline
metric: gzip_size
max_accuracy_drop: 0.01
"""
    produces: ClassVar[str] = "model (a copy of the chosen candidate)"
    code_dependencies: ClassVar[tuple[str, ...]] = EVALUATE_CODE + (
        "compressflow.stages.evaluate", "compressflow.stages.selection")

    type: Literal["select"] = "select"
    candidates: StageNames = Field(min_length=1, description="Models to choose from; a swept stage's name "
                                   "stands for all its variants.", examples=[["int8"]])
    evaluation: StageName = Field(description="An evaluate stage that measured every candidate; constraints "
                                  "compare with its baseline.", examples=["check"])
    metric: str = Field("gzip_size", description="What to rank by: " + ", ".join(
        f"{name} ({metric.goal[:3]})" for name, metric in RANKABLE.items()) + ", or any other metric the "
        "evaluation measures (`mae`, `r2`, one of its `metrics:`...).", examples=["mae"])
    goal: Literal["minimize", "maximize"] | None = Field(None, description="Default: the metric's own (smaller "
                                                         "sizes, latencies and errors, larger accuracy, r2 and "
                                                         "ratios); needed for a metric of your own.")
    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0, description="Largest accuracy loss against "
                                            "the baseline (0.01 = 1 point).")
    min_compression: float | None = Field(None, gt=0.0, description="Smallest gzip-size ratio baseline / model.")
    max_latency_ms: float | None = Field(None, gt=0.0, description="Largest median latency per sample, in ms.")
    metrics: Annotated[dict[str, MetricBound], AfterValidator(metric_bounds)] | None = Field(
        None, description="Bounds on any metric the evaluation measures, as in evaluate's `require.metrics`.",
        examples=[{"mae": {"max_increase": 0.05, "relative": True}}])

    def constraints(self) -> Constraints:
        return Constraints(self.max_accuracy_drop, self.min_compression, self.max_latency_ms, self.metrics)

    def ranking(self) -> Metric:
        """The metric ranked by: a measurement's name (``gzip_size``...) or any metric evaluate reports."""
        from compressflow.stages.tasks import goal_of, metric_name

        if self.metric in RANKABLE:
            return RANKABLE[self.metric]
        key = metric_name(self.metric)
        unit = "share" if key.endswith("accuracy") else ""
        return Metric(key, self.goal or goal_of(key), key, unit)  # type: ignore[arg-type]

    @classmethod
    def check_pipeline(cls, stages: dict) -> list[tuple[str, str, str]]:
        """The evaluation must measure every candidate (and have a baseline when constraints compare).

        Any stage type that writes evaluate's ``metrics.json`` may be the evaluation; its
        ``models``, ``baseline`` and ``latency`` fields are checked when it has them.
        """
        return [(name, field_name, message) for name, stage in stages.items() if isinstance(stage, cls)
                for field_name, message in stage._check_evaluation(name, stages)]

    def _check_evaluation(self, name: str, stages: dict) -> list[tuple[str, str]]:
        evaluation = stages.get(self.evaluation)
        if evaluation is None:
            return []  # the reference check reports it
        if evaluation.produces != METRICS:
            return [("evaluation", f"'evaluation' of stage '{name}' must name an evaluate stage; "
                                   f"'{self.evaluation}' is a {evaluation.kind} stage")]
        problems = []
        measured = getattr(evaluation, "models", None)
        measured = set(measured) if measured is not None else None
        missing = [candidate for candidate in self.candidates if measured is not None and candidate not in measured]
        if missing:
            problems.append(("candidates", f"candidates of stage '{name}' that stage '{self.evaluation}' "
                                           f"does not measure: {', '.join(missing)}; add them to its 'models'"))
        compares = (self.max_accuracy_drop is not None or self.min_compression is not None
                    or any(bound.compares for bound in (self.metrics or {}).values()))
        if compares and getattr(evaluation, "baseline", "") is None:
            problems.append(("evaluation", f"the constraints of stage '{name}' compare with a baseline, and "
                                           f"stage '{self.evaluation}' has no 'baseline'"))
        wants_latency = self.metric.startswith("latency") or self.metric == "speedup" or self.max_latency_ms
        if wants_latency and getattr(evaluation, "latency", "") is None:
            problems.append(("evaluation", f"stage '{name}' needs latencies, and stage '{self.evaluation}' "
                                           "does not measure them ('latency' is null)"))
        measured = evaluation.measured(None) if hasattr(evaluation, "measured") else None
        if measured is not None and not problems:
            problems.extend(self._unmeasured(measured, f"stage '{self.evaluation}'"))
        return problems

    def _unmeasured(self, measured: dict, what: str) -> list[tuple[str, str]]:
        """``(field, message)`` for the ranking metric and bounds that ``measured`` lacks."""
        from compressflow.errors import did_you_mean
        from compressflow.stages.tasks import metric_name

        problems = []
        names = [("metric", self.metric)] + [("metrics", name) for name in self.metrics or {}]
        if self.max_accuracy_drop is not None:
            names.append(("max_accuracy_drop", "accuracy"))
        for field_name, name in names:
            key = RANKABLE[name].key if name in RANKABLE else metric_name(name)
            if key not in measured:
                hint = did_you_mean(name, [*measured, *RANKABLE]) or f"it measures {', '.join(measured)}"
                problems.append((field_name, f"{what} does not measure {name!r}; {hint}"))
        if not problems and self.metric not in RANKABLE and self.goal is None and self.ranking().goal is None:
            problems.append(("metric", f"which way {self.metric!r} is better is not known (a metric of your own); "
                                       "give 'goal' (minimize or maximize)"))
        return problems

    def run(self, ctx) -> None:
        from compressflow.stages.evaluate import read_metrics

        evaluation = ctx.input("evaluation")
        if evaluation.kind != METRICS:
            raise StageFailed(f"select stage {ctx.name!r}: 'evaluation' must name an evaluate stage; "
                              f"{evaluation.stage!r} gives {evaluation.kind}")
        baseline, models = read_metrics(evaluation)
        candidates = {artifact.stage: artifact for artifact in ctx.input_list("candidates")}
        missing = [name for name in candidates if name not in models]
        if missing:
            raise StageFailed(f"select stage {ctx.name!r}: evaluate stage {evaluation.stage!r} did not measure "
                              f"{', '.join(missing)}")
        self._check_measured(ctx, evaluation, models, candidates)
        metric = self.ranking()
        goal = self.goal or metric.goal
        judged = judge(list(candidates), models, baseline, metric, self.constraints())
        chosen = choose(judged, goal)
        table = selection_table(judged, chosen, self.metric, goal, baseline, models.get(baseline),
                                self.constraints(), metric=metric, primary=self._primary(evaluation))
        if chosen is None:
            raise GateFailed(f"select stage {ctx.name!r}: no candidate passed the constraints\n{table}",
                             fields=tuple(name for name in CONSTRAINT_FIELDS if getattr(self, name) is not None))
        artifact = candidates[chosen.name]
        _copy_files(artifact.path, ctx.out_dir)
        (ctx.out_dir / TABLE_FILE).write_text(table)
        ctx.write_json(SELECTION_FILE, {
            "selected": chosen.name, "key": artifact.key, "metric": self.metric, "goal": goal,
            "value": chosen.value, "evaluation": evaluation.stage, "baseline": baseline,
            "constraints": self.constraints().as_json(),
            "candidates": [{"name": c.name, "passed": c.passed, "reasons": c.reasons, "value": c.value,
                            "metrics": c.metrics} for c in judged],
        })
        ctx.log(f"selected {chosen.name} ({metric.title} {chosen.value})")
        meta = {key: value for key, value in artifact.meta.items() if key not in ("kind", "file")}
        meta.update(selected=chosen.name, selection=SELECTION_FILE, selection_table=TABLE_FILE)
        ctx.set_output(artifact.kind, artifact.meta.get("file"), **meta)

    def _check_measured(self, ctx, evaluation, models: dict, candidates: dict) -> None:
        """Fail clearly when the evaluation did not measure what this stage ranks by or bounds."""
        measured = set.intersection(*(set(models[name]) for name in candidates)) if candidates else set()
        task = evaluation.metrics().get("task")
        problems = self._unmeasured(dict.fromkeys(sorted(measured - {"kind", "label", "file", "layers"})),
                                    f"evaluate stage {evaluation.stage!r}" + (f" (on a {task})" if task else ""))
        if problems:
            raise StageFailed(f"select stage {ctx.name!r}: " + "; ".join(message for _, message in problems))

    @staticmethod
    def _primary(evaluation) -> str:
        from compressflow.stages.tasks import PRIMARY_METRIC

        return PRIMARY_METRIC.get(evaluation.metrics().get("task") or "classification", "accuracy")

    def summary(self, output) -> str | None:
        """The selection table, printed at the end of a run."""
        path = output.path / output.meta.get("selection_table", TABLE_FILE)
        return path.read_text() if path.exists() else None


def _copy_files(source, target) -> None:
    """Copy a cache entry's own files (not the cache's) into ``target``, keeping sub-folders."""
    for item in sorted(source.iterdir()):
        if item.name in _CACHE_FILES:
            continue
        if item.is_dir():
            # NOTE: copyfile, not copy2: cache files are read-only, and the new entry is written first.
            shutil.copytree(item, target / item.name, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(item, target / item.name)
