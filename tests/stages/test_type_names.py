"""A stage or dataset type has one name: its ``type: Literal[...]`` field; ``kind`` follows from it."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest

from compressflow.dsl import load_pipeline
from compressflow.executor.keys import stage_key
from compressflow.stages.base import Dataset, Environment, Stage
from compressflow.stages.registry import RegistryError, register_dataset, register_stage, stage_types


def test_kind_is_taken_from_the_type_literal_and_keys_use_it(tmp_path):
    @register_stage
    class Named(Stage):
        type: Literal["tn_named"] = "tn_named"

    assert Named.kind == "tn_named"
    assert stage_types()["tn_named"] is Named
    (tmp_path / "p.yaml").write_text("name: p\nstages:\n  a: {type: tn_named}\n")
    pipeline = load_pipeline(tmp_path / "p.yaml")
    key = stage_key("a", pipeline.stages["a"], {}, Environment(pipeline_dir=tmp_path))
    assert key.doc["type"] == "tn_named"


def test_a_kind_that_differs_from_the_type_literal_is_refused_where_the_class_is_made():
    with pytest.raises(TypeError, match=r"sets kind = 'tn_one', but its 'type' field is Literal\['tn_other'\]"):
        class Mismatched(Stage):
            kind: ClassVar[str] = "tn_one"
            type: Literal["tn_other"] = "tn_other"


def test_a_kind_without_a_type_literal_is_refused():
    with pytest.raises(TypeError, match=r"its 'type' field is not Literal\['tn_loose'\]"):
        class Loose(Dataset):
            kind: ClassVar[str] = "tn_loose"


def test_a_type_literal_names_exactly_one_type():
    with pytest.raises(TypeError, match="exactly one name"):
        class Twice(Stage):
            type: Literal["tn_a", "tn_b"] = "tn_a"


def test_a_kind_changed_after_the_class_was_made_is_refused_at_registration():
    class Renamed(Stage):
        type: Literal["tn_renamed"] = "tn_renamed"

    Renamed.kind = "tn_elsewhere"
    with pytest.raises(RegistryError, match=r"has kind 'tn_elsewhere' but its 'type' field is Literal\['tn_renamed'\]"):
        register_stage(Renamed)
    assert "tn_elsewhere" not in stage_types() and "tn_renamed" not in stage_types()


def test_a_class_without_a_type_name_cannot_be_registered():
    class Abstract(Dataset):
        pass

    assert Abstract.kind == ""
    with pytest.raises(RegistryError, match="has no type name"):
        register_dataset(Abstract)


def test_subclasses_get_their_own_name_or_none():
    class Parent(Stage):
        type: Literal["tn_parent"] = "tn_parent"

    class Child(Parent):
        type: Literal["tn_child"] = "tn_child"

    class Widened(Parent):
        type: str = "anything"

    assert (Parent.kind, Child.kind, Widened.kind) == ("tn_parent", "tn_child", "")


def test_every_registered_type_validates_under_the_name_it_is_keyed_by():
    from compressflow.stages.base import literal_type_name
    from compressflow.stages.registry import dataset_types

    for name, cls in [*stage_types().items(), *dataset_types().items()]:
        assert name == cls.kind == literal_type_name(cls)
