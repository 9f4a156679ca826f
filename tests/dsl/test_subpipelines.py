"""Sub-pipelines: `type: pipeline` stages bring in a recipe's stages, namespaced, with params and inputs."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import PipelineError
from dsl_helpers import dedent, only


@pytest.fixture
def project(tmp_path, monkeypatch):
    """``project({"path": text, ...})`` writes files under tmp_path (the working folder); returns it."""
    monkeypatch.chdir(tmp_path)

    def _write(files: dict[str, str]):
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dedent(text))
        return tmp_path

    return _write


def problems(path, **kwargs):
    with pytest.raises(PipelineError) as info:
        load_pipeline(path.relative_to(path.cwd()), **kwargs)
    return info.value.problems


RECIPE = dedent("""
    inputs: [model]
    output: int8
    params:
      sparsity: 0.8
    datasets:
      digits: {type: sklearn_digits, validation_fraction: 0.25}
    stages:
      prune:
        type: prune
        model: model
        data: digits
        schedule: {type: constant, target_sparsity: '${params.sparsity}'}
      int8: {type: quantize, model: prune, method: int8, data: digits}
""")

USER = dedent("""
    name: user
    stages:
      trained: {type: load, builder: 'm:f'}
      int8_recipe:
        type: pipeline
        path: recipes/int8.yaml
        params: {sparsity: 0.9}
        inputs: {model: trained}
      release: {type: export, model: int8_recipe, to: out/m.tflite}
""")


def test_recipe_stages_are_namespaced_bound_and_aliased(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert list(pipeline.stages) == ["trained", "int8_recipe.prune", "int8_recipe.int8", "release"]
    assert pipeline.stages["int8_recipe.prune"].model == "trained"
    assert pipeline.stages["int8_recipe.prune"].schedule.target_sparsity == 0.9
    assert pipeline.stages["int8_recipe.int8"].model == "int8_recipe.prune"
    assert pipeline.stages["release"].model == "int8_recipe.int8"
    assert pipeline.dependencies("release") == ["int8_recipe.int8"]


def test_recipe_datasets_are_defaults_the_pipeline_can_replace(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER})
    assert load_pipeline(root / "pipe.yaml").datasets["digits"].validation_fraction == 0.25
    (root / "own.yaml").write_text(dedent(USER).replace(
        "stages:", "datasets:\n  digits: {type: sklearn_digits, validation_fraction: 0.1}\nstages:", 1))
    assert load_pipeline(root / "own.yaml").datasets["digits"].validation_fraction == 0.1


def test_datasets_mapping_renames_what_the_recipe_reads(project):
    root = project({"recipes/int8.yaml": RECIPE.replace("    datasets:\n      digits: {type: sklearn_digits, "
                                                        "validation_fraction: 0.25}\n", ""),
                    "pipe.yaml": USER.replace("stages:", "datasets:\n  mine: {type: sklearn_digits}\nstages:", 1)
                    .replace("inputs: {model: trained}", "inputs: {model: trained}\n    datasets: {digits: mine}")})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert pipeline.stages["int8_recipe.prune"].data == pipeline.stages["int8_recipe.int8"].data == "mine"
    assert list(pipeline.datasets) == ["mine"]


def test_two_recipes_defining_one_dataset_differently_conflict(project):
    other = RECIPE.replace("validation_fraction: 0.25", "validation_fraction: 0.5")
    root = project({"recipes/int8.yaml": RECIPE, "recipes/other.yaml": other, "pipe.yaml": USER +
                    "  second: {type: pipeline, path: recipes/other.yaml, inputs: {model: trained}}\n"})
    problem = only(problems(root / "pipe.yaml"))
    assert "dataset 'digits' is defined differently by two recipes" in problem.message
    assert "recipes/int8.yaml:6:3" in problem.message and problem.location.file.endswith("recipes/other.yaml")


def test_errors_in_a_recipe_point_into_the_recipe(project):
    root = project({"recipes/int8.yaml": RECIPE.replace("method: int8", "method: int9"), "pipe.yaml": USER})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.location.file.endswith("recipes/int8.yaml") and problem.location.line == 13
    assert problem.hint == "did you mean 'int8'?"


def test_a_bad_param_value_points_to_where_the_pipeline_gave_it(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER.replace("sparsity: 0.9", "sparsity: 1.5")})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.location.file.endswith("recipes/int8.yaml") and problem.location.line == 12
    assert "params.sparsity (pipe.yaml:7:" in problem.hint


def test_unknown_recipe_param_is_located_in_the_pipeline_with_a_suggestion(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER.replace("sparsity: 0.9", "sparsty: 0.9")})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == "unknown recipe param 'sparsty': recipes/int8.yaml declares no such param"
    assert problem.hint == "did you mean 'sparsity'?"
    assert (problem.location.file.endswith("pipe.yaml"), problem.location.line) == (True, 7)


def test_an_unbound_input_names_the_recipe_line_that_declares_it(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER.replace("inputs: {model: trained}", "")})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == "recipe input 'model' is not bound: add it to 'inputs' of stage 'int8_recipe'"
    assert "recipes/int8.yaml:1:10" in problem.hint
    assert problem.location.line == 4


def test_unknown_input_and_unknown_binding_target(project):
    root = project({"recipes/int8.yaml": RECIPE,
                    "pipe.yaml": USER.replace("{model: trained}", "{model: trainde, modle: trained}")})
    found = problems(root / "pipe.yaml")
    assert [p.message for p in found] == [
        "input 'model' of stage 'int8_recipe' is bound to an unknown stage 'trainde'",
        "unknown recipe input 'modle': recipes/int8.yaml declares no such input"]
    assert [p.hint for p in found] == ["did you mean 'trained'?", "did you mean 'model'?"]


def test_a_recipe_stage_naming_an_unknown_stage(project):
    root = project({"recipes/int8.yaml": RECIPE.replace("model: prune,", "model: prun,"), "pipe.yaml": USER})
    problem = only(problems(root / "pipe.yaml"))
    assert "'model' of stage 'int8' in recipe recipes/int8.yaml names an unknown stage 'prun'" == problem.message
    assert problem.hint == "did you mean 'prune'?"


def test_recipe_cycle_names_both_files_and_lines(project):
    root = project({
        "recipes/a.yaml": "inputs: [model]\nstages:\n  b: {type: pipeline, path: b.yaml, inputs: {model: model}}\n",
        "recipes/b.yaml": "inputs: [model]\nstages:\n  a: {type: pipeline, path: a.yaml, inputs: {model: model}}\n",
        "pipe.yaml": "name: p\nstages:\n  m: {type: load, builder: 'm:f'}\n"
                     "  r: {type: pipeline, path: recipes/a.yaml, inputs: {model: m}}\n"})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == "recipe cycle: recipes/a.yaml -> recipes/b.yaml -> recipes/a.yaml"
    assert problem.location.file == "recipes/b.yaml" and problem.location.line == 3
    assert "recipes/a.yaml uses recipes/b.yaml at recipes/a.yaml:3:" in problem.hint


def test_nested_recipes_get_nested_names(project):
    root = project({
        "recipes/outer.yaml": """
            inputs: [model]
            output: inner
            stages:
              tuned: {type: fine_tune, model: model, data: digits}
              inner: {type: pipeline, path: int8.yaml, inputs: {model: tuned}}
        """,
        "recipes/int8.yaml": RECIPE,
        "pipe.yaml": USER.replace("recipes/int8.yaml", "recipes/outer.yaml").replace("params: {sparsity: 0.9}", "")})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert list(pipeline.stages) == ["trained", "int8_recipe.tuned", "int8_recipe.inner.prune",
                                     "int8_recipe.inner.int8", "release"]
    assert pipeline.stages["int8_recipe.inner.prune"].model == "int8_recipe.tuned"
    assert pipeline.stages["release"].model == "int8_recipe.inner.int8"


def test_a_swept_input_fans_the_recipe_out_and_a_recipe_may_sweep(project):
    root = project({"recipes/int8.yaml": RECIPE.replace(
        "method: int8, data: digits}", "method: int8, data: digits, matrix: {method: [int8, dynamic]}}"),
        "pipe.yaml": USER.replace("trained: {type: load, builder: 'm:f'}",
                                  "trained: {type: load, builder: 'm:f', matrix: {trust: [true, false]}}")
        .replace("release: {type: export, model: int8_recipe, to: out/m.tflite}",
                 "check: {type: evaluate, models: [int8_recipe], data: digits}")})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert [n for n in pipeline.stages if n.startswith("int8_recipe.int8")] == [
        f"int8_recipe.int8[trust={t},method={m}]" for t in ("true", "false") for m in ("int8", "dynamic")]
    assert pipeline.stages["check"].models == [n for n in pipeline.stages if n.startswith("int8_recipe.int8")]


def test_a_reference_to_a_recipe_without_output(project):
    root = project({"recipes/int8.yaml": RECIPE.replace("output: int8\n", ""), "pipe.yaml": USER})
    problem = only(problems(root / "pipe.yaml"))
    assert "names the sub-pipeline 'int8_recipe', whose recipe declares no 'output'" in problem.message
    assert "int8_recipe.prune" in problem.hint


def test_after_on_the_pipeline_stage_orders_every_recipe_stage(project):
    root = project({"recipes/int8.yaml": RECIPE, "pipe.yaml": USER.replace(
        "inputs: {model: trained}", "inputs: {model: trained}\n    after: [first]").replace(
        "stages:", "stages:\n  first: {type: load, builder: 'm:f'}", 1)})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert pipeline.stages["int8_recipe.prune"].after == pipeline.stages["int8_recipe.int8"].after == ["first"]


def test_recipe_outside_the_pipeline_folder_is_refused(project):
    root = project({"recipes/int8.yaml": RECIPE, "inner/pipe.yaml": USER.replace("recipes/", "../recipes/")})
    problem = only(problems(root / "inner" / "pipe.yaml"))
    assert "recipe '../recipes/int8.yaml' is outside the pipeline's folder" in problem.message
    assert len(load_pipeline(root / "inner" / "pipe.yaml", allow_outside_paths=True).stages) == 4


def test_a_recipe_is_not_a_pipeline_to_run_on_its_own(project):
    root = project({"recipes/int8.yaml": "name: r\n" + dedent(RECIPE)})
    found = problems(root / "recipes" / "int8.yaml")
    assert any("this file is a recipe" in p.message for p in found)


def test_unknown_fields_of_the_pipeline_stage_and_of_the_recipe(project):
    root = project({"recipes/int8.yaml": RECIPE + "outptu: x\n",
                    "pipe.yaml": USER.replace("params:", "parms:")})
    found = problems(root / "pipe.yaml")
    assert [(p.message, p.hint) for p in found] == [
        ("unknown field 'parms' in stage 'int8_recipe'", "did you mean 'params'?")]
    root = project({"pipe.yaml": USER})
    found = problems(root / "pipe.yaml")
    assert [p.message for p in found] == ["unknown top-level key 'outptu' in a recipe"]
    assert found[0].hint == "did you mean 'output'?"


def test_a_missing_recipe_file_is_reported_where_it_is_used(project):
    root = project({"pipe.yaml": USER})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == "file not found: recipes/int8.yaml"
    assert problem.location.line == 6 and problem.path == ("stages", "int8_recipe", "path")


def test_independent_problems_in_a_recipe_are_all_reported(project):
    root = project({"recipes/int8.yaml": RECIPE.replace("data: digits\n", "data: digits\n    epochz: 2\n", 1)
                    .replace("method: int8", "method: int9").replace("output: int8", "output: int7"),
                    "pipe.yaml": USER.replace("sparsity: 0.9", "sparsty: 0.9")})
    found = problems(root / "pipe.yaml")
    assert [(p.location.file, p.message.split(":")[0].split(" in ")[0]) for p in found] == [
        ("pipe.yaml", "unknown recipe param 'sparsty'"),
        ("recipes/int8.yaml", "'output' of recipe recipes/int8.yaml names an unknown stage 'int7'"),
        ("recipes/int8.yaml", "unknown field 'epochz'"),
        ("recipes/int8.yaml", "expected one of 'qat', 'float32', 'dynamic', 'float16', 'int8', 'int16x8', 'litert'")]


def test_names_in_a_recipe_stages_gates_are_namespaced_too(project):
    recipe = RECIPE + ("  float: {type: quantize, model: model, method: float32}\n"
                       "  check:\n"
                       "    type: evaluate\n"
                       "    models: [float, int8]\n"
                       "    baseline: float\n"
                       "    data: digits\n"
                       "    require: {max_accuracy_drop: 0.01, models: [int8]}\n")
    root = project({"recipes/int8.yaml": recipe, "pipe.yaml": USER})
    pipeline = load_pipeline(root / "pipe.yaml")
    check = pipeline.stages["int8_recipe.check"]
    assert check.models == ["int8_recipe.float", "int8_recipe.int8"]
    assert check.require.models == ["int8_recipe.int8"]
