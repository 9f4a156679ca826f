"""TensorFlow plumbing shared by the stages: import, determinism, model files.

Import this module only from inside a stage's ``run``: it imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"

_tf = None


def import_tensorflow():
    """Import TensorFlow configured for tf-keras (tfmot needs Keras 2) and quiet logs."""
    global _tf
    if _tf is None:
        # NOTE: must be set before TensorFlow is first imported; tfmot does not support Keras 3.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.experimental.enable_op_determinism()
        _tf = tf
    return _tf


def keras():
    """The tf-keras module (Keras 2), the one tfmot works with."""
    import_tensorflow()
    import tf_keras

    return tf_keras


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a stage's output depends only on its inputs."""
    keras().utils.set_random_seed(seed)


def save_keras_model(model, ctx, **meta: Any) -> None:
    """Save ``model`` as the stage's Keras output (``model.keras``) and declare it."""
    from compressflow.stages.base import KERAS_MODEL

    path = ctx.out_dir / KERAS_FILE
    model.save(path)
    ctx.set_output(KERAS_MODEL, KERAS_FILE, **meta)


def load_keras_model(path: Path, *, trust: bool = False, custom_objects: dict | None = None):
    """Load a Keras model file written by a stage (or, with the checks of ``load``, by a user)."""
    k = keras()
    return k.models.load_model(path, compile=False, safe_mode=not trust, custom_objects=custom_objects)
