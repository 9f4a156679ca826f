"""`include:` of params, datasets and templates from other files; `extends:` of templates."""

from __future__ import annotations

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import Location, PipelineError
from dsl_helpers import dedent, only


@pytest.fixture
def project(tmp_path):
    """``project({"path": text, ...})`` writes files under tmp_path; returns tmp_path."""

    def _write(files: dict[str, str]):
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dedent(text))
        return tmp_path

    return _write


def problems(path, **kwargs):
    with pytest.raises(PipelineError) as info:
        load_pipeline(path, **kwargs)
    return info.value.problems


RECIPE = """
    params:
      sparsity: 0.75
    datasets:
      digits: {type: sklearn_digits, validation_fraction: 0.25}
    templates:
      tune:
        type: fine_tune
        data: digits
        epochs: 4
        learning_rate: 0.01
      prune_it:
        extends: tune
        type: prune
        schedule: {type: constant, target_sparsity: '${params.sparsity}'}
"""


def test_include_brings_params_datasets_and_templates(project):
    root = project({"recipes/common.yaml": RECIPE, "pipe.yaml": """
        name: t
        include: [recipes/common.yaml]
        stages:
          base: {type: load, builder: 'm:f'}
          trained:
            extends: tune
            model: base
          pruned:
            extends: prune_it
            model: trained
            epochs: 2
    """})
    pipeline = load_pipeline(root / "pipe.yaml")
    assert pipeline.params == {"sparsity": 0.75}
    assert pipeline.datasets["digits"].validation_fraction == 0.25
    trained, pruned = pipeline.stages["trained"], pipeline.stages["pruned"]
    assert (trained.kind, trained.data, trained.epochs) == ("fine_tune", "digits", 4)
    assert (pruned.kind, pruned.epochs, pruned.schedule.target_sparsity) == ("prune", 2, 0.75)
    assert trained.learning_rate == pruned.learning_rate == 0.01
    assert pipeline.dependencies("pruned") == ["trained"]


def test_values_keep_the_location_of_the_file_they_were_written_in(project):
    root = project({"recipes/common.yaml": RECIPE, "pipe.yaml": """
        name: t
        include: [recipes/common.yaml]
        stages:
          base: {type: load, builder: 'm:f'}
          trained: {extends: tune, model: base}
    """})
    pipeline = load_pipeline(root / "pipe.yaml")
    recipe = str(root / "recipes" / "common.yaml")
    assert pipeline.location_of(("stages", "trained", "epochs")) == Location(recipe, 9, 13)
    assert pipeline.location_of(("stages", "trained", "model")).file.endswith("pipe.yaml")


def test_bad_value_from_a_template_is_reported_in_the_template_file(project):
    root = project({"recipes/common.yaml": RECIPE.replace("epochs: 4", "epochs: many"), "pipe.yaml": """
        name: t
        include: [recipes/common.yaml]
        stages:
          base: {type: load, builder: 'm:f'}
          trained: {extends: tune, model: base}
    """})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == "expected an integer in stage 'trained', got 'many' (a string)"
    assert problem.location.file.endswith("recipes/common.yaml")
    assert (problem.location.line, problem.location.column) == (9, 13)
    assert problem.path == ("stages", "trained", "epochs")


def test_templates_in_the_pipeline_file_itself(write):
    pipeline = load_pipeline(write("""
        name: t
        datasets: {d: {type: sklearn_digits}}
        templates:
          quick: {type: fine_tune, data: d, epochs: 1, metrics: [accuracy, mse]}
        stages:
          base: {type: load, builder: 'm:f'}
          a: {extends: quick, model: base, metrics: [mse]}
    """))
    assert pipeline.stages["a"].metrics == ["mse"]  # lists are replaced, not concatenated
    assert pipeline.stages["a"].epochs == 1


def test_mappings_merge_key_by_key(write):
    pipeline = load_pipeline(write("""
        name: t
        templates:
          cnn: {type: load, builder: 'm:f', args: {input_shape: [8, 8, 1], classes: 10}}
        stages:
          a: {extends: cnn, args: {classes: 3}}
    """))
    assert pipeline.stages["a"].args == {"input_shape": [8, 8, 1], "classes": 3}
    assert pipeline.location_of(("stages", "a", "args", "input_shape")).line == 3
    assert pipeline.location_of(("stages", "a", "args", "classes")).line == 5


def test_unknown_template_suggests_the_close_one(write):
    path = write("""
        name: t
        templates:
          quick: {type: load}
        stages:
          a: {extends: quik, builder: 'm:f'}
    """)
    problem = only(problems(path))
    assert problem.message == "unknown template 'quik'"
    assert problem.hint == "did you mean 'quick'?"
    assert (problem.location.line, problem.location.column) == (5, 16)


def test_extends_without_templates(write):
    problem = only(problems(write("name: t\nstages:\n  a: {extends: x, type: load, builder: 'm:f'}\n")))
    assert problem.hint == "define it under 'templates:'"


def test_template_cycle(write):
    path = write("""
        name: t
        templates:
          a: {extends: b}
          b: {extends: a}
        stages:
          s: {extends: a, type: load, builder: 'm:f'}
    """)
    problem = only(problems(path))
    assert problem.message == "templates extend each other in a cycle: a -> b -> a"
    assert problem.location.line == 4


def test_unknown_field_in_a_template_is_located_in_the_template(write):
    path = write("""
        name: t
        templates:
          quick: {type: load, bulder: 'm:f'}
        stages:
          s: {extends: quick, builder: 'm:g'}
    """)
    problem = only(problems(path))
    assert problem.message == "unknown field 'bulder' in stage 's'"
    assert problem.hint == "did you mean 'builder'?"
    assert problem.location.line == 3


def test_template_that_is_not_a_mapping(write):
    problem = only(problems(write("name: t\ntemplates:\n  q: 5\nstages:\n  s: {type: load, builder: 'm:f'}\n")))
    assert "template 'q' must be a mapping" in problem.message
    assert problem.location.line == 3


def test_include_cycle_names_both_files_and_lines(project):
    root = project({"a.yaml": "name: t\ninclude: [b.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n",
                    "b.yaml": "include: [c.yaml]\n", "c.yaml": "params: {x: 1}\ninclude: [b.yaml]\n"})
    problem = only(problems(root / "a.yaml"))
    assert problem.message.startswith("include cycle: ")
    assert problem.message.endswith(f"{root}/b.yaml -> {root}/c.yaml -> {root}/b.yaml")
    assert problem.location.file.endswith("c.yaml") and problem.location.line == 2
    assert f"b.yaml includes {root}/c.yaml at {root}/b.yaml:1:11" in problem.hint
    assert f"c.yaml includes {root}/b.yaml at {root}/c.yaml:2:11" in problem.hint


def test_including_the_pipeline_itself_is_a_cycle(project):
    root = project({"a.yaml": "name: t\ninclude: [a.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n"})
    problem = only(problems(root / "a.yaml"))
    assert problem.message.startswith("include cycle: ") and problem.location.line == 2


def test_conflicting_definitions_name_both_files_and_lines(project):
    root = project({"pipe.yaml": "name: t\ninclude: [one.yaml, two.yaml]\nparams: {x: 1}\n"
                                 "stages:\n  s: {type: load, builder: 'm:f'}\n",
                    "one.yaml": "params:\n  y: 2\n", "two.yaml": "params:\n  x: 3\n  y: 4\n"})
    found = problems(root / "pipe.yaml")
    messages = sorted(p.message for p in found)
    assert len(found) == 2
    assert messages[0].startswith("param 'x' is defined twice: at ") and "pipe.yaml:3:" in messages[0]
    assert "two.yaml:2:3" in messages[0]
    assert messages[1].startswith("param 'y' is defined twice: at ") and "one.yaml:2:3" in messages[1]
    assert "two.yaml:3:3" in messages[1]


def test_a_file_reached_twice_is_not_a_conflict(project):
    root = project({"pipe.yaml": "name: t\ninclude: [a.yaml, b.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n",
                    "a.yaml": "include: [common.yaml]\n", "b.yaml": "include: [common.yaml]\n",
                    "common.yaml": "params: {x: 1}\n"})
    assert load_pipeline(root / "pipe.yaml").params == {"x": 1}


def test_included_file_may_not_hold_stages(project):
    root = project({"pipe.yaml": "name: t\ninclude: [other.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n",
                    "other.yaml": "params: {x: 1}\nstages: {}\n"})
    problem = only(problems(root / "pipe.yaml"))
    assert "may only hold params, datasets, templates" in problem.message
    assert problem.location.file.endswith("other.yaml") and problem.location.line == 2


def test_missing_included_file(project):
    root = project({"pipe.yaml": "name: t\ninclude: [nope.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n"})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.message == f"file not found: {root / 'nope.yaml'}"
    assert (problem.location.file, problem.location.line) == (str(root / "pipe.yaml"), 2)


def test_syntax_error_in_an_included_file(project):
    root = project({"pipe.yaml": "name: t\ninclude: [bad.yaml]\nstages:\n  s: {type: load, builder: 'm:f'}\n",
                    "bad.yaml": "params:\n  x: [1\n"})
    problem = only(problems(root / "pipe.yaml"))
    assert problem.location.file == str(root / "bad.yaml")
    assert problem.location.line == 3


@pytest.mark.parametrize("entry", ["../outside.yaml", "/etc/hostname", "link.yaml"])
def test_includes_stay_inside_the_pipeline_folder(project, tmp_path, entry):
    (tmp_path / "outside.yaml").write_text("params: {x: 1}\n")
    root = project({"inner/pipe.yaml": f"name: t\ninclude: ['{entry}']\n"
                                       "stages:\n  s: {type: load, builder: 'm:f'}\n"})
    (root / "inner" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    problem = only(problems(root / "inner" / "pipe.yaml"))
    assert "is outside the pipeline's folder" in problem.message
    assert problem.location.line == 2


def test_outside_includes_can_be_allowed(project, tmp_path):
    (tmp_path / "outside.yaml").write_text("params: {x: 1}\n")
    root = project({"inner/pipe.yaml": "name: t\ninclude: ['../outside.yaml']\nstages:\n"
                                       "  s: {type: load, builder: 'm:f'}\n"})
    assert load_pipeline(root / "inner" / "pipe.yaml", allow_outside_paths=True).params == {"x": 1}


def test_overrides_apply_after_templates(project):
    root = project({"recipes/common.yaml": RECIPE, "pipe.yaml": """
        name: t
        include: [recipes/common.yaml]
        stages:
          base: {type: load, builder: 'm:f'}
          trained: {extends: tune, model: base}
    """})
    pipeline = load_pipeline(root / "pipe.yaml", overrides=["stages.trained.epochs=9"])
    assert pipeline.stages["trained"].epochs == 9


def test_schema_accepts_includes_templates_and_extends(project):
    jsonschema = pytest.importorskip("jsonschema")
    from compressflow.dsl import pipeline_json_schema
    from compressflow.dsl.yaml_source import parse_yaml

    validator = jsonschema.Draft202012Validator(pipeline_json_schema())
    document = parse_yaml(dedent("""
        name: t
        include: [recipes/common.yaml]
        templates:
          quick: {type: fine_tune, epochs: 1}
        stages:
          base: {type: load, builder: 'm:f'}
          a: {extends: quick, model: base, data: digits}
          b: {extends: quick, type: fine_tune, model: base, data: digits}
    """), "x.yaml").value
    assert list(validator.iter_errors(document)) == []
    document["stages"]["c"] = {"type": "fine_tune"}  # no extends: required fields are required
    assert not validator.is_valid(document)
