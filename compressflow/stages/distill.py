"""``distill``: train a student on a teacher's softened outputs plus the hard labels."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from pydantic import Field

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class DistillStage(TrainingOptions, Stage):
    """loss = alpha * hard-label loss + (1 - alpha) * T^2 * KL(teacher_T || student_T); for a regression the
    soft loss is the mean squared difference between the teacher's and the student's outputs."""

    example: ClassVar[str] = """\
teacher: trained
student: base
data: digits
temperature: 4.0
alpha: 0.1
epochs: 20
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE
    keras_model_fields: ClassVar[tuple[str, ...]] = ("teacher", "student")

    type: Literal["distill"] = "distill"
    teacher: StageName
    student: StageName
    data: DatasetName
    temperature: float = Field(4.0, gt=0.0, le=1000.0, description="Softening temperature T.")
    alpha: float = Field(0.1, ge=0.0, le=1.0,
                         description="Weight of the hard-label loss; the distillation (KL) loss gets 1 - alpha.")
    teacher_outputs: Literal["auto", "logits", "probabilities"] = Field(
        "auto", description="What the teacher's last layer gives (auto: detected from its activation).")
    epochs: int = Field(10, ge=0, le=100_000, description="Training epochs.")

    def run(self, ctx) -> None:
        from compressflow.data.datasets import load_splits
        from compressflow.stages import keras_training, model_io, tfutil
        from compressflow.stages.batchnorm import batchnorm_mode
        from compressflow.stages.objective import training_objective, validation_summary
        from compressflow.stages.tasks import REGRESSION

        tfutil.seed_everything(ctx.seed)
        teacher = model_io.load_input_model(ctx, "teacher")
        student = model_io.load_input_model(ctx, "student")
        splits = load_splits(ctx.dataset(self.data), ctx.env)
        keras_training.check_data_fits(teacher, splits, self.data)
        keras_training.check_data_fits(student, splits, self.data)
        if teacher.output_shape[-1] != student.output_shape[-1]:
            raise StageFailed(f"teacher {ctx.input('teacher').stage!r} has {teacher.output_shape[-1]} outputs but "
                              f"student {ctx.input('student').stage!r} has {student.output_shape[-1]}")
        teacher_logits = (tfutil.outputs_logits(teacher) if self.teacher_outputs == "auto"
                          else self.teacher_outputs == "logits")
        student_logits = tfutil.outputs_logits(student)
        objective = training_objective(self, student, splits, ctx, from_logits=student_logits)
        teacher_objective = replace(objective, from_logits=teacher_logits)
        teacher_scores = keras_training.evaluate(teacher, splits, objective=teacher_objective)
        before = keras_training.evaluate(student, splits, objective=objective)
        ctx.log(f"teacher {validation_summary(teacher_scores)} ({'logits' if teacher_logits else 'probabilities'}); "
                f"student before {validation_summary(before)} ({'logits' if student_logits else 'probabilities'})")
        distiller = make_distiller(student, teacher, temperature=self.temperature, alpha=self.alpha,
                                   teacher_logits=teacher_logits, student_logits=student_logits,
                                   hard_loss=objective.loss_object(), metrics=objective.metric_objects(),
                                   soft="mse" if objective.task == REGRESSION else "kl")
        with batchnorm_mode(student, self.batchnorm, ctx.log):
            distiller.compile(optimizer=keras_training.make_optimizer(self.optimizer, self.learning_rate))
            training = keras_training.fit(distiller, splits, ctx, epochs=self.epochs, batch_size=self.batch_size,
                                          early_stopping=self.early_stopping, learning_rate=self.learning_rate)
        after = keras_training.evaluate(student, splits, objective=objective)
        ctx.log("student after  " + "  ".join(f"{key} {value:.4f}" for key, value in after.items()))
        history = training["history"]
        ctx.write_json("metrics.json", {
            **after, "teacher": teacher_scores, "student_before": before,
            **{key: values[-1] for key, values in history.items() if key.endswith(("hard_loss", "soft_loss"))},
            "epochs_run": training["epochs_run"], "history": history})
        model_io.save_keras_model(student, ctx, temperature=self.temperature, alpha=self.alpha,
                                  **{key: after[key] for key in ("accuracy", "val_accuracy") if key in after})


def make_distiller(student, teacher, *, temperature: float, alpha: float, teacher_logits: bool,
                   student_logits: bool, hard_loss=None, metrics=None, soft: str = "kl"):
    """A Keras model whose ``fit`` trains ``student`` against ``teacher`` (frozen).

    loss = alpha * hard_loss(labels, student) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T)),
    where t and s are logits; a model that outputs probabilities gives log-probabilities
    as logits (softmax of log p is p). With ``soft="mse"`` (a regression) the soft loss is the
    mean squared difference of the two models' outputs. ``hard_loss`` defaults to sparse categorical
    cross-entropy, ``metrics`` (tf-keras metric objects, fed the student's outputs) to accuracy.
    Reported: ``loss``, ``hard_loss``, ``soft_loss`` and the metrics (of the student).
    """
    from compressflow.stages.tfutil import import_tensorflow, keras

    tf, k = import_tensorflow(), keras()

    def as_logits(outputs, is_logits: bool):
        return outputs if is_logits else tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))

    class Distiller(k.Model):
        def __init__(self):
            super().__init__(name="distiller")
            self.student, self.teacher = student, teacher
            self.teacher.trainable = False
            self.trackers = [k.metrics.Mean(name=n) for n in ("loss", "hard_loss", "soft_loss")]
            self.hard_loss = hard_loss or k.losses.SparseCategoricalCrossentropy(from_logits=student_logits)
            self.student_metrics = list(metrics) if metrics is not None else [
                k.metrics.SparseCategoricalAccuracy(name="accuracy")]

        @property
        def metrics(self):
            return [*self.trackers, *self.student_metrics]

        def call(self, inputs, training=False):
            return self.student(inputs, training=training)

        def _distillation_losses(self, x, y, training: bool):
            teacher_outputs = self.teacher(x, training=False)
            outputs = self.student(x, training=training)
            hard = self.hard_loss(y, outputs)
            if soft == "mse":
                soft_loss = tf.reduce_mean(tf.square(tf.cast(teacher_outputs, outputs.dtype) - outputs))
                return alpha * hard + (1.0 - alpha) * soft_loss, hard, soft_loss, outputs
            t = as_logits(teacher_outputs, teacher_logits)
            s = as_logits(outputs, student_logits)
            soft_teacher = tf.nn.softmax(t / temperature)
            kl = tf.reduce_sum(soft_teacher * (tf.nn.log_softmax(t / temperature)
                                               - tf.nn.log_softmax(s / temperature)), axis=-1)
            soft_loss = tf.reduce_mean(kl) * temperature ** 2
            return alpha * hard + (1.0 - alpha) * soft_loss, hard, soft_loss, outputs

        def _report(self, values, y, outputs):
            for tracker, value in zip(self.trackers, values):
                tracker.update_state(value)
            for metric in self.student_metrics:
                metric.update_state(y, outputs)
            return {m.name: m.result() for m in self.metrics}

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss, hard, soft, logits = self._distillation_losses(x, y, training=True)
                total = loss + tf.add_n(self.student.losses) if self.student.losses else loss
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
            return self._report((loss, hard, soft), y, logits)

        def test_step(self, data):
            x, y = data
            loss, hard, soft, logits = self._distillation_losses(x, y, training=False)
            return self._report((loss, hard, soft), y, logits)

    return Distiller()
