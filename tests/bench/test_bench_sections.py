"""``bench/run.py --sections``: names are checked, and a report from merged results says what each part measured.

No TensorFlow: the report is rendered (``--render``) from the committed ``bench/results/results.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_an_unknown_section_is_a_usage_error_listing_the_sections(tmp_path):
    result = bench("--sections", "outcome,serch", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown section serch" in result.stderr
    assert "outcome, search" in result.stderr


def test_dvc_without_digits_says_to_add_digits(tmp_path):
    result = bench("--sections", "dvc", cwd=tmp_path)
    assert result.returncode == 2
    assert "--sections digits,dvc" in result.stderr


def test_report_says_which_sections_were_measured_later_and_which_not_at_all(tmp_path):
    results = json.loads((REPO / "bench" / "results" / "results.json").read_text())
    results.pop("search", None)
    # NOTE: only outcome measured later, whatever the saved results say of other sections.
    results["section_runs"] = {}
    results["section_runs"]["outcome"] = {
        "command": "python bench/run.py --sections outcome", "started": "2031-01-02 03:04:05 UTC",
        "commit": "abc1234", "smoke": False, "load_average": [1.0, 1.0, 1.0]}
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "BENCHMARKS.md"
    result = bench("--render", str(saved), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    outcome = text.split("## 6. Compression outcome")[1].split("## 7.")[0]
    assert "Measured separately from the rest of this report: started 2031-01-02 03:04:05 UTC at commit abc1234" \
        in outcome
    assert "section outcome, measured separately" in text.split("## 1.")[0]
    search = text.split("## 7. Search: TPE against a grid")[1].split("## How to reproduce")[0]
    assert "Not measured yet: `python bench/run.py --sections search`." in search
    assert "Measured separately" not in text.split("## 5.")[1].split("## 6.")[0]
