"""Sweeps: expand every stage with a ``matrix:`` into its variants, and fan out what uses them.

* A stage with a matrix becomes one stage per combination of values, named
  ``stage[label=value,...]`` (:mod:`~compressflow.dsl.matrix`).
* A single-stage reference (``model: pruned``) to a swept stage makes the referring
  stage fan out: one variant per variant of ``pruned``, carrying its labels first and
  the stage's own matrix labels after (``int8[final_sparsity=0.7,method=dynamic]``).
  When two references lead back to the same sweep, only variants with the same value
  for it are combined (a diamond stays a diamond, it does not become a product).
* A list reference (``models: [pruned, int8]``) collects every variant of a swept stage,
  in order; in a variant of a fanned-out stage, only the variants that agree with it.
* A reference may name one variant exactly (``model: "pruned[final_sparsity=0.7]"``).

Generated stages are copies of the written one: each value keeps the location it was
written at (a swept value, the location of its item in the matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

from compressflow.errors import Problem
from compressflow.dsl.digraph import CycleFound, DiGraph, topological_order
from compressflow.dsl.located import LocatedDict, LocatedList, ValueBudget, copy_located
from compressflow.dsl.matrix import Setting, apply_setting, combinations, take_matrix
from compressflow.dsl.names import base_name, variant_name
from compressflow.dsl.problems import Problems
from compressflow.stages.base import Stage

#: Most stages a pipeline may have once its sweeps are expanded.
MAX_EXPANDED_STAGES = 20_000
#: Most variants one stage may have after fanning out.
MAX_STAGE_VARIANTS = 1000


@dataclass(frozen=True)
class Label:
    """One swept value a variant carries: which stage swept which field, and the value's text."""

    origin: str
    path: tuple[str, ...]
    text: str

    @property
    def identity(self) -> tuple[str, tuple[str, ...]]:
        return (self.origin, self.path)


@dataclass(frozen=True)
class Variant:
    name: str
    labels: tuple[Label, ...]


def expand_sweeps(document: LocatedDict, stage_classes: dict[str, type[Stage]], problems: Problems) -> None:
    """Replace every swept stage (and every stage fanning out from one) by its variants, in place."""
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict):
        return
    axes = {}
    for name, config in stages.items():
        if isinstance(config, LocatedDict) and "matrix" in config:
            kind = config.get("type")
            known_type = isinstance(kind, str) and kind in stage_classes
            before = len(problems)
            found = take_matrix(document, name, config, known_type, problems)
            if found:
                axes[name] = found
            elif len(problems) > before:
                problems.mark_invalid(("stages", name))  # without its sweep the stage cannot be judged
    order = _order(stages, stage_classes) if axes else None
    if order is None:
        return  # nothing swept (or a cycle, which the reference check reports)
    expansion = _Expansion(stages, stage_classes, problems, ValueBudget(document))
    for name in order:
        expansion.expand(name, axes.get(name, []))
    expanded = LocatedDict(stages.location)
    for name in stages:
        for variant_config_name, config in expansion.configs.get(name, [(name, stages[name])]):
            expanded.put(variant_config_name, config, stages.key_location(name), stages.value_location(name))
            if variant_config_name != name:
                problems.copy_invalid(("stages", name), ("stages", variant_config_name))
    document.put("stages", expanded, document.key_location("stages"), document.value_location("stages"))


class _Expansion:
    """Variants of the stages expanded so far."""

    def __init__(self, stages: LocatedDict, stage_classes: dict[str, type[Stage]], problems: Problems,
                 budget: ValueBudget):
        self.stages = stages
        self.budget = budget
        self.classes = stage_classes
        self.problems = problems
        self.variants: dict[str, list[Variant]] = {}
        self.configs: dict[str, list[tuple[str, LocatedDict]]] = {}
        self.total = 0

    def swept(self, name: object) -> list[Variant] | None:
        """The variants of ``name`` when it is a swept (or fanned-out) stage."""
        found = self.variants.get(name) if isinstance(name, str) else None
        return found if found and found[0].labels else None

    def expand(self, name: str, axes: list) -> None:
        """Make the variants of stage ``name`` (its own ``axes`` combined with what it fans out over)."""
        config = self.stages[name]
        if not isinstance(config, LocatedDict):
            return
        fields = _reference_fields(config, self.classes)
        made = self._combine(name, config, axes, fields)
        if made is None:
            self.problems.mark_invalid(("stages", name))  # reported: its variants cannot be made
            return
        if len(made) == 1 and not made[0][0]:  # neither swept nor fanned out
            self.variants[name] = [Variant(name, ())]
            self._collect(made[0][1], fields, ())
            return
        self.total += len(made)
        named = [(variant_name(name, _display(labels)), labels, variant_config) for labels, variant_config in made]
        if self.total > MAX_EXPANDED_STAGES:
            self.problems.invalid(Problem(f"sweeps expand the pipeline to more than {MAX_EXPANDED_STAGES:,} stages",
                                          self.stages.key_location(name), ("stages", name)))
            return
        if not self._distinct(name, named):
            self.problems.mark_invalid(("stages", name))
            return
        for _, labels, variant_config in named:
            self._collect(variant_config, fields, labels)
        self.variants[name] = [Variant(variant, labels) for variant, labels, _ in named]
        self.configs[name] = [(variant, variant_config) for variant, _, variant_config in named]

    def _combine(self, name: str, config: LocatedDict, axes: list,
                 fields: list[str]) -> list[tuple[tuple[Label, ...], LocatedDict]] | None:
        """``(labels, config)`` of every variant, upstream values varying slowest; None after a problem."""
        made: list[tuple[tuple[Label, ...], LocatedDict]] = []
        order: list[tuple] = []
        for own_index, settings in enumerate(combinations(axes) if axes else [()]):
            if settings:
                where = settings[0].axis.key_location
                self.budget.add(config, where, ("stages", name, "matrix"), "sweeps")
                for setting in settings:  # NOTE: a value is shared, yet each variant is validated and hashed
                    self.budget.add(setting.value, setting.location, ("stages", name, "matrix"), "sweeps")
            own = copy_located(config) if settings else config
            if not self._apply(name, own, settings):
                return None
            own_labels = tuple(Label(name, s.axis.path, s.text) for s in settings)
            for upstream, picked, variant_config in self._fan_out(name, own, fields):
                made.append((upstream + own_labels, variant_config))
                order.append((picked, own_index))
            if len(made) > MAX_STAGE_VARIANTS:
                self.problems.append(Problem(
                    f"stage '{name}' fans out into more than {MAX_STAGE_VARIANTS:,} variants",
                    self.stages.key_location(name), ("stages", name),
                    hint="it combines the variants of the swept stages it names; sweep fewer values"))
                return None
        if not made:
            self.problems.append(Problem(f"no combination of the variants stage '{name}' names agrees",
                                         self.stages.key_location(name), ("stages", name)))
            return None
        # NOTE: sorted so that names read in order: int8[final_sparsity=0.7,method=int8], ...=dynamic], 0.8...
        return [made[index] for index in sorted(range(len(made)), key=order.__getitem__)]

    def _apply(self, name: str, config: LocatedDict, settings: tuple[Setting, ...]) -> bool:
        for setting in settings:
            error = apply_setting(config, setting)
            if error:
                self.problems.append(Problem(error, setting.axis.key_location,
                                             ("stages", name, "matrix", ".".join(setting.axis.path))))
                return False
        return True

    def _fan_out(self, name: str, config: LocatedDict,
                 fields: list[str]) -> list[tuple[tuple[Label, ...], tuple, LocatedDict]]:
        """``(labels, variant positions, config)`` once per combination of the swept stages it names."""
        partial: list[tuple[tuple[Label, ...], tuple, LocatedDict]] = [((), (), config)]
        for field in fields:
            variants = self.swept(config.get(field))
            if variants is None:
                continue
            grown = []
            for labels, picked, current in partial:
                for position, variant in enumerate(variants):
                    merged = _merge(labels, variant.labels)
                    if merged is None:
                        continue  # disagrees with a value this combination already has
                    self.budget.add(current, current.value_location(field), ("stages", name, field), "sweeps")
                    copied = copy_located(current)
                    copied.put(field, variant.name, current.key_location(field), current.value_location(field))
                    grown.append((merged, picked + (position,), copied))
            partial = grown
        return partial

    def _collect(self, config: LocatedDict, fields: list[str], labels: tuple[Label, ...]) -> None:
        """In list references, replace each swept stage by its variants that agree with ``labels``."""
        for field in fields:
            items = config.get(field)
            if not isinstance(items, LocatedList) or not any(self.swept(item) for item in items):
                continue
            collected = LocatedList(items.location)
            for index, item in enumerate(items):
                variants = self.swept(item)
                if variants is None:
                    collected.add(item, items.item_location(index), items.note(index))
                    continue
                for variant in variants:
                    if _merge(labels, variant.labels) is not None:
                        collected.add(variant.name, items.item_location(index), items.note(index))
            config.put(field, collected, config.key_location(field), config.value_location(field),
                       config.note(field))

    def _distinct(self, name: str, named: list) -> bool:
        seen: dict[str, int] = {}
        for index, (variant, _, _) in enumerate(named):
            if variant in seen:
                self.problems.append(Problem(
                    f"two variants of stage '{name}' would both be named '{variant}'",
                    self.stages.key_location(name), ("stages", name),
                    hint="swept values must read differently (e.g. not both 1 and '1')"))
                return False
            seen[variant] = index
        return True


def _merge(labels: tuple[Label, ...], more: tuple[Label, ...]) -> tuple[Label, ...] | None:
    """``labels`` followed by the labels of ``more`` it lacks; None when the two disagree."""
    known = {label.identity: label.text for label in labels}
    added = []
    for label in more:
        text = known.get(label.identity)
        if text is None:
            added.append(label)
            known[label.identity] = label.text
        elif text != label.text:
            return None
    return labels + tuple(added)


def _display(labels: tuple[Label, ...]) -> list[tuple[str, str]]:
    """``label=value`` pairs; a label shared by two sweeps is qualified by its stage and field path."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label.path[-1]] = counts.get(label.path[-1], 0) + 1
    return [(label.path[-1] if counts[label.path[-1]] == 1 else f"{label.origin}.{'.'.join(label.path)}",
             label.text) for label in labels]


def _reference_fields(config: LocatedDict, stage_classes: dict[str, type[Stage]]) -> list[str]:
    kind = config.get("type")
    cls = stage_classes.get(kind) if isinstance(kind, str) else None
    return cls.stage_ref_fields() if cls is not None else []


def _targets(config: object, stage_classes: dict[str, type[Stage]]) -> list[str]:
    if not isinstance(config, LocatedDict):
        return []
    out = []
    for field in _reference_fields(config, stage_classes):
        value = config.get(field)
        items = value if isinstance(value, list) else [value]
        out.extend(base_name(item) for item in items if isinstance(item, str))
    return out


def _order(stages: LocatedDict, stage_classes: dict[str, type[Stage]]) -> list[str] | None:
    """Stages with what they reference first (file order otherwise); None when they form a cycle."""
    graph = DiGraph()
    graph.add_nodes_from(stages)
    for name, config in stages.items():
        graph.add_edges_from((target, name) for target in _targets(config, stage_classes)
                             if target in stages and target != name)
    position = {name: index for index, name in enumerate(stages)}
    try:
        return topological_order(graph, key=position.__getitem__)
    except CycleFound:
        return None
