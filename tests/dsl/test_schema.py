"""The pydantic pipeline model and the JSON Schema built from it."""

from __future__ import annotations

import copy
from typing import Annotated, get_args, get_origin

import pytest

from compressflow.dsl import pipeline_json_schema, pipeline_model
from compressflow.dsl.yaml_source import parse_yaml
from compressflow.stages.registry import dataset_types, stage_types
from dsl_helpers import DESIGN_EXAMPLE

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    schema = pipeline_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def example() -> dict:
    # The same data a YAML library gives, with `${params.sparsity}` left as text.
    return copy.deepcopy(parse_yaml(DESIGN_EXAMPLE, "digits.yaml").value)


def test_model_has_a_discriminated_union_of_every_registered_stage_type():
    annotation = pipeline_model().model_fields["stages"].annotation
    value_type = get_args(annotation)[1]
    assert get_origin(value_type) is Annotated
    union, field_info = get_args(value_type)[0], get_args(value_type)[1]
    assert field_info.discriminator == "type"
    assert set(get_args(union)) == set(stage_types().values())


def test_model_has_a_discriminated_union_of_every_dataset_type():
    value_type = get_args(pipeline_model().model_fields["datasets"].annotation)[1]
    assert set(get_args(get_args(value_type)[0])) == set(dataset_types().values())


def test_model_is_cached_until_the_registry_changes():
    from typing import ClassVar, Literal

    from compressflow.stages.base import Stage
    from compressflow.stages.registry import register_stage

    first = pipeline_model()
    assert pipeline_model() is first

    @register_stage
    class DslSchemaProbe(Stage):
        kind: ClassVar[str] = "dsl_schema_probe"
        type: Literal["dsl_schema_probe"] = "dsl_schema_probe"

    rebuilt = pipeline_model()
    assert rebuilt is not first
    assert rebuilt.model_validate({"name": "t", "stages": {"a": {"type": "dsl_schema_probe"}}})


def test_schema_is_draft_2020_12_with_descriptions_and_examples():
    schema = pipeline_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    prune = schema["$defs"]["PruneStage"]
    assert "pruning" in prune["description"].lower()
    assert prune["additionalProperties"] is False
    load = schema["$defs"]["LoadStage"]["properties"]["builder"]
    assert load["examples"] == ["compressflow.models:small_cnn"]
    assert load["description"]


def test_schema_accepts_the_design_example(validator, example):
    assert list(validator.iter_errors(example)) == []


def test_schema_rejects_an_unknown_stage_type(validator, example):
    example["stages"]["pruned"]["type"] = "prnue"
    assert not validator.is_valid(example)


def test_schema_rejects_an_unknown_field(validator, example):
    example["stages"]["trained"]["epoch"] = 3
    assert not validator.is_valid(example)


def test_schema_rejects_a_bad_stage_name(validator, example):
    example["stages"]["a/b"] = example["stages"]["base"]
    assert not validator.is_valid(example)


@pytest.mark.parametrize("path, value", [
    (("stages", "trained", "epochs"), "${params.epochs}"),
    (("stages", "check", "models"), "${params.models}"),
    (("stages", "check", "models", 0), "${ params.first }"),
    (("stages", "base", "args"), "${params.args}"),
    (("stages", "pruned", "schedule"), "${params.schedule}"),
    (("stages", "pruned", "schedule", "final_sparsity"), "${params.train.sparsity}"),
    (("stages", "int8", "method"), "${params.method}"),
    (("datasets", "digits", "validation_fraction"), "${params.fraction}"),
])
def test_schema_accepts_param_references_where_a_value_goes(validator, example, path, value):
    parent = example
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    assert list(validator.iter_errors(example)) == []


def test_schema_still_rejects_other_text_for_numbers(validator, example):
    example["stages"]["trained"]["epochs"] = "ten"
    assert not validator.is_valid(example)


def test_stage_type_may_be_a_param_reference(validator, example):
    example["stages"]["trained"]["type"] = "${params.kind}"
    assert validator.is_valid(example)
