"""Toy stages for progress, record, report and tracking tests (no TensorFlow).

``toy_train`` reports epochs like a training stage (``ctx.progress`` events, or log lines
when nothing listens) and writes a ``metrics.json`` with a history; ``toy_evaluate`` writes
a ``metrics.json`` in the format of the real evaluate stage, with figures derived from its
inputs' numbers (value v: gzip size 90000 / v bytes) and accuracies given in its config, and
fails its ``require:`` gates like the real evaluate stage.
"""

from __future__ import annotations

import json
from typing import ClassVar, Literal

from compressflow.stages.base import METRICS, Stage, StageName, StageNames
from compressflow.stages.evaluate import Requirements
from compressflow.stages.registry import register_stage


def _value(artifact) -> float:
    return json.loads(artifact.file().read_text())


@register_stage
class ToyTrain(Stage):
    """Pretends to train for `epochs` epochs; passes its input's number on."""

    kind: ClassVar[str] = "toy_train"
    produces: ClassVar[str] = "number"
    type: Literal["toy_train"] = "toy_train"
    model: StageName
    epochs: int = 3
    steps: int = 4
    fail_with: str | None = None  # fail after training with this message (a stage's own long error)

    def run(self, ctx) -> None:
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        for epoch in range(1, self.epochs + 1):
            loss, accuracy = 1.0 / (epoch + 1), 1.0 - 0.5 / (epoch + 1)
            for step in range(1, self.steps + 1):
                if ctx.progress is not None:
                    ctx.progress({"event": "step", "epoch": epoch, "epochs": self.epochs, "step": step,
                                  "steps": self.steps, "loss": loss, "accuracy": accuracy})
            history["loss"].append(loss)
            history["accuracy"].append(accuracy)
            text = f"epoch {epoch}/{self.epochs}  loss {loss:.4f}  accuracy {accuracy:.4f}"
            if ctx.progress is not None:
                ctx.progress({"event": "epoch", "epoch": epoch, "epochs": self.epochs, "loss": loss,
                              "accuracy": accuracy, "text": text})
            else:
                ctx.log(text)
        ctx.log(f"trained for {self.epochs} epochs")
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        ctx.write_json("metrics.json", {"accuracy": history["accuracy"][-1], "history": history})
        ctx.write_json("value.json", _value(ctx.input("model")))
        ctx.set_output("number", "value.json")


@register_stage
class ToyEvaluate(Stage):
    """Metrics in evaluate's format for numbers: gzip size 90000 / value bytes."""

    kind: ClassVar[str] = "toy_evaluate"
    produces: ClassVar[str] = METRICS
    type: Literal["toy_evaluate"] = "toy_evaluate"
    models: StageNames
    baseline: StageName | None = None
    accuracy: dict[str, float] = {}
    require: Requirements | None = None  # gates as evaluate's, through the same code

    def run(self, ctx) -> None:
        from compressflow.stages.gates import gate_failure, unmet_requirements
        from compressflow.stages.model_measurements import compare
        from compressflow.stages.report_table import format_table

        models = {}
        for i, artifact in enumerate(ctx.input_list("models")):
            value = _value(artifact)
            sparsity = min(0.95, 1.0 - 1.0 / value)
            models[artifact.stage] = {
                "kind": "tflite_model" if i % 2 else "keras_model", "label": "tflite int8" if i % 2 else "keras",
                "file": "model", "samples": 100, "accuracy": self.accuracy.get(artifact.stage, 0.9),
                "params": 1000, "nonzero_params": int(1000 * (1 - sparsity)), "kernel_params": 900,
                "sparsity": sparsity, "file_bytes": int(100000 / value), "gzip_bytes": int(90000 / value),
                "latency_ms_median": 1.0 / value, "latency_ms_p90": 1.5 / value,
                "layers": {"conv1": {"params": 300, "nonzero_params": 200, "sparsity": sparsity / 2,
                                     "unique_weights": 50},
                           "dense": {"params": 700, "nonzero_params": 100, "sparsity": sparsity,
                                     "unique_weights": 60}},
            }
        if self.baseline is not None:
            for name, metrics in models.items():
                if name != self.baseline:
                    metrics.update(compare(metrics, models[self.baseline]))
        ctx.write_json("metrics.json", {"baseline": self.baseline, "models": models, "notes": [],
                                        "data": {"dataset": "toy", "split": "validation", "samples": 100}})
        (ctx.out_dir / "table.txt").write_text(format_table(models, self.baseline))
        ctx.set_output(METRICS, "metrics.json", table="table.txt", baseline=self.baseline, models=list(models))
        problems = unmet_requirements(self.require, models, self.baseline) if self.require else []
        if problems:
            raise gate_failure(ctx.name, problems)

    def summary(self, output) -> str | None:
        return (output.path / "table.txt").read_text()
