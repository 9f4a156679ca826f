"""Human-readable descriptions of stage types, generated from their pydantic models.

Used by ``compressflow stages`` and to write ``docs/stages.md`` so the docs cannot drift.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from compressflow.errors import UsageError, did_you_mean
from compressflow.stages.registry import dataset_types, stage_origin, stage_types


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return (text.replace("typing.", "").replace("Annotated[", "").replace("compressflow.stages.", "")
            .replace("NoneType", "null"))


def _default(info) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str)


def field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for each field a user writes."""
    rows = []
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        rows.append((name, _type_name(info.annotation), _default(info), info.description or ""))
    return rows


def stage_table() -> str:
    """One line per registered stage type."""
    types = stage_types()
    width = max(map(len, types)) if types else 0
    lines = [f"{kind:<{width}}  {_first_line(cls.__doc__)}" for kind, cls in sorted(types.items())]
    lines.append("\n`compressflow stages TYPE` shows a type's fields.")
    return "\n".join(lines)


def describe_stage(kind: str) -> str:
    """A stage type's fields with their types, defaults and descriptions."""
    types = stage_types()
    if kind not in types:
        hint = did_you_mean(kind, types)
        raise UsageError(f"no stage type {kind!r}" + (f"; {hint}" if hint else "")
                         + f" (known: {', '.join(sorted(types))})")
    cls = types[kind]
    lines = [f"{kind}: {(cls.__doc__ or '').strip()}", f"  (from {stage_origin(kind)})", ""]
    for name, type_name, default, description in field_rows(cls):
        lines.append(f"  {name}: {type_name} = {default}")
        if description:
            lines.append(f"      {description}")
    return "\n".join(lines)


def _built_in(cls: type) -> bool:
    return cls.__module__.startswith("compressflow.")


def markdown_reference(*, built_in_only: bool = False) -> str:
    """Markdown reference of stage and dataset types (the source of docs/stages.md).

    With ``built_in_only`` the types that plugins registered are left out.
    """
    out = ["# Stage and dataset reference", "",
           "Generated from the stage models by `python -m compressflow.stages.describe > docs/stages.md`; "
           "do not edit by hand.", ""]
    for title, types in (("Stages", stage_types()), ("Datasets", dataset_types())):
        out += [f"## {title}", ""]
        for kind, cls in sorted(types.items()):
            if built_in_only and not _built_in(cls):
                continue
            origin = [] if _built_in(cls) else [f"*From the plugin `{cls.__module__.split('.')[0]}`.*", ""]
            out += [f"### `{kind}`", "", *origin, (cls.__doc__ or "").strip(), "",
                    "| field | type | default | description |", "|---|---|---|---|"]
            for name, type_name, default, description in field_rows(cls):
                cell = description.replace("|", "\\|")
                out.append(f"| `{name}` | `{type_name.replace('|', '&#124;')}` | `{default}` | {cell} |")
            example = getattr(cls, "example", "")
            if example:
                body = "\n".join("    " + line for line in example.strip().splitlines())
                out += ["", "Example:", "", "```yaml", "stages:", f"  my_{kind}:", f"    type: {kind}", body, "```"]
            out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """``python -m compressflow.stages.describe [--plugins]``: the reference as Markdown.

    Without ``--plugins`` only the built-in types (what docs/stages.md holds); with it,
    the installed plugins' types too, each marked with the package it comes from.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m compressflow.stages.describe")
    parser.add_argument("--plugins", action="store_true", help="also describe stage types from installed plugins")
    args = parser.parse_args(argv)
    print(markdown_reference(built_in_only=not args.plugins))


if __name__ == "__main__":  # pragma: no cover
    main()
