"""Human-readable descriptions of stage and dataset types, generated from their JSON Schemas.

Used by ``compressflow stages`` and to write ``docs/stages.md`` so the docs cannot drift:
``python -m compressflow.stages.describe > docs/stages.md``.
"""

from __future__ import annotations

import re

from compressflow.errors import UsageError, did_you_mean
from compressflow.stages.registry import dataset_types, failures_for, plugin_failures, stage_types
from compressflow.stages.schema_text import Style, type_text
from compressflow.stages.type_docs import FieldDoc, TypeDoc, nested_docs, type_doc

REGENERATE = "python -m compressflow.stages.describe > docs/stages.md"
_PLACES = {"stage": "stages:", "dataset": "datasets:"}


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _registered(*, built_in_only: bool = False) -> list[TypeDoc]:
    """Docs of the registered stage types, then the dataset types, each sorted by name."""
    docs = []
    for what, types in (("stage", stage_types()), ("dataset", dataset_types())):
        for kind, cls in sorted(types.items()):
            if not built_in_only or _built_in(cls):
                docs.append(type_doc(kind, cls, what))
    return docs


def _built_in(cls: type) -> bool:
    return cls.__module__.startswith("compressflow.")


# --------------------------------------------------------------------------- terminal


def stage_table() -> str:
    """One line per registered stage type and dataset type."""
    lines: list[str] = []
    for title, types in (("Stage types (under stages:)", stage_types()),
                         ("Dataset types (under datasets:)", dataset_types())):
        width = max(map(len, types), default=0)
        lines += [title, *(f"  {kind:<{width}}  {_first_line(cls.__doc__)}" for kind, cls in sorted(types.items())),
                  ""]
    failures = plugin_failures()
    lines += [f"not loaded: {failure.describe()}" for failure in failures] + [""] * bool(failures)
    lines.append("`compressflow stages TYPE` shows the fields of a stage or dataset type.")
    return "\n".join(lines)


def _terminal_fields(doc: TypeDoc) -> list[str]:
    style = Style(value=lambda text: text, link=doc.link_name)
    lines = []
    for f in doc.fields:
        default = ", required" if f.required else (f" = {f.default}" if f.default is not None else "")
        lines.append(f"  {f.name}: {type_text(f.schema, style)}{default}")
        if f.description:
            lines.append(f"      {f.description}")
    return lines


def describe_stage(name: str) -> str:
    """The fields of the stage or dataset type ``name`` (types, allowed values, defaults), then the
    fields of the models they hold; a did-you-mean :class:`UsageError` for an unknown name."""
    docs = [doc for doc in _registered() if doc.title == name]
    if not docs:
        raise UsageError(_unknown(name))
    out: list[str] = []
    for doc in docs:
        out += [f"{doc.title}: {doc.summary.strip()}",
                f"  ({doc.what} type, written under {_PLACES[doc.what]}; defined in {doc.origin})", "",
                *_terminal_fields(doc)]
        if doc.example:
            out += ["", "  Example:", f"    type: {doc.title}",
                    *("    " + line for line in doc.example.strip().splitlines())]
        for nested in nested_docs([doc]):
            out += ["", f"{nested.title}: {_first_line(nested.summary)}",
                    f"  (the value of {', '.join(nested.used_in)})", "", *_terminal_fields(nested)]
    return "\n".join(out)


def _unknown(name: str) -> str:
    stages, datasets = sorted(stage_types()), sorted(dataset_types())
    hint = did_you_mean(name, stages + datasets)
    text = (f"no stage or dataset type {name!r}" + (f"; {hint}" if hint else "")
            + f" (stage types: {', '.join(stages)}; dataset types: {', '.join(datasets)})")
    for failure in failures_for(name, "stage") + failures_for(name, "dataset"):
        text += f"\n  {failure.describe()}; {failure.hint()}"
    return text


# --------------------------------------------------------------------------- Markdown


def _slugs(headings: list[str]) -> list[str]:
    """GitHub's anchors for these headings, in document order (a repeated one gets ``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    slugs = []
    for heading in headings:
        base = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(base, 0)
        seen[base] = count + 1
        slugs.append(base if count == 0 else f"{base}-{count}")
    return slugs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(doc: TypeDoc, anchors: dict[str, str]) -> list[str]:
    style = Style(value=lambda text: f"`{_cell(text)}`", union=" \\| ",
                  link=lambda local: f"[{doc.link_name(local)}](#{anchors[doc.link_name(local)]})")
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for f in doc.fields:
        rows.append(f"| `{f.name}` | {type_text(f.schema, style)} | {_markdown_default(f)} | {_cell(f.description)} |")
    return rows


def _markdown_default(f: FieldDoc) -> str:
    if f.required:
        return "required"
    return f"`{_cell(f.default)}`" if f.default is not None else ""


def markdown_reference(*, built_in_only: bool = False) -> str:
    """Markdown reference of stage and dataset types and the models their fields hold (docs/stages.md).

    With ``built_in_only`` the types that plugins registered are left out.
    """
    registered = _registered(built_in_only=built_in_only)
    nested = nested_docs(registered)
    sections = ([("## Stages", None)] + [(f"### `{d.title}`", d) for d in registered if d.what == "stage"]
                + [("## Datasets", None)] + [(f"### `{d.title}`", d) for d in registered if d.what == "dataset"]
                + [("## Nested settings", None)] + [(f"### {d.title}", d) for d in nested])
    slugs = _slugs(["Stage and dataset reference"] + [heading.lstrip("# ") for heading, _ in sections])[1:]
    anchors = {doc.title: slug for (_, doc), slug in zip(sections, slugs) if doc is not None and not doc.what}
    out = ["# Stage and dataset reference", "",
           f"Generated from the stage models by `{REGENERATE}`; do not edit by hand.", ""]
    for heading, doc in sections:
        out += [heading, ""]
        if doc is None:
            if heading == "## Nested settings":
                out += ["Fields above whose type links here take a mapping with these fields.", ""]
            continue
        if doc.what and not _built_in_origin(doc):
            out += [f"*From the plugin `{doc.origin.split('.')[0]}`.*", ""]
        if doc.summary:
            out += [doc.summary.strip(), ""]
        if doc.used_in:
            out += ["Used in " + ", ".join(f"`{place}`" for place in doc.used_in) + ".", ""]
        out += _markdown_table(doc, anchors)
        if doc.example:
            body = "\n".join("    " + line for line in doc.example.strip().splitlines())
            out += ["", "Example:", "", "```yaml", _PLACES[doc.what], f"  my_{doc.title}:",
                    f"    type: {doc.title}", body, "```"]
        out.append("")
    return "\n".join(out)


def _built_in_origin(doc: TypeDoc) -> bool:
    return doc.origin.startswith("compressflow.")


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
