"""`cache gc` on a cache shared by two projects keeps what the other project and `--set` variants use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TOY_PIPELINE, cli, write

VARIANT = ("--set", "params.a=5")


@pytest.fixture
def shared(tmp_path: Path, monkeypatch):
    """Projects alpha and beta run into one --cache; alpha also with --set, then edited and rerun.

    Returns (alpha pipeline, beta pipeline, cache folder, keys of the variant's stages).
    """
    monkeypatch.delenv("COMPRESSFLOW_CACHE", raising=False)
    monkeypatch.setenv("TOY_RUN_LOG", str(tmp_path / "runs.log"))
    cache = tmp_path / "shared-cache"
    alpha = write(tmp_path / "alpha" / "pipeline.yaml", TOY_PIPELINE.replace("name: toy", "name: alpha"))
    beta = write(tmp_path / "beta" / "pipeline.yaml",
                 TOY_PIPELINE.replace("name: toy", "name: beta").replace("a: 1.0", "a: 10.0")
                 .replace("value: 2", "value: 20"))  # NOTE: entries of its own, none shared with alpha
    for args in ((alpha,), (beta,), (alpha, *VARIANT)):
        result = cli("run", *args, "--cache", cache)
        assert result.code == 0, result.text
    variant = set(keys(alpha, cache, *VARIANT).values())
    # NOTE: the edit replaces two and total; the old two is the variant's too, the old total no one's.
    alpha.write_text(alpha.read_text().replace("value: 2", "value: 3"))
    assert cli("run", alpha, "--cache", cache).code == 0
    return alpha, beta, cache, variant


def entry_keys(cache: Path) -> set[str]:
    return {p.name for p in (cache / "entries").glob("*/*") if p.is_dir()}


def planned(pipeline: Path, cache: Path, *args: str) -> dict[str, dict]:
    result = cli("plan", pipeline, "--cache", cache, "--json", *args)
    assert result.code == 0, result.text
    return json.loads(result.out)


def actions(pipeline: Path, cache: Path, *args: str) -> dict[str, str]:
    return {name: stage["action"] for name, stage in planned(pipeline, cache, *args).items()}


def keys(pipeline: Path, cache: Path, *args: str) -> dict[str, str]:
    return {name: stage["key"] for name, stage in planned(pipeline, cache, *args).items()}


ALL_CACHED = {"one": "cached", "two": "cached", "three": "cached", "total": "cached"}


def test_gc_of_one_project_keeps_the_other_projects_and_its_set_variants_entries(shared):
    alpha, beta, cache, variant = shared
    assert len(entry_keys(cache)) == 4 + 4 + 3 + 2  # alpha, beta, the variant's new ones, the edit's

    gc = cli("cache", "gc", alpha, "--cache", cache)

    assert gc.code == 0 and "removed 1 entries" in gc.out, gc.text  # alpha's total before the edit
    assert actions(beta, cache) == ALL_CACHED
    assert variant <= entry_keys(cache), "gc removed what the --set run of alpha used"
    assert actions(alpha, cache) == ALL_CACHED


def test_dry_run_lists_what_gc_would_remove_and_removes_nothing(shared):
    alpha, _beta, cache, _variant = shared
    before = entry_keys(cache)

    dry = cli("cache", "gc", alpha, "--cache", cache, "--dry-run")

    assert dry.code == 0, dry.text
    assert entry_keys(cache) == before
    listed = [line for line in dry.out.splitlines() if line.startswith("would remove ") and "entries" not in line]
    assert len(listed) == 1 and " total " in listed[0], dry.out
    assert "would remove 1 entries" in dry.out and "nothing removed" in dry.out, dry.out
    gone = before - {key for key in before if key.startswith(listed[0].split()[2])}
    gc = cli("cache", "gc", alpha, "--cache", cache)
    assert gc.code == 0 and entry_keys(cache) == gone, gc.text


def test_scope_forgets_the_scoped_pipelines_variants_only(shared):
    alpha, beta, cache, variant = shared

    gc = cli("cache", "gc", "--scope", alpha, "--cache", cache)

    # the variant's one, three and total, the old two it shared with alpha before the edit, alpha's old total
    assert gc.code == 0 and "removed 5 entries" in gc.out, gc.text
    assert actions(alpha, cache) == ALL_CACHED
    assert actions(beta, cache) == ALL_CACHED
    assert not variant & entry_keys(cache)


def test_unreferenced_needs_no_pipeline_and_keeps_every_remembered_entry(shared):
    alpha, beta, cache, variant = shared

    gc = cli("cache", "gc", "--unreferenced", "--cache", cache)

    assert gc.code == 0 and "removed 1 entries" in gc.out, gc.text
    assert actions(beta, cache) == ALL_CACHED and variant <= entry_keys(cache)


def test_only_given_keeps_nothing_but_the_given_pipelines_plans(shared):
    alpha, beta, cache, variant = shared

    gc = cli("cache", "gc", "--only-given", alpha, "--cache", cache)

    assert gc.code == 0 and "removed 9 entries" in gc.out, gc.text
    assert actions(alpha, cache) == ALL_CACHED
    assert set(actions(beta, cache).values()) == {"run"}


def test_gc_modes_are_exclusive_and_need_pipelines(shared):
    alpha, _beta, cache, _variant = shared
    both = cli("cache", "gc", "--scope", "--only-given", alpha, "--cache", cache)
    assert both.code == 2 and "one of --scope" in both.err and "Traceback" not in both.text, both.text
    none = cli("cache", "gc", "--cache", cache)
    assert none.code == 2 and "--unreferenced" in none.err, none.text
