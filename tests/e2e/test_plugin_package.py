"""The example plugin package, pip-installed into a new virtual environment, joins every part of compressflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import write

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples" / "compressflow-plugin-example"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A new venv with compressflow (editable) and the plugin pip-installed; returns (bin dir, env)."""
    root = tmp_path_factory.mktemp("plugin")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    # NOTE: like --system-site-packages, the venv sees this interpreter's packages (pydantic,
    # networkx, PyYAML, pip, setuptools), so nothing is downloaded; what is pip-installed
    # below lands in the venv's own site-packages and shadows anything seen through that path.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "outer-site-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("COMPRESSFLOW_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS")}
    env["PATH"] = f"{root / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    plugin = root / "plugin-source"  # a copy: building leaves build/ and *.egg-info/ beside the sources
    shutil.copytree(PLUGIN, plugin, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    for target in (["-e", str(REPO)], [str(plugin)]):
        done = subprocess.run(pip + target, env=env, capture_output=True, text=True, cwd=root)
        assert done.returncode == 0, done.stderr
    return root / "venv" / "bin", env


def run(venv, *args, cwd=None):
    bin_dir, env = venv
    return subprocess.run([bin_dir / "compressflow", *map(str, args)], env=env, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_the_plugin_is_installed_in_the_venv_not_imported_from_the_tree(venv):
    bin_dir, env = venv
    where = subprocess.run([bin_dir / "python", "-c", "import compressflow_plugin_example as p; print(p.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(bin_dir.parent)), where


def test_stages_lists_and_describes_the_plugin_stage(venv):
    listed = run(venv, "stages")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:1] == ["file_stats"] for line in listed.stdout.splitlines())
    assert "toy_number" not in listed.stdout
    described = run(venv, "stages", "file_stats")
    assert "compressflow_plugin_example.file_stats:FileStats" in described.stdout
    assert "histogram_bins: integer (1 <= x <= 256) = 16" in described.stdout


def test_schema_includes_the_plugin_stage(venv):
    result = run(venv, "schema")
    schema = json.loads(result.stdout)
    assert "file_stats" in schema["properties"]["stages"]["additionalProperties"]["discriminator"]["mapping"]
    assert "histogram_bins" in json.dumps(schema["$defs"])


def test_docs_generation_includes_plugins_on_request(venv):
    bin_dir, env = venv
    command = [bin_dir / "python", "-m", "compressflow.stages.describe"]
    plain = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert "file_stats" not in plain
    with_plugins = subprocess.run(command + ["--plugins"], env=env, capture_output=True, text=True, check=True).stdout
    assert "### `file_stats`\n\n*From the plugin `compressflow_plugin_example`.*" in with_plugins
    assert "| `histogram_bins` | integer (1 <= x <= 256) | `16` |" in with_plugins


PIPELINE = """
version: 1
name: plugged
stages:
  raw:
    type: file_stats
    path: data.bin
    histogram_bins: 4
  again:
    type: file_stats
    model: raw
"""


def test_a_pipeline_using_the_plugin_validates_runs_and_reports_typos(venv, tmp_path):
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4)
    write(tmp_path / "plugged.yaml", PIPELINE)
    result = run(venv, "run", "plugged.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "data.bin: 1,024 bytes, entropy 8.0 bits/byte" in result.stdout
    entries = list((tmp_path / ".compressflow" / "cache" / "entries").glob("*/*/stats.json"))
    raw = [json.loads(p.read_text()) for p in entries if json.loads(p.read_text())["source"] == "data.bin"]
    assert raw[0]["histogram"] == [256, 256, 256, 256]
    write(tmp_path / "typo.yaml", PIPELINE.replace("histogram_bins: 4", "histogram_bin: 4"))
    result = run(venv, "validate", "typo.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "typo.yaml:7:5: error: unknown field 'histogram_bin' in stage 'raw'" in result.stderr
    assert "did you mean 'histogram_bins'?" in result.stderr
