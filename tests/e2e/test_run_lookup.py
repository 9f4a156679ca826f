"""Runs started from Python, runs found from the project root, and runs kept apart by pipeline file."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

from experience_helpers import EXPERIENCE_PIPELINE
from helpers import cli, write


def _ids(listing: str) -> list[str]:
    return re.findall(r"^(\d{8}-\d{6}-[0-9a-f]{4})\s", listing, re.M)


def test_import_compressflow_stays_cheap_until_the_api_is_used():
    code = ("import sys, compressflow\n"
            "heavy = [m for m in ('networkx', 'pydantic', 'tensorflow', 'compressflow.api') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert {'run', 'plan', 'load', 'RunResult', 'Plan', 'Pipeline'} <= set(dir(compressflow))\n"
            "assert compressflow.run.__doc__ and 'compressflow.api' in sys.modules\n"
            "assert issubclass(compressflow.RunResult, compressflow.RunReport)\n"
            "assert 'tensorflow' not in sys.modules\n"
            "try:\n    compressflow.nothing_here\nexcept AttributeError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "has no attribute 'nothing_here'" in done.stdout


def test_a_run_started_from_python_is_listed_shown_and_reported(shop):
    import compressflow
    from compressflow.runs.console import LineReporter

    lines = io.StringIO()
    result = compressflow.run(shop, overrides=["stages.tuned.epochs=2"], reporter=LineReporter(lines), echo=None)

    assert result.ok and result.count("ran") == 5, result.outcomes
    assert f"(run {result.run_id})" in lines.getvalue()
    assert "0.9700" in dict(result.summaries)["check"]  # the evaluate table
    assert result.record["status"] == "ok" and result.record["origin"] == "python"
    assert result.record["argv"] == ["run", str(shop), "--set", "stages.tuned.epochs=2"]
    listing = cli("runs", shop)
    assert listing.code == 0, listing.text
    assert _ids(listing.out) == [result.run_id] and " ok " in listing.out
    shown = cli("show", result.run_id, shop)
    assert shown.code == 0 and shown.out.startswith(f"run {result.run_id}  ok"), shown.text
    assert "(from Python)" in shown.out
    report = cli("report", shop, "--format", "markdown")
    assert report.code == 0, report.text
    assert f"Run `{result.run_id}`: 5 ran" in report.out and "| **tuned** ★ | tflite int8 | 97.00% |" in report.out
    again = compressflow.run(shop, overrides=["stages.tuned.epochs=2"], reporter=LineReporter(io.StringIO()),
                             echo=None)
    assert again.count("cached") == 5 and _ids(cli("runs", shop).out) == [result.run_id, again.run_id]


def test_runs_show_report_and_cache_ls_find_the_pipelines_folder_from_the_project_root(tmp_path, shop):
    project = tmp_path / "project"
    pipeline = write(project / "pipelines" / "shop.yaml", EXPERIENCE_PIPELINE)
    first = cli("run", pipeline)
    assert first.code == 0, first.text
    (record,) = json.loads(cli("runs", pipeline, "--json").out)

    shown = cli("show", cwd=project)
    assert shown.code == 0, shown.text
    assert shown.out.startswith(f"run {record['id']}  ok")
    listing = cli("runs", cwd=project)
    assert listing.code == 0 and _ids(listing.out) == [record["id"]], listing.text
    assert "pipelines/shop.yaml" in listing.out
    report = cli("report", "--format", "markdown", cwd=project)
    assert report.code == 0 and f"Run `{record['id']}`" in report.out, report.text
    by_id = cli("report", record["id"], "--format", "markdown", cwd=project)
    assert by_id.code == 0 and f"Run `{record['id']}`" in by_id.out, by_id.text
    entries = cli("cache", "ls", cwd=project)
    assert entries.code == 0, entries.text
    assert f"5 entries in {project / 'pipelines' / '.compressflow' / 'cache'}" in entries.out

    other = write(project / "more" / "other.yaml", EXPERIENCE_PIPELINE.replace("value: 4}", "value: 5}"))
    assert cli("run", other).code == 0
    several = cli("show", cwd=project)
    assert several.code == 2 and "Traceback" not in several.err, several.text
    assert "more/other.yaml" in several.err and "pipelines/shop.yaml" in several.err
    assert "compressflow show latest more/other.yaml" in several.err  # the one run last
    overview = cli("runs", cwd=project)
    assert overview.code == 0 and "more/other.yaml" in overview.out and "pipelines/shop.yaml" in overview.out
    assert "compressflow runs more/other.yaml" in overview.out
    caches = cli("cache", "ls", cwd=project)
    assert caches.code == 2 and "more/.compressflow/cache" in caches.err, caches.text
    assert cli("show", record["id"], cwd=project).out.startswith(f"run {record['id']}  ok")  # an id is enough
    assert cli("show", "pipelines/shop.yaml", cwd=project).out.startswith(f"run {record['id']}")


def test_two_pipeline_files_with_the_same_name_keep_their_runs_apart(shop):
    twin = write(shop.parent / "twin.yaml", EXPERIENCE_PIPELINE.replace("value: 4}", "value: 6}"))
    assert cli("run", shop).code == 0
    assert "no recorded runs" in cli("runs", twin).out
    assert cli("run", twin).code == 0
    shop_runs, twin_runs = (json.loads(cli("runs", p, "--json").out) for p in (shop, twin))
    assert len(shop_runs) == len(twin_runs) == 1 and shop_runs[0]["id"] != twin_runs[0]["id"]
    assert twin_runs[0]["pipeline"] == {"name": "shop", "path": str(twin)}
    assert cli("show", "latest", twin).out.startswith(f"run {twin_runs[0]['id']}")
    assert cli("show", "latest", shop).out.startswith(f"run {shop_runs[0]['id']}")
    listing = cli("runs", shop).out
    assert "shop.yaml" in listing and "'shop'" in listing  # the file and the name it carries


def test_report_and_show_of_a_file_that_was_never_run_say_so(shop):
    assert cli("run", shop).code == 0
    never = write(shop.parent / "never.yaml", EXPERIENCE_PIPELINE)
    broken = write(shop.parent / "broken.yaml", EXPERIENCE_PIPELINE.replace("epochs: 3}", "epocs: 3}"))
    for path in (never, broken):
        for args in (("report", path, "--format", "markdown"), ("show", "latest", path)):
            result = cli(*args)
            assert result.code == 2, result.text
            assert result.out == "" and "Traceback" not in result.err
            assert f"{path.name} has no recorded runs yet" in result.err
            assert f"compressflow run {path}" in result.err
