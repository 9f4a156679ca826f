"""What a preflight check found, per stage (no TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING, OK, NOTE = "error", "warning", "ok", "note"


@dataclass
class Finding:
    """One thing found about a stage.

    ``level`` is ``error`` (running the stage would fail), ``warning`` (it runs but leaves
    something undone), ``ok`` (what it will do) or ``note`` (what could not be checked and why).
    ``items`` names the layers or ops concerned.
    """

    level: str
    message: str
    items: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "message": self.message, "items": list(self.items)}


@dataclass
class StageCheck:
    """The findings of one stage."""

    name: str
    type: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, message: str, items=()) -> None:
        self.findings.append(Finding(level, message, list(items)))

    @property
    def status(self) -> str:
        """The worst level found: error, warning, else ok (note when only notes)."""
        levels = {f.level for f in self.findings}
        for level in (ERROR, WARNING, OK):
            if level in levels:
                return level
        return NOTE if levels else OK


@dataclass
class Report:
    """The findings of every checked stage, in execution order."""

    pipeline: str
    stages: list[StageCheck] = field(default_factory=list)

    def errors(self) -> list[tuple[str, Finding]]:
        return [(s.name, f) for s in self.stages for f in s.findings if f.level == ERROR]

    def warnings(self) -> list[tuple[str, Finding]]:
        return [(s.name, f) for s in self.stages for f in s.findings if f.level == WARNING]

    @property
    def ok(self) -> bool:
        """Whether no stage would fail (warnings do not count)."""
        return not self.errors()

    def to_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "ok": self.ok, "errors": len(self.errors()),
                "warnings": len(self.warnings()),
                "stages": {s.name: {"type": s.type, "status": s.status,
                                    "findings": [f.to_json() for f in s.findings]} for s in self.stages}}
