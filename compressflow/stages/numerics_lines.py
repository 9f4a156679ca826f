"""The lines ``evaluate`` prints under its table for quantized models that carry per-layer numerics.

Both quantization paths (the TFLite converter's ``int8`` / ``int16x8`` / ``dynamic`` and ``litert``)
put a ``numerics`` summary in their output's meta (see :func:`compressflow.stages.litert_numerics.summary`);
``evaluate`` passes it on per model, and these lines show it: the output's error against the float
model, then the layers that add the most error, worst first.
"""

from __future__ import annotations

from typing import Any


def numerics_lines(models: dict[str, dict[str, Any]]) -> list[str]:
    """One line per measured model that has a ``numerics`` summary, in the models' order."""
    lines = []
    for name, metrics in models.items():
        numerics = metrics.get("numerics")
        if not numerics:
            continue
        text = (f"numerics of {name} ({numerics['samples']} samples, against the float model): output relative "
                f"error {_number(numerics.get('output_relative_error'))}, cosine "
                f"{_number(numerics.get('output_cosine_similarity'))}")
        worst = numerics.get("worst_layers") or []
        if worst:
            text += "; worst layers: " + ", ".join(
                f"{layer['layer']} ({layer['op']}) +{_number(layer['added_error'])}" for layer in worst)
        lines.append(text)
    return lines


def _number(value: float | None) -> str:
    """An error as printed: three significant digits, ``unbounded`` where the table has none."""
    return "unbounded" if value is None else f"{value:.3g}"
