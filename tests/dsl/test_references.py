"""Stage and dataset references: dangling names, self references and cycles."""

from __future__ import annotations

from compressflow.dsl import load_pipeline
from dsl_helpers import HEAD, lines, only

LOAD = "  base: {type: load, builder: 'm:f'}\n"  # line 8


def tune(name: str, model: str, data: str = "digits") -> str:
    return f"  {name}: {{type: fine_tune, model: {model}, data: {data}}}\n"


def test_dangling_stage_reference_suggests_the_close_one(problems_of):
    problem = only(problems_of(HEAD + LOAD + tune("trained", "bsae")))
    assert problem.message == "'model' of stage 'trained' names an unknown stage 'bsae'"
    assert problem.hint == "did you mean 'base'?"
    assert (problem.location.line, problem.location.column) == (9, 37)
    assert problem.path == ("stages", "trained", "model")


def test_dangling_reference_without_a_close_one_lists_the_stages(problems_of):
    problem = only(problems_of(HEAD + LOAD + tune("trained", "zzzz")))
    assert problem.hint == "known stages: base, trained"


def test_dangling_reference_inside_a_list_is_located_at_the_item(problems_of):
    text = HEAD + LOAD + tune("trained", "base") + "  check: {type: evaluate, models: [base, traned], data: digits}\n"
    problem = only(problems_of(text))
    assert problem.message == "'models' of stage 'check' names an unknown stage 'traned'"
    assert problem.hint == "did you mean 'trained'?"
    assert problem.path == ("stages", "check", "models", 1)
    assert (problem.location.line, problem.location.column) == (10, 42)


def test_dangling_after(problems_of):
    problem = only(problems_of(HEAD + LOAD + "  other: {type: load, builder: 'm:g', after: [bas]}\n"))
    assert "'after' of stage 'other' names an unknown stage 'bas'" == problem.message
    assert problem.hint == "did you mean 'base'?"


def test_unknown_dataset_suggests_the_close_one(problems_of):
    problem = only(problems_of(HEAD + LOAD + tune("trained", "base", data="digit")))
    assert problem.message == "'data' of stage 'trained' names an unknown dataset 'digit'"
    assert problem.hint == "did you mean 'digits'?"
    assert problem.location.line == 9


def test_dataset_reference_without_datasets(problems_of):
    text = "name: t\nstages:\n" + LOAD + tune("trained", "base")
    problem = only(problems_of(text))
    assert "unknown dataset 'digits'" in problem.message
    assert problem.hint == "there are no datasets; define them under 'datasets:'"


def test_a_stage_cannot_refer_to_itself(problems_of):
    problem = only(problems_of(HEAD + tune("loop", "loop")))
    assert problem.message == "stage 'loop' refers to itself in 'model'"
    assert problem.location.line == 8


def test_cycle_names_its_members_in_order(problems_of):
    text = HEAD + tune("a", "c") + tune("b", "a") + tune("c", "b")
    problem = only(problems_of(text))
    assert problem.message == "stages form a cycle: a -> b -> c -> a"
    assert problem.path == ("stages", "a", "model")
    assert (problem.location.line, problem.location.column) == (8, 31)  # `a`'s reference to `c`


def test_two_stage_cycle_through_after(problems_of):
    text = (HEAD + LOAD + "  x: {type: load, builder: 'm:f', after: [y]}\n"
            "  y: {type: load, builder: 'm:f', after: [x]}\n")
    problem = only(problems_of(text))
    assert problem.message == "stages form a cycle: x -> y -> x"
    assert problem.location.line == 9


def test_every_cycle_is_reported(problems_of):
    text = (HEAD + tune("a", "b") + tune("b", "a")
            + tune("c", "d") + tune("d", "c") + LOAD)
    problems = problems_of(text)
    assert sorted(p.message for p in problems) == ["stages form a cycle: a -> b -> a",
                                                   "stages form a cycle: c -> d -> c"]
    assert lines(problems) == [8, 10]


def test_references_of_a_stage_with_other_problems_are_still_checked(problems_of):
    text = HEAD + LOAD + "  t: {type: fine_tune, model: bsae, data: digits, epochs: true}\n"
    problems = problems_of(text)
    assert sorted(p.message.split(",")[0] for p in problems) == [
        "'model' of stage 't' names an unknown stage 'bsae'", "expected an integer in stage 't'"]


def test_references_through_params_are_checked(problems_of, write):
    text = "name: t\nparams:\n  source: base\n  nope: bsae\nstages:\n" + LOAD.replace("  base", "  base") + \
        "  t: {type: load, builder: 'm:f', after: ['${params.source}']}\n" \
        "  u: {type: load, builder: 'm:f', after: ['${params.nope}']}\n"
    problem = only(problems_of(text))
    assert "unknown stage 'bsae'" in problem.message
    assert problem.location.line == 8
    assert "params.nope" in problem.hint


def test_diamond_is_not_a_cycle(write):
    text = HEAD + LOAD + tune("left", "base") + tune("right", "base") + \
        "  join: {type: evaluate, models: [left, right], baseline: left, data: digits}\n"
    pipeline = load_pipeline(write(text))
    assert pipeline.dependencies("join") == ["left", "right"]
