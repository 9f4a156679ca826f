"""What a failed run says (no TensorFlow): a failed gate's reason whole and wrapped, what to change
after a failed gate, and how to resume after a crash."""

from __future__ import annotations

import itertools
import re

from helpers import cli

GATE = "    require: {max_accuracy_drop: 0.01, min_compression: 10, models: [small, tuned]}\n"


def _with_gate(shop, small: str = "4"):
    """The shop pipeline with ``small``'s value from a param and a gate its models miss."""
    text = shop.read_text().replace("stages:\n", f"params:\n  big: {small}\nstages:\n", 1)
    text = text.replace("small: {type: toy_number, value: 4}", 'small: {type: toy_number, value: "${params.big}"}')
    shop.write_text(text + GATE)
    return shop


def _reasons() -> list[str]:
    """The gate's reasons as the real gate code words them, for the shop's figures with big=3."""
    from compressflow.stages.evaluate import Requirements
    from compressflow.stages.gates import unmet_requirements
    from compressflow.stages.model_measurements import compare

    models = {name: {"accuracy": accuracy, "gzip_bytes": int(90000 / value), "file_bytes": int(100000 / value),
                     "latency_ms_median": 1.0 / value}
              for name, accuracy, value in (("large", 0.95, 1), ("tuned", 0.97, 2), ("small", 0.93, 3))}
    for name in ("tuned", "small"):
        models[name].update(compare(models[name], models["large"]))
    return unmet_requirements(Requirements(max_accuracy_drop=0.01, min_compression=10, models=["small", "tuned"]),
                              models, "large")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_plain_output_prints_a_failed_gate_whole_wrapped_to_the_terminal(shop):
    result = cli("run", _with_gate(shop), "--set", "params.big=3", env={"COLUMNS": "72"})
    assert result.code == 1, result.text
    block = result.out[result.out.index("check: FAILED"):].split("\n\n", 1)[0]
    lines = block.splitlines()
    assert len(lines) > 1 + len(_reasons()), block  # every reason is on lines of its own, and some wrap
    assert all(len(line) <= 72 for line in lines), block
    for reason in _reasons():
        assert _words(reason) in _words(block), f"{reason!r} is not whole in:\n{block}"
    assert all(line.startswith("  ") for line in lines[1:]), block  # continuations are indented
    heads = [i for i, line in enumerate(lines) if line.startswith("  model ")]
    assert all(lines[i + 1].startswith("    ") for i in heads if i + 1 < len(lines)), block


def test_live_view_prints_a_failed_gate_whole_and_its_first_line_in_the_table(shop):
    result = cli("run", _with_gate(shop), "--set", "params.big=3", "--progress", "live", env={"COLUMNS": "80"})
    assert result.code == 1, result.text
    printed = result.out[result.out.index("✗ check failed"):]
    block, frame = printed.split("\ncompressflow shop", 1)
    assert all(len(line) <= 80 for line in block.splitlines()), block
    for reason in _reasons():
        assert _words(reason) in _words(block), f"{reason!r} is not whole in:\n{block}"
    assert "…" not in block
    table = frame.splitlines()
    row = next(i for i, line in enumerate(table) if line.split()[1:2] == ["check"])
    wrapped = list(itertools.takewhile(lambda line: line.startswith(" "), table[row + 1:]))
    assert all(len(line) <= 80 for line in table[:row + 1 + len(wrapped)]), table
    assert re.match(r"^✗ check +toy_evaluate +failed +\d+\.\ds ", table[row]), table[row]
    cell = _words(" ".join([re.sub(r"^.* failed +\d+\.\ds ", "", table[row]), *wrapped]))
    assert cell.startswith(f"evaluate stage 'check': {len(_reasons())} requirements not met:"), table
    assert "…" not in cell


def test_failed_gate_says_what_to_change_not_to_run_the_same_command_again(shop):
    path = _with_gate(shop)
    result = cli("run", path, "--set", "params.big=3")
    assert result.code == 1, result.text
    assert "resume with" not in result.err
    require_line = path.read_text().splitlines().index(GATE.rstrip("\n")) + 1
    assert f"the requirement: require: of stage 'check' in {path}:{require_line}:5" in result.err, result.err
    assert "params.big (now 3, from --set params.big), which small uses:" in result.err, result.err
    assert f"compressflow run {path} --set params.big=<value>\n" in result.err, result.err
    assert "the config of the stages that made its inputs: small, medium, large, tuned" in result.err
    assert "a rerun gives the same result" in result.err

    again = cli("run", path, "--set", "params.big=3")  # indeed: cached inputs, the same answer
    assert again.code == 1 and "0 ran, 4 cached" in again.err, again.text
    loosened = cli("run", path, "--set", "params.big=3", "--set", "stages.check.require.max_accuracy_drop=0.05",
                   "--set", "stages.check.require.min_compression=1")
    assert loosened.code == 0, loosened.text


def test_a_crash_still_says_how_to_resume(shop):
    shop.write_text(shop.read_text().replace("value: 4}", "value: 4, fail: true}"))
    result = cli("run", shop)
    assert result.code == 1, result.text
    assert f"resume with:\n  compressflow run {shop}\n" in result.err, result.err
    assert "To pass, change" not in result.err
