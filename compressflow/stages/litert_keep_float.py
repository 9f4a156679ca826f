"""``keep_float``: keep the layers that add the most quantization error in float, until a bound holds.

Layers are ranked once, by the added error of the fully quantized model's numerics table
(:mod:`compressflow.stages.litert_numerics`); then the first *k* are kept in float and the model is
quantized again. ``layers: N`` takes k = N; ``max_accuracy_drop`` takes the smallest k whose
accuracy on the validation split is at most that far below the float model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from compressflow.errors import StageFailed
from compressflow.stages.litert_graph import GraphOp
from compressflow.stages.litert_recipes import KeepFloat


@dataclass
class KeptFloat:
    """What keeping layers in float gave: the layers, the model, and each attempt's accuracy."""

    layers: list[GraphOp]
    model: bytes
    attempts: list[dict[str, Any]] = field(default_factory=list)
    float_accuracy: float | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready description for the stage's meta."""
        result: dict[str, Any] = {"layers": [op.layer for op in self.layers]}
        if self.float_accuracy is not None:
            result["float_accuracy"] = self.float_accuracy
            result["accuracy"] = self.attempts[-1]["accuracy"]
            result["attempts"] = self.attempts
        return result


def keep_layers_in_float(bound: KeepFloat, ranked: Sequence[GraphOp], quantized_model: bytes,
                         requantize: Callable[[list[GraphOp]], bytes],
                         accuracy: Callable[[bytes], float] | None, float_accuracy: float | None,
                         log: Callable[[str], None]) -> KeptFloat:
    """Keep the first layers of ``ranked`` (worst first) in float as ``bound`` asks.

    ``requantize(kept)`` quantizes the model again with ``kept`` in float; ``accuracy`` measures a
    model on the validation split (needed for ``max_accuracy_drop``).
    """
    if bound.layers is not None:
        if bound.layers > len(ranked):
            raise StageFailed(f"keep_float.layers is {bound.layers}, but only {len(ranked)} layers are quantized "
                              f"({', '.join(op.layer for op in ranked)})")
        kept = list(ranked[:bound.layers])
        log(f"keep_float: keeping {', '.join(op.layer for op in kept)} in float (the {len(kept)} with the largest "
            "added error)")
        return KeptFloat(kept, requantize(kept))
    if accuracy is None or float_accuracy is None:
        raise StageFailed("keep_float.max_accuracy_drop needs 'data' to measure accuracy on")
    result = KeptFloat([], quantized_model, float_accuracy=float_accuracy)
    for count in range(len(ranked) + 1):
        kept = list(ranked[:count])
        model = quantized_model if count == 0 else requantize(kept)
        measured = accuracy(model)
        result.layers, result.model = kept, model
        result.attempts.append({"kept": [op.layer for op in kept], "accuracy": measured})
        drop = float_accuracy - measured
        if drop <= bound.max_accuracy_drop:
            named = ", ".join(op.layer for op in kept) or "no layer"
            log(f"keep_float: keeping {named} in float: accuracy {measured:.4f} against {float_accuracy:.4f} "
                f"for the float model (drop {drop:.4f}, at most {bound.max_accuracy_drop})")
            if count == len(ranked):
                log("keep_float: every quantized layer is kept in float; the model is the float model")
            return result
        log(f"keep_float: with {count} layer{'s' if count != 1 else ''} in float the accuracy drops by {drop:.4f}")
    return result  # NOTE: unreachable: with every layer in float the drop is 0
