"""Sweeps: a stage's `matrix:` expands it into variants; references fan out or collect them."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from compressflow.dsl.names import base_name, format_value, local_name
from compressflow.executor.plan import seed_name_of
from dsl_helpers import only

HEAD = """\
version: 1
name: sweep
datasets:
  digits: {type: sklearn_digits}
stages:
  trained: {type: load, builder: 'm:f'}
"""

PRUNED = """\
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: polynomial_decay, initial_sparsity: 0.5, final_sparsity: 0.6}
    matrix:
      schedule.final_sparsity: [0.7, 0.8, 0.9]
"""

VARIANTS = ["pruned[final_sparsity=0.7]", "pruned[final_sparsity=0.8]", "pruned[final_sparsity=0.9]"]


def load(write, text: str, **kwargs):
    return load_pipeline(write(HEAD + text), **kwargs)


def test_matrix_expands_a_stage_into_named_variants_in_order(write):
    pipeline = load(write, PRUNED)
    assert list(pipeline.stages) == ["trained", *VARIANTS]
    assert [s.schedule.final_sparsity for s in list(pipeline.stages.values())[1:]] == [0.7, 0.8, 0.9]
    assert all(s.schedule.initial_sparsity == 0.5 and s.model == "trained" for s in list(pipeline.stages.values())[1:])


def test_swept_values_keep_the_location_of_their_matrix_item(write):
    pipeline = load(write, PRUNED)
    location = pipeline.location_of(("stages", "pruned[final_sparsity=0.8]", "schedule", "final_sparsity"))
    assert (location.line, location.column) == (13, 38)
    assert pipeline.location_of(("stages", "pruned[final_sparsity=0.8]", "model")).line == 9


def test_a_bad_swept_value_is_reported_at_its_item(problems_of):
    problem = only(problems_of(HEAD + PRUNED.replace("[0.7, 0.8, 0.9]", "[0.7, 1.5]")))
    assert (problem.location.line, problem.location.column) == (13, 38)
    assert "pruned[final_sparsity=1.5]" in problem.path


def test_single_reference_fans_out_and_the_variant_carries_all_labels(write):
    pipeline = load(write, PRUNED + """\
  int8:
    type: quantize
    model: pruned
    data: digits
    matrix: {method: [int8, dynamic]}
""")
    quantized = [name for name in pipeline.stages if name.startswith("int8")]
    assert quantized == [f"int8[final_sparsity={s},method={m}]" for s in (0.7, 0.8, 0.9) for m in ("int8", "dynamic")]
    stage = pipeline.stages["int8[final_sparsity=0.8,method=dynamic]"]
    assert (stage.model, stage.method) == ("pruned[final_sparsity=0.8]", "dynamic")
    assert pipeline.dependencies("int8[final_sparsity=0.8,method=dynamic]") == ["pruned[final_sparsity=0.8]"]


def test_list_reference_collects_every_variant_in_order(write):
    pipeline = load(write, PRUNED + """\
  check:
    type: evaluate
    models: [trained, pruned]
    baseline: trained
    data: digits
""")
    assert pipeline.stages["check"].models == ["trained", *VARIANTS]
    assert "check" in pipeline.stages  # a stage that only collects is not swept itself


def test_a_reference_may_name_one_variant_exactly(write):
    pipeline = load(write, PRUNED + "  one: {type: quantize, model: 'pruned[final_sparsity=0.8]', method: dynamic}\n")
    assert pipeline.stages["one"].model == "pruned[final_sparsity=0.8]"


def test_a_misspelt_variant_is_an_unknown_stage_with_a_suggestion(problems_of):
    problem = only(problems_of(HEAD + PRUNED + "  one: {type: quantize, model: 'pruned[final_sparsity=0.75]', "
                                              "method: dynamic}\n"))
    assert "unknown stage 'pruned[final_sparsity=0.75]'" in problem.message
    assert problem.hint.startswith("did you mean 'pruned[final_sparsity=0.7")


def test_two_references_to_one_sweep_pair_up_instead_of_multiplying(write):
    pipeline = load(write, PRUNED + """\
  teacher: {type: fine_tune, model: pruned, data: digits}
  student: {type: fine_tune, model: pruned, data: digits}
  distilled: {type: distill, teacher: teacher, student: student, data: digits}
""")
    distilled = {name: s for name, s in pipeline.stages.items() if name.startswith("distilled")}
    assert list(distilled) == [f"distilled[final_sparsity={s}]" for s in (0.7, 0.8, 0.9)]
    stage = distilled["distilled[final_sparsity=0.9]"]
    assert (stage.teacher, stage.student) == ("teacher[final_sparsity=0.9]", "student[final_sparsity=0.9]")


def test_a_fanned_out_stage_collects_only_the_variants_that_agree(write):
    pipeline = load(write, PRUNED + """\
  int8: {type: quantize, model: pruned, data: digits, matrix: {method: [int8, dynamic]}}
  check: {type: evaluate, models: [pruned, int8], baseline: pruned, data: digits}
""")
    check = pipeline.stages["check[final_sparsity=0.7]"]
    assert check.baseline == "pruned[final_sparsity=0.7]"
    assert check.models == ["pruned[final_sparsity=0.7]", "int8[final_sparsity=0.7,method=int8]",
                            "int8[final_sparsity=0.7,method=dynamic]"]


def test_a_label_swept_twice_is_qualified_by_its_stage(write):
    pipeline = load(write, """\
  tuned: {type: fine_tune, model: trained, data: digits, matrix: {epochs: [1, 2]}}
  again: {type: fine_tune, model: tuned, data: digits, matrix: {epochs: [3]}}
""")
    assert [n for n in pipeline.stages if n.startswith("again")] == [
        "again[tuned.epochs=1,again.epochs=3]", "again[tuned.epochs=2,again.epochs=3]"]


def test_several_keys_make_the_product_first_key_slowest(write):
    pipeline = load(write, "  tuned: {type: fine_tune, model: trained, data: digits, "
                           "matrix: {epochs: [1, 2], learning_rate: [0.01, 1e-05]}}\n")
    assert list(pipeline.stages)[1:] == ["tuned[epochs=1,learning_rate=0.01]", "tuned[epochs=1,learning_rate=1e-05]",
                                         "tuned[epochs=2,learning_rate=0.01]", "tuned[epochs=2,learning_rate=1e-05]"]


def test_matrix_values_may_come_from_params_and_overrides(write):
    text = HEAD.replace("datasets:", "params:\n  sparsities: [0.5, 0.6]\ndatasets:") + \
        PRUNED.replace("[0.7, 0.8, 0.9]", "${params.sparsities}")
    path = write(text)
    assert list(load_pipeline(path).stages)[1:] == ["pruned[final_sparsity=0.5]", "pruned[final_sparsity=0.6]"]
    pipeline = load_pipeline(path, overrides=["params.sparsities=[0.95]"])
    assert list(pipeline.stages)[1:] == ["pruned[final_sparsity=0.95]"]
    pipeline = load_pipeline(path, overrides=["stages.pruned.matrix.epochs=[1, 2]"])
    assert list(pipeline.stages)[1:] == [f"pruned[final_sparsity={s},epochs={e}]" for s in (0.5, 0.6) for e in (1, 2)]


def test_matrix_on_a_missing_field_suggests_the_close_one(problems_of):
    problem = only(problems_of(HEAD + "  tuned: {type: fine_tune, model: trained, data: digits, "
                                      "matrix: {epoch: [1, 2]}}\n"))
    assert problem.message == "matrix on a missing field: stage 'tuned' (fine_tune) has no field 'epoch'"
    assert problem.hint == "did you mean 'epochs'?"
    assert (problem.location.line, problem.location.column) == (7, 67)


def test_matrix_on_a_missing_nested_field_follows_the_chosen_type(problems_of):
    problem = only(problems_of(HEAD + PRUNED.replace("schedule.final_sparsity", "schedule.target_sparsity")))
    assert "'schedule' of stage 'pruned' has no field 'target_sparsity'" in problem.message
    assert problem.hint == "did you mean 'initial_sparsity'?" or "final_sparsity" in problem.hint
    assert problem.location.line == 13


@pytest.mark.parametrize("matrix, message, line", [
    ("{epochs: []}", "must be a non-empty list", 7),
    ("{epochs: 3}", "must be a non-empty list", 7),
    ("{epochs: [1, 2, 1]}", "value 1 of 'epochs' is listed twice (items 1 and 3)", 7),
    ("[epochs]", "'matrix' maps field paths", 7),
    ("{type: [prune]}", "a sweep cannot change 'type'", 7),
    ("{'epochs.': [1]}", "is not a field path", 7),
])
def test_bad_matrices(problems_of, matrix, message, line):
    problem = only(problems_of(HEAD + "  tuned: {type: fine_tune, model: trained, data: digits, "
                                      f"matrix: {matrix}}}\n"))
    assert message in problem.message
    assert problem.location.line == line


def test_a_product_over_a_thousand_variants_is_refused(problems_of):
    values = ", ".join(str(i) for i in range(1, 41))
    problem = only(problems_of(HEAD + f"  tuned: {{type: fine_tune, model: trained, data: digits, "
                                      f"matrix: {{epochs: [{values}], batch_size: [{values}]}}}}\n"))
    assert "makes 1,600 variants; at most 1,000" in problem.message


def test_generated_names_cannot_be_written(problems_of):
    problem = only(problems_of(HEAD + "  'tuned[epochs=1]': {type: fine_tune, model: trained, data: digits}\n"))
    assert problem.message.startswith("invalid stage name 'tuned[epochs=1]'")
    assert "variants of a sweep" in problem.hint


def test_an_unknown_type_with_a_matrix_reports_the_type_once(problems_of):
    problem = only(problems_of(HEAD + "  tuned: {type: fine_tun, model: trained, matrix: {epochs: [1, 2]}}\n"))
    assert problem.message.startswith("unknown stage type 'fine_tun'")


def test_names_and_seeds_of_generated_stages():
    assert format_value(0.7) == "0.7" and format_value(1e-05) == "1e-05" and format_value(True) == "true"
    assert format_value([1, 4]) == "[1,4]" and format_value({"type": "constant"}) == "{type:constant}"
    name = "int8_recipe.prune[final_sparsity=0.7,path=a.b]"
    assert base_name(name) == "int8_recipe.prune" and local_name(name) == "prune"
    assert seed_name_of(name) == seed_name_of("prune") == "prune"
    assert seed_name_of("pruned[final_sparsity=0.7]") == "pruned"


def test_require_models_of_evaluate_may_name_a_swept_stage(write):
    pipeline = load(write, PRUNED + "  check: {type: evaluate, models: [trained, pruned], baseline: trained, "
                                    "data: digits, require: {models: [pruned], max_accuracy_drop: 0.01}}\n")
    assert pipeline.stages["check"].require.models == ["pruned"]


def test_an_export_fanned_out_over_a_sweep_is_refused(problems_of):
    problem = only(problems_of(HEAD + PRUNED + "  release: {type: export, model: pruned, to: out/m.keras}\n"))
    assert problem.message.startswith("3 export stages write 'out/m.keras' ('release[final_sparsity=0.7]', "
                                      "'release[final_sparsity=0.8]', 'release[final_sparsity=0.9]')")
    assert problem.location.line == 14
