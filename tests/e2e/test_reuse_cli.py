"""Sweeps, sub-pipelines and select through the real CLI, with toy stages (no TensorFlow)."""

from __future__ import annotations

import json
import re

import pytest

from helpers import cli, runs, write

PLUGINS = {"COMPRESSFLOW_PLUGINS": "toy_stages,toy_metrics"}

SWEEP = """
version: 1
name: sweep
stages:
  one: {type: toy_number, value: 1}
  scaled:
    type: toy_scale
    model: one
    matrix: {factor: [2, 4, 8]}
  shifted: {type: toy_sum, inputs: [scaled], add: 0}
  halved:
    type: toy_scale
    model: scaled
    factor: 0.5
  measured: {type: toy_measure, models: [one, scaled], baseline: one}
  best:
    type: select
    candidates: [scaled]
    evaluation: measured
    metric: gzip_size
    max_accuracy_drop: 0.05
"""

VARIANTS = ["scaled[factor=2]", "scaled[factor=4]", "scaled[factor=8]"]
HALVED = ["halved[factor=2]", "halved[factor=4]", "halved[factor=8]"]


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    return write(tmp_path / "sweep.yaml", SWEEP), log


def plan_json(path, *args) -> dict:
    result = cli("plan", path, "--json", *args, env=PLUGINS)
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_plan_shows_every_variant_with_its_own_key(sweep):
    path, _ = sweep
    plan = plan_json(path)
    assert list(plan) == ["one", *VARIANTS, "shifted", *HALVED, "measured", "best"]
    keys = [plan[name]["key"] for name in VARIANTS + HALVED]
    assert len(set(keys)) == len(keys)
    text = cli("plan", path, env=PLUGINS).out
    assert all(re.search(rf"^{re.escape(name)}\s+run \(new\)", text, re.M) for name in VARIANTS + HALVED)


def test_changing_one_sweep_value_reruns_only_that_variant_and_what_depends_on_it(sweep):
    path, log = sweep
    assert cli("run", path, env=PLUGINS).code == 0
    assert sorted(runs(log)) == sorted(["one", *VARIANTS, "shifted", *HALVED])  # the toy stages log runs
    log.unlink()
    path.write_text(path.read_text().replace("[2, 4, 8]", "[2, 4, 16]"))
    plan = plan_json(path)
    assert {name for name, item in plan.items() if item["action"] == "run"} == {
        "scaled[factor=16]", "halved[factor=16]", "shifted", "measured", "best"}
    result = cli("run", path, env=PLUGINS)
    assert result.code == 0, result.text
    assert sorted(runs(log)) == sorted(["scaled[factor=16]", "halved[factor=16]", "shifted"])


def test_only_selects_the_variants_of_a_swept_stage(sweep):
    path, log = sweep
    assert cli("run", path, "--until", "one", env=PLUGINS).code == 0
    log.unlink()
    result = cli("run", path, "--only", "scaled[*]", env=PLUGINS)
    assert result.code == 0, result.text
    assert sorted(runs(log)) == VARIANTS
    log.unlink()
    assert cli("run", path, "--only", "halved", env=PLUGINS).code == 0  # a swept stage's own name
    assert sorted(runs(log)) == HALVED


def test_jobs_run_variants_in_parallel_worker_processes(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    path = write(tmp_path / "wide.yaml", """
        version: 1
        name: wide
        stages:
          number: {type: toy_number, sleep: 0.3, matrix: {value: [1, 2, 3, 4]}}
          total: {type: toy_sum, inputs: [number]}
    """)
    result = cli("run", path, "--jobs", "2", env=PLUGINS)
    assert result.code == 0, result.text
    variants = [line.split() for line in log.read_text().splitlines() if line.startswith("number[")]
    assert sorted(name for name, _ in variants) == [f"number[value={v}]" for v in (1, 2, 3, 4)]
    assert len({pid for _, pid in variants}) == 2, "two workers should have shared the four variants"


def test_select_copies_the_best_candidate_and_prints_the_table(sweep, tmp_path):
    path, _ = sweep
    result = cli("run", path, "--cache", tmp_path / "cache", env=PLUGINS)
    assert result.code == 0, result.text
    table = result.out[result.out.index("best:"):]
    for name in VARIANTS:
        assert name in table
    assert re.search(r"scaled\[factor=4\] \*\s.*\byes\b", table)
    assert re.search(r"scaled\[factor=8\]\s.*\bno\s+accuracy 7\.00 pt below baseline \(max 5\)", table)
    plan = plan_json(path, "--cache", tmp_path / "cache")
    best = tmp_path / "cache" / "entries" / plan["best"]["key"][:2] / plan["best"]["key"]
    chosen = tmp_path / "cache" / "entries" / plan["scaled[factor=4]"]["key"][:2] / plan["scaled[factor=4]"]["key"]
    assert (best / "value.json").read_bytes() == (chosen / "value.json").read_bytes()
    selection = json.loads((best / "selection.json").read_text())
    assert selection["selected"] == "scaled[factor=4]"
    assert [(c["name"], c["passed"]) for c in selection["candidates"]] == [
        ("scaled[factor=2]", True), ("scaled[factor=4]", True), ("scaled[factor=8]", False)]
    assert json.loads((best / "artifact.json").read_text())["selected"] == "scaled[factor=4]"


def test_select_with_no_passing_candidate_fails_with_the_table(sweep):
    path, _ = sweep
    path.write_text(path.read_text().replace("max_accuracy_drop: 0.05", "max_accuracy_drop: 0.001"))
    result = cli("run", path, env=PLUGINS)
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert "no candidate passed the constraints" in " ".join(result.text.split())  # wrapped to the width
    for name in VARIANTS:
        assert re.search(rf"{re.escape(name)}\s.*\bno\s+accuracy", result.text), result.text


def test_select_is_checked_against_its_evaluation_when_loading(sweep):
    path, _ = sweep
    path.write_text(path.read_text().replace("models: [one, scaled]", "models: [one]"))
    result = cli("validate", path, env=PLUGINS)
    assert result.code == 2
    assert re.search(rf"{re.escape(str(path))}:17:\d+: error: candidates of stage 'best' that stage 'measured' "
                     r"does not measure: scaled\[factor=2\]", result.err), result.err


# --------------------------------------------------------------------------- sub-pipelines


RECIPE = """
inputs: [model]
output: doubled
params:
  factor: 3
stages:
  scaled: {type: toy_scale, model: model, factor: "${params.factor}"}
  doubled: {type: toy_scale, model: scaled, factor: 2}
"""


def project_pipeline(name: str, recipe_stage: str, extra: str = "") -> str:
    return f"""
version: 1
name: {name}
stages:
  base: {{type: toy_number, value: 5}}
  {recipe_stage}:
    type: pipeline
    path: recipes/times.yaml
    params: {{factor: 4}}
    inputs: {{model: base}}
  total: {{type: toy_sum, inputs: [{recipe_stage}]{extra}}}
"""


def test_a_recipe_shared_by_two_pipelines_shares_their_cache(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    write(tmp_path / "recipes" / "times.yaml", RECIPE)
    first = write(tmp_path / "first.yaml", project_pipeline("first", "times"))
    second = write(tmp_path / "second.yaml", project_pipeline("second", "scale_it", ", add: 1"))
    text = cli("plan", first, env=PLUGINS).out
    assert re.findall(r"^(\S+)\s+run", text, re.M) == ["base", "times.scaled", "times.doubled", "total"]
    assert cli("run", first, env=PLUGINS).code == 0
    log.unlink()
    plan = plan_json(second)
    assert {name: item["action"] for name, item in plan.items()} == {
        "base": "cached", "scale_it.scaled": "cached", "scale_it.doubled": "cached", "total": "run"}
    result = cli("run", second, env=PLUGINS)
    assert result.code == 0, result.text
    assert runs(log) == ["total"]
    log.unlink()
    assert cli("run", second, "--force", "scale_it.*", env=PLUGINS).code == 0
    assert sorted(runs(log)) == ["scale_it.doubled", "scale_it.scaled"]


# --------------------------------------------------------------------------- errors


ERRORS = {
    # name: (files, line of the first problem in the main file or None, text expected)
    "include_cycle": ({"a.yaml": "include: [b.yaml]\n", "b.yaml": "include: [a.yaml]\n",
                       "main.yaml": "name: m\ninclude: [a.yaml]\nstages:\n  one: {type: toy_number, value: 1}\n"},
                      None, "include cycle: a.yaml -> b.yaml -> a.yaml"),
    "unknown_template": ({"main.yaml": "name: m\ntemplates:\n  num: {type: toy_number}\nstages:\n"
                                       "  one: {extends: nmu, value: 1}\n"}, 5, "did you mean 'num'"),
    "matrix_on_missing_field": ({"main.yaml": "name: m\nstages:\n  one:\n    type: toy_number\n"
                                              "    matrix: {valeu: [1, 2]}\n"}, 5, "did you mean 'value'"),
    "unknown_recipe_param": ({"recipes/times.yaml": RECIPE,
                              "main.yaml": project_pipeline("m", "times").replace("{factor: 4}", "{fatcor: 4}")},
                             8, "unknown recipe param 'fatcor'"),
    "recipe_input_not_bound": ({"recipes/times.yaml": RECIPE,
                                "main.yaml": project_pipeline("m", "times").replace("inputs: {model: base}",
                                                                                    "inputs: {}")},
                               9, "recipe input 'model' is not bound"),
    "recipe_cycle": ({"recipes/times.yaml": RECIPE.replace("stages:", "stages:\n  again: {type: pipeline, "
                                                                      "path: times.yaml, inputs: {model: model}}"),
                      "main.yaml": project_pipeline("m", "times")}, None,
                     "recipe cycle: recipes/times.yaml -> recipes/times.yaml"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_reuse_errors_exit_2_with_a_located_message(tmp_path, case):
    files, line, expected = ERRORS[case]
    for name, text in files.items():
        write(tmp_path / name, text)
    for command in ("validate", "run"):
        result = cli(command, "main.yaml", cwd=tmp_path, env=PLUGINS)
        assert result.code == 2, (command, result.text)
        assert "Traceback" not in result.text
        located = re.findall(r"^([\w/.]+\.yaml):(\d+):(\d+): error", result.err, re.M)
        assert located, result.err
        if line is not None:
            assert (located[0][0], int(located[0][1])) == ("main.yaml", line), result.err
        assert expected in result.err


def test_a_bad_override_of_a_sweep_exits_2(sweep):
    path, _ = sweep
    result = cli("plan", path, "--set", "stages.scaled.matrix.factr=[1]", env=PLUGINS)
    assert result.code == 2 and "Traceback" not in result.text
    assert "<--set stages.scaled.matrix.factr>:1:1: error: matrix on a missing field" in result.err
    assert "did you mean 'factor'" in result.err
    result = cli("plan", path, "--set", "stages.scaeld.factor=1", env=PLUGINS)
    assert result.code == 2 and "did you mean 'scaled'" in result.err

