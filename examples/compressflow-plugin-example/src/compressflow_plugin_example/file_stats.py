"""``file_stats``: size, sha256, byte entropy and byte histogram of a file.

The file is another stage's main output (``model:``) or a file beside the pipeline (``path:``).

A plugin stage type: registered by the ``compressflow.stages`` entry point in this
package's ``pyproject.toml``, so it needs no ``@register_stage`` (that decorator is for
modules named in ``COMPRESSFLOW_PLUGINS``). It imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.stages.base import Stage, StageName, tree_sha256

STATS_FILE = "stats.json"


class FileStats(Stage):
    """Size, sha256, byte entropy and byte histogram of a stage's output file or of a file."""

    kind: ClassVar[str] = "file_stats"
    produces: ClassVar[str] = "file_stats"
    version: ClassVar[str] = "1"
    example: ClassVar[str] = """\
model: pruned
histogram_bins: 16
"""

    type: Literal["file_stats"] = "file_stats"
    model: StageName | None = Field(None, description="The stage whose main output file is described.")
    path: str | None = Field(None, description="Or a file, relative to the pipeline file.")
    histogram_bins: int = Field(16, ge=1, le=256, description="Buckets of the byte histogram (byte values 0-255).")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.model is None) == (self.path is None):
            raise ValueError("give exactly one of 'model' or 'path'")
        return self

    def fingerprint(self, env) -> dict:
        """The bytes of ``path`` are in the cache key (a stage's output is, through its key)."""
        return {"sha256": tree_sha256(self._path(env))} if self.path is not None else {}

    def _path(self, env):
        return env.resolve_path(self.path, what="file_stats path")

    def run(self, ctx) -> None:
        if self.model is not None:
            source = ctx.input("model")
            name, file = source.stage, source.file()
        else:
            file = self._path(ctx.env)
            name = self.path
        data = file.read_bytes()
        counts = Counter(data)
        entropy = -sum(n / len(data) * math.log2(n / len(data)) for n in counts.values()) if data else 0.0
        width = 256 / self.histogram_bins
        histogram = [0] * self.histogram_bins
        for value, count in counts.items():
            histogram[min(int(value / width), self.histogram_bins - 1)] += count
        ctx.write_json(STATS_FILE, {"source": name, "file": file.name, "bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest(),
                                    "entropy_bits_per_byte": round(entropy, 4), "histogram": histogram})
        ctx.set_output(self.kind, STATS_FILE)

    def summary(self, output) -> str:
        """One line: what was described, its size, entropy and the start of its sha256."""
        stats = json.loads(output.file().read_text())
        return (f"{stats['source']}: {stats['bytes']:,} bytes, entropy {stats['entropy_bits_per_byte']} bits/byte, "
                f"sha256 {stats['sha256'][:12]}")
