"""`${params.NAME}` interpolation: typed when alone, formatted inside text, located when wrong."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from dsl_helpers import only


def pipeline_text(params: str, stage_fields: str) -> str:
    """Params from line 3; stage `s` (fine_tune of `m`) gets ``stage_fields`` from line 12 (one-line params)."""
    head = ("name: t\nparams:\n  " + params + "\ndatasets:\n  digits: {type: sklearn_digits}\nstages:\n"
            "  m: {type: load, builder: 'm:f'}\n  s:\n    type: fine_tune\n")
    return head + "".join(f"    {line}\n" for line in ["model: m", "data: digits", *stage_fields.split("\n")])


def test_alone_keeps_the_type(write):
    pipeline = load_pipeline(write(pipeline_text("n: 7\n  lr: 0.5\n  flag: false",
                                                 "epochs: ${params.n}\nlearning_rate: ${params.lr}\n"
                                                 "preserve_sparsity: ${params.flag}")))
    stage = pipeline.stages["s"]
    assert stage.epochs == 7 and type(stage.epochs) is int
    assert stage.learning_rate == 0.5 and type(stage.learning_rate) is float
    assert stage.preserve_sparsity is False


def test_list_param_stays_a_list(write):
    pipeline = load_pipeline(write(pipeline_text("metrics: [accuracy, mse]", "metrics: ${params.metrics}")))
    assert pipeline.stages["s"].metrics == ["accuracy", "mse"]


def test_mapping_param_and_nested_paths(write):
    text = pipeline_text("train: {epochs: 4, opt: {name: sgd}}",
                         "epochs: ${params.train.epochs}\noptimizer: ${params.train.opt.name}")
    stage = load_pipeline(write(text)).stages["s"]
    assert (stage.epochs, stage.optimizer) == (4, "sgd")


def test_list_index_path(write):
    text = pipeline_text("sizes: [16, 32]", "batch_size: ${params.sizes.1}")
    assert load_pipeline(write(text)).stages["s"].batch_size == 32


def test_whole_mapping_param(write):
    text = pipeline_text("stop: {patience: 2, monitor: val_accuracy}", "early_stopping: ${params.stop}")
    stopping = load_pipeline(write(text)).stages["s"].early_stopping
    assert (stopping.patience, stopping.monitor) == (2, "val_accuracy")


def test_inside_text_is_formatted(write):
    text = pipeline_text("name: digits\n  n: 3\n  r: 0.5\n  on: true",
                         "description: 'model ${params.name} x${params.n} at ${params.r}, ${params.on}'")
    assert load_pipeline(write(text)).stages["s"].description == "model digits x3 at 0.5, true"


def test_flow_mapping_without_quotes(write):
    """`{key: ${params.x}}` is not plain YAML (braces end a flow scalar); it works anyway."""
    text = pipeline_text("p: 0.7", "schedule: {type: constant, target_sparsity: ${params.p}}").replace(
        "type: fine_tune", "type: prune")
    assert load_pipeline(write(text)).stages["s"].schedule.target_sparsity == 0.7


def test_quoted_reference_also_keeps_the_type(write):
    text = pipeline_text("n: 5", "epochs: \"${params.n}\"")
    assert load_pipeline(write(text)).stages["s"].epochs == 5


def test_escape_gives_a_literal(write):
    text = pipeline_text("n: 5", "description: 'costs $${params.n} and $$5 and $${HOME}'")
    assert load_pipeline(write(text)).stages["s"].description == "costs ${params.n} and $$5 and ${HOME}"


def test_dollar_alone_is_left_as_is(write):
    text = pipeline_text("n: 5", "description: 'price: $5, $ and $x'")
    assert load_pipeline(write(text)).stages["s"].description == "price: $5, $ and $x"


def test_unknown_param_suggests_the_close_one(problems_of):
    problem = only(problems_of(pipeline_text("sparsity: 0.8", "epochs: ${params.sparsty}")))
    assert problem.message == "unknown param 'params.sparsty'"
    assert problem.hint == "did you mean 'sparsity'?"
    assert (problem.location.line, problem.location.column) == (12, 13)
    assert problem.path == ("stages", "s", "epochs")


def test_unknown_param_inside_text(problems_of):
    problem = only(problems_of(pipeline_text("name: x", "description: 'a ${params.nme} b'")))
    assert problem.message == "unknown param 'params.nme'"
    assert problem.hint == "did you mean 'name'?"
    assert problem.location.line == 12


def test_unknown_nested_param(problems_of):
    problem = only(problems_of(pipeline_text("train: {epochs: 4}", "epochs: ${params.train.epoch}")))
    assert problem.message == "unknown param 'params.train.epoch'"
    assert problem.hint == "did you mean 'epochs'?"


def test_no_params_at_all(problems_of):
    text = pipeline_text("x: 1", "epochs: ${params.n}").replace("params:\n  x: 1\n", "")
    problem = only(problems_of(text))
    assert "there are no params" in problem.hint


@pytest.mark.parametrize("value, message", [
    ("${env.HOME}", "only ${params.NAME} is supported"),
    ("${params}", "only ${params.NAME} is supported"),
    ("'a ${params.n'", "without a closing"),
])
def test_bad_references(problems_of, value, message):
    problem = only(problems_of(pipeline_text("n: 1", f"description: {value}")))
    assert message in problem.message
    assert problem.location.line == 12


def test_params_cannot_refer_to_params(problems_of):
    problem = only(problems_of(pipeline_text("a: 1\n  b: ${params.a}", "epochs: 1")))
    assert "params cannot refer to other params" in problem.message
    assert problem.location.line == 4


def test_wrong_value_from_a_param_says_where_the_value_was_written(problems_of):
    problem = only(problems_of(pipeline_text("n: many", "epochs: ${params.n}")))
    assert problem.message == "expected an integer in stage 's', got 'many' (a string)"
    assert problem.location.line == 12  # where the param is used
    assert "the value comes from params.n" in problem.hint and ":3:6)" in problem.hint


def test_nan_param_is_refused_where_it_is_used(problems_of):
    problem = only(problems_of(pipeline_text("lr: .nan", "learning_rate: ${params.lr}")))
    assert "NaN" in problem.message
    assert problem.location.line == 12


def test_unused_params_are_not_validated(write):
    pipeline = load_pipeline(write(pipeline_text("anything: [1, {a: .nan}]", "epochs: 1")))
    assert pipeline.params["anything"][0] == 1


def test_interpolation_in_datasets(write):
    text = pipeline_text("fraction: 0.25", "epochs: 1").replace(
        "digits: {type: sklearn_digits}", "digits: {type: sklearn_digits, validation_fraction: ${params.fraction}}")
    assert load_pipeline(write(text)).datasets["digits"].validation_fraction == 0.25


def test_reference_to_a_stage_through_a_param(write):
    text = pipeline_text("source: m", "epochs: 1").replace("    model: m\n", "    model: ${params.source}\n")
    assert load_pipeline(write(text)).dependencies("s") == ["m"]


def test_type_through_a_param(write):
    text = pipeline_text("kind: fine_tune", "epochs: 1").replace("type: fine_tune", "type: ${params.kind}")
    assert load_pipeline(write(text)).stages["s"].kind == "fine_tune"


def test_params_cannot_blow_up_the_text(problems_of):
    big = "x" * 200_000
    problem = only(problems_of(pipeline_text(f"big: {big}", "description: '" + "${params.big}" * 51 + "'")))
    assert "more than 10,000,000 characters" in problem.message
    assert problem.location.line == 12


def test_params_cannot_blow_up_the_values(problems_of, monkeypatch):
    import compressflow.dsl.interpolate as interpolate

    monkeypatch.setattr(interpolate, "MAX_VALUES", 1_000)  # the real bound is 1,000,000: slow to reach
    stages = "".join(f"  s{i}: {{type: evaluate, models: [m], data: digits, top_k: '${{params.many}}'}}\n"
                     for i in range(3))
    text = ("name: t\nparams:\n  many: [" + ", ".join(["1"] * 400) + "]\n"
            "datasets:\n  digits: {type: sklearn_digits}\nstages:\n  m: {type: load, builder: 'm:f'}\n" + stages)
    problem = only(problems_of(text))
    assert "more than 1,000 values" in problem.message
    assert problem.path == ("stages", "s2", "top_k")
