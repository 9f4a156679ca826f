"""Overrides (`--set KEY=VALUE`, a dict) and params files (`--params file.yaml`)."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import Location, PipelineError
from dsl_helpers import DESIGN_EXAMPLE, only


@pytest.fixture
def design_path(write):
    return write(DESIGN_EXAMPLE, "digits.yaml")


def load_problems(path, **kwargs):
    with pytest.raises(PipelineError) as info:
        load_pipeline(path, **kwargs)
    return info.value.problems


def test_set_values_are_typed_by_yaml_rules(design_path):
    pipeline = load_pipeline(design_path, overrides=[
        "params.sparsity=0.9", "stages.pruned.epochs=5", "stages.check.models=[trained, pruned]",
        "stages.trained.preserve_sparsity=false", "seed=7", "stages.release.to=out/x.tflite"])
    assert pipeline.stages["pruned"].schedule.final_sparsity == 0.9
    assert pipeline.stages["pruned"].epochs == 5 and type(pipeline.stages["pruned"].epochs) is int
    assert pipeline.stages["check"].models == ["trained", "pruned"]
    assert pipeline.stages["trained"].preserve_sparsity is False
    assert pipeline.seed == 7
    assert pipeline.stages["release"].to == "out/x.tflite"
    assert pipeline.params == {"sparsity": 0.9}


def test_override_location(design_path):
    pipeline = load_pipeline(design_path, overrides=["stages.pruned.epochs=5"])
    assert pipeline.location_of(("stages", "pruned", "epochs")) == Location("<--set stages.pruned.epochs>", 1, 1)


def test_dict_overrides_keep_python_types(design_path):
    pipeline = load_pipeline(design_path, overrides={"params.sparsity": 0.95, "stages.pruned.epochs": 4})
    assert pipeline.stages["pruned"].schedule.final_sparsity == 0.95
    assert pipeline.stages["pruned"].epochs == 4


def test_new_field_inside_a_stage_is_allowed(design_path):
    pipeline = load_pipeline(design_path, overrides=["stages.pruned.batch_size=64",
                                                     "stages.trained.early_stopping.patience=1"])
    assert pipeline.stages["pruned"].batch_size == 64
    assert pipeline.stages["trained"].early_stopping.patience == 1


def test_list_item_override(design_path):
    pipeline = load_pipeline(design_path, overrides=["stages.base.args.input_shape.2=3"])
    assert pipeline.stages["base"].args["input_shape"] == [8, 8, 3]


def test_unknown_param_suggests_the_close_one(design_path):
    problem = only(load_problems(design_path, overrides=["params.sparsty=0.9"]))
    assert problem.message == "cannot set 'params.sparsty': there is no param 'sparsty'"
    assert problem.hint == "did you mean 'sparsity'?"
    assert str(problem.location) == "<--set params.sparsty>:1:1"


def test_unknown_stage_suggests_the_close_one(design_path):
    problem = only(load_problems(design_path, overrides=["stages.prunned.epochs=5"]))
    assert "there is no stage 'prunned'" in problem.message
    assert problem.hint == "did you mean 'pruned'?"


def test_unknown_top_level_key(design_path):
    problem = only(load_problems(design_path, overrides=["parms.sparsity=0.9"]))
    assert "'parms' is not a top-level key" in problem.message
    assert problem.hint == "did you mean 'params'?"


def test_unknown_field_set_on_a_stage_is_reported_at_the_override(design_path):
    problem = only(load_problems(design_path, overrides=["stages.pruned.epoch=5"]))
    assert problem.message == "unknown field 'epoch' in stage 'pruned'"
    assert problem.hint == "did you mean 'epochs'?"
    assert str(problem.location) == "<--set stages.pruned.epoch>:1:1"


def test_wrong_type_set_is_reported_at_the_override(design_path):
    problem = only(load_problems(design_path, overrides=["stages.pruned.epochs=many"]))
    assert problem.message == "expected an integer in stage 'pruned', got 'many' (a string)"
    assert str(problem.location) == "<--set stages.pruned.epochs>:1:1"


def test_override_with_bad_yaml_value(design_path):
    problem = only(load_problems(design_path, overrides=["stages.pruned.epochs=[1, 2"]))
    assert "YAML syntax error" in problem.message
    assert problem.location.file == "<--set stages.pruned.epochs>"


@pytest.mark.parametrize("item, message", [
    ("params.sparsity", "KEY=VALUE"), ("=3", "not a dotted path"), ("params..x=1", "not a dotted path"),
    ("name.x=1", "is a single value"), ("stages=1", "cannot replace all of 'stages'"),
    ("stages.pruned.epochs.x=1", "it is a single value"),
])
def test_malformed_overrides(design_path, item, message):
    assert message in only(load_problems(design_path, overrides=[item])).message


def test_several_bad_overrides_are_all_reported(design_path):
    problems = load_problems(design_path, overrides=["params.sparsty=1", "stages.nope.x=1", "bogus=1"])
    assert len(problems) == 3
    assert {p.location.file for p in problems} == {"<--set params.sparsty>", "<--set stages.nope.x>",
                                                  "<--set bogus>"}


def test_file_problems_come_before_override_problems(write):
    path = write(DESIGN_EXAMPLE.replace("epochs: 10", "epochs: true"))
    problems = load_problems(path, overrides=["params.sparsty=1"])
    assert [p.location.file for p in problems] == [str(path), "<--set params.sparsty>"]


def test_params_file(design_path, write):
    params = write("sparsity: 0.6\n", "params.yaml")
    pipeline = load_pipeline(design_path, params_files=[params])
    assert pipeline.stages["pruned"].schedule.final_sparsity == 0.6
    assert pipeline.location_of(("params", "sparsity")) == Location(str(params), 1, 11)


def test_a_single_params_file_may_be_given_without_a_list(design_path, write):
    params = write("sparsity: 0.6\n", "params.yaml")
    assert load_pipeline(design_path, params_files=str(params)).params == {"sparsity": 0.6}


def test_set_wins_over_params_file(design_path, write):
    params = write("sparsity: 0.6\n", "params.yaml")
    pipeline = load_pipeline(design_path, params_files=[params], overrides=["params.sparsity=0.7"])
    assert pipeline.params["sparsity"] == 0.7


def test_params_file_with_unknown_param(design_path, write):
    params = write("sparsity: 0.6\nsparsty: 0.9\n", "params.yaml")
    problem = only(load_problems(design_path, params_files=[params]))
    assert problem.hint == "did you mean 'sparsity'?"
    assert problem.location == Location(str(params), 2, 1)


def test_params_file_that_is_not_a_mapping(design_path, write):
    params = write("- 1\n", "params.yaml")
    problem = only(load_problems(design_path, params_files=[params]))
    assert "mapping of param names" in problem.message
    assert problem.location.file == str(params)


def test_params_file_with_a_yaml_error(design_path, write):
    params = write("sparsity: [0.6\n", "params.yaml")
    problem = only(load_problems(design_path, params_files=[params]))
    assert problem.location.file == str(params)


def test_missing_params_file(design_path, tmp_path):
    problem = only(load_problems(design_path, params_files=[tmp_path / "nope.yaml"]))
    assert "file not found" in problem.message


def test_value_from_a_params_file_is_located_there_when_wrong(design_path, write):
    params = write("sparsity: 1.5\n", "params.yaml")
    problem = only(load_problems(design_path, params_files=[params]))
    assert "less than 1" in problem.message
    assert problem.location.line == 29  # used here, in the pipeline file
    assert f"{params}:1:11" in problem.hint  # written there
