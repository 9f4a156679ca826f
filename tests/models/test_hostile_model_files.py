"""Hostile model files through ``compressflow validate``: refused (exit 2) naming the file and the limit.

Each file is written by the test (see ``hostile_zips.py``): a ``config.json`` nested 100,000 levels
deep (in a ``.keras`` zip and an ``.h5`` attribute), a 2 MB ``config.json`` that inflates to 2 GiB,
1,000 zip entries that all point at one 1 GiB member, and a member that declares 3 GiB. Each runs
through the CLI (``helpers.cli``), which must exit 2 with the pipeline's ``file:line:column``, the
model file, the limit's variable and no traceback; and once more in a fresh interpreter whose peak
memory (its own VmHWM, reported as it exits) must stay far below what reading the file
would take. Raising a limit with its environment variable lets a legitimate file through.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, write
from hostile_zips import MIB, deep_config, huge_declared_member, inflating_config, shared_member

PEAK_RSS_BOUND = 400 * MIB  # reading any of these files would take gigabytes; validate takes ~70 MB
ADDRESS_SPACE = 2 * 1024**3  # as the hostile pipeline corpus: a regression fails, it does not swap


def pipeline_for(folder: Path, model: str) -> Path:
    return write(folder / f"{Path(model).stem}.yaml", f"""
        version: 1
        name: hostile
        stages:
          model: {{type: load, path: {model}}}
        """)


# NOTE: the child reports its own VmHWM at exit. os.wait4's ru_maxrss would not do: Linux keeps it across
# execve, so it holds the forking pytest worker's RSS (gigabytes once that worker has imported TensorFlow).
MEASURED_VALIDATE = """
import atexit, os, runpy, sys

def _report_peak():
    with open("/proc/self/status") as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(peak_kib)

atexit.register(_report_peak)
sys.argv = ["compressflow", "validate", sys.argv[1]]
runpy.run_module("compressflow", run_name="__main__")
"""


def validate_measured(pipeline: Path, env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in bytes) of ``python -m compressflow validate PIPELINE``."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    err, peak = pipeline.with_suffix(".err"), pipeline.with_suffix(".peak")
    with open(err, "wb") as err_file:
        proc = subprocess.run([sys.executable, "-c", MEASURED_VALIDATE, str(pipeline)], cwd=pipeline.parent,
                              env={**os.environ, **(env or {}), "PEAK_FILE": str(peak)},
                              stdout=subprocess.DEVNULL, stderr=err_file, preexec_fn=limit, timeout=300)
    return proc.returncode, err.read_text(), int(peak.read_text()) * 1024


def assert_refused(pipeline: Path, model: Path, *expected: str) -> None:
    result = cli("validate", pipeline)
    assert result.code == 2, result.text
    assert re.search(rf"{re.escape(str(pipeline))}:4:\d+: error: refusing to read model file ", result.err), result.err
    assert str(model) in result.err, result.err
    for text in expected:
        assert text in result.err, result.err
    assert "Traceback" not in result.text and "RecursionError" not in result.text and "MemoryError" not in result.text
    code, err, peak = validate_measured(pipeline)
    assert code == 2 and str(model) in err, err
    assert peak < PEAK_RSS_BOUND, f"validate took {peak / MIB:.0f} MiB to refuse {model.name}"


def test_a_keras_file_nested_deeper_than_the_parser_recursion_is_refused(tmp_path):
    model = deep_config(tmp_path / "deep.keras", depth=100_000)
    assert_refused(pipeline_for(tmp_path, "deep.keras"), model,
                   "config.json nests lists and objects more than 200 levels deep",
                   "COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH")


@pytest.mark.tf  # h5py comes with TensorFlow
def test_an_h5_file_whose_config_nests_too_deep_is_refused(tmp_path):
    import h5py

    model = tmp_path / "deep.h5"
    with h5py.File(model, "w") as fh:
        fh.attrs["keras_version"] = "2.21.0"
        fh.attrs["model_config"] = ("[" * 50_000 + "]" * 50_000).encode()
    assert_refused(pipeline_for(tmp_path, "deep.h5"), model,
                   "model_config attribute nests lists and objects more than 200 levels deep")


def test_a_config_that_inflates_to_2_gib_is_refused_without_inflating_it(tmp_path):
    model = inflating_config(tmp_path / "bomb.keras", inflated_mib=2048)
    assert model.stat().st_size < 3 * MIB
    assert_refused(pipeline_for(tmp_path, "bomb.keras"), model,
                   f"config.json inflates to {2048 * MIB:,} bytes (",
                   "COMPRESSFLOW_MODEL_MAX_CONFIG_BYTES")


def test_a_thousand_entries_pointing_at_one_1_gib_member_are_refused_by_count_and_by_overlap(tmp_path):
    model = shared_member(tmp_path / "shared.keras", entries=1000, member_mib=1024)
    pipeline = pipeline_for(tmp_path, "shared.keras")
    assert_refused(pipeline, model, "it has 1,000 entries, over the limit of 256", "COMPRESSFLOW_MODEL_MAX_MEMBERS")

    raised = cli("validate", pipeline, env={"COMPRESSFLOW_MODEL_MAX_MEMBERS": "5000"})
    assert raised.code == 2, raised.text
    assert "share their data, which no zip writer does" in raised.err and str(model) in raised.err, raised.err


def test_a_member_declaring_3_gib_is_refused_before_anything_is_extracted(tmp_path):
    model = huge_declared_member(tmp_path / "huge.keras", declared=3 * 1024**3)
    assert_refused(pipeline_for(tmp_path, "huge.keras"), model,
                   f"'model.weights.h5' declares {3 * 1024**3:,}", "COMPRESSFLOW_MODEL_MAX_BYTES")


def test_raising_a_limit_with_its_variable_lets_a_deep_but_legitimate_config_through(tmp_path):
    deep_config(tmp_path / "nested.keras", depth=300)
    pipeline = pipeline_for(tmp_path, "nested.keras")
    assert cli("validate", pipeline).code == 2

    raised = cli("validate", pipeline, env={"COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH": "1000"})
    assert raised.code == 0, raised.text

    wrong = cli("validate", pipeline, env={"COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH": "lots"})
    assert wrong.code == 2 and "COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH='lots' is not a positive whole number" in wrong.text
    assert "Traceback" not in wrong.text


def test_a_trusted_load_stage_is_bounded_too(tmp_path):
    inflating_config(tmp_path / "bomb.keras", inflated_mib=128)
    pipeline = write(tmp_path / "trusted.yaml", """
        version: 1
        name: hostile
        stages:
          model: {type: load, path: bomb.keras, trust: true}
        """)
    result = cli("validate", pipeline, env={"COMPRESSFLOW_MODEL_MAX_CONFIG_BYTES": str(64 * MIB)})
    assert result.code == 2, result.text
    assert f"config.json inflates to {128 * MIB:,} bytes" in result.err, result.err
    assert str(tmp_path / "bomb.keras") in result.err
