"""A search stage's mistakes are refused before anything runs: exit status 2, located, with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli, write
from toy_search import PLUGINS, search_pipeline
from toy_search import RECIPE as TOY_RECIPE

SEARCH = search_pipeline(trials=4, drop=0.1, more="    sampler: tpe\n")


@pytest.mark.parametrize("old, new, line, expected", [
    ("      a: {low", "      aa: {low", 12, "names param 'aa', which recipe recipes/toy.yaml does not declare "
                                           "(did you mean 'a'?)"),
    ("b: {choices: [1, 2, 3]}", "b: {choices: []}", 13, "'choices' is empty"),
    ("a: {low: 0, high: 5}", "a: {low: 5, high: 5}", 12, "'low' (5) must be below 'high' (5)"),
    ("metric: gzip_size", "metric: gzip_sise", 16, "did you mean 'gzip_size'?"),
    ("max_accuracy_drop: 0.1", "max_acuracy_drop: 0.1", 17, "did you mean 'max_accuracy_drop'?"),
    ("    trials: 4\n", "", 7, "a search needs a budget: set 'trials'"),
    ("sampler: tpe", "sampler: tpee", 19, "did you mean 'tpe'?"),
    ("inputs: {model: base}", "inputs: {model: bsae}", 10, "names an unknown stage 'bsae'"),
    ("inputs: {model: base}", "inputs: {modle: base}", 10, "unknown recipe input 'modle' (did you mean 'model'?)"),
])
def test_search_mistakes_exit_2_located(tmp_path, old, new, line, expected):
    write(tmp_path / "recipes" / "toy.yaml", TOY_RECIPE)
    assert old in SEARCH
    pipeline = write(tmp_path / "search.yaml", SEARCH.replace(old, new))
    for command in ("validate", "run"):
        result = cli(command, pipeline, cwd=tmp_path, env=PLUGINS)
        assert result.code == 2, result.text
        assert "Traceback" not in result.text
        assert expected in result.text
        assert f"search.yaml:{line}:" in result.text, result.text


def test_the_example_is_valid(tmp_path):
    write(tmp_path / "recipes" / "toy.yaml", TOY_RECIPE)
    pipeline = write(tmp_path / "search.yaml", SEARCH)
    result = cli("validate", pipeline, cwd=tmp_path, env=PLUGINS)
    assert result.code == 0, result.text


def test_the_shipped_digits_search_is_valid_and_plans_its_trials(tmp_path):
    pipeline = Path(__file__).resolve().parents[2] / "pipelines" / "digits-search.yaml"
    result = cli("validate", pipeline, cwd=tmp_path)
    assert result.code == 0, result.text
    plan = cli("plan", pipeline, "--cache", tmp_path / "cache", cwd=tmp_path)
    assert plan.code == 0, plan.text
    assert "0 trials in the journal, 8 to run" in plan.out, plan.text


EARLY_STOP = SEARCH.replace("    sampler: tpe\n", """    sampler: tpe
    early_stop:
      after: plus
      metric: accuracy
      margin: 0.01
""")


@pytest.mark.parametrize("old, new, line, expected", [
    ("after: plus", "after: plsu", 21, "names recipe stage 'plsu', which recipe recipes/toy.yaml does not have "
                                       "(did you mean 'plus'?)"),
    ("after: plus", "after: scaled", 21, "'scaled', the recipe's output, which every trial measures anyway"),
    ("metric: accuracy", "metric: acuracy", 22, "did you mean 'accuracy'?"),
    ("metric: accuracy", "metric: latency_ms", 21, "has no max_latency_ms to check it against"),
    ("margin: 0.01", "margin: -1", 23, "greater than or equal to 0"),
    ("margin: 0.01", "margn: 0.01", 23, "did you mean 'margin'?"),
])
def test_early_stop_mistakes_exit_2_located(tmp_path, old, new, line, expected):
    write(tmp_path / "recipes" / "toy.yaml", TOY_RECIPE)
    assert old in EARLY_STOP
    pipeline = write(tmp_path / "search.yaml", EARLY_STOP.replace(old, new))
    for command in ("validate", "run"):
        result = cli(command, pipeline, cwd=tmp_path, env=PLUGINS)
        assert result.code == 2, result.text
        assert "Traceback" not in result.text
        assert expected in result.text
        assert f"search.yaml:{line}:" in result.text, result.text


def test_the_early_stop_example_is_valid(tmp_path):
    write(tmp_path / "recipes" / "toy.yaml", TOY_RECIPE)
    pipeline = write(tmp_path / "search.yaml", EARLY_STOP)
    result = cli("validate", pipeline, cwd=tmp_path, env=PLUGINS)
    assert result.code == 0, result.text
