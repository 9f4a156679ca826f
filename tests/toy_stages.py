"""Small stage types for testing the core without TensorFlow.

Each run appends ``<stage name> <pid>`` to the file named by ``TOY_RUN_LOG`` (when set), so
tests can tell which stages were computed and how many times.
A stage named by ``TOY_BLOCK`` records its run and then never finishes (tests kill it
while it holds its lock); one with ``wait_for: FILE`` records its run and waits until FILE
exists (tests release it, or kill it mid-stage).
"""

from __future__ import annotations

import json
import os
import time
from typing import ClassVar, Literal

from pydantic import Field

from compressflow.stages.base import Stage, StageName, StageNames, tree_sha256
from compressflow.stages.registry import register_stage


def _record(ctx) -> None:
    log = os.environ.get("TOY_RUN_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{ctx.name} {os.getpid()}\n")


def _work(self, ctx) -> None:
    _record(ctx)
    while os.environ.get("TOY_BLOCK") == ctx.name:
        time.sleep(1)
    while self.wait_for and not os.path.exists(self.wait_for):
        time.sleep(0.05)
    if self.sleep:
        time.sleep(self.sleep)
    if self.fail:
        raise RuntimeError(f"{ctx.name} failed on purpose")


def _value(artifact) -> float:
    return json.loads(artifact.file().read_text())


def _write(ctx, value: float, blob_kib: int = 0) -> None:
    ctx.write_json("value.json", value)
    if blob_kib:
        (ctx.out_dir / "blob.bin").write_bytes(os.urandom(1024) * blob_kib)
    ctx.set_output("number", "value.json", value=value)


class _Toy(Stage):
    sleep: float = Field(0.0, ge=0)
    fail: bool = False
    blob_kib: int = Field(0, ge=0, description="Also write a blob of this many KiB.")
    tag: str = Field("", description="Any text; part of the cache key (sweeps over it make distinct entries).")
    wait_for: str = Field("", description="Wait until this file exists (after recording the run).")
    key_exclude: ClassVar[frozenset[str]] = frozenset({"wait_for"})


@register_stage
class ToyNumber(_Toy):
    """A constant number."""

    kind: ClassVar[str] = "toy_number"
    produces: ClassVar[str] = "number"
    type: Literal["toy_number"] = "toy_number"
    value: float

    def run(self, ctx) -> None:
        _work(self, ctx)
        _write(ctx, self.value, self.blob_kib)

    def summary(self, output):
        return f"value = {_value(output)}"


@register_stage
class ToySum(_Toy):
    """The sum of other stages' numbers plus `add`."""

    kind: ClassVar[str] = "toy_sum"
    produces: ClassVar[str] = "number"
    type: Literal["toy_sum"] = "toy_sum"
    inputs: StageNames
    add: float = 0.0

    def run(self, ctx) -> None:
        _work(self, ctx)
        _write(ctx, sum(_value(a) for a in ctx.input_list("inputs")) + self.add, self.blob_kib)


@register_stage
class ToyScale(_Toy):
    """Another stage's number times `factor`."""

    kind: ClassVar[str] = "toy_scale"
    produces: ClassVar[str] = "number"
    type: Literal["toy_scale"] = "toy_scale"
    model: StageName
    factor: float = 2.0

    def run(self, ctx) -> None:
        _work(self, ctx)
        _write(ctx, _value(ctx.input("model")) * self.factor, self.blob_kib)


@register_stage
class ToyFile(_Toy):
    """The length of a file's text (its bytes are fingerprinted)."""

    kind: ClassVar[str] = "toy_file"
    produces: ClassVar[str] = "number"
    type: Literal["toy_file"] = "toy_file"
    path_fields: ClassVar[dict[str, str]] = {"path": "toy file"}
    path: str

    def fingerprint(self, env):
        path = env.resolve_path(self.path, what="toy file")
        return {"sha256": tree_sha256(path)}

    def run(self, ctx) -> None:
        _work(self, ctx)
        _write(ctx, float(len(ctx.env.resolve_path(self.path, what="toy file").read_text())))
