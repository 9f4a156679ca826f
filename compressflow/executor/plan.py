"""The plan: for every stage, its cache key and whether it is cached or must run, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressflow.errors import CompressflowError, PipelineError, Problem, UsageError
from compressflow.cache.backend import CacheBackend
from compressflow.dsl.digraph import DiGraph, reaching
from compressflow.dsl.names import local_name
from compressflow.executor.graph import Selection, build_graph, execution_order, forced_stages, requested_stages
from compressflow.executor.keys import StageKey, stage_key
from compressflow.fingerprints import HASH_STATE_NAME, release_state, save_pending, use_state
from compressflow.dsl.gc_pause import cyclic_gc_paused
from compressflow.stages.machine import describe_machine
from compressflow.stages.base import Environment, Stage

CACHED = "cached"
RUN = "run"
SKIP = "skip"  # not requested and not needed


@dataclass
class PlannedStage:
    """One stage of a plan."""

    name: str
    stage: Stage
    key: StageKey
    action: str
    reasons: list[str] = field(default_factory=list)
    requested: bool = True

    @property
    def describe(self) -> str:
        return self.action + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    @property
    def machine(self) -> dict[str, str] | None:
        """The machine this stage's measurements (latency) are keyed by, if they depend on one."""
        return self.key.doc.get("machine")


@dataclass
class Plan:
    """Stages in execution order with their actions; the graph they come from."""

    pipeline: Any
    graph: DiGraph
    env: Environment
    stages: dict[str, PlannedStage]
    _lineage_entries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    _positions: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def to_run(self) -> list[str]:
        return [n for n, s in self.stages.items() if s.action == RUN]

    def machine_note(self) -> str | None:
        """Which stages measure on which machine (their latency is keyed by it), or None when none does."""
        measuring = {n: s.machine for n, s in self.stages.items() if s.machine is not None and s.action != SKIP}
        if not measuring:
            return None
        machines = {describe_machine(m) for m in measuring.values()}
        return (f"latency of {', '.join(measuring)} is measured on machine {', '.join(sorted(machines))}; "
                "another machine measures it again")

    def inputs_of(self, name: str) -> dict[str, str | list[str]]:
        """Reference fields of ``name`` (without ``after``) mapped to stage name(s)."""
        return input_refs(self.stages[name].stage)

    def lineage_of(self, name: str) -> list[dict[str, Any]]:
        """``name`` and every stage upstream of it, in plan order: ``{"stage", "type", "key", "config", "versions"}``.

        Each stage's entry is built once per plan and shared by the lineages that hold it, and
        the upstream walk visits only the stages upstream: the tasks of a sweep of N variants
        cost O(N) together, not O(N^2).
        """
        if not self._positions:
            self._positions.update((stage_name, i) for i, stage_name in enumerate(self.stages))
        upstream = upstream_of(self.graph, {name})
        return [self._lineage_entry(s) for s in sorted(upstream, key=self._positions.__getitem__)]

    def _lineage_entry(self, name: str) -> dict[str, Any]:
        entry = self._lineage_entries.get(name)
        if entry is None:
            item = self.stages[name]
            entry = {"stage": name, "type": item.stage.kind, "key": item.key.key,
                     "config": item.stage.model_dump(mode="json"), "versions": item.key.doc.get("versions", {})}
            self._lineage_entries[name] = entry
        return entry


def input_refs(stage: Stage) -> dict[str, str | list[str]]:
    """A stage's data inputs: reference fields (not ``after``) mapped to a stage name or a list of them."""
    refs = stage.stage_refs()
    refs.pop("after", None)
    return {field_name: list(targets) if isinstance(getattr(stage, field_name), (list, tuple, dict)) else targets[0]
            for field_name, targets in refs.items()}


def seed_name_of(name: str) -> str:
    """The name a stage's seed derives from: its name in its own file.

    Without the sweep variant (``pruned[final_sparsity=0.7]`` -> ``pruned``) and without
    the sub-pipeline namespace (``int8_recipe.prune`` -> ``prune``): the same work seeded
    alike gets the same key in every pipeline that uses the recipe, and the variants of a
    sweep start from the same random state, so they differ only by what the sweep sets.
    """
    return local_name(name)


def compute_keys(pipeline, graph: DiGraph, env: Environment, order: list[str]) -> dict[str, StageKey]:
    """Keys of every stage, inputs first. Fingerprint failures become located problems."""
    keys: dict[str, StageKey] = {}
    problems: list[Problem] = []
    dataset_fingerprints: dict[str, dict] = {}  # each dataset is fingerprinted once per plan
    for name in order:
        stage: Stage = graph.nodes[name]["stage"]
        inputs = input_refs(stage)
        names = [t for ref in inputs.values() for t in (ref if isinstance(ref, list) else [ref])]
        if any(t not in keys for t in names):
            continue  # an input failed to fingerprint; its problem is reported already
        input_keys = {field_name: [keys[t].key for t in ref] if isinstance(ref, list) else keys[ref].key
                      for field_name, ref in inputs.items()}
        try:
            keys[name] = stage_key(name, stage, input_keys, env, seed_name_of(name), dataset_fingerprints)
        except (CompressflowError, OSError, ValueError) as exc:
            message = exc.render().removeprefix("error: ") if isinstance(exc, CompressflowError) else str(exc)
            problems.append(Problem(message, pipeline.location_of(("stages", name)), ("stages", name)))
    if problems:
        raise PipelineError(problems)
    return keys


def needed_stages(graph: DiGraph, requested: set[str]) -> set[str]:
    """``requested`` and everything they depend on, in one walk of the graph."""
    # NOTE: one multi-source walk; nx.ancestors per requested stage is quadratic on long chains.
    if len(requested) == graph.number_of_nodes():
        return set(requested)
    return upstream_of(graph, requested)


def upstream_of(graph: DiGraph, names: set[str]) -> set[str]:
    """``names`` and every stage they depend on, directly or not."""
    return reaching(graph.predecessors, names)


def make_plan(pipeline, cache: CacheBackend, selection: Selection | None = None, *,
              allow_outside_paths: bool = False, verify: bool = False) -> Plan:
    """Decide, for every stage, ``cached`` / ``run`` / ``skip`` and the reasons.

    An entry counts as cached when its files match its manifest's list and sizes; with
    ``verify`` their sha256 too, and an entry that fails is reported, removed and planned
    to run again (the plan then acts on the cache: use it for a run).
    """
    # NOTE: file hashes are remembered beside the cache: an unchanged model or dataset is not reread.
    use_state(Path(cache.local_root) / HASH_STATE_NAME)
    with cyclic_gc_paused():
        plan = _make_plan(pipeline, cache, selection or Selection(), allow_outside_paths, verify)
    save_pending()
    release_state()
    return plan


def _make_plan(pipeline, cache, selection: Selection, allow_outside_paths: bool, verify: bool) -> Plan:
    graph = build_graph(pipeline)
    order = execution_order(graph)
    env = Environment(pipeline_dir=pipeline.root, seed=pipeline.seed, datasets=dict(pipeline.datasets),
                      allow_outside_paths=allow_outside_paths, imports=pipeline.imports)
    keys = compute_keys(pipeline, graph, env, order)
    requested = requested_stages(graph, selection)
    forced = forced_stages(graph, selection, requested)
    needed = needed_stages(graph, requested)

    planned: dict[str, PlannedStage] = {}
    for name in order:
        key = keys[name]
        item = PlannedStage(name, graph.nodes[name]["stage"], key, SKIP, requested=name in requested)
        planned[name] = item
        if name not in needed:
            continue
        status = cache.status(key.key)
        if verify and status == "hit" and name not in forced:
            # NOTE: the cheap status check compares sizes only; a same-size change needs the rehash.
            if cache.lookup(key.key, stage=name, verify=True) is None:
                status = "damaged"
        if name in forced:
            item.action, item.reasons = RUN, ["forced"]
        elif status == "hit":
            item.action = CACHED
        else:
            item.action = RUN
            item.reasons = (["cache entry damaged"] if status == "damaged"
                            else explain_change(cache.get_ref(pipeline.name, name), key))
            if name not in requested:
                item.reasons.append("needed by the selection")
        if item.action == RUN and getattr(item.stage, "driven_by_executor", False):
            item.reasons.append(_driven_note(item, cache))
    if selection.only:
        missing = [n for n, s in planned.items() if s.action == RUN and not s.requested]
        if missing:
            raise UsageError(
                "--only runs just the selected stages, but these inputs are not cached: "
                + ", ".join(missing) + "; run them first or use --until")
    return Plan(pipeline, graph, env, planned)


def _driven_note(item: PlannedStage, cache) -> str:
    """What a stage the executor drives itself (a search) will do: trials in its journal and to run."""
    from compressflow.executor.search_study import journal_summary

    return journal_summary(item.stage, cache.root, item.key.doc)


# --------------------------------------------------------------------------- explanations


def explain_change(previous: dict | None, current: StageKey) -> list[str]:
    """Why ``current`` is not cached, by comparing with the key document used last time."""
    if previous is None:
        return ["new"]
    old = previous.get("key_doc", previous)
    new = current.doc
    if old == new:
        return ["cache entry missing"]
    if old.get("format") != new["format"]:
        return ["key format changed (the entry was made by another compressflow)"]
    reasons: list[str] = []
    if old.get("type") != new["type"] or old.get("implementation") != new["implementation"]:
        reasons.append("stage implementation changed")
    changed = _diff(old.get("config", {}), new["config"])
    if changed:
        reasons.append("config changed: " + ", ".join(changed))
    inputs = sorted(k for k in set(old.get("inputs", {})) | set(new["inputs"])
                    if old.get("inputs", {}).get(k) != new["inputs"].get(k))
    if inputs:
        reasons.append("input changed: " + ", ".join(inputs))
    datasets = sorted(k for k in set(old.get("datasets", {})) | set(new["datasets"])
                      if old.get("datasets", {}).get(k) != new["datasets"].get(k))
    if datasets:
        reasons.append("data changed: " + ", ".join(
            _dataset_change(k, old.get("datasets", {}).get(k), new["datasets"].get(k)) for k in datasets))
    if old.get("seed") != new["seed"]:
        reasons.append("seed changed")
    external = _diff(old.get("external", {}), new["external"])
    if external:
        reasons.append("external files changed: " + ", ".join(external))
    old_code, new_code = old.get("code", {}), new["code"]
    code = sorted(m for m in set(old_code) | set(new_code) if old_code.get(m) != new_code.get(m))
    if code:
        reasons.append("code changed: " + ", ".join(code))
    old_imports, new_imports = old.get("imports", {}), new.get("imports", {})
    imports = sorted(m for m in set(old_imports) | set(new_imports) if old_imports.get(m) != new_imports.get(m))
    if imports:
        reasons.append("imports changed: " + ", ".join(imports))
    if new.get("machine") is not None and old.get("machine") != new["machine"]:
        reasons.append(machine_change(old.get("machine"), new.get("machine")))
    versions = _diff(old.get("versions", {}), new["versions"])
    if versions:
        reasons.append("versions changed: " + ", ".join(versions))
    return reasons or ["key format changed"]


def _dataset_change(field_name: str, old: dict | None, new: dict | None) -> str:
    """``data (fingerprint: preprocess)``: the field, and what of the dataset it reads changed."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return field_name
    parts = _diff(old.get("config", {}), new.get("config", {}))
    old_print, new_print = old.get("fingerprint") or {}, new.get("fingerprint") or {}
    changed = sorted(k for k in set(old_print) | set(new_print) if old_print.get(k) != new_print.get(k))
    if changed:
        parts.append("fingerprint: " + ", ".join(map(str, changed)))
    if old.get("split_seed") != new.get("split_seed"):
        parts.append("split seed")
    return f"{field_name} ({'; '.join(parts)})" if parts else field_name


def machine_change(old: dict | None, new: dict) -> str:
    """Why a stage that measures the machine runs again: it was measured on another one (or keyed by none)."""
    if old is None:
        return f"measures on this machine now: {describe_machine(new)}"
    return f"machine changed: measured on {old.get('id', '?')}, this is {describe_machine(new)}"


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths that differ, with ``old -> new`` for scalars."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{path} (added)")
            elif k not in new:
                out.append(f"{path} (removed)")
            elif old[k] != new[k]:
                out.extend(_diff(old[k], new[k], path))
        return out
    if old == new:
        return []
    if isinstance(old, (dict, list)) or isinstance(new, (dict, list)):
        return [prefix or "value"]
    return [f"{prefix or 'value'} {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
