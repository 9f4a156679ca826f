"""``batchnorm: freeze``: BatchNormalization layers left as they are while a stage trains.

A frozen BatchNormalization layer (``trainable = False`` in tf-keras) keeps its gamma and beta
and runs in inference mode, normalising with its moving statistics instead of the batch's:
the usual practice when fine-tuning a compressed model on little data, whose batch statistics
would otherwise replace the ones the model learnt on its full training set.

The layers are frozen for the stage's training only: the model it saves has them as they were.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

BATCHNORM_OPTIONS = ("train", "freeze")
_BATCHNORM_CLASSES = frozenset({"BatchNormalization", "BatchNormalizationBase", "SyncBatchNormalization"})


def is_batchnorm(layer) -> bool:
    """Whether ``layer`` is a BatchNormalization layer (a subclass too)."""
    return any(cls.__name__ in _BATCHNORM_CLASSES for cls in type(layer).__mro__)


def batchnorm_layers(model) -> list[Any]:
    """Every BatchNormalization layer of ``model``: in nested models and inside tfmot's wrappers too."""
    found: list[Any] = []
    seen: set[int] = set()

    def visit(layer) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if is_batchnorm(layer):
            found.append(layer)
        inner = getattr(layer, "layer", None)  # pruning / clustering / quantization wrappers
        if inner is not None and hasattr(inner, "trainable"):
            visit(inner)
        for child in getattr(layer, "layers", None) or ():
            visit(child)

    for layer in model.layers:
        visit(layer)
    return found


@contextmanager
def batchnorm_mode(model, option: str, log: Callable[[str], None]) -> Iterator[list[str]]:
    """Inside the block, ``model``'s BatchNormalization layers are frozen when ``option`` is ``freeze``.

    Compile and fit inside the block (tf-keras reads ``trainable`` when it builds the training
    step). Yields the names of the frozen layers; on leaving, each gets its ``trainable`` back,
    so the saved model is no more frozen than the one the stage was given.
    """
    if option not in BATCHNORM_OPTIONS:
        raise ValueError(f"batchnorm must be one of {', '.join(BATCHNORM_OPTIONS)}, not {option!r}")
    layers = batchnorm_layers(model) if option == "freeze" else []
    before = [layer.trainable for layer in layers]
    if option == "freeze":
        log(f"batchnorm: freeze: {len(layers)} BatchNormalization layer{'s' if len(layers) != 1 else ''} keep "
            "their moving statistics, gamma and beta (inference mode while training)" if layers else
            "batchnorm: freeze: the model has no BatchNormalization layer")
    for layer in layers:
        layer.trainable = False
    try:
        yield [layer.name for layer in layers]
    finally:
        for layer, trainable in zip(layers, before):
            layer.trainable = trainable
