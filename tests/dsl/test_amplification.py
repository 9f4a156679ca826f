"""Small files that copy into a huge document (templates, includes, sweeps, --set) stop early and located.

Each case is written just over the real bound (:data:`~compressflow.dsl.limits.MAX_VALUES` values
after copies, the reader's alias bound for ``--set``) and run through the real CLI in a process
limited to 2 GB of address space: exit 2, a located message, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compressflow.dsl.limits import MAX_ALIAS_VALUES, MAX_VALUES
from forked_cli import ForkServer

pytestmark = pytest.mark.slow  # each case reads files of about a million values

MEMORY = 2 * 1024**3
TIMEOUT = 300  # a hang guard, not a measurement
HEAD = "version: 1\nname: t\ndatasets:\n  digits: {type: sklearn_digits}\n"
BIG = 400_000  # values in one large list: under the reader's bound, over MAX_VALUES when copied thrice


def _numbers(count: int) -> str:
    return "[" + "0," * (count - 1) + "0]"


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


def _refused(server: ForkServer, folder: Path, *argv: str) -> str:
    outcome = server.run("validate", "pipeline.yaml", *argv, cwd=folder, timeout=TIMEOUT, memory=MEMORY)
    assert not outcome.timed_out
    assert outcome.code == 2, outcome.text[-2000:]
    assert "Traceback" not in outcome.text and "MemoryError" not in outcome.text
    assert len(outcome.text) < 5000
    return outcome.text


def test_a_large_template_extended_many_times_stops_at_the_stage_that_crosses(server, tmp_path: Path):
    stages = "".join(f"  s{i}: {{extends: big, epochs: 1}}\n" for i in range(1000))
    (tmp_path / "pipeline.yaml").write_text(
        HEAD + f"templates:\n  big: {{type: fine_tune, notes: {_numbers(BIG)}}}\nstages:\n" + stages)
    text = _refused(server, tmp_path)
    # the template itself (400k) and two copies fit; the third copy, stage s2 on line 10, crosses
    assert f"pipeline.yaml:10:17: error: templates expand the document to more than {MAX_VALUES:,} values" in text


def test_a_sweep_of_a_large_stage_stops_at_its_matrix(server, tmp_path: Path):
    (tmp_path / "pipeline.yaml").write_text(
        HEAD + "stages:\n  base: {type: load, builder: 'compressflow.models:small_cnn'}\n"
        f"  tuned:\n    type: fine_tune\n    model: base\n    data: digits\n    notes: {_numbers(BIG)}\n"
        "    matrix:\n      epochs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n")
    text = _refused(server, tmp_path)
    assert f"pipeline.yaml:13:7: error: sweeps expand the document to more than {MAX_VALUES:,} values" in text


def test_a_sweep_over_a_large_value_stops_at_that_value(server, tmp_path: Path):
    (tmp_path / "pipeline.yaml").write_text(
        HEAD + "stages:\n  base: {type: load, builder: 'compressflow.models:small_cnn'}\n"
        "  tuned:\n    type: fine_tune\n    model: base\n    data: digits\n"
        f"    matrix:\n      epochs: [1, 2, 3]\n      metrics: [{_numbers(BIG)}, [accuracy]]\n")
    text = _refused(server, tmp_path)
    assert "pipeline.yaml:13:17: error: sweeps expand the document to more than" in text


def test_many_large_includes_stop_at_the_include_that_crosses(server, tmp_path: Path):
    names = [f"part{i}.yaml" for i in range(100)]
    size = 450_000
    for index, name in enumerate(names[:3]):  # the later ones are never read
        (tmp_path / name).write_text(f"params:\n  p{index}: {_numbers(size)}\n")
    for name in names[3:]:
        (tmp_path / name).write_text("params: {}\n")
    (tmp_path / "pipeline.yaml").write_text(
        HEAD + "include:\n" + "".join(f"  - {name}\n" for name in names)
        + "stages:\n  base: {type: load, builder: 'compressflow.models:small_cnn'}\n")
    text = _refused(server, tmp_path)
    assert f"pipeline.yaml:8:5: error: included files expand the document to more than {MAX_VALUES:,} values" \
        in text


def test_set_values_share_the_readers_alias_bound(server, tmp_path: Path):
    (tmp_path / "pipeline.yaml").write_text(
        HEAD + "params:\n" + "".join(f"  p{i}: 0\n" for i in range(200))
        + "stages:\n  base: {type: load, builder: 'compressflow.models:small_cnn'}\n")
    aliases = MAX_ALIAS_VALUES // 1001 - 2  # each --set just under the bound on its own
    bomb = "[&a " + _numbers(1000) + "," + ",".join(["*a"] * aliases) + "]"
    argv = [item for i in range(200) for item in ("--set", f"params.p{i}={bomb}")]
    text = _refused(server, tmp_path, *argv)
    assert "<--set params.p1>:1:" in text
    assert f"YAML aliases add more than {MAX_ALIAS_VALUES:,} values" in text
    assert "--set argument 2 (params.p1) makes the --set values too large" in text
