"""Whatever the input, loading gives a Pipeline or a PipelineError, never another exception, and every
problem of the error is located: ``file:line:column`` inside the file it names (the file loaded or one it
includes; ``<dict>`` for a dict), with no traceback in the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressflow.dsl import Pipeline, load_pipeline
from compressflow.errors import PipelineError
from dsl_helpers import DESIGN_EXAMPLE, assert_every_problem_located, texts_in

NAMES = st.sampled_from(["version", "name", "seed", "params", "datasets", "stages", "type", "model", "data",
                         "models", "after", "epochs", "schedule", "method", "to", "builder", "digits", "base",
                         "pruned", "a/b", "1", "", "${params.x}", "<<", "sparsity", "include", "templates",
                         "extends", "matrix"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["prune", "load", "fine_tune", "evaluate", "sklearn_digits", "${params.sparsity}",
                     "$${x}", "${params.", "${env.X}", "base", "digits", "m:f", "int8", "1e-3", "yes"]),
)
VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.one_of(NAMES, st.text(max_size=8)), children, max_size=5)),
    max_leaves=30)
STAGES = st.dictionaries(NAMES, st.fixed_dictionaries({"type": st.sampled_from(
    ["load", "fine_tune", "prune", "quantize", "evaluate", "export", "distill", "cluster", "prnue"])},
    optional={"model": NAMES, "data": NAMES, "models": st.lists(NAMES, max_size=3), "epochs": SCALARS,
              "builder": SCALARS, "schedule": VALUES, "method": SCALARS, "to": SCALARS, "after": VALUES,
              "extends": NAMES}),
    max_size=4)
DOCUMENTS = st.one_of(
    VALUES,
    st.fixed_dictionaries({"name": SCALARS, "stages": STAGES},
                          optional={"version": SCALARS, "seed": SCALARS, "params": VALUES, "datasets": VALUES,
                                    "templates": st.dictionaries(NAMES, VALUES, max_size=3),
                                    "include": st.lists(st.sampled_from(["nope.yaml", "", ".", "../x.yaml"]),
                                                        max_size=2),
                                    "extra": VALUES}),
)
OVERRIDES = st.lists(st.one_of(st.text(max_size=30), st.sampled_from(
    ["params.sparsity=0.9", "stages.base.epochs=x", "seed=[1", "name=", "stages=1", "a.b.c=d"])), max_size=3)

pytestmark = pytest.mark.slow  # hundreds of generated documents per test

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def load_or_error(source, **kwargs) -> None:
    """Load ``source``: a Pipeline, or a PipelineError whose every problem is located in ``source`` (for a
    file, or in a file beside it that it includes) or in one of the ``overrides``."""
    try:
        result = load_pipeline(source, **kwargs)
    except PipelineError as exc:
        files = texts_in(source.parent) if isinstance(source, Path) else {"<dict>": None}
        # NOTE: an override is located at the name it is given on the command line (``--set KEY=...``).
        for item in kwargs.get("overrides") or ():
            files.update({f"<--set {item}>": None, f"<--set {item.partition('=')[0].strip()}>": None})
        assert_every_problem_located(exc, files)
        return
    assert isinstance(result, Pipeline)


@FUZZ
@given(document=DOCUMENTS, overrides=OVERRIDES)
def test_documents_as_dicts(document, overrides):
    load_or_error(document if isinstance(document, dict) else {"doc": document}, overrides=overrides)


@FUZZ
@given(document=DOCUMENTS)
def test_documents_as_yaml_files(tmp_path, document):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True) if _dumpable(document) else "x: 1\n",
                    encoding="utf-8", errors="surrogatepass")
    load_or_error(path)


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    load_or_error(path)


YAML_PIECES = st.sampled_from([
    "version: 1\n", "name: t\n", "stages:\n", "  a:\n", "    type: prune\n", "    model: a\n", "  - x\n",
    "params: {x: &a [1, 2]}\n", "b: *a\n", "c: *nope\n", "<<: {a: 1}\n", "{", "}", "[", "]", ": ", "---\n",
    "!!python/object:os.system\n", "\t", "${params.x}", "'", '"', "&x ", "*x ", "? ", "- ", "#", "\n",
    "    epochs: 1e400\n", "    epochs: .nan\n", "  b: {type: load, builder: 'm:f', after: [a]}\n", "\x00",
    "include: [other.yaml]\n", "include: fuzz.yaml\n", "templates: {t: {type: load}}\n", "    extends: t\n",
    "    matrix: {x: [1]}\n", "!!bool ", "!!int ", "!!float ", "!!null ", "!!str ", "!!timestamp ", "!!merge ",
    "!!seq ", "!!map ", "!!binary ", "maybe", "0x1G", "1:30", "''",
])


@FUZZ
@given(pieces=st.lists(YAML_PIECES, max_size=25))
def test_yaml_shaped_text(tmp_path, pieces):
    path = tmp_path / "fuzz.yaml"
    path.write_text("".join(pieces), encoding="utf-8")
    load_or_error(path)


@FUZZ
@given(position=st.integers(min_value=0, max_value=len(DESIGN_EXAMPLE) - 1), junk=st.text(min_size=1, max_size=5))
def test_mutated_design_example(tmp_path, position, junk):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes((DESIGN_EXAMPLE[:position] + junk + DESIGN_EXAMPLE[position + 1:])
                     .encode("utf-8", errors="surrogatepass"))
    load_or_error(path)


def _dumpable(value) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        yaml.safe_dump(value)
    except Exception:  # keys hypothesis builds may be unrepresentable; not what this tests
        return False
    return True
