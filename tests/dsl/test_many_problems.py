"""Thousands of mistakes are reported in bounded work and output; odd names are quoted, not echoed raw."""

from __future__ import annotations

import difflib

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import MAX_COMPARED, MAX_REPORTED, PipelineError
from helpers import cli

HEAD = "version: 1\nname: t\ndatasets:\n  digits: {type: sklearn_digits}\nstages:\n"
DANGLING = 10_000


def _many_dangling(path) -> None:
    stages = "".join(f"  stage{i:05d}: {{type: fine_tune, model: stagx{i:05d}, data: digits}}\n"
                     for i in range(DANGLING))
    path.write_text(HEAD + stages)


def test_suggestions_for_thousands_of_unknown_stages_compare_a_bounded_number_of_names(tmp_path, monkeypatch):
    _many_dangling(tmp_path / "p.yaml")
    bound = 4 * MAX_REPORTED * MAX_COMPARED  # a few checks suggest names; all pairs would be 10^8
    calls = 0
    ratio = difflib.SequenceMatcher.ratio

    def counted(self):
        nonlocal calls
        calls += 1
        if calls > bound:  # NOTE: fail at once rather than compare all 10,000 x 10,000 pairs
            raise AssertionError(f"more than {bound} name comparisons")
        return ratio(self)

    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", counted)
    with pytest.raises(PipelineError) as info:
        load_pipeline(tmp_path / "p.yaml")
    unknown = [p for p in info.value.problems if "names an unknown stage" in p.message]
    assert len(unknown) == DANGLING
    assert unknown[0].hint == "did you mean 'stage00000'?"
    assert 0 < calls <= bound


def test_a_report_of_thousands_of_problems_shows_the_first_and_counts_the_rest(tmp_path):
    _many_dangling(tmp_path / "p.yaml")
    result = cli("validate", "p.yaml", cwd=tmp_path)
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if ": error: " in line]
    assert len(lines) == MAX_REPORTED
    assert f"... and {DANGLING - MAX_REPORTED:,} more problems" in result.err
    assert f"{DANGLING} problems found; nothing was run." in result.err


def test_names_with_a_newline_are_quoted_in_messages(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + '  "a\\nb": {type: fine_tune, model: c, data: digits}\n'
                    '  c: {type: fine_tune, model: "x\\ny", data: digits}\n')
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    text = "\n".join(problem.render() for problem in info.value.problems)
    assert "invalid stage name 'a\\nb'" in text and "(at stages.'a\\nb')" in text
    assert "names an unknown stage 'x\\ny'" in text
    assert "x\ny" not in text and "a\nb" not in text
