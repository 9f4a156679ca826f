"""docs/stages.md is generated from the stage models, it shows what each field allows, `compressflow stages`
prints the same for stage and dataset types, and every stage's example validates."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Literal, Union

import pytest
import yaml
from helpers import cli
from pydantic import BaseModel, Field

from compressflow.dsl import load_pipeline
from compressflow.stages.describe import markdown_reference
from compressflow.stages.registry import stage_types
from compressflow.stages.schema_text import Style, model_schema, type_text
from compressflow.stages.type_docs import nested_docs, type_doc

DOCS = Path(__file__).resolve().parents[2] / "docs" / "stages.md"
# The recipe the search stage's example names (as recipes/compress.yaml).
RECIPE = Path(__file__).resolve().parents[2] / "pipelines" / "recipes" / "prune-cluster-int8.yaml"

CONTEXT = """
version: 1
name: example
datasets:
  digits: {type: sklearn_digits}
stages:
  base: {type: load, builder: "compressflow.models:small_cnn"}
  trained: {type: fine_tune, model: base, data: digits}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
  float: {type: quantize, model: trained, method: float32}
  check: {type: evaluate, models: [trained, pruned], baseline: trained, data: digits}
"""


def test_reference_is_up_to_date():
    assert DOCS.read_text() == markdown_reference(built_in_only=True) + "\n", \
        "docs/stages.md is stale: run python -m compressflow.stages.describe > docs/stages.md"


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n### ", start + 1)
    return markdown[start:end if end != -1 else None]


def _row(section: str, field: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| `{field}` |"))
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9_ -]", "", heading.lower()).replace(" ", "-")


def test_reference_lists_the_allowed_values_of_a_field():
    _, method, default, _ = _row(_section(markdown_reference(built_in_only=True), "### `quantize`"), "method")
    methods = ("qat", "float32", "dynamic", "float16", "int8", "int16x8", "litert")
    assert method.split(" \\| ") == [f"`{m}`" for m in methods]
    assert default == "required"


def test_reference_shows_bounds_optional_fields_and_value_types():
    prune = _section(markdown_reference(built_in_only=True), "### `prune`")
    assert _row(prune, "learning_rate")[1:3] == ["number (0 < x <= 10)", "`0.001`"]
    assert _row(prune, "resources")[1] == "dict of string to number (> 0), optional"
    assert _row(prune, "include")[1:3] == ["list of string", "`[]`"]
    assert _row(prune, "block_size")[1] == "[integer, integer], optional"
    assert _row(prune, "early_stopping")[1] == "[EarlyStopping](#earlystopping), optional"
    assert "FieldInfo" not in markdown_reference(built_in_only=True)


def test_schedules_link_to_tables_of_their_own():
    markdown = markdown_reference(built_in_only=True)
    schedule = _row(_section(markdown, "### `prune`"), "schedule")[1]
    assert schedule == ("[ConstantSchedule](#constantschedule) \\| "
                        "[PolynomialDecaySchedule](#polynomialdecayschedule), optional")
    polynomial = _section(markdown, "### PolynomialDecaySchedule")
    assert _row(polynomial, "type")[1:3] == ["`polynomial_decay`", "required"]
    assert _row(polynomial, "final_sparsity")[1:3] == ["number (0 <= x < 1)", "required"]
    assert "Used in `prune.schedule`." in polynomial


def test_every_link_has_its_table_and_each_nested_table_is_there_once():
    markdown = markdown_reference(built_in_only=True)
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
    anchors = [_anchor(heading) for heading in headings]
    links = set(re.findall(r"\]\(#([^)]+)\)", markdown))
    assert {"constantschedule", "earlystopping", "latencyoptions", "requirements"} <= links
    assert sorted(links - set(anchors)) == []
    assert len(anchors) == len(set(anchors))
    assert markdown.count("\n### EarlyStopping\n") == 1


class _Inner(BaseModel):
    """Innermost."""

    level: int = Field(1, ge=1, le=3)


class _Options(BaseModel):
    """Options of the first kind."""

    inner: _Inner | None = None
    modes: list[Literal["a", "b"]] = Field(default_factory=lambda: ["a"])


def _other_options() -> type[BaseModel]:
    class _Options(BaseModel):
        """Options of the second kind: another model of the same name."""

        name: str = Field(pattern=r"^x|y$")

    return _Options


_OtherOptions = _other_options()


class _First(BaseModel):
    options: _Options


class _Second(BaseModel):
    options: Union[_OtherOptions, None] = None


def test_nested_models_of_nested_models_and_clashing_names_get_tables_of_their_own():
    owners = [type_doc("first", _First, "stage"), type_doc("second", _Second, "stage")]
    nested = {doc.title: doc for doc in nested_docs(owners)}
    assert sorted(nested) == ["_Inner", "_Options", "_Options (second)"]
    assert nested["_Inner"].used_in == ["_Options.inner"]
    assert owners[1].link_name("_Options") == "_Options (second)"
    terminal = Style(value=lambda text: text, link=lambda name: name)
    modes = next(f for f in nested["_Options"].fields if f.name == "modes")
    assert (type_text(modes.schema, terminal), modes.default) == ("list of a | b", '["a"]')
    assert "x|y" in type_text(model_schema(_OtherOptions)["properties"]["name"], terminal)


def test_stages_command_describes_a_dataset_type():
    result = cli("stages", "npz")
    assert result.code == 0, result.text
    assert "npz: Arrays from a `.npz` file" in result.out
    assert "dataset type, written under datasets:" in result.out
    assert "  path: string, required" in result.out
    assert "  validation_fraction: number (0 <= x < 1) = 0.2" in result.out


def test_stages_command_shows_nested_models_and_allowed_values():
    result = cli("stages", "prune")
    assert result.code == 0, result.text
    assert "  schedule: ConstantSchedule | PolynomialDecaySchedule, optional = null" in result.out
    assert "  optimizer: adam | sgd | rmsprop | adamw = adam" in result.out
    assert "\nPolynomialDecaySchedule: " in result.out
    assert "  final_sparsity: number (0 <= x < 1), required" in result.out


def test_stages_command_lists_dataset_types():
    result = cli("stages")
    assert result.code == 0, result.text
    datasets = result.out.split("Dataset types")[1]
    assert "  image_directory  " in datasets and "  npz  " in datasets


@pytest.mark.parametrize("name, suggestion", [("imgae_directory", "image_directory"), ("qunatize", "quantize")])
def test_stages_command_suggests_a_close_name(name, suggestion):
    result = cli("stages", name)
    assert result.code == 2, result.text
    assert f"did you mean '{suggestion}'?" in result.err
    assert "Traceback" not in result.text


BUILT_IN = sorted(kind for kind, cls in stage_types().items()
                  if cls.__module__.startswith("compressflow.") and cls.example)


def test_every_built_in_stage_has_an_example():
    missing = [kind for kind, cls in stage_types().items()
               if cls.__module__.startswith("compressflow.") and not cls.example and kind != "pipeline"]
    assert missing == []


@pytest.mark.parametrize("kind", BUILT_IN)
def test_example_validates(tmp_path, kind):
    document = yaml.safe_load(CONTEXT)
    body = yaml.safe_load(textwrap.dedent(stage_types()[kind].example))
    document["stages"][f"my_{kind}"] = {"type": kind, **body}
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "compress.yaml").write_text(RECIPE.read_text())
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(document))
    pipeline = load_pipeline(tmp_path / "pipeline.yaml")
    assert pipeline.stages[f"my_{kind}"].kind == kind
