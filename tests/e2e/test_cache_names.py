"""Stage and pipeline names never become paths unsanitised: every write stays in the cache or `.compressflow`.

Users can only write plain names, but sweeps generate names from values
(``CON[tag=../../escape]``) and the Python API takes any name. Whatever the
name, a run writes only inside the cache and the pipeline's ``.compressflow`` folder,
and every file name it creates is an encoded, safe one.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from pathlib import Path

import compressflow.api
from compressflow.runs.console import LineReporter
from compressflow.dsl import load_pipeline
from compressflow.cache.local import Cache
from compressflow.cache.names import encode_name
from toy_stages import ToyNumber, ToyScale

from helpers import cli, write

SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_.%~-]{1,255}")
LONG = "y" * 1000
SWEPT = ["../../escape", "a/b", "$(id)", "..", "/etc/escape", "a;rm -rf ~", LONG]

PIPELINE = f"""
version: 1
name: CON
stages:
  CON:
    type: toy_number
    value: 1
    matrix:
      tag: {SWEPT!r}
  NUL: {{type: toy_scale, model: {'x' * 128}}}
  {'x' * 128}: {{type: toy_number, value: 2}}
"""


def files_under(root: Path) -> set[Path]:
    return {Path(folder) / name for folder, dirs, files in os.walk(root) for name in dirs + files}


def assert_only_safe_names(paths: set[Path], root: Path) -> None:
    for path in paths:
        for part in path.relative_to(root).parts:
            assert SAFE_FILE_NAME.fullmatch(part) and part not in (".", ".."), f"unsafe file name {part!r}"


def test_generated_names_with_separators_and_shell_characters_stay_inside(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "a" / "pipe" / "p.yaml", PIPELINE)
    cache = tmp_path / "a" / "cache"
    before = files_under(tmp_path)

    result = cli("run", pipeline, "--cache", cache, cwd=pipeline.parent)

    assert result.code == 0, result.text
    stages = list(load_pipeline(pipeline).stages)
    ran = [line.rsplit(" ", 1)[0] for line in log.read_text().splitlines()]  # "<stage> <pid>"; names have spaces
    assert len(stages) == len(SWEPT) + 2 and sorted(ran) == sorted(stages)
    new = files_under(tmp_path) - before - {log}
    allowed = (cache, pipeline.parent / ".compressflow")
    outside = sorted(str(p) for p in new if not any(root == p or root in p.parents for root in allowed))
    assert outside == [], "written outside the cache and .compressflow"
    assert_only_safe_names({p for p in new if cache in p.parents}, cache)
    assert_only_safe_names({p for p in new if pipeline.parent in p.parents}, pipeline.parent)
    refs = cache / "refs" / "CON"
    remembered = sorted(name for name in os.listdir(refs) if name != "variants")  # variants: of --set runs
    assert remembered == sorted(f"{encode_name(name)}.json" for name in stages)
    logs = pipeline.parent / ".compressflow" / "logs"
    assert sorted(os.listdir(logs)) == sorted(f"{encode_name(name)}.log" for name in stages)
    verify = cli("cache", "verify", "--cache", cache)
    assert verify.code == 0 and f"verified {len(stages)} entries" in verify.out, verify.text


def test_names_the_loader_would_refuse_are_still_encoded_by_the_cache(tmp_path: Path):
    """The API takes a Pipeline built in code: names with NUL, newlines, '/', '..' or 5000 characters."""
    names = ["../../escape", "/abs/escape", "..", ".", "a\x00b", "line\nbreak", "CON", "é/ü", "z" * 5000]
    base = load_pipeline(write(tmp_path / "pipe" / "p.yaml", "version: 1\nname: ok\nstages:\n"
                                                              "  a: {type: toy_number, value: 1}\n"))
    stages = {names[0]: ToyNumber(value=1)}
    stages.update({name: ToyScale(model=names[0], factor=index) for index, name in enumerate(names[1:], 2)})
    pipeline = dataclasses.replace(base, name="../../../pipeline/..", stages=stages)
    cache_dir = tmp_path / "cache"
    before = files_under(tmp_path)

    report = compressflow.api.run(pipeline, cache_dir=cache_dir, reporter=LineReporter(io.StringIO()))

    assert report.ok, report.outcomes
    new = files_under(tmp_path) - before
    records = tmp_path / "pipe" / ".compressflow"  # the run's record, its events and the stages' logs
    assert new and [p for p in new if not any(root == p or root in p.parents for root in (cache_dir, records))] == []
    assert_only_safe_names({p for p in new if cache_dir in p.parents}, cache_dir)
    assert_only_safe_names({p for p in new if records in p.parents}, records)
    cache = Cache(cache_dir)
    plan = compressflow.api.plan(pipeline, cache_dir=cache_dir)
    assert {name: s.action for name, s in plan.stages.items()} == {name: "cached" for name in names}
    for name in names:  # each ref reads back under its own name: encoding is injective
        assert cache.get_ref(pipeline.name, name)["key"] == plan.stages[name].key.key
    assert cache.verify_all() == []
