"""Validation problems: plain words, exact locations, document paths and did-you-mean hints."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import PipelineError
from dsl_helpers import HEAD, lines, only

# `m` is on line 8; the stage under test starts on line 9 and its fields on line 10.
BASE = HEAD + "  m: {type: load, builder: 'm:f'}\n"


def stage(*fields: str, kind: str = "fine_tune", name: str = "s") -> str:
    """A stage block (name on line 9, `type` on line 10, then ``fields`` from line 11)."""
    body = "".join(f"    {field}\n" for field in fields)
    return BASE + f"  {name}:\n    type: {kind}\n" + body


TRAIN = ("model: m", "data: digits")  # lines 11 and 12; extra fields start on line 13


def test_unknown_stage_type_suggests_the_close_one(problems_of):
    problem = only(problems_of(stage("model: m", "data: digits", kind="prnue")))
    assert problem.message == "unknown stage type 'prnue' in stage 's'"
    assert problem.hint.startswith("did you mean 'prune'?")
    known = problem.hint.split("known types: ")[1].split(", ")
    assert known == sorted(known)
    assert {"load", "fine_tune", "prune", "cluster", "quantize", "distill", "evaluate", "export"} <= set(known)
    assert (problem.location.line, problem.location.column) == (10, 11)
    assert problem.path == ("stages", "s", "type")


def test_unknown_type_without_a_close_one_lists_the_known_types(problems_of):
    problem = only(problems_of(stage(kind="zzzzzz")))
    assert problem.hint.startswith("known types: ")


def test_missing_type_is_located_at_the_stage_name(problems_of):
    problem = only(problems_of(BASE + "  s:\n    model: m\n"))
    assert "missing 'type'" in problem.message
    assert "known types" in problem.hint
    assert (problem.location.line, problem.location.column) == (9, 3)


def test_unknown_dataset_type(problems_of):
    problem = only(problems_of("name: t\ndatasets:\n  d: {type: sklearn_digit}\nstages:\n"
                               "  m: {type: load, builder: 'm:f'}\n"))
    assert problem.message == "unknown dataset type 'sklearn_digit' in dataset 'd'"
    assert problem.hint.startswith("did you mean 'sklearn_digits'?")
    assert problem.location.line == 3


def test_unknown_field_suggests_the_close_one(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epoch: 3")))
    assert problem.message == "unknown field 'epoch' in stage 's'"
    assert problem.hint == "did you mean 'epochs'?"
    assert (problem.location.line, problem.location.column) == (13, 5)
    assert problem.path == ("stages", "s", "epoch")


def test_unknown_field_without_a_close_one_lists_the_fields(problems_of):
    problem = only(problems_of(stage(*TRAIN, "zzzzzzzz: 3")))
    assert problem.hint.startswith("known: ") and "epochs" in problem.hint


def test_unknown_field_in_a_nested_model(problems_of):
    text = stage(*TRAIN, "schedule: {type: constant, target_sparsity: 0.5, frequncy: 9}", kind="prune")
    problem = only(problems_of(text))
    assert problem.message == "unknown field 'frequncy' in stage 's'"
    assert problem.hint == "did you mean 'frequency'?"
    assert problem.path == ("stages", "s", "schedule", "frequncy")
    assert (problem.location.line, problem.location.column) == (13, 54)


def test_unknown_nested_type(problems_of):
    problem = only(problems_of(stage(*TRAIN, "schedule: {type: polynomal_decay, final_sparsity: 0.5}",
                                     kind="prune")))
    assert "unknown type 'polynomal_decay'" in problem.message
    assert problem.hint.startswith("did you mean 'polynomial_decay'?")
    assert problem.path == ("stages", "s", "schedule", "type")
    assert problem.location.line == 13


def test_wrong_type(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epochs: [1, 2]")))
    assert problem.message == "expected an integer in stage 's', got a list"
    assert (problem.location.line, problem.location.column) == (13, 13)
    assert problem.path == ("stages", "s", "epochs")


def test_missing_required_field_is_located_at_the_stage(problems_of):
    problem = only(problems_of(stage("data: digits")))
    assert problem.message == "missing required field 'model' in stage 's'"
    assert problem.path == ("stages", "s", "model")
    assert (problem.location.line, problem.location.column) == (9, 3)


def test_missing_required_field_in_a_nested_mapping(problems_of):
    problem = only(problems_of(stage(*TRAIN, "schedule: {type: constant}", kind="prune")))
    assert problem.message == "missing required field 'target_sparsity' in stage 's'"
    assert problem.path == ("stages", "s", "schedule", "target_sparsity")
    assert (problem.location.line, problem.location.column) == (13, 5)  # the `schedule:` key


def test_boolean_is_not_an_integer(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epochs: true")))
    assert problem.message == "expected an integer in stage 's', got true (a boolean)"
    assert "boolean" in problem.hint
    assert problem.location.line == 13


def test_boolean_is_not_a_number(problems_of):
    problem = only(problems_of(stage(*TRAIN, "learning_rate: yes")))
    assert problem.message == "expected a number in stage 's', got true (a boolean)"


def test_quoted_number_is_not_silently_converted(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epochs: '5'")))
    assert problem.message == "expected an integer in stage 's', got '5' (a string)"
    assert problem.hint == "write 5 without quotes"


def test_float_is_not_an_integer(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epochs: 5.0")))
    assert "expected an integer" in problem.message
    assert problem.hint == "write 5 (no decimal point)"


def test_number_is_not_a_boolean(problems_of):
    problem = only(problems_of(stage(*TRAIN, "preserve_sparsity: 1")))
    assert problem.message == "expected true or false in stage 's', got 1"


def test_integer_is_fine_for_a_float_field(write):
    pipeline = load_pipeline(write(stage(*TRAIN, "learning_rate: 1")))
    assert pipeline.stages["s"].learning_rate == 1.0
    assert isinstance(pipeline.stages["s"].learning_rate, float)


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("2E-4", 0.0002), ("1.5e-3", 0.0015), ("0.5", 0.5)])
def test_exponent_notation_is_a_number(write, text, value):
    pipeline = load_pipeline(write(stage(*TRAIN, f"learning_rate: {text}")))
    assert pipeline.stages["s"].learning_rate == value


def test_lists_are_fine_for_tuple_fields(write):
    pipeline = load_pipeline(write(stage(*TRAIN, "sparsity_m_by_n: [2, 4]", kind="prune")))
    assert pipeline.stages["s"].sparsity_m_by_n == (2, 4)


@pytest.mark.parametrize("value, word", [(".nan", "NaN"), (".NaN", "NaN"), (".inf", "infinity"),
                                         ("-.inf", "infinity"), ("1e400", "infinity"), ("1.0e+999", "infinity")])
def test_nan_and_infinity_are_refused(problems_of, value, word):
    problem = only(problems_of(stage(*TRAIN, f"learning_rate: {value}")))
    assert word in problem.message and "not allowed" in problem.message
    assert (problem.location.line, problem.location.column) == (13, 20)
    assert problem.path == ("stages", "s", "learning_rate")


def test_nan_in_a_dataset_is_refused(problems_of):
    problem = only(problems_of("name: t\ndatasets:\n  d: {type: sklearn_digits, scale: .nan}\nstages:\n"
                               "  m: {type: load, builder: 'm:f'}\n"))
    assert "NaN" in problem.message
    assert problem.location.line == 3


def test_huge_integer_from_a_dict_is_a_range_error():
    with pytest.raises(PipelineError) as info:
        load_pipeline({"name": "t", "stages": {"m": {"type": "load", "builder": "m:f"},
                                              "s": {"type": "fine_tune", "model": "m", "data": "d",
                                                    "learning_rate": 10 ** 5000}},
                       "datasets": {"d": {"type": "sklearn_digits"}}})
    assert "out of range" in only(info.value.problems).message


def test_out_of_range_value(problems_of):
    problem = only(problems_of(stage(*TRAIN, "epochs: -1")))
    assert problem.message == "must be greater than or equal to 0 in stage 's', got -1"
    assert problem.location.line == 13


def test_value_outside_a_choice_suggests_the_close_one(problems_of):
    problem = only(problems_of(stage("model: m", "method: int9", kind="quantize")))
    assert problem.message.startswith("expected one of 'qat', 'float32'")
    assert problem.message.endswith("got 'int9' (a string)")
    assert problem.hint == "did you mean 'int8'?"
    assert problem.location.line == 12


def test_model_level_rule_is_located_at_the_stage(problems_of):
    problem = only(problems_of(stage(*TRAIN, kind="prune")))
    assert problem.message == "give exactly one of 'schedule' or 'sparsity_m_by_n' in stage 's'"
    assert problem.location.line == 9


@pytest.mark.parametrize("name", ["a/b", "a;rm", "a.b", "1a", "a b", "$(x)", "../x", "a" * 200])
def test_bad_stage_names(problems_of, name):
    problem = only(problems_of(BASE + f"  '{name}': {{type: load, builder: 'm:f'}}\n"))
    assert problem.message.startswith("invalid stage name")
    assert "no path separators" in problem.message
    assert (problem.location.line, problem.location.column) == (9, 3)


def test_bad_dataset_and_param_names(problems_of):
    problems = problems_of("name: t\nparams:\n  'a.b': 1\ndatasets:\n  'd/e': {type: sklearn_digits}\nstages:\n"
                           "  m: {type: load, builder: 'm:f'}\n")
    assert [p.message.split(" name")[0] for p in problems] == ["invalid param", "invalid dataset"]
    assert lines(problems) == [3, 5]


def test_bad_pipeline_name(problems_of):
    problem = only(problems_of("name: my pipeline\nstages:\n  m: {type: load, builder: 'm:f'}\n"))
    assert problem.message.startswith("invalid pipeline name 'my pipeline'")
    assert (problem.location.line, problem.location.column) == (1, 7)


def test_missing_name(problems_of):
    problem = only(problems_of("version: 1\nstages:\n  m: {type: load, builder: 'm:f'}\n"))
    assert problem.message == "missing required top-level key 'name'"
    assert (problem.location.line, problem.location.column) == (1, 1)


def test_unknown_top_level_key(problems_of):
    problem = only(problems_of("name: t\nstages:\n  m: {type: load, builder: 'm:f'}\nparam:\n  x: 1\n"))
    assert problem.message == "unknown top-level key 'param'"
    assert problem.hint == "did you mean 'params'?"
    assert problem.location.line == 4


def test_unsupported_version(problems_of):
    problem = only(problems_of("version: 2\nname: t\nstages:\n  m: {type: load, builder: 'm:f'}\n"))
    assert "unsupported version 2" in problem.message
    assert (problem.location.line, problem.location.column) == (1, 10)


def test_seed_must_be_an_integer(problems_of):
    problem = only(problems_of("name: t\nseed: '7'\nstages:\n  m: {type: load, builder: 'm:f'}\n"))
    assert problem.message == "expected an integer, got '7' (a string)"
    assert problem.location.line == 2


def test_a_pipeline_needs_stages(problems_of):
    problem = only(problems_of("name: t\nstages: {}\n"))
    assert "at least one stage" in problem.message


def test_stage_that_is_not_a_mapping(problems_of):
    problem = only(problems_of(BASE + "  s: 5\n"))
    assert "expected a mapping" in problem.message
    assert problem.location.line == 9


def test_stages_that_are_a_list(problems_of):
    problem = only(problems_of("name: t\nstages:\n  - a\n"))
    assert problem.message == "expected a mapping, got a list"
    assert problem.location.line == 3


def test_all_problems_are_reported_at_once_sorted_by_line(problems_of):
    text = (BASE
            + "  a:\n    type: prnue\n"                                   # 9-10 unknown type
            + "  b:\n    type: fine_tune\n    model: mm\n    data: digits\n    epoch: 1\n"  # 11-15 ref, field
            + "  c:\n    type: fine_tune\n    model: m\n    data: digitz\n    epochs: true\n"  # 16-20
            + "  d:\n    type: fine_tune\n    model: d\n    data: digits\n"  # 21-24 self reference
            + "  e:\n    type: evaluate\n    models: [m, ${params.sparsty}]\n    data: digits\n")  # 25-28
    problems = problems_of(text)
    assert lines(problems) == [10, 13, 15, 19, 20, 23, 27]
    messages = "\n".join(p.message for p in problems)
    for expected in ("unknown stage type 'prnue'", "unknown stage 'mm'", "unknown field 'epoch'",
                     "unknown dataset 'digitz'", "expected an integer", "refers to itself",
                     "unknown param 'params.sparsty'"):
        assert expected in messages


def test_every_problem_points_at_the_offending_text(problems_of, write):
    text = (BASE + "  s:\n    type: fine_tune\n    model: m\n    data: digits\n"
            "    epochs: true\n    batch_size: 0\n    optimizer: adamm\n    early_stopping: {patience: -1}\n")
    path = write(text)
    source = path.read_text().splitlines()
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    offending = {"epochs": "true", "batch_size": "0", "optimizer": "adamm", "early_stopping": "-1"}
    assert len(info.value.problems) == 4
    for problem in info.value.problems:
        field = problem.path[2]
        line = source[problem.location.line - 1]
        assert line[problem.location.column - 1:].startswith(offending[field]), (problem.render(), line)


def test_render_has_file_line_column_and_hint(problems_of, write):
    path = write(stage(*TRAIN, "epoch: 3"))
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    text = info.value.render()
    assert f"{path}:13:5: error: unknown field 'epoch' in stage 's' (at stages.s.epoch)" in text
    assert "hint: did you mean 'epochs'?" in text
