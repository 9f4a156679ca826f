"""What a failed run prints last: how to resume after a crash, what to change after a failed gate.

A crash (an exception, a killed worker, a full disk) may go away: the same command resumes,
with finished stages cached. A failed gate (``require:`` of an evaluate stage) is the answer
for these inputs, and the same command gives it again; what helps is changing the requirement
or what produced the models it judges, so that is what the hint names, with file:line.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from compressflow.dsl.located import LocatedDict, LocatedList, key_location_of, value_at

# NOTE: interpolation leaves this note on every value that stood alone as ${params.NAME}
# (compressflow/dsl/interpolate.py); it is how a stage's config remembers the params it used.
_PARAM_NOTE = re.compile(r"^the value comes from (params(?:\.[^\s.\[]+|\[\d+\])+) \(")


def failure_hint(pipeline, report, argv: list[str]) -> str:
    """The lines printed after a failed run (``report`` a RunReport, ``argv`` the CLI's arguments)."""
    failed = report.failed
    gates = {name: report.outcomes[name].gate_fields for name in failed if report.outcomes[name].gate_fields}
    lines = [(f"run failed (stage{'s' if len(failed) != 1 else ''}: {', '.join(failed) or 'none'}); "
              f"{report.count('ran')} ran, {report.count('cached')} cached.")]
    for name, fields in gates.items():
        lines += gate_hint(pipeline, name, fields, argv)
    if len(gates) < len(failed) or not failed:
        lines += ["Finished stages are cached: after fixing the cause, resume with:", f"  {resume_command(argv)}"]
    else:
        lines.append("Finished stages are cached: after a change, only the stages it reaches run again.")
    return "\n".join(lines)


def resume_command(argv: list[str]) -> str:
    """The command that resumes this one: the same command (finished stages are cached)."""
    return shlex.join(["compressflow", *argv])


def gate_hint(pipeline, stage: str, fields: tuple[str, ...], argv: list[str]) -> list[str]:
    """What to change so that the gate of ``stage`` (its config ``fields``) can pass."""
    upstream = upstream_stages(pipeline, stage)
    lines = [f"{stage}: a requirement is not met, and a rerun gives the same result. To pass, change one of:"]
    for field in fields:
        where = key_location_of(pipeline.document, ("stages", stage, field))
        params = params_used(pipeline, [stage], under=(field,))
        source = f" (its values come from {', '.join(params)})" if params else ""
        lines.append(f"  - the requirement: {field}: of stage {stage!r}"
                     f"{f' in {where}' if where else ''}{source}")
    for param, users in params_used(pipeline, upstream).items():
        path = param_path(param)
        lines.append(f"  - {param} (now {value_at(pipeline.document, path)[1]!r}{_set_at(pipeline, path)}), "
                     f"which {', '.join(users)} "
                     f"use{'s' if len(users) == 1 else ''}:")
        lines.append(f"      {override_command(argv, param)}")
    if upstream:
        lines.append(f"  - the config of the stages that made its inputs: {', '.join(upstream)}")
    return lines


def _set_at(pipeline, path: tuple) -> str:
    """Where a param got its value: ``, file:line:column``, or ``, from --set KEY`` for an override."""
    where = pipeline.location_of(path)
    if where is None:
        return ""
    return f", from {where.file.strip('<>')}" if where.file.startswith("<") else f", {where}"


def upstream_stages(pipeline, stage: str) -> list[str]:
    """The stages ``stage`` depends on, directly or not, in file order."""
    from compressflow.dsl.digraph import ancestors

    before = ancestors(pipeline.graph(), stage)
    return [name for name in pipeline.stages if name in before]


def params_used(pipeline, stages: list[str], under: tuple = ()) -> dict[str, list[str]]:
    """``{param path: [stages using it]}`` for the ``${params...}`` values in these stages' config."""
    used: dict[str, list[str]] = {}
    for stage in stages:
        found, tree = value_at(pipeline.document, ("stages", stage, *under))
        for param in _params_in(tree) if found else []:
            users = used.setdefault(param, [])
            if stage not in users:
                users.append(stage)
    return used


def _params_in(tree: Any) -> list[str]:
    params: list[str] = []
    if isinstance(tree, (LocatedDict, LocatedList)):
        keys = tree.keys() if isinstance(tree, LocatedDict) else range(len(tree))
        for key in keys:
            match = _PARAM_NOTE.match(tree.note(key) or "")
            if match and match.group(1) not in params:
                params.append(match.group(1))
            params += [p for p in _params_in(tree[key]) if p not in params]
    return params


def param_path(param: str) -> tuple[str | int, ...]:
    """``params.a.b[0]`` as the document path ``("params", "a", "b", 0)``."""
    head, _, rest = param.partition(".")
    parts: list[str | int] = [head]
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", rest):
        parts.append(int(index) if index else name)
    return tuple(parts)


def override_command(argv: list[str], key: str) -> str:
    """``argv`` as a command with ``--set KEY=<value>`` in place of any ``--set`` of that key."""
    kept: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--set":
            value = next(args, "")
            if not value.startswith(f"{key}="):
                kept += [arg, value]
        elif not arg.startswith(f"--set={key}="):
            kept.append(arg)
    return f"{shlex.join(['compressflow', *kept])} --set {key}=<value>"
