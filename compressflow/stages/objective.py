"""What a training stage optimises and reports: the dataset's task, the loss and the metrics.

A training stage resolves it once (:func:`training_objective`), compiles with it and measures the
trained model with it (``keras_training.compile_model`` / ``keras_training.evaluate``). TensorFlow is imported only
to build the tf-keras objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressflow.errors import StageFailed
from compressflow.stages import losses
from compressflow.stages.tasks import CLASSIFICATION, DEFAULT_TRAINING_METRICS, dataset_task, describe, output_units


@dataclass(frozen=True)
class Objective:
    """The task, the loss and metrics as written (None: the task's defaults), and the output's form."""

    task: str = CLASSIFICATION
    loss: Any = None
    metrics: tuple[Any, ...] | None = None
    from_logits: bool = True
    one_hot: bool = False
    output_units: int | None = None

    @property
    def loss_spec(self):
        """The loss as written, or the task's default."""
        if self.loss is not None:
            return self.loss
        return losses.default_loss(self.task, one_hot=self.one_hot, output_units=self.output_units)

    @property
    def metric_specs(self) -> tuple[Any, ...]:
        """The metrics as written, or the task's defaults."""
        return tuple(self.metrics) if self.metrics is not None else DEFAULT_TRAINING_METRICS[self.task]

    def loss_object(self):
        """A fresh tf-keras loss object."""
        return losses.build_loss(self.loss_spec, from_logits=self.from_logits)

    def metric_objects(self) -> list:
        """Fresh tf-keras metric objects, named as they are reported (``accuracy``, ``mae``...)."""
        return losses.build_metrics(self.metric_specs, task=self.task, one_hot=self.one_hot,
                                    output_units=self.output_units, from_logits=self.from_logits)


def training_objective(stage: Any, model: Any, splits: Any, ctx: Any, *, from_logits: bool | None = None) -> Objective:
    """The objective of ``stage`` (its ``loss``, ``metrics`` and ``data``) for ``model`` on ``splits``.

    The task is the dataset's ``task:`` or inferred from its labels and the model's output width;
    an inferred task is logged. A metric that judges class decisions fails a regression.
    """
    import numpy as np

    from compressflow.stages.tfutil import outputs_logits

    units = output_units(model)
    choice = dataset_task(ctx.dataset(stage.data), splits.task_labels, units)
    if not choice.declared:
        ctx.log(describe(choice, stage.data))
    metrics = getattr(stage, "metrics", None)
    wrong = losses.not_applying(metrics, choice.task)
    if wrong:
        raise StageFailed(f"stage {ctx.name!r}: " + losses.not_applying_text(wrong, f"dataset {stage.data!r}, a "
                          f"{choice.task}") + " (or set `task:` on the dataset if it is not a regression)")
    labels = np.asarray(splits.task_labels)
    return Objective(task=choice.task, loss=getattr(stage, "loss", None),
                     metrics=None if metrics is None else tuple(metrics),
                     from_logits=outputs_logits(model) if from_logits is None else from_logits,
                     one_hot=choice.task == CLASSIFICATION and labels.ndim == 2 and labels.shape[1] > 1,
                     output_units=units)


def validation_summary(results: dict[str, float]) -> str:
    """``val_loss 0.1234, val_mae 0.2345`` from :func:`keras_training.evaluate`'s results (train figures if none)."""
    shown = {key: value for key, value in results.items() if key.startswith("val_")} or results
    return ", ".join(f"{key} {value:.4f}" for key, value in shown.items())
