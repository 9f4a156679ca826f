"""distill: the student learns from the teacher, both losses count, the output is a plain student model."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.stages.distill import DistillStage, make_distiller
from compressflow.stages.load import LoadStage

import stage_chain as chain

pytestmark = pytest.mark.tf


def test_distilled_student_beats_the_untrained_student():
    env = chain.shared_env()
    student = chain.run(LoadStage(builder="compressflow.models:tiny_cnn", args={"logits": True}), env, name="student")
    stage = DistillStage(teacher="trained", student="student", data="digits", epochs=3, learning_rate=1e-2)
    artifact = chain.run(stage, env, {"teacher": chain.trained(), "student": student})
    metrics = artifact.metrics()
    assert metrics["val_accuracy"] > metrics["student_before"]["val_accuracy"] + 0.3
    assert metrics["teacher"]["val_accuracy"] > 0.8
    assert metrics["hard_loss"] > 0 and metrics["soft_loss"] > 0
    assert len(metrics["history"]["val_soft_loss"]) == 3
    model = chain.load(artifact)  # a plain tf-keras model: no custom objects
    assert model.name == "tiny_cnn" and model.count_params() == student.meta["params"]


@pytest.mark.parametrize("teacher_logits", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_blends_hard_labels_and_softened_teacher_outputs(teacher_logits, alpha):
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    seed_everything(0)

    def net(activation):
        inputs = k.Input((4,))
        return k.Model(inputs, k.layers.Dense(3, activation=activation)(inputs))

    teacher, student = net(None if teacher_logits else "softmax"), net(None)
    temperature = 2.5
    distiller = make_distiller(student, teacher, temperature=temperature, alpha=alpha,
                               teacher_logits=teacher_logits, student_logits=True)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    y = np.array([0, 1, 2, 1, 0])
    loss, hard, soft, _ = (float(v) if np.ndim(v) == 0 else v
                           for v in distiller._distillation_losses(x, y, training=False))

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    t = teacher(x).numpy()
    t = t if teacher_logits else np.log(t)
    s = student(x).numpy()
    expected_hard = -np.mean(log_softmax(s)[np.arange(5), y])
    p_t = np.exp(log_softmax(t / temperature))
    expected_soft = np.mean(np.sum(p_t * (log_softmax(t / temperature) - log_softmax(s / temperature)), axis=-1))
    expected_soft *= temperature ** 2
    assert hard == pytest.approx(expected_hard, rel=1e-4)
    assert soft == pytest.approx(expected_soft, rel=1e-3, abs=1e-6)
    assert loss == pytest.approx(alpha * expected_hard + (1 - alpha) * expected_soft, rel=1e-3, abs=1e-6)
