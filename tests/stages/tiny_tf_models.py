"""Tiny tf-keras models on the digits data for the quantize / evaluate / export tests.

Built here (not with ``compressflow.models``) so these tests depend only on TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compressflow.data.datasets import load_splits
from compressflow.stages.base import Artifact


def digits(env):
    """The digits splits of ``env`` (dataset ``digits``)."""
    return load_splits(env.datasets["digits"], env)


def train_cnn(env, *, epochs: int = 8, seed: int = 0):
    """Conv2D(8) -> Flatten -> Dense(10) logits, trained on the digits training split."""
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    seed_everything(seed)
    model = k.Sequential([
        k.layers.Input((8, 8, 1)),
        k.layers.Conv2D(8, 3, activation="relu", name="conv"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(10, name="dense"),
    ])
    splits = digits(env)
    model.compile(k.optimizers.Adam(3e-3), k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def prune(model, env, *, sparsity: float, epochs: int = 2):
    """A stripped copy of ``model`` pruned to ``sparsity`` (tfmot constant schedule)."""
    import tensorflow_model_optimization as tfmot

    from compressflow.stages.tfutil import keras

    k = keras()
    copy = k.models.clone_model(model)
    copy.set_weights(model.get_weights())
    splits = digits(env)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(
        copy, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(sparsity, 0, frequency=5))
    wrapped.compile(k.optimizers.Adam(1e-3), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    wrapped.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


def cluster(model, env, *, clusters: int, preserve_sparsity: bool = False, epochs: int = 1):
    """A stripped copy of ``model`` with ``clusters`` weight clusters per kernel (tfmot)."""
    import tensorflow_model_optimization as tfmot

    from compressflow.stages.tfutil import keras

    k = keras()
    copy = k.models.clone_model(model)
    copy.set_weights(model.get_weights())
    splits = digits(env)
    wrapped = tfmot.clustering.keras.cluster_weights(
        copy, number_of_clusters=clusters, preserve_sparsity=preserve_sparsity,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS)
    wrapped.compile(k.optimizers.Adam(1e-4), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    wrapped.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return tfmot.clustering.keras.strip_clustering(wrapped)


def keras_artifact(model, directory: Path, stage: str) -> Artifact:
    """Save ``model`` as a Keras model artifact named ``stage``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.keras")
    (directory / "artifact.json").write_text(json.dumps({"kind": "keras_model", "file": "model.keras"}))
    return Artifact.read(stage, stage.ljust(64, "0")[:64], directory)


def kernel_sparsity(model) -> float:
    """Share of zeros over every kernel (rank >= 2 weight) of a Keras model."""
    kernels = [w.numpy() for w in model.weights if len(w.shape) >= 2]
    return float(sum(np.count_nonzero(k == 0) for k in kernels) / sum(k.size for k in kernels))


def kernel_unique_counts(model, *, per_channel: bool = False) -> dict[str, int]:
    """Distinct values of every kernel of a Keras model, by position and weight name.

    With ``per_channel``, the largest count over the kernel's output channels (last axis).
    """
    counts = {}
    for i, w in enumerate(w for w in model.weights if len(w.shape) >= 2):
        values = w.numpy()
        if per_channel:
            channels = values.reshape(-1, values.shape[-1]).T
            counts[f"{i}:{w.name}"] = max(int(np.unique(c).size) for c in channels)
        else:
            counts[f"{i}:{w.name}"] = int(np.unique(values).size)
    return counts


def run_into(stage, env, inputs: dict, name: str, directory: Path, **context) -> Artifact:
    """Run a stage into ``directory / name`` (for module-scoped fixtures); return its output.

    ``context`` goes to the StageContext (``lineage``, ``versions``).
    """
    from compressflow.stages.base import StageContext, derive_seed

    out_dir = directory / name
    out_dir.mkdir(parents=True)
    stage.run(StageContext(name=name, seed=derive_seed(env.seed, name), out_dir=out_dir, env=env,
                           inputs=inputs, log=lambda message: None, **context))
    return Artifact.read(name, name.ljust(64, "0")[:64], out_dir)
