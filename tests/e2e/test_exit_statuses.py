"""Exit statuses, as `--help` and the README list them."""

from __future__ import annotations

from pathlib import Path

from helpers import cli

STATUSES = ("0 success", "1 a stage failed", "2 invalid pipeline or usage", "130 interrupted",
            "143 terminated (SIGTERM)")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_help_lists_every_exit_status():
    for argv in (["--help"], ["run", "--help"]):
        result = cli(*argv)
        assert result.code == 0, result.text
        text = _words(result.out)
        for status in STATUSES:
            assert status in text, (argv, result.out)


def test_readme_lists_every_exit_status():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("Exit status:"))
    for status in STATUSES:
        assert status in line, line
