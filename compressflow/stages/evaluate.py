"""``evaluate``: the task's metrics, size, sparsity, clusters and latency of Keras and TFLite models.

The dataset's task (declared, or inferred from the labels) decides what is measured from the
predictions: accuracy and top-k for classification, MAE / MSE / R² for regression, binary accuracy
and F1 for multilabel, and the stage's own ``metrics:``; nothing that does not apply is reported.

Output: ``metrics.json`` ``{"baseline": name | null, "models": {stage name: {metric: value}},
"data": {...}, "notes": [...], "warnings": [...], "machine": {"id", "description"} | null}`` and ``table.txt``
(printed at the end of a run). Latency depends on the machine: the stage is keyed by the machine that
measures it (see :mod:`compressflow.stages.machine`), so another machine measures again, and a note names it.

A classifier that predicts one class for more than :data:`ONE_CLASS_SHARE` of the samples
(when the labels are not that lopsided) gets a warning, in the stage's log, ``warnings`` and
the table: BatchNorm moving statistics that do not fit the data give that in inference mode.

What is counted, per model format:

* Keras: every weight of every layer (for QAT / pruning wrappers, the wrapped layer's
  own weights; quantizer ranges and masks are not parameters).
* TFLite: the constant tensors of the flatbuffer that hold parameters (see
  :mod:`compressflow.stages.tflite_weights`); quantized values count as stored, a
  value equal to its zero point counts as zero.

Sparsity and unique weights are over kernels (arrays of rank >= 2) in both formats.
Sizes are those of the model file, and of its gzip compression. A ``.keras`` file is
not a fair size baseline for TFLite models: compare them with a TFLite conversion of
the float model (a ``quantize`` stage with ``method: float32``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, METRICS, TFLITE_MODEL, DatasetName, Stage, StageName, StageNames
from compressflow.stages.code_sets import EVALUATE_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.gates import MetricBound, is_named, metric_bounds, requirement_problems
from compressflow.stages.losses import MetricSpecs
from compressflow.stages.registry import register_stage


class Requirements(BaseModel):
    """Gates: the stage fails, naming the model and the numbers, when one is not met."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0,
                                            description="Largest accuracy loss against the baseline (0.01 = 1 point).")
    min_compression: float | None = Field(None, gt=0.0, description="Smallest gzip-size ratio baseline / model.")
    max_latency_ms: float | None = Field(None, gt=0.0, description="Largest median latency per sample, in ms.")
    metrics: Annotated[dict[str, MetricBound], AfterValidator(metric_bounds)] | None = Field(
        None, description="Bounds on any measured metric, by name: against the baseline (`max_increase` where "
                          "lower is better, `max_drop` where higher is better, `relative: true` for shares of the "
                          "baseline's value) or absolute (`max`, `min`).",
        examples=[{"mae": {"max_increase": 0.05, "relative": True}}])
    models: list[str] | None = Field(
        None, description="Models the gates apply to (default: every model but the baseline).",
        examples=[["int8"]])

    @property
    def compares(self) -> bool:
        """Whether a gate compares with the baseline."""
        return (self.max_accuracy_drop is not None or self.min_compression is not None
                or any(bound.compares for bound in (self.metrics or {}).values()))


class LatencyOptions(BaseModel):
    """How latency is measured: batch 1, repeated runs, median and p90."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int = Field(200, ge=1, le=1_000_000, description="Timed single-sample runs.")
    warmup: int = Field(20, ge=0, le=100_000, description="Untimed runs first.")
    threads: int = Field(1, ge=1, le=256, description="Interpreter threads for TFLite models.")


METRICS_FILE = "metrics.json"
# A classifier predicting one class for more than this share of the samples is warned about.
ONE_CLASS_SHARE = 0.9
TABLE_FILE = "table.txt"


def read_metrics(artifact) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(baseline name, metrics by model stage name) of an evaluate stage's output."""
    data = artifact.metrics()
    return data.get("baseline"), data.get("models", {})


@register_stage
class EvaluateStage(Stage):
    """Measure every model in `models` on the validation split and compare with `baseline`."""

    stage_name_paths: ClassVar[tuple[tuple[str, ...], ...]] = (("require", "models"),)
    example: ClassVar[str] = """\
models: [trained, pruned]
baseline: trained
data: digits
require: {max_accuracy_drop: 0.01}
"""
    produces: ClassVar[str] = METRICS
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES + ("ai-edge-litert",)
    code_dependencies: ClassVar[tuple[str, ...]] = EVALUATE_CODE

    type: Literal["evaluate"] = "evaluate"
    models: StageNames = Field(min_length=1)
    data: DatasetName
    baseline: StageName | None = Field(None, description="Model the others are compared with (one of `models`).")
    split: Literal["validation", "train"] = Field("validation", description="Which split to measure on.")
    top_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1], description="Also report top-k accuracy for these k (top-1 is `accuracy`; "
                                                 "classification only).")
    metrics: MetricSpecs | None = Field(
        None, description="More metrics, computed from each model's predictions (Keras and TFLite alike) on top of "
                          "the task's (accuracy for classification; mae, mse and r2 for regression; "
                          "binary_accuracy and f1 for multilabel): tf-keras metric names in any spelling, "
                          "`{name: ..., ...arguments}`, or `module:function(y_true, y_pred)` on numpy arrays "
                          "returning a number.", examples=[["RootMeanSquaredError"]])
    latency: LatencyOptions | None = Field(
        default_factory=LatencyOptions, description="Latency options (null to skip).")
    require: Requirements | None = Field(None, description="Gates against the baseline.")

    @model_validator(mode="after")
    def _baseline_is_evaluated(self):
        if self.baseline is not None and self.baseline not in self.models:
            raise ValueError(f"baseline {self.baseline!r} must be one of 'models'")
        if self.require is not None and self.baseline is None and self.require.compares:
            raise ValueError("'require' against a baseline needs 'baseline'")
        unknown = [name for name in (self.require.models or [])
                   if not any(is_named(model, [name]) for model in self.models)] if self.require else []
        if unknown:
            raise ValueError(f"'require.models' names {', '.join(map(repr, unknown))}, not in 'models'")
        if self.require is not None and self.require.max_latency_ms is not None and self.latency is None:
            raise ValueError("'require.max_latency_ms' needs latency measured ('latency' is null)")
        return self

    def depends_on_machine(self) -> bool:
        """Latency is measured on the machine that runs the stage: it is keyed by that machine."""
        return self.latency is not None

    def measured(self, task: str | None) -> dict[str, str | None]:
        """What this stage measures for ``task`` (for any task when None), with which way is better."""
        from compressflow.stages.losses import metric_goal, metric_key
        from compressflow.stages.tasks import measured_metrics

        user = {metric_key(spec): metric_goal(spec) for spec in self.metrics or ()}
        return measured_metrics(task, user=user, top_k=self.top_k, latency=self.latency is not None,
                                baseline=self.baseline is not None)

    def check(self, env) -> list:
        """Gates must name metrics this stage measures: for the dataset's task when it is declared (and then
        ``top_k`` and ``metrics`` must fit it too), else for some task. The modules of ``module:function``
        metrics must be there."""
        from compressflow.stages.base import FieldProblem
        from compressflow.stages.losses import function_problems

        problems = [*super().check(env), *function_problems(self, env, fields=("metrics",))]
        dataset = env.datasets.get(self.data)
        task = getattr(dataset, "task", None)
        if task is not None:
            problems.extend(FieldProblem(field, message) for field, message in self.task_problems(task))
        elif self.require is not None:
            problems.extend(FieldProblem("require", message) for message in requirement_problems(
                self.require, self.measured(None), "evaluate (for any task)"))
        return problems

    def task_problems(self, task: str) -> list[tuple[str, str]]:
        """``(field, message)`` for what does not fit ``task`` (declared, or found when the stage runs)."""
        from compressflow.stages.losses import not_applying, not_applying_text
        from compressflow.stages.tasks import CLASSIFICATION

        what = f"dataset {self.data!r}, a {task}"
        problems = []
        if task != CLASSIFICATION and sorted(set(self.top_k) - {1}):
            problems.append(("top_k", f"top-k accuracy applies to classification, not to {what}; drop 'top_k'"))
        wrong = not_applying(self.metrics, task)
        if wrong:
            problems.append(("metrics", not_applying_text(wrong, what)))
        if self.require is not None:
            problems.extend(("require", message) for message in requirement_problems(
                self.require, self.measured(task), f"evaluate on {what}"))
        return problems

    def fingerprint(self, env) -> dict[str, Any]:
        """The source of the modules of ``module:function`` metrics (found without importing them)."""
        from compressflow.stages.losses import function_specs, functions_fingerprint

        names = function_specs(self.metrics)
        return {"functions": functions_fingerprint(names, env.pipeline_dir)} if names else {}

    def run(self, ctx) -> None:
        from compressflow.data.datasets import load_splits
        from compressflow.stages.gates import gate_failure, unmet_requirements
        from compressflow.stages.model_measurements import compare, measure_model
        from compressflow.stages.numerics_lines import numerics_lines
        from compressflow.stages.report_table import format_table
        from compressflow.stages.tasks import PRIMARY_METRIC

        splits = load_splits(ctx.dataset(self.data), ctx.env)
        if getattr(splits, "streaming", False):
            x, y = splits.evaluation_data(self.split)  # NOTE: inputs stay a stream; labels are collected
        else:
            x, y = (splits.x_val, splits.y_val) if self.split == "validation" else (splits.x_train, splits.y_train)
        if len(x) == 0:
            raise StageFailed(f"dataset {self.data!r} has no {self.split} samples to evaluate on")
        decided: list = []
        models: dict[str, dict[str, Any]] = {}
        for artifact in ctx.input_list("models"):
            ctx.log(f"measuring {artifact.stage} ({artifact.kind}) on {len(x)} {self.split} samples")
            try:
                models[artifact.stage] = measure_model(
                    artifact, x, y, top_k=self.top_k, latency=self.latency, metrics=self.metrics,
                    task=lambda scores: self._task(ctx, splits.task_labels, scores, decided))
            except ValueError as exc:
                raise StageFailed(f"cannot evaluate {artifact.stage!r}: {exc}") from exc
        task = decided[0]
        goals = self.prediction_metrics(task.task)
        if self.baseline is not None:
            for name, metrics in models.items():
                if name != self.baseline:
                    metrics.update(compare(metrics, models[self.baseline], list(goals)))
        notes = self._notes(models)
        machine = measuring_machine(self, notes)
        warnings = one_class_warnings(models, y, self.split)
        for warning in warnings:
            ctx.log(f"warning: {warning}")
        ctx.write_json(METRICS_FILE, {"baseline": self.baseline, "models": models, "notes": notes,
                                      "warnings": warnings, "task": task.task, "metric_goals": goals,
                                      "machine": machine,
                                      "data": {"dataset": self.data, "split": self.split, "samples": len(x),
                                               "task": task.why}})
        table = format_table(models, self.baseline, notes + [f"warning: {warning}" for warning in warnings]
                             + numerics_lines(models),
                             metrics=list(goals), primary=PRIMARY_METRIC[task.task])
        (ctx.out_dir / TABLE_FILE).write_text(table)
        ctx.set_output(METRICS, METRICS_FILE, table=TABLE_FILE, baseline=self.baseline, models=list(models),
                       task=task.task)
        problems = unmet_requirements(self.require, models, self.baseline) if self.require else []
        if problems:
            ctx.log(table)
            raise gate_failure(ctx.name, problems)

    def _task(self, ctx, labels, scores, decided: list) -> str:
        """The task, decided once from the dataset (or its labels and the first model's outputs); checked."""
        from compressflow.stages.tasks import dataset_task, describe

        if not decided:
            units = scores.shape[-1] if getattr(scores, "ndim", 1) > 1 else 1
            choice = dataset_task(ctx.dataset(self.data), labels, units)
            if not choice.declared:
                ctx.log(describe(choice, self.data))
            problems = self.task_problems(choice.task)
            if problems:
                raise StageFailed(f"evaluate stage {ctx.name!r}: " + "; ".join(message for _, message in problems)
                                  + ("" if choice.declared else " (set `task:` on the dataset if it is not a "
                                                                f"{choice.task})"))
            decided.append(choice)
        return decided[0].task

    def prediction_metrics(self, task: str) -> dict[str, str | None]:
        """The metrics computed from the predictions for ``task``, with which way is better."""
        from compressflow.stages.losses import metric_goal, metric_key
        from compressflow.stages.tasks import CLASSIFICATION, MAXIMIZE, task_metric_goals

        found = task_metric_goals(task)
        if task == CLASSIFICATION:
            found.update({f"top{k}_accuracy": MAXIMIZE for k in sorted(set(self.top_k) - {1})})
        for spec in self.metrics or ():
            found.setdefault(metric_key(spec), metric_goal(spec))
        return found

    def _notes(self, models: dict[str, dict[str, Any]]) -> list[str]:
        kinds = {metrics["kind"] for metrics in models.values()}
        if self.baseline is None or models[self.baseline]["kind"] != KERAS_MODEL or TFLITE_MODEL not in kinds:
            return []
        return [f"note: the baseline {self.baseline!r} is a Keras file; TFLite files are smaller by format alone. "
                "For a fair size ratio, add a `quantize` stage with `method: float32` of the float model "
                "and make it the baseline."]

    def summary(self, output) -> str | None:
        """The metrics table, printed at the end of a run."""
        path = output.path / output.meta.get("table", TABLE_FILE)
        return path.read_text() if path.exists() else None


def measuring_machine(stage: EvaluateStage, notes: list[str]) -> dict[str, str] | None:
    """The machine that measures the latency (None when none is measured); ``notes`` get a line naming it."""
    from compressflow.stages.machine import describe_machine, machine_fingerprint

    if not stage.depends_on_machine():
        return None
    machine = machine_fingerprint()
    notes.append(f"latency measured on machine {describe_machine(machine)}")
    return machine


def one_class_warnings(models: dict[str, dict[str, Any]], labels, split: str) -> list[str]:
    """A warning for each classifier that predicts one class for more than :data:`ONE_CLASS_SHARE` of
    the samples, unless the labels themselves are that lopsided."""
    import numpy as np

    labels = np.asarray(labels)
    labels = (labels.argmax(axis=1) if labels.ndim == 2 else labels).reshape(-1)
    warnings = []
    for name, metrics in models.items():
        top, share = metrics.get("top_predicted_class"), metrics.get("top_predicted_share")
        if top is None or share is None or share <= ONE_CLASS_SHARE:
            continue
        if len(labels) and float(np.mean(labels == top)) > ONE_CLASS_SHARE:
            continue  # NOTE: the data is that lopsided: predicting its main class is no sign of trouble
        samples = "training" if split == "train" else "validation"
        warnings.append(f"model {name!r} predicts class {top} for {share:.0%} of the {samples} samples: BatchNorm "
                        "statistics may not fit (try `batchnorm: freeze`) or the model has not learned")
    return warnings
