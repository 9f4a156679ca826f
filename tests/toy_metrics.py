"""A toy evaluation for core tests of ``select``: metrics of toy numbers in evaluate's format.

A model whose number is ``n`` has accuracy ``1 - n / 100``, a gzip size of ``1000 / n``
bytes and a median latency of ``n`` ms: bigger numbers are smaller, faster and less accurate.
"""

from __future__ import annotations

import json
from typing import ClassVar, Literal

from compressflow.stages.base import METRICS, Stage, StageName, StageNames
from compressflow.stages.registry import register_stage


@register_stage
class ToyMeasure(Stage):
    """Metrics of toy numbers, written like evaluate's metrics.json."""

    kind: ClassVar[str] = "toy_measure"
    produces: ClassVar[str] = METRICS
    type: Literal["toy_measure"] = "toy_measure"
    models: StageNames
    baseline: StageName | None = None

    def run(self, ctx) -> None:
        models = {}
        for artifact in ctx.input_list("models"):
            number = json.loads(artifact.file().read_text())
            models[artifact.stage] = {
                "kind": artifact.kind, "label": "toy", "accuracy": 1 - number / 100, "params": 1,
                "file_bytes": int(2000 / number), "gzip_bytes": int(1000 / number), "latency_ms_median": number}
        ctx.write_json("metrics.json", {"baseline": self.baseline, "models": models})
        ctx.set_output(METRICS, "metrics.json")
