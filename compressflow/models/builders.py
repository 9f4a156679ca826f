"""Model builders for ``load: {builder: compressflow.models:NAME}``.

Every builder returns a tf-keras functional model with named layers (so that
``include``/``exclude`` patterns such as ``conv*`` are stable) and imports
TensorFlow only when called. Weights are initialised from the global seed the
calling stage sets, so a builder is deterministic for a given stage seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

DIGITS_SHAPE = (8, 8, 1)


def _keras():
    from compressflow.stages.tfutil import keras

    return keras()


def _head(k, x, classes: int, logits: bool):
    """The classification layer: softmax probabilities, or raw logits."""
    return k.layers.Dense(classes, activation=None if logits else "softmax", name="logits" if logits else "probs")(x)


def small_cnn(input_shape: Sequence[int] = DIGITS_SHAPE, classes: int = 10, filters: Sequence[int] = (16, 32),
              dense: int = 64, dropout: float = 0.0, logits: bool = False):
    """A small CNN: ``len(filters)`` 3x3 conv layers, one max-pool, a dense layer and the head.

    On the 8x8 digits it reaches about 98% validation accuracy after 15 epochs.
    """
    k = _keras()
    inputs = k.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, width in enumerate(filters, start=1):
        x = k.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(dense, activation="relu", name="dense1")(x)
    if dropout:
        x = k.layers.Dropout(dropout, name="dropout")(x)
    return k.Model(inputs, _head(k, x, classes, logits), name="small_cnn")


def tiny_cnn(input_shape: Sequence[int] = DIGITS_SHAPE, classes: int = 10, filters: int = 8,
             logits: bool = False):
    """A much smaller CNN (one conv layer with few filters), meant as a distillation student."""
    k = _keras()
    inputs = k.Input(shape=tuple(input_shape), name="image")
    x = k.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    return k.Model(inputs, _head(k, x, classes, logits), name="tiny_cnn")


def mlp(input_shape: Sequence[int] = (64,), classes: int = 10, hidden: Sequence[int] = (64,),
        dropout: float = 0.0, logits: bool = False):
    """A multi-layer perceptron; inputs of any shape are flattened first."""
    k = _keras()
    inputs, x = _hidden_layers(k, input_shape, hidden, dropout)
    return k.Model(inputs, _head(k, x, classes, logits), name="mlp")


def mlp_regressor(input_shape: Sequence[int] = (10,), outputs: int = 1, hidden: Sequence[int] = (64, 32),
                  dropout: float = 0.0):
    """A multi-layer perceptron with a linear output (``outputs`` real values): a regression model."""
    k = _keras()
    inputs, x = _hidden_layers(k, input_shape, hidden, dropout)
    return k.Model(inputs, k.layers.Dense(outputs, name="output")(x), name="mlp_regressor")


def _hidden_layers(k, input_shape: Sequence[int], hidden: Sequence[int], dropout: float):
    """The input (flattened when it has several axes) and the ReLU dense layers of the MLPs."""
    inputs = k.Input(shape=tuple(input_shape), name="features")
    x = k.layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    for i, width in enumerate(hidden, start=1):
        x = k.layers.Dense(width, activation="relu", name=f"dense{i}")(x)
        if dropout:
            x = k.layers.Dropout(dropout, name=f"dropout{i}")(x)
    return inputs, x


def application(name: str, weights: str | Path | None = None, **args):
    """A ``keras.applications`` architecture by name (e.g. ``MobileNetV2``), never downloaded.

    ``weights`` is ``None`` (random initialisation) or the path of a local weights file
    (``.h5`` or ``.weights.h5``). Other keyword arguments go to the constructor,
    e.g. ``input_shape``, ``classes``, ``alpha``, ``include_top``.
    """
    k = _keras()
    constructor = _application_constructor(k, name)
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"application weights must be null or a local file; {str(weights)!r} is not a file "
                         "(pretrained weights are never downloaded)")
    model = constructor(weights=None, **args)
    if weights is not None:
        model.load_weights(str(weights))
    return model


def _application_constructor(k, name: str):
    import difflib

    known = sorted(n for n in dir(k.applications) if n[:1].isupper() and callable(getattr(k.applications, n)))
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
        raise ValueError(f"unknown keras.applications architecture {name!r}{hint}")
    return getattr(k.applications, name)
