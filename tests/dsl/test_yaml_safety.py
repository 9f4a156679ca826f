"""Reading YAML: syntax, tags, aliases, nesting, encodings and sizes give one clear located error."""

from __future__ import annotations

import tracemalloc

import pytest

from compressflow.dsl import load_pipeline, yaml_source
from compressflow.dsl.limits import MAX_DEPTH, MAX_FILE_BYTES
from compressflow.dsl.located import LocatedDict
from compressflow.dsl.yaml_source import parse_yaml
from compressflow.errors import Location, PipelineError
from dsl_helpers import HEAD, only

# Stage `a` is on lines 9-12; tests add fields from line 13 on.
STAGE = "  b: {type: load, builder: 'm:f'}\n  a:\n    type: fine_tune\n    model: b\n    data: digits\n"


def test_syntax_error_is_located(problems_of):
    problem = only(problems_of(HEAD + "  a: [1, 2\n  b: 3\n"))
    assert problem.message.startswith("YAML syntax error")
    assert problem.location.line == 9


def test_tab_indentation_is_a_syntax_error_at_the_tab(problems_of):
    problem = only(problems_of("version: 1\nname: t\nstages:\n\ta: 1\n"))
    assert (problem.location.line, problem.location.column) == (4, 1)


def test_an_error_at_the_end_of_a_file_without_a_final_line_break_is_inside_the_file(problems_of):
    problem = only(problems_of("name: t\nstages: {"))
    assert (problem.location.line, problem.location.column) == (2, 10)
    assert "line 3" not in problem.message


def test_a_lone_carriage_return_starts_a_line_as_yaml_counts_them(problems_of):
    problem = only(problems_of("name: t\r\x1f"))
    assert problem.message.startswith("invalid character in YAML")
    assert (problem.location.line, problem.location.column) == (2, 1)


def test_python_tag_is_refused_and_nothing_is_constructed(problems_of, tmp_path):
    marker = tmp_path / "pwned"
    text = HEAD + f"  a: !!python/object/apply:os.system ['touch {marker}']\n"
    problem = only(problems_of(text))
    assert "tag '!!python/object/apply:os.system' is not allowed" in problem.message
    assert (problem.location.line, problem.location.column) == (8, 6)
    assert not marker.exists()


@pytest.mark.parametrize("value", ["!!python/name:os.system x", "!!binary aGVsbG8=", "!!set {a}",
                                   "!custom 1", "!!omap [{a: 1}]", "!!python/tuple [1, 2]"])
def test_non_standard_tags_are_refused(problems_of, value):
    problem = only(problems_of(HEAD + f"  a: {value}\n"))
    assert "is not allowed" in problem.message
    assert problem.location.line == 8


def test_tag_on_a_key_is_refused(problems_of):
    problem = only(problems_of(HEAD + "  ? !!python/name:os.system a\n  : 1\n"))
    assert "is not allowed" in problem.message
    assert problem.location.line == 8


def test_standard_explicit_tags_are_accepted(write):
    path = write(HEAD + "  a:\n    type: fine_tune\n    model: !!str b\n    data: digits\n    epochs: !!int '4'\n"
                 "  b: {type: load, builder: 'm:f'}\n")
    pipeline = load_pipeline(path)
    assert pipeline.stages["a"].epochs == 4


@pytest.mark.parametrize("value", ["!!bool maybe", "!!int ''", "!!int abc", "!!float abc", "!!int 0x"])
def test_standard_tags_with_values_they_do_not_fit(problems_of, value):
    problem = only(problems_of(HEAD + STAGE + f"    epochs: {value}\n"))
    assert "out of range or malformed" in problem.message
    assert problem.location.line == 13


def test_duplicate_key_names_both_lines(problems_of):
    problem = only(problems_of(HEAD + STAGE + "    epochs: 1\n    epochs: 2\n"))
    assert "duplicate key 'epochs'" in problem.message
    assert "line 13" in problem.message and "line 14" in problem.message
    assert (problem.location.line, problem.location.column) == (14, 5)
    assert problem.path == ("stages", "a", "epochs")


def test_duplicate_stage_names_are_reported(problems_of):
    text = HEAD + "  a: {type: load, builder: 'm:f'}\n  a: {type: load, builder: 'm:g'}\n"
    problem = only(problems_of(text))
    assert "duplicate key 'a'" in problem.message
    assert problem.location.line == 9


def test_alias_bomb_fails_fast(write):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "version: 1\nname: t\nparams:\n  " + "\n  ".join(levels) + "\nstages: {}\n"
    tracemalloc.start()
    try:
        with pytest.raises(PipelineError) as info:
            load_pipeline(write(text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # NOTE: expanded, the bomb is 9**10 strings; refused at the alias bound, reading it stays small.
    assert peak < 64 * 1024 * 1024, f"{peak / 2**20:.0f} MiB allocated while reading an alias bomb"
    problem = only(info.value.problems)
    assert "aliases add more than" in problem.message


def test_plain_aliases_are_allowed_and_located_at_their_use(write):
    path = write(HEAD + "  a:\n    type: evaluate\n    models: &m [b]\n    data: digits\n"
                 "  c:\n    type: evaluate\n    models: *m\n    data: digits\n"
                 "  b: {type: load, builder: 'm:f'}\n")
    pipeline = load_pipeline(path)
    assert pipeline.stages["c"].models == ["b"]
    assert pipeline.location_of(("stages", "c", "models")).line == 14
    assert pipeline.location_of(("stages", "a", "models")).line == 10


def test_merge_keys_work_and_written_keys_win(write):
    path = write(HEAD + "  base: &train {type: fine_tune, model: m, data: digits, epochs: 2}\n"
                 "  more:\n    <<: *train\n    epochs: 7\n  m: {type: load, builder: 'm:f'}\n")
    pipeline = load_pipeline(path)
    assert pipeline.stages["more"].epochs == 7
    assert pipeline.stages["more"].model == "m"


@pytest.mark.parametrize("text, message", [
    ("a: &x [*x]\n", "recursive alias"),
    ("a: &x {b: *x}\n", "recursive alias"),
    ("a: *nothing\n", "refers to no anchor"),
])
def test_bad_aliases(text, message):
    with pytest.raises(PipelineError) as info:
        parse_yaml(text, "f.yaml")
    assert message in only(info.value.problems).message


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(problems_of):
    problem = only(problems_of("version: 1\nname: t\nparams:\n  x: " + "[" * 10_000 + "]" * 10_000 + "\n"))
    assert f"nested more than {MAX_DEPTH} levels" in problem.message
    assert problem.location.line == 4


def test_deep_nesting_through_aliases_is_bounded():
    inner = "[" * 90 + "]" * 90
    text = f"a: &a {inner}\nb: &b [[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]\n"
    with pytest.raises(PipelineError) as info:
        parse_yaml(text, "f.yaml")
    assert "nested more than" in only(info.value.problems).message


def test_nesting_within_the_limit_is_fine():
    value = parse_yaml("x: " + "[" * 50 + "]" * 50, "f.yaml").value
    assert isinstance(value, LocatedDict)


def test_non_utf8_bytes_are_located(problems_of):
    problem = only(problems_of(b"version: 1\nname: t\nstages:\n  a\xff\xfe: 1\n"))
    assert "not valid UTF-8" in problem.message
    assert (problem.location.line, problem.location.column) == (4, 4)


def test_utf8_byte_order_mark_is_accepted(write):
    path = write(("\ufeff" + HEAD + "  a: {type: load, builder: 'm:f'}\n").encode("utf-8"))
    assert list(load_pipeline(path).stages) == ["a"]


def test_control_characters_are_located(problems_of):
    problem = only(problems_of(b"version: 1\nname: t\x01\n"))
    assert problem.location.line == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(problems_of, text):
    problem = only(problems_of(text))
    assert "empty" in problem.message
    assert problem.location == Location(problem.location.file, 1, 1)


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "a list"), ("just text\n", "a string"),
                                        ("42\n", "a int"), ("~\n", "null")])
def test_top_level_must_be_a_mapping(problems_of, text, kind):
    problem = only(problems_of(text))
    assert "must be a mapping" in problem.message and kind in problem.message
    assert problem.location.line == 1


def test_several_documents_are_refused(problems_of):
    problem = only(problems_of(HEAD + "  a: {type: load, builder: 'm:f'}\n---\nname: other\n"))
    assert "one YAML document" in problem.message
    assert problem.location.line == 9


def test_huge_file_is_refused_quickly(write, monkeypatch):
    path = write(b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    read, parsed = [], []
    real_read, real_parse = yaml_source._read_regular_file, yaml_source.parse_yaml
    monkeypatch.setattr(yaml_source, "_read_regular_file", lambda *a: read.append(real_read(*a)) or read[-1])
    monkeypatch.setattr(yaml_source, "parse_yaml", lambda *a, **k: parsed.append(a) or real_parse(*a, **k))
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB" in only(info.value.problems).message
    # NOTE: refused after reading one byte past the bound, and never parsed.
    assert [len(data) for data in read] == [MAX_FILE_BYTES + 1] and parsed == []


def test_huge_integer_is_a_range_error(problems_of):
    problem = only(problems_of(HEAD + STAGE + "    epochs: 99999999999999999999999999999\n"))
    assert "out of range" in problem.message
    assert problem.location.line == 13


def test_integer_with_thousands_of_digits_is_a_range_error(problems_of):
    problem = only(problems_of(HEAD + STAGE + "    epochs: " + "9" * 6000 + "\n"))
    assert "out of range" in problem.message
    assert problem.location.line == 13


def test_missing_file():
    with pytest.raises(PipelineError) as info:
        load_pipeline("/nonexistent/pipeline.yaml")
    assert "file not found" in only(info.value.problems).message


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(PipelineError) as info:
        load_pipeline(tmp_path)
    assert "is a directory" in only(info.value.problems).message


def test_yaml_keys_are_taken_as_written():
    """`yes:` and `1:` as keys are names, not a boolean and a number."""
    value = parse_yaml("yes: 1\n1: 2\nnull: 3\n", "f.yaml").value
    assert list(value) == ["yes", "1", "null"]


def test_complex_keys_are_refused():
    parsed = parse_yaml("? [a, b]\n: 1\nc: 2\n", "f.yaml")
    assert "keys must be plain names" in only(parsed.problems).message
    assert dict(parsed.value) == {"c": 2}


def test_locations_are_one_based_and_count_characters():
    value = parse_yaml("é: {ü: 1, f: x}\n", "f.yaml").value
    assert value["é"].value_location("f") == Location("f.yaml", 1, 14)
    assert value.key_location("é") == Location("f.yaml", 1, 1)
