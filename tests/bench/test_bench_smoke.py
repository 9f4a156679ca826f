"""The benchmark suite's smoke mode runs end to end and writes a complete report.

Only the report's shape is checked (every section, numbers present); no figure's value
is asserted: these are timings of a tiny run on a shared machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADINGS = (
    "## Summary",
    "## Machine",
    "## 1. Overhead of the framework",
    "## 2. Fully cached rerun",
    "## 3. Incremental rerun",
    "## 4. Parallel branches",
    "## 5. Scale of the DSL and planner",
    "## 6. Compression outcome",
    "## 9. Exploring variants: a sweep against one script per variant",
    "## 10. A real-size model: MobileNetV2 in LiteRT",
    "## How to reproduce",
)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_run_writes_every_section_with_figures(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--no-dvc", "--out", str(out),
                             "--workdir", str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    for heading in HEADINGS:
        assert heading in text, heading
    assert "python bench/run.py --smoke" in text
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    for section in sections:
        title = section.splitlines()[0]
        if title != "How to reproduce":
            assert re.search(r"\d+\.\d+", section), f"no figure in section {title!r}"
    assert (tmp_path / "bench-results" / "results.json").exists()
