"""The run's own process imports no TensorFlow, even when stages and the check before the run use it.

TensorFlow keeps what it allocates until its process ends: the check (which builds the models it
inspects) runs in a child of its own and the TensorFlow stages in a worker, so the process that
plans, records and waits stays small for the whole run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.tf

PIPELINE = """\
version: 1
name: small
seed: 0
datasets:
  digits: {type: sklearn_digits, layout: flat, validation_fraction: 0.2}
stages:
  base:
    type: load
    builder: compressflow.models:mlp
    args: {input_shape: [64], classes: 10, hidden: [16]}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  pruned: {type: prune, model: trained, data: digits, epochs: 1, schedule: {type: constant, target_sparsity: 0.5}}
"""


def test_a_run_with_the_check_and_tensorflow_stages_imports_no_tensorflow_in_its_process(tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    script = textwrap.dedent("""
        import sys
        import compressflow

        result = compressflow.run("p.yaml", cache_dir="cache")
        print("ran", result.count("ran"), "ok", result.ok)
        print("tensorflow", "tensorflow" in sys.modules, "tf_keras" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "ran 3 ok True" in proc.stdout
    assert "tensorflow False False" in proc.stdout, proc.stdout


def test_the_check_before_the_run_still_refuses_what_would_fail(tmp_path):
    """The check's verdict crosses back from its process: a stage that would fail stops the run first."""
    bad = PIPELINE.replace("input_shape: [64]", "input_shape: [8, 8, 1]")
    (tmp_path / "p.yaml").write_text(bad)
    proc = subprocess.run([sys.executable, "-m", "compressflow", "run", "p.yaml", "--cache", "cache"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a run that would fail, not a usage error
    assert "stage 'trained' would fail" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "cache").glob("entries/*/*")), "nothing may run when the check refuses"
