"""A toy stage that logs, for tests of log forwarding from remote workers (no TensorFlow)."""

from __future__ import annotations

import os
from typing import ClassVar, Literal

from compressflow.stages.base import Stage
from compressflow.stages.registry import register_stage


@register_stage
class ToyLog(Stage):
    """Logs `message` (and the pid of the process running it), outputs the message's length."""

    kind: ClassVar[str] = "toy_log"
    produces: ClassVar[str] = "number"
    type: Literal["toy_log"] = "toy_log"
    message: str

    def run(self, ctx) -> None:
        log = os.environ.get("TOY_RUN_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{ctx.name} {os.getpid()}\n")
        ctx.log(f"{self.message} (pid {os.getpid()})")
        ctx.write_json("value.json", float(len(self.message)))
        ctx.set_output("number", "value.json", value=float(len(self.message)))
