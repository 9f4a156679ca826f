"""scikit-learn's bundled digits as tf.data pipelines: the dataset of pipelines/digits-stream.yaml."""

from __future__ import annotations


def splits(validation_fraction: float = 0.2, seed: int = 0):
    """``{"train": ..., "validation": ...}``: batched tf.data pipelines of (8, 8, 1) images (0..16) and labels."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images = digits.images[order, :, :, None].astype("float32")
    labels = digits.target[order].astype("int64")
    held_out = int(round(len(labels) * validation_fraction))

    def pipeline(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(64)

    return {"train": pipeline(images[held_out:], labels[held_out:]),
            "validation": pipeline(images[:held_out], labels[:held_out])}
