"""``evaluate``: accuracy, size, sparsity, clusters and latency of Keras and TFLite models.

Output: ``metrics.json`` ``{"baseline": name | null, "models": {stage name: {metric: value}},
"data": {...}, "notes": [...]}`` and ``table.txt`` (printed at the end of a run).

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

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, METRICS, TFLITE_MODEL, DatasetName, Stage, StageName, StageNames
from compressflow.stages.code_sets import EVALUATE_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.gates import is_named
from compressflow.stages.registry import register_stage


class Requirements(BaseModel):
    """Gates: the stage fails, naming the model and the numbers, when one is not met."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0,
                                            description="Largest accuracy loss against the baseline (0.01 = 1 point).")
    min_compression: float | None = Field(None, gt=0.0, description="Smallest gzip-size ratio baseline / model.")
    max_latency_ms: float | None = Field(None, gt=0.0, description="Largest median latency per sample, in ms.")
    models: list[str] | None = Field(
        None, description="Models the gates apply to (default: every model but the baseline).",
        examples=[["int8"]])


class LatencyOptions(BaseModel):
    """How latency is measured: batch 1, repeated runs, median and p90."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int = Field(200, ge=1, le=1_000_000, description="Timed single-sample runs.")
    warmup: int = Field(20, ge=0, le=100_000, description="Untimed runs first.")
    threads: int = Field(1, ge=1, le=256, description="Interpreter threads for TFLite models.")


METRICS_FILE = "metrics.json"
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
        default_factory=lambda: [1], description="Also report top-k accuracy for these k (top-1 is `accuracy`).")
    latency: LatencyOptions | None = Field(
        default_factory=LatencyOptions, description="Latency options (null to skip).")
    require: Requirements | None = Field(None, description="Gates against the baseline.")

    @model_validator(mode="after")
    def _baseline_is_evaluated(self):
        if self.baseline is not None and self.baseline not in self.models:
            raise ValueError(f"baseline {self.baseline!r} must be one of 'models'")
        if self.require is not None and self.baseline is None and (
                self.require.max_accuracy_drop is not None or self.require.min_compression is not None):
            raise ValueError("'require' against a baseline needs 'baseline'")
        unknown = [name for name in (self.require.models or [])
                   if not any(is_named(model, [name]) for model in self.models)] if self.require else []
        if unknown:
            raise ValueError(f"'require.models' names {', '.join(map(repr, unknown))}, not in 'models'")
        if self.require is not None and self.require.max_latency_ms is not None and self.latency is None:
            raise ValueError("'require.max_latency_ms' needs latency measured ('latency' is null)")
        return self

    def run(self, ctx) -> None:
        from compressflow.data.datasets import load_splits
        from compressflow.stages.gates import gate_failure, unmet_requirements
        from compressflow.stages.model_measurements import compare, measure_model
        from compressflow.stages.report_table import format_table

        splits = load_splits(ctx.dataset(self.data), ctx.env)
        x, y = (splits.x_val, splits.y_val) if self.split == "validation" else (splits.x_train, splits.y_train)
        if len(x) == 0:
            raise StageFailed(f"dataset {self.data!r} has no {self.split} samples to evaluate on")
        models: dict[str, dict[str, Any]] = {}
        for artifact in ctx.input_list("models"):
            ctx.log(f"measuring {artifact.stage} ({artifact.kind}) on {len(x)} {self.split} samples")
            try:
                models[artifact.stage] = measure_model(artifact, x, y, top_k=self.top_k, latency=self.latency)
            except ValueError as exc:
                raise StageFailed(f"cannot evaluate {artifact.stage!r}: {exc}") from exc
        if self.baseline is not None:
            for name, metrics in models.items():
                if name != self.baseline:
                    metrics.update(compare(metrics, models[self.baseline]))
        notes = self._notes(models)
        ctx.write_json(METRICS_FILE, {"baseline": self.baseline, "models": models, "notes": notes,
                                      "data": {"dataset": self.data, "split": self.split, "samples": len(x)}})
        table = format_table(models, self.baseline, notes)
        (ctx.out_dir / TABLE_FILE).write_text(table)
        ctx.set_output(METRICS, METRICS_FILE, table=TABLE_FILE, baseline=self.baseline, models=list(models))
        problems = unmet_requirements(self.require, models, self.baseline) if self.require else []
        if problems:
            ctx.log(table)
            raise gate_failure(ctx.name, problems)

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
