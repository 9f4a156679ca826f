"""What `compressflow run` prints: plain lines in pipes, the live view in a terminal (no TensorFlow)."""

from __future__ import annotations

import io
import re

from helpers import cli

ANSI = re.compile(r"\x1b\[")
# Every line a plain run prints, besides the evaluate table at the end.
LINE_FORMS = [
    re.compile(r"^pipeline shop: \d+ to run, \d+ cached$"),
    re.compile(r"^\w+: (running|cached|done in \d+\.\ds)$"),
    re.compile(r"^  \[\w+\] .+$"),
    re.compile(r"^done in \d+\.\ds: \d+ ran, \d+ cached \(run [0-9-a-f]+\)$"),
]


def _progress_lines(out: str) -> list[str]:
    """The lines before the end-of-run summaries (which start with a blank line)."""
    return out.split("\n\n", 1)[0].splitlines()


def test_plain_progress_in_a_pipe_is_one_line_per_event_without_escape_codes(shop):
    result = cli("run", shop)
    assert result.code == 0, result.text
    assert not ANSI.search(result.text), "escape codes in output to a pipe"
    lines = _progress_lines(result.out)
    for line in lines:
        assert any(form.match(line) for form in LINE_FORMS), f"unexpected progress line: {line!r}"
    epochs = [line for line in lines if line.startswith("  [tuned] epoch ")]
    assert epochs == [f"  [tuned] epoch {n}/3  loss {1 / (n + 1):.4f}  accuracy {1 - 0.5 / (n + 1):.4f}"
                      for n in (1, 2, 3)]
    assert "  [tuned] trained for 3 epochs" in lines
    assert not any("step" in line for line in lines), "step events are for the live view only"
    for stage in ("small", "medium", "large", "tuned", "check"):
        assert lines.index(f"{stage}: running") < next(i for i, line in enumerate(lines)
                                                       if line.startswith(f"{stage}: done in"))
    last_line = max(i for i, line in enumerate(lines) if line.startswith("  [tuned] "))
    done = next(i for i, line in enumerate(lines) if line.startswith("tuned: done in"))
    assert last_line < done, "a stage's last lines come before its done line"


def test_plain_progress_from_worker_processes(shop):
    result = cli("run", shop, "--jobs", "2")
    assert result.code == 0, result.text
    lines = _progress_lines(result.out)
    assert [line for line in lines if line.startswith("  [tuned] epoch ")][-1].startswith("  [tuned] epoch 3/3")
    done = next(i for i, line in enumerate(lines) if line.startswith("tuned: done in"))
    assert max(i for i, line in enumerate(lines) if line.startswith("  [tuned]")) < done


def test_quiet_prints_the_summary_but_no_progress(shop):
    result = cli("run", shop, "--quiet")
    assert result.code == 0, result.text
    assert "running" not in result.out and "[tuned]" not in result.out
    assert "check:" in result.out and "tuned" in result.out  # the evaluate table


def test_quiet_still_reports_a_failure(shop):
    shop.write_text(shop.read_text().replace("value: 4}", "value: 4, fail: true}"))
    result = cli("run", shop, "--quiet")
    assert result.code == 1
    assert "small: FAILED" in result.out and "failed on purpose" in result.out
    assert "running" not in result.out


def test_live_view_shows_states_timings_and_the_epoch_bar(shop):
    from rich.console import Console

    from compressflow.api import open_cache
    from compressflow.dsl import load_pipeline
    from compressflow.executor.plan import make_plan
    from compressflow.executor.task import CACHED, RAN, TaskOutcome
    from compressflow.cli.progress import LiveReporter, StageRow

    pipeline = load_pipeline(shop)
    plan = make_plan(pipeline, open_cache(pipeline, log=lambda text: None))
    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    live = LiveReporter(console=console)
    for name, item in plan.stages.items():  # what begin() shows, without starting the redraw thread
        live.rows[name] = StageRow(name, item.stage.kind, key=item.key.key[:10])
    live.title = "shop"
    live.stage_finished("large", TaskOutcome("large", CACHED))
    live.stage_finished("medium", TaskOutcome("medium", RAN, seconds=1.25))
    live.stage_started("tuned")
    live.stage_event({"event": "epoch", "stage": "tuned", "epoch": 1, "epochs": 4, "loss": 0.5, "accuracy": 0.75})
    live.stage_event({"event": "step", "stage": "tuned", "epoch": 2, "epochs": 4, "step": 2, "steps": 4,
                      "loss": 0.4, "accuracy": 0.8})
    console.print(live.render())
    frame = console.export_text()
    rows = {line.split()[1]: line for line in frame.splitlines()[1:] if len(line.split()) > 1}
    assert "cached" in rows["large"] and "key " in rows["large"]
    assert "done" in rows["medium"] and "1.2s" in rows["medium"]
    assert "running" in rows["tuned"]
    assert "epoch 1/4  step 2/4  loss 0.4000  acc 0.8000" in rows["tuned"]
    assert "━" in rows["tuned"], "no progress bar for the training stage"
    assert "waiting" in rows["check"]
    assert live.rows["tuned"].fraction() == (1 + 2 / 4) / 4


def test_live_view_of_many_stages_keeps_running_ones_in_a_short_terminal():
    from rich.console import Console

    from compressflow.executor.task import RAN, TaskOutcome
    from compressflow.cli.progress import LiveReporter, StageRow

    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=12, record=True)
    live = LiveReporter(console=console)
    for i in range(30):
        live.rows[f"s{i:02d}"] = StageRow(f"s{i:02d}", "toy")
    for i in range(20):
        live.stage_finished(f"s{i:02d}", TaskOutcome(f"s{i:02d}", RAN, seconds=1.0))
    live.stage_started("s25")
    console.print(live.render())
    lines = console.export_text().splitlines()
    assert len(lines) <= 12
    assert any(line.split()[1:3] == ["s25", "toy"] and "running" in line for line in lines if len(line.split()) > 2)
    assert lines[-1].strip().startswith("… 23 more stages")  # 7 rows fit: height 12 - 5 lines around them
