"""Run records (`runs`, `show`), DAG pictures with plan marks, and what is not in cache keys."""

from __future__ import annotations

import json
import re

from experience_helpers import MODELS
from helpers import cli, write


def _records(pipeline):
    folder = pipeline.parent / ".compressflow" / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/run.json"))]


def test_each_run_writes_a_record_with_stages_keys_timings_and_metrics(shop):
    first = cli("run", shop, "--set", "stages.tuned.epochs=2")
    assert first.code == 0, first.text
    second = cli("run", shop, "--set", "stages.tuned.epochs=2")
    assert second.code == 0, second.text
    records = sorted(_records(shop), key=lambda r: r["started_at"])
    assert len(records) == 2
    cold, warm = records
    plan = json.loads(cli("plan", shop, "--set", "stages.tuned.epochs=2", "--json").out)
    assert cold["status"] == warm["status"] == "ok"
    assert cold["argv"] == ["run", str(shop), "--set", "stages.tuned.epochs=2"]
    assert cold["pipeline"]["name"] == "shop" and cold["ended_at"] >= cold["started_at"]
    assert {n: s["status"] for n, s in cold["stages"].items()} == {n: "ran" for n in plan}
    assert {n: s["status"] for n, s in warm["stages"].items()} == {n: "cached" for n in plan}
    assert {n: s["key"] for n, s in warm["stages"].items()} == {n: p["key"] for n, p in plan.items()}
    tuned = cold["stages"]["tuned"]
    assert tuned["ended_at"] >= tuned["started_at"] and tuned["seconds"] >= 0
    assert tuned["summary"]["history"]["loss"] == [1 / 2, 1 / 3]
    assert tuned["inputs"] == {"model": ["medium"]}
    metrics = warm["stages"]["check"]["metrics"]  # cached stages carry their metrics too
    assert metrics["baseline"] == "large" and set(metrics["models"]) == set(MODELS)
    assert metrics["models"]["tuned"]["accuracy"] == 0.97
    events = [json.loads(line) for line in open(tuned["events"])]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    assert ["check", "tuned"] in [sorted(edge) for edge in cold["edges"]]


def test_runs_lists_runs_and_show_prints_one_by_id_prefix_or_latest(shop):
    assert cli("run", shop).code == 0
    shop.write_text(shop.read_text().replace("value: 4}", "value: 4, fail: true}"))
    assert cli("run", shop).code == 1
    records = sorted(_records(shop), key=lambda r: r["started_at"])
    ok, failed = records
    listing = cli("runs", shop)
    assert listing.code == 0, listing.text
    title, *lines = listing.out.splitlines()
    assert title == f"runs of {shop} (pipeline 'shop'), newest last"
    assert lines[0].split()[:3] == ["run", "started", "status"]
    assert [line.split()[0] for line in lines[2:]] == [ok["id"], failed["id"]]
    assert lines[2].split()[3] == "ok" and lines[3].split()[3] == "failed"
    listed = json.loads(cli("runs", shop, "--json").out)
    assert [r["id"] for r in listed] == [ok["id"], failed["id"]]

    latest = cli("show", "latest", shop)
    assert latest.code == 0, latest.text
    assert latest.out.startswith(f"run {failed['id']}  failed")
    assert re.search(r"^small +toy_number +failed ", latest.out, re.M)  # the table cuts errors to the width
    assert "RuntimeError: small failed on purpose" in latest.out
    assert re.search(r"^check +toy_evaluate +not run +[0-9a-f]{12}", latest.out, re.M)
    by_prefix = cli("show", ok["id"][:-2], shop)
    assert by_prefix.out.startswith(f"run {ok['id']}  ok")
    assert "tuned" in by_prefix.out and "0.9700" in by_prefix.out  # the evaluate table
    from_folder = cli("show", ok["id"], cwd=shop.parent)  # found beside the current folder
    assert from_folder.out.startswith(f"run {ok['id']}")
    assert json.loads(cli("show", ok["id"], shop, "--json").out)["id"] == ok["id"]
    unknown = cli("show", "19990101", shop)
    assert unknown.code == 2 and "no run '19990101'" in unknown.err


def test_dag_as_text_mermaid_and_dot_with_cached_and_stale_marks(shop):
    assert cli("run", shop).code == 0
    shop.write_text(shop.read_text().replace("epochs: 3", "epochs: 4"))
    text = cli("dag", shop)
    assert text.code == 0, text.text
    lines = {line.split()[0]: line for line in text.out.splitlines() if line.strip()}
    assert lines["small"].endswith("[cached]")
    assert lines["tuned"].startswith("tuned (toy_train) <- medium")
    assert lines["tuned"].endswith("[stale: config changed: epochs 3 -> 4]")
    assert lines["check"].endswith("[stale: input changed: models]")
    mermaid = cli("dag", shop, "--format", "mermaid").out.splitlines()
    assert mermaid[0] == "flowchart LR"
    ids = {line.split('["')[1].split("<br/>")[0]: line.split('["')[0].strip() for line in mermaid if '["' in line}
    assert f"    {ids['medium']} --> {ids['tuned']}" in mermaid
    assert f"    {ids['tuned']} -->|models| {ids['check']}" in mermaid
    assert any(line.strip().startswith(ids["tuned"]) and line.endswith(":::stale") for line in mermaid)
    assert any(line.strip().startswith(ids["small"]) and line.endswith(":::cached") for line in mermaid)
    dot = cli("dag", shop, "--format", "dot").out
    assert dot.startswith('digraph "shop" {') and dot.rstrip().endswith("}")
    assert '"medium" -> "tuned";' in dot and '"tuned" -> "check" [label="models"];' in dot
    assert '"tuned" [label="tuned\\ntoy_train\\nstale"' in dot
    plain = cli("dag", shop, "--no-status")
    assert "[" not in plain.out.replace("toy_", "") and "stale" not in plain.out


def test_tensorboard_option_is_not_in_the_cache_key(tmp_path):
    pipeline = write(tmp_path / "p.yaml", """
        version: 1
        name: boards
        datasets:
          digits: {type: sklearn_digits}
        stages:
          base: {type: load, builder: "compressflow.models:small_cnn"}
          trained: {type: fine_tune, model: base, data: digits, epochs: 1}
          pruned:
            type: prune
            model: trained
            data: digits
            schedule: {type: constant, target_sparsity: 0.5}
            epochs: 1
    """)
    plain = json.loads(cli("plan", pipeline, "--json").out)
    boards = cli("plan", pipeline, "--json", "--set", "stages.trained.tensorboard=true",
                 "--set", "stages.pruned.tensorboard=true")
    assert boards.code == 0, boards.text
    assert {n: s["key"] for n, s in json.loads(boards.out).items()} == {n: s["key"] for n, s in plain.items()}
    other = json.loads(cli("plan", pipeline, "--json", "--set", "stages.trained.epochs=2").out)
    assert other["trained"]["key"] != plain["trained"]["key"]  # the comparison can tell keys apart


def test_an_interrupted_run_is_recorded_as_interrupted(shop):
    import signal

    from helpers import runs, spawn_cli
    from waiting import wait_until

    shop.write_text(shop.read_text().replace("value: 1}", "value: 1, sleep: 60}"))
    log = shop.parent / "runs.log"
    process = spawn_cli("run", shop, "--progress", "plain", env={"TOY_RUN_LOG": str(log)})
    for line in process.stdout:  # wait until the slow stage has started
        if line.startswith("large: running"):
            break
    wait_until(lambda: "large" in runs(log), "the slow stage to be at work")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    (record,) = _records(shop)
    assert record["status"] == "interrupted"
    assert record["stages"]["large"]["status"] == "running" and "ended_at" not in record["stages"]["large"]
    assert record["stages"]["check"]["status"] == "pending"


def test_runs_of_a_pipeline_that_no_longer_validates_are_still_listed(shop):
    assert cli("run", shop).code == 0
    shop.write_text(shop.read_text().replace("epochs: 3}", "epochs: 3, epocs: 4}"))
    assert cli("validate", shop).code == 2
    listing = cli("runs", shop)
    assert listing.code == 0 and len(listing.out.splitlines()) == 4 and " ok " in listing.out
