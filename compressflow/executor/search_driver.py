"""Drive a ``search`` stage: Optuna ask-and-tell over trials run by the ordinary scheduler and cache.

When the scheduler reaches a search stage it calls :func:`run_search` in the main process. Per
round, it asks the study for as many trials as the runner has room for (``--jobs``), instantiates
the recipe for each (:mod:`compressflow.executor.search_trials`), runs their stages with
:func:`compressflow.executor.schedule_loop.run_plan` (a trial seen before is a cache hit) and tells the
study each trial's measured objective and constraints. The study's journal lives beside the cache
(:mod:`compressflow.executor.search_study`), so an interrupted search resumes: finished trials
stay, the interrupted one is asked again with the same params. The search's own entry holds a
copy of the best feasible trial's output, ``trials.json`` and a table.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from concurrent.futures import Future
from typing import Any

from compressflow.errors import CompressflowError, GateFailed, StageFailed
from compressflow.executor.schedule_loop import run_plan
from compressflow.executor.search_early_stop import Verdict, judge_intermediate
from compressflow.executor.search_study import counted, distributions, grid_size, make_sampler, open_study
from compressflow.executor.search_trials import TrialStages, trial_stages, trials_plan
from compressflow.executor.task import CACHED, FAILED, RAN, TaskOutcome
from compressflow.stages.base import ARTIFACT_FILE, Artifact
from compressflow.stages.search import TABLE_FILE, TRIALS_FILE, parse_duration
from compressflow.stages.selection import METRICS as RANKABLE
from compressflow.stages.selection import judge

_CACHE_FILES = {ARTIFACT_FILE, "manifest.json", "key.json"}


class _TrialReporter:
    """Forwards what the trials' stages do, not the stages upstream that they only read."""

    def __init__(self, reporter, names: set[str]):
        self._reporter, self._names = reporter, names

    def stage_started(self, name: str) -> None:
        if name in self._names:
            self._reporter.stage_started(name)

    def stage_finished(self, name: str, outcome: TaskOutcome) -> None:
        if name in self._names:
            self._reporter.stage_finished(name, outcome)

    def stage_blocked(self, name: str, reason: str) -> None:
        if name in self._names:
            self._reporter.stage_blocked(name, reason)

    def message(self, text: str) -> None:
        self._reporter.message(text)


def submit_search(plan, name: str, cache, runner, reporter, **options: Any) -> "Future[TaskOutcome]":
    """:func:`run_search` as a finished future, for the scheduler's loop."""
    future: Future[TaskOutcome] = Future()
    future.set_result(run_search(plan, name, cache, runner, reporter, **options))
    return future


def run_search(plan, name: str, cache, runner, reporter, *, verify: bool = False, log_dir=None,
               run_dir=None) -> TaskOutcome:
    """Run search stage ``name`` of ``plan`` to its budget and commit its entry; say what happened."""
    item = plan.stages[name]
    started = time.perf_counter()
    force = "forced" in item.reasons
    try:
        with cache.lock(item.key.key, stage=name, on_wait=reporter.message):
            if not force and cache.lookup(item.key.key, stage=name) is not None:
                return TaskOutcome(name, CACHED)
            study = open_study(item.stage, cache.root, item.key.doc)
            _recover_interrupted(study)
            _run_trials(plan, name, cache, runner, reporter, study,
                        dict(verify=verify, log_dir=log_dir, run_dir=run_dir))
            _commit(plan, name, cache, study, force)
        return TaskOutcome(name, RAN, time.perf_counter() - started)
    except CompressflowError as exc:
        return TaskOutcome(name, FAILED, time.perf_counter() - started, error=exc.render().removeprefix("error: "),
                           gate_fields=exc.fields if isinstance(exc, GateFailed) else ())
    except Exception as exc:  # the search's own failure: reported, never a crash of the run
        return TaskOutcome(name, FAILED, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}",
                           details=traceback.format_exc())


def _recover_interrupted(study) -> None:
    """Trials left running by a killed run: recorded as interrupted, and asked again with the same params."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)


def _run_trials(plan, name: str, cache, runner, reporter, study, options: dict) -> None:
    stage = plan.stages[name].stage
    seed = plan.stages[name].key.doc["seed"]
    budget = stage.trials if stage.trials is not None else math.inf
    if stage.sampler == "grid":
        budget = min(budget, grid_size(stage))
    deadline = time.monotonic() + parse_duration(stage.timeout) if stage.timeout is not None else math.inf
    space = distributions(stage)
    parallel = runner.capacity > 1
    while time.monotonic() < deadline:
        remaining = budget - sum(1 for t in study.get_trials(deepcopy=False) if counted(t))
        if remaining <= 0:
            break
        asked = []
        for _ in range(int(min(runner.capacity, remaining))):
            # NOTE: interrupted trials are not counted: the trials after a resumed one are those an
            # uninterrupted search asks (the interrupted one is asked again first, with its params).
            asked_so_far = sum(1 for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted"))
            study.sampler = make_sampler(stage, seed, asked_so_far, parallel=parallel)
            asked.append(study.ask(space))
        built: list[tuple[Any, TrialStages | None, str | None]] = []
        for trial in asked:
            try:
                built.append((trial, trial_stages(plan, name, trial.number, trial.params), None))
            except StageFailed as exc:
                built.append((trial, None, exc.render().removeprefix("error: ")))
        trials = [t for _, t, _ in built if t is not None]
        reporter.message(f"{name}: trial{'s' if len(asked) > 1 else ''} "
                         + ", ".join(f"{t.number} {_params_text(t.params)}" for t in asked))
        ran = _run_trial_stages(plan, cache, runner, reporter, stage, trials, options)
        for trial, stages, error in built:
            _tell(study, stage, trial, stages, error, ran, cache)


class _TrialsRun:
    """What the stages of a round's trials did: outcomes and keys by stage name, early-stop verdicts."""

    def __init__(self):
        self.outcomes: dict[str, TaskOutcome] = {}
        self.keys: dict[str, str] = {}
        self.versions: dict[str, dict[str, str | None]] = {}
        self.verdicts: dict[int, Verdict] = {}

    def add(self, trial_plan, report) -> None:
        for stage_name, outcome in report.outcomes.items():
            self.outcomes.setdefault(stage_name, outcome)  # NOTE: the first part's own outcome, not "cached"
        for stage_name, item in trial_plan.stages.items():
            self.keys[stage_name] = item.key.key
            self.versions[stage_name] = item.key.doc.get("versions", {})

    def failures(self, names) -> list[str]:
        return [f"{n}: {o.error if o is not None else 'did not run'}" for n in names
                for o in [self.outcomes.get(n)] if o is None or o.status not in (RAN, CACHED)]

    def read(self, cache, stage_name: str) -> Artifact:
        key = self.keys[stage_name]
        return Artifact.read(stage_name, key, cache.entry_dir(key))


def _run_trial_stages(plan, cache, runner, reporter, stage, trials: list[TrialStages], options: dict) -> _TrialsRun:
    """Run the trials' stages; with ``early_stop``, the watched part first, then the rest of those that go on."""
    ran = _TrialsRun()
    if not trials:
        return ran
    going = trials
    if stage.early_stop is not None:
        _run_part(plan, cache, runner, reporter, [t.part(t.first_part) for t in trials], ran, options)
        going = []
        for trial in trials:
            if ran.failures(trial.first_part):
                continue
            models = ran.read(cache, trial.early_measure).metrics().get("models", {})
            metrics, base = models.get(trial.watched), models.get(stage.baseline)
            if metrics is None or base is None:
                continue  # told as failed: the measurement is missing
            ran.verdicts[trial.number] = judge_intermediate(stage, _plain(metrics), base)
            if not ran.verdicts[trial.number].stop:
                going.append(trial)
    if going:
        _run_part(plan, cache, runner, reporter, going, ran, options)
    return ran


def _run_part(plan, cache, runner, reporter, trials: list[TrialStages], ran: _TrialsRun, options: dict) -> None:
    trial_plan = trials_plan(plan, cache, trials)
    names = {n for t in trials for n in t.stages if n not in ran.outcomes}
    ran.add(trial_plan, run_plan(trial_plan, cache, runner, _TrialReporter(reporter, names), keep_going=True,
                                 drive=submit_search, **options))


def _tell(study, stage, trial, stages: TrialStages | None, error: str | None, ran: _TrialsRun, cache) -> None:
    from optuna.trial import TrialState

    if stages is None:
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)
        return
    failed = ran.failures(stages.first_part)
    verdict = ran.verdicts.get(stages.number)
    if not failed and stages.early_measure is not None and verdict is None:
        failed = [f"{stages.early_measure} did not measure {stages.watched}"]
    if not failed and verdict is not None:
        trial.set_user_attr("early_stop", verdict.as_record(stage.early_stop))
        if len(stage.objectives()) == 1 and verdict.value is not None:
            trial.report(verdict.value, step=0)  # NOTE: Optuna keeps intermediate values of one objective only
        if verdict.stop:
            _tell_stopped(study, stage, trial, stages, verdict, ran)
            return
    failed = failed or ran.failures(stages.stages)
    if failed:
        trial.set_user_attr("error", "; ".join(failed))
        study.tell(trial, state=TrialState.FAIL)
        return
    measured = ran.read(cache, stages.measure).metrics()
    models, baseline = measured.get("models", {}), stage.baseline
    models = _named_for_this_search(models, stages.output)
    metrics = models.get(stages.output)
    if metrics is None:
        trial.set_user_attr("error", f"{stages.measure} did not measure {stages.output}")
        study.tell(trial, state=TrialState.FAIL)
        return
    objectives = stage.objectives()
    judged = judge([stages.output], models, baseline, RANKABLE[objectives[0].metric],
                   stage.constraints.as_selection())[0]
    values = [metrics.get(RANKABLE[o.metric].key) for o in objectives]
    trial.set_user_attr("metrics", _plain(metrics))
    trial.set_user_attr("baseline_accuracy", models.get(baseline, {}).get("accuracy"))
    trial.set_user_attr("reasons", judged.reasons)
    trial.set_user_attr("feasible", judged.passed and None not in values)
    _set_constraints(trial, _constraint_values(stage, metrics, models.get(baseline)))
    trial.set_user_attr("cached", all(ran.outcomes[n].status == CACHED for n in stages.stages))
    trial.set_user_attr("versions", _versions(ran, stages.stages))
    trial.set_user_attr("output", {"stage": stages.output, "key": ran.keys[stages.output]})
    if None in values:
        trial.set_user_attr("error", "the objective was not measured")
        study.tell(trial, state=TrialState.FAIL)
        return
    study.tell(trial, values)


def _tell_stopped(study, stage, trial, stages: TrialStages, verdict: Verdict, ran: _TrialsRun) -> None:
    """A trial stopped early: pruned, infeasible by what its intermediate model misses."""
    from optuna.trial import TrialState

    trial.set_user_attr("reasons", [verdict.reason])
    trial.set_user_attr("feasible", False)
    _set_constraints(trial, _constraint_values(stage, verdict.metrics, verdict.base))
    trial.set_user_attr("cached", all(ran.outcomes[n].status == CACHED for n in stages.first_part))
    study.tell(trial, state=TrialState.PRUNED)


def _set_constraints(trial, constraints: list[float]) -> None:
    trial.set_user_attr("constraints", constraints)
    for index, value in enumerate(constraints):  # NOTE: what Optuna's samplers read to prefer feasible trials
        trial.set_constraint(f"c{index}", value)


def _versions(ran: _TrialsRun, names) -> dict[str, str | None]:
    """The library versions in the keys of a trial's stages (what export's sidecar lists)."""
    versions: dict[str, str | None] = {}
    for stage_name in names:
        versions.update(ran.versions.get(stage_name, {}))
    return dict(sorted(versions.items()))


def _named_for_this_search(models: dict, output: str) -> dict:
    """``models`` with the trial's output under this search's name.

    # NOTE: a measurement another search made of the same trial (same params, same keys) is a cache hit,
    # but it names the output as that search did (``other.int8[sparsity=0.9]``).
    """
    if output in models or "." not in output:
        return models
    trial_part = output.split(".", 1)[1]
    same = [name for name in models if "." in name and name.split(".", 1)[1] == trial_part]
    return {**models, output: models[same[0]]} if len(same) == 1 else models


def _constraint_values(stage, metrics: dict, base: dict | None) -> list[float]:
    """Optuna's constraints (at most 0 where met): how far each constraint is missed."""
    limits = stage.constraints
    values = []
    if limits.max_accuracy_drop is not None and base is not None:
        values.append(base["accuracy"] - metrics["accuracy"] - limits.max_accuracy_drop - 1e-9)
    if limits.min_compression is not None and base is not None and metrics.get("gzip_bytes"):
        values.append(limits.min_compression - base["gzip_bytes"] / metrics["gzip_bytes"])
    if limits.max_latency_ms is not None and metrics.get("latency_ms_median") is not None:
        values.append(metrics["latency_ms_median"] - limits.max_latency_ms)
    return values or [0.0]


# --------------------------------------------------------------------------- the result


def _commit(plan, name: str, cache, study, force: bool) -> None:
    stage = plan.stages[name].stage
    rows = trial_rows(study)
    best = best_trial(rows, stage)
    table = trials_table(rows, best, stage)
    if best is None:
        done = [r for r in rows if r["state"] == "COMPLETE"]
        closest = min(done, key=lambda r: max(r["constraints"]), default=None)
        hint = (f"\nclosest: trial {closest['number']} {_params_text(closest['params'])} "
                f"({'; '.join(closest['reasons'])})" if closest else "")
        raise GateFailed(f"search {name!r}: no feasible trial among {len(rows)}\n{table}{hint}",
                         fields=("constraints",))
    output = best["output"]
    entry = cache.lookup(output["key"], stage=output["stage"])
    if entry is None:
        raise StageFailed(f"search {name!r}: the output of the best trial ({output['stage']}) is no longer in "
                          "the cache; run again with --force to recompute it")
    source = Artifact.read(output["stage"], output["key"], cache.entry_dir(output["key"]))
    item = plan.stages[name]
    with cache.writer(item.key.key, stage=name, key_doc=item.key.doc, replace=force) as out_dir:
        from compressflow.stages.select import _copy_files

        _copy_files(source.path, out_dir)
        (out_dir / TRIALS_FILE).write_text(json.dumps(rows, indent=2, sort_keys=True))
        (out_dir / TABLE_FILE).write_text(table)
        meta = {k: v for k, v in source.meta.items() if k not in ("kind", "file")}
        meta.update(selected=output["stage"], trial=best["number"], params=best["params"], trials=TRIALS_FILE,
                    search_table=TABLE_FILE, search=search_record(name, stage, rows, best))
        (out_dir / ARTIFACT_FILE).write_text(json.dumps({"kind": source.kind, "file": source.meta.get("file"),
                                                         **meta}, indent=2, sort_keys=True))


def search_record(name: str, stage, rows: list[dict[str, Any]], best: dict[str, Any]) -> dict[str, Any]:
    """What a search decided, for the sidecar of an export downstream: its settings, trials and choice."""
    done = [r for r in rows if not r["interrupted"]]
    return _plain({
        "stage": name,
        "objective": [o.model_dump(mode="json") for o in stage.objectives()],
        "constraints": stage.constraints.model_dump(mode="json", exclude_none=True),
        "early_stop": stage.early_stop.model_dump(mode="json") if stage.early_stop is not None else None,
        "sampler": stage.sampler,
        "trials": len(done),
        "pruned": sum(1 for r in done if r["pruned"]),
        "feasible": sum(1 for r in done if r["feasible"]),
        "chosen": {"number": best["number"], "params": best["params"], "values": best["values"],
                   "metrics": best["metrics"], "stage": best["output"]["stage"], "key": best["output"]["key"]},
        "versions": best.get("versions", {}),
    })


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial of the study: params, state, metrics, feasible or not, cached or computed."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({
            "number": trial.number, "params": dict(trial.params), "state": trial.state.name,
            "values": list(trial.values) if trial.values is not None else None,
            "metrics": attrs.get("metrics", {}), "feasible": bool(attrs.get("feasible", False)),
            "reasons": list(attrs.get("reasons", [])), "constraints": list(attrs.get("constraints", [math.inf])),
            "cached": attrs.get("cached"), "interrupted": bool(attrs.get("interrupted", False)),
            "pruned": trial.state.name == "PRUNED", "error": attrs.get("error"), "output": attrs.get("output"),
            "early_stop": attrs.get("early_stop"), "versions": attrs.get("versions", {}),
        })
    return rows


def best_trial(rows: list[dict[str, Any]], stage) -> dict[str, Any] | None:
    """The best feasible finished trial by the first objective (ties: the earlier trial)."""
    feasible = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    if not feasible:
        return None
    sign = 1 if stage.objectives()[0].direction() == "minimize" else -1
    return min(feasible, key=lambda r: (sign * r["values"][0], r["number"]))


def trials_table(rows: list[dict[str, Any]], best: dict[str, Any] | None, stage) -> str:
    """A fixed-width table of every trial, the best marked ``*``."""
    metrics = [o.metric for o in stage.objectives()]
    header = ["trial", *stage.space, *metrics, "accuracy", "feasible", "how", "why not"]
    lines = [header]
    for row in rows:
        how = ("interrupted" if row["interrupted"] else "failed" if row["state"] == "FAIL"
               else "pruned" if row["pruned"] else "cached" if row["cached"] else "computed")
        values = row["values"] or [None] * len(metrics)
        accuracy = row["metrics"].get("accuracy")
        lines.append([f"{row['number']}{' *' if row is best else ''}",
                      *[_short(row["params"].get(p)) for p in stage.space],
                      *[_short(v) for v in values], _short(accuracy),
                      "yes" if row["feasible"] else "no", how,
                      "; ".join(row["reasons"]) or (row["error"] or "")[:80]])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    if best is not None:
        text += ["", f"* best: trial {best['number']} {_params_text(best['params'])}"]
    return "\n".join(text) + "\n"


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params_text(params: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={_short(v)}" for k, v in params.items()) + ")"


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
