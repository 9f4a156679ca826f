"""`compressflow show` of a failed run: a long stage error fits the terminal (no TensorFlow)."""

from __future__ import annotations

import re

from helpers import cli

LONG_ERROR = ("the toy trainer could not write its checkpoint because the folder it was given is on a volume "
              "that ran out of space after the third epoch, so nothing of this stage was kept")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_show_wraps_a_long_stage_error_to_the_terminal_width(shop):
    shop.write_text(shop.read_text().replace("epochs: 3}", f"epochs: 3, fail_with: {LONG_ERROR!r}}}"))
    assert cli("run", shop).code == 1
    shown = cli("show", "latest", shop, env={"COLUMNS": "80"})
    assert shown.code == 0, shown.text
    lines = shown.out.splitlines()
    too_long = [line for line in lines if len(line) > 80 and not line.startswith(("command ", "folder ", "pipeline "))]
    assert not too_long, shown.out
    row = next(line for line in lines if line.split()[:1] == ["tuned"])
    assert "failed" in row and row.rstrip().endswith("…")
    section = shown.out[shown.out.index("\ntuned:\n") + 1:].split("\n\n")[0].splitlines()[1:]
    assert _words(" ".join(section)) == _words(f"RuntimeError: {LONG_ERROR}")
    assert len(section) > 1 and section[0].startswith("  RuntimeError") and \
        all(re.match(r"^    \S", line) for line in section[1:]), section
