"""Invalid pipelines and usage through the real CLI: exit 2, located message, no traceback."""

from __future__ import annotations

import re

import pytest

from helpers import cli, write

VALID_HEAD = "version: 1\nname: bad\nparams:\n  sparsity: 0.8\n"

CASES = {
    # name: (stages block, expected line, text expected in the message)
    "unknown_type": ("stages:\n  a:\n    type: toy_numbr\n    value: 1\n", 7, "did you mean 'toy_number'"),
    "unknown_field": ("stages:\n  a:\n    type: toy_number\n    value: 1\n    valeu: 2\n", 9, "did you mean 'value'"),
    "wrong_type": ("stages:\n  a:\n    type: toy_number\n    value: [1, 2]\n", 8, "value"),
    "dangling_reference": ("stages:\n  one:\n    type: toy_number\n    value: 1\n"
                           "  b:\n    type: toy_scale\n    model: onee\n", 11, "did you mean 'one'"),
    "cycle": ("stages:\n  a:\n    type: toy_scale\n    model: b\n  b:\n    type: toy_scale\n    model: a\n",
              None, "a -> b -> a"),
    "duplicate_key": ("stages:\n  a:\n    type: toy_number\n    value: 1\n    value: 2\n", 9, "duplicate"),
    "unknown_param": ("stages:\n  a:\n    type: toy_number\n    value: ${params.sparsty}\n", 8,
                      "did you mean 'sparsity'"),
    "syntax_error": ("stages:\n  a: [1, 2\n  b: 3\n", None, ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_pipeline_exits_2_with_location(tmp_path, case):
    body, line, expected = CASES[case]
    path = write(tmp_path / f"{case}.yaml", VALID_HEAD + body)
    for command in ("validate", "plan", "run"):
        result = cli(command, path)
        assert result.code == 2, (command, result.text)
        assert "Traceback" not in result.text
        located = re.findall(rf"{re.escape(str(path))}:(\d+):(\d+)", result.err)
        assert located, result.err
        if line is not None:
            assert int(located[0][0]) == line, result.err
        assert expected in result.err


def test_all_problems_reported_at_once(tmp_path):
    path = write(tmp_path / "many.yaml", VALID_HEAD + "stages:\n  a:\n    type: toy_numbr\n"
                 "  b:\n    type: toy_number\n    valeu: 1\n  c:\n    type: toy_scale\n    model: zzz\n")
    result = cli("validate", path)
    assert result.code == 2
    assert result.err.count(str(path) + ":") >= 3, result.err


@pytest.mark.parametrize("argv, expected", [
    (["run"], "the following arguments are required"),
    (["run", "missing.yaml"], "does not exist"),
    (["frobnicate"], "invalid choice"),
    (["run", "{pipeline}", "--jobs", "0"], "--jobs"),
    (["run", "{pipeline}", "--set", "params.sparsty=0.9"], "sparsity"),
    (["stages", "prnue"], "did you mean 'prune'"),
])
def test_usage_errors_exit_2(tmp_path, argv, expected):
    pipeline = write(tmp_path / "ok.yaml", VALID_HEAD + "stages:\n  a: {type: toy_number, value: 1}\n")
    result = cli(*[a.format(pipeline=pipeline) for a in argv], cwd=tmp_path)
    assert result.code == 2, result.text
    assert expected in result.err
    assert "Traceback" not in result.text
