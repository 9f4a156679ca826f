"""The report's "Search" section: every trial of a ``search`` stage, plotted and tabled.

From the stage's ``trials.json`` (see :mod:`compressflow.executor.search_driver`): the objective
against the constraint's metric (gzip size against accuracy drop, say), or the first two
objectives of a multi-objective search. Feasible trials are filled circles, infeasible ones
crosses; the constraint's bound is a dashed line, the Pareto front (no other trial is better on
both axes) is joined and ringed, the chosen trial starred. Failed and pruned trials are only in
the table below the plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from compressflow.report.data import pareto_front
from compressflow.report.entry_files import EntryFiles
from compressflow.report.svg_chart import figure_svg, id_prefix
from compressflow.stages.report_table import human_bytes, readable
from compressflow.stages.selection import METRICS

TRIALS_FILE = "trials.json"
FEASIBLE_COLOR, INFEASIBLE_COLOR, FRONT_COLOR, CHOSEN_COLOR = "#3b6fb6", "#b0b8c1", "#2e7d32", "#c62828"


@dataclass(frozen=True)
class Axis:
    """One axis of the plot: a metric of each trial, and whether lower is better on it."""

    key: str  # ``gzip_size``..., or ``accuracy_drop``
    title: str
    unit: str  # bytes, share, ratio, ms, pt or ""
    lower_is_better: bool

    def text(self, value: float | None) -> str:
        """``value`` as the table shows it."""
        if value is None:
            return "-"
        if self.unit == "bytes":
            return human_bytes(value)
        if self.unit == "share":
            return f"{value * 100:.2f}%"
        if self.unit == "pt":
            return f"{value:.2f} pt"
        return readable(value, "×" if self.unit == "ratio" else " ms" if self.unit == "ms" else "")

    def plotted(self, value: float) -> float:
        return value / 1024 if self.unit == "bytes" else value * 100 if self.unit == "share" else value

    def label(self) -> str:
        unit = {"bytes": " (KiB)", "share": " (%)", "pt": " (points)", "ratio": " (×)", "ms": " (ms)"}
        return self.title + unit.get(self.unit, "") + ("; lower is better" if self.lower_is_better else
                                                        "; higher is better")


@dataclass
class Trial:
    """One trial's row: its params, where it lies on the plot, and how it ended."""

    number: int
    params: dict[str, Any]
    state: str
    feasible: bool
    how: str  # computed, cached, pruned, failed or interrupted
    why_not: str
    x: float | None
    y: float | None
    accuracy: float | None


@dataclass
class SearchTrials:
    """A search stage's trials with the plot's axes, the bound, the chosen trial and the Pareto front."""

    stage: str
    x: Axis
    y: Axis
    trials: list[Trial]
    chosen: int | None
    front: list[int]
    bound: float | None  # on the y axis, in its unit
    bound_text: str
    space: list[str]


def _objective_axis(objective: dict[str, Any]) -> Axis:
    metric = METRICS[objective["metric"]]
    goal = objective.get("goal") or metric.goal[:3]
    return Axis(objective["metric"], metric.title, metric.unit, goal == "min")


def _constraint_axis(constraints: dict[str, Any]) -> tuple[Axis, float | None, str, int | None]:
    """The y axis of a single-objective search: the first constraint's metric (its bound, and its
    index in each trial's ``constraints``), else accuracy."""
    if constraints.get("max_accuracy_drop") is not None:
        bound = constraints["max_accuracy_drop"]
        return (Axis("accuracy_drop", "accuracy drop against the baseline", "pt", True), bound * 100,
                f"max_accuracy_drop {bound * 100:g} pt", 0)
    if constraints.get("min_compression") is not None:
        bound = constraints["min_compression"]
        return (Axis("gzip_compression", "compression (gzip size)", "ratio", False), bound,
                f"min_compression {bound:g}×", 0)
    if constraints.get("max_latency_ms") is not None:
        bound = constraints["max_latency_ms"]
        return Axis("latency_ms", "median latency", "ms", True), bound, f"max_latency_ms {bound:g}", None
    return Axis("accuracy", "accuracy", "share", False), None, "", None


def _value(axis: Axis, row: dict[str, Any], objective_index: int | None, bound: float | None,
           constraint_index: int | None) -> float | None:
    metrics = row.get("metrics") or {}
    values = row.get("values")
    if objective_index is not None and values and len(values) > objective_index:
        return values[objective_index]
    if axis.key == "accuracy_drop":
        if isinstance(metrics.get("accuracy_delta"), (int, float)):
            return -metrics["accuracy_delta"] * 100
        # NOTE: a trial's constraint value is how far it misses the bound: drop - max drop (at most 0 when met).
        constraints = row.get("constraints") or []
        if constraint_index is not None and len(constraints) > constraint_index and bound is not None:
            value = constraints[constraint_index]
            return None if value in (float("inf"), None) else round(value * 100 + bound, 9)
        return None
    if axis.key == "gzip_compression" and metrics.get("gzip_compression") is None:
        constraints = row.get("constraints") or []
        if constraint_index is not None and len(constraints) > constraint_index and bound is not None:
            value = constraints[constraint_index]
            return None if value in (float("inf"), None) else bound - value
        return None
    return metrics.get(METRICS[axis.key].key if axis.key in METRICS else axis.key)


def _how(row: dict[str, Any]) -> str:
    if row.get("interrupted"):
        return "interrupted"
    if row.get("state") == "FAIL":
        return "failed"
    if row.get("pruned"):
        return "pruned"
    return "cached" if row.get("cached") else "computed"


def from_trials(stage: str, config: dict[str, Any], rows: list[dict[str, Any]], chosen: int | None) -> SearchTrials:
    """The section's data from a search stage's config and ``trials.json`` rows."""
    objectives = config.get("objective")
    objectives = objectives if isinstance(objectives, list) else [objectives]
    x = _objective_axis(objectives[0])
    if len(objectives) > 1:
        y, bound, bound_text, y_index, constraint_index = _objective_axis(objectives[1]), None, "", 1, None
    else:
        y, bound, bound_text, constraint_index = _constraint_axis(config.get("constraints") or {})
        y_index = None
    trials = []
    for row in rows:
        done = row.get("state") == "COMPLETE"
        trials.append(Trial(
            number=int(row["number"]), params=dict(row.get("params") or {}), state=str(row.get("state", "")),
            feasible=bool(row.get("feasible")) and done, how=_how(row),
            why_not="; ".join(row.get("reasons") or []) or str(row.get("error") or ""),
            x=_value(x, row, 0, None, None) if done else None,
            y=_value(y, row, y_index, bound, constraint_index) if done else None,
            accuracy=(row.get("metrics") or {}).get("accuracy")))
    # NOTE: pareto_front keeps small first coordinates and large second ones: flip what goes the other way.
    points = {str(t.number): (t.x if x.lower_is_better else -t.x, -t.y if y.lower_is_better else t.y)
              for t in trials if t.x is not None and t.y is not None}
    front = [int(n) for n in pareto_front(points)]
    return SearchTrials(stage=stage, x=x, y=y, trials=trials, chosen=chosen, front=front, bound=bound,
                        bound_text=bound_text, space=list((config.get("space") or {}).keys()))


def search_trials(record: dict[str, Any], entries: EntryFiles) -> list[SearchTrials]:
    """Every search stage of the run whose trials can be read, in the record's order."""
    found = []
    for name, stage in record.get("stages", {}).items():
        if stage.get("type") != "search":
            continue
        artifact = stage.get("artifact") or {}
        rows = entries.json(name, str(artifact.get("trials") or TRIALS_FILE))
        if not isinstance(rows, list) or not rows or not isinstance(stage.get("config"), dict):
            continue
        chosen = artifact.get("trial")
        found.append(from_trials(name, stage["config"], rows, chosen if isinstance(chosen, int) else None))
    return found


# --------------------------------------------------------------------------- the plot


def trials_chart(search: SearchTrials) -> str | None:
    """The trials on the two axes as an inline ``<svg>``: ids ``...trial-<n>-feasible`` (or
    ``-infeasible``), ``...front-<n>``, ``...chosen-<n>`` and ``...bound``; None when no trial has both values."""
    shown = [t for t in search.trials if t.x is not None and t.y is not None]
    if not shown:
        return None
    from compressflow.report.plots import _pyplot

    plt = _pyplot()  # NOTE: first: without matplotlib it raises what the page turns into a note
    from matplotlib.lines import Line2D

    figure, axes = plt.subplots(figsize=(6.8, 4.2))
    for trial in shown:
        point = ([search.x.plotted(trial.x)], [search.y.plotted(trial.y)])
        if trial.feasible:
            mark = axes.scatter(*point, s=46, color=FEASIBLE_COLOR, zorder=3)
        else:
            mark = axes.scatter(*point, s=46, marker="x", color=INFEASIBLE_COLOR, linewidths=1.6, zorder=2)
        mark.set_gid(f"trial-{trial.number}-{'feasible' if trial.feasible else 'infeasible'}")
        axes.annotate(str(trial.number), (point[0][0], point[1][0]), textcoords="offset points", xytext=(5, 4),
                      fontsize=7, color="#52606d")
    by_number = {t.number: t for t in shown}
    front = [by_number[n] for n in search.front if n in by_number]
    if len(front) > 1:
        axes.plot([search.x.plotted(t.x) for t in front], [search.y.plotted(t.y) for t in front],
                  color=FRONT_COLOR, linewidth=1.2, alpha=0.7, zorder=1)
    for trial in front:
        ring = axes.scatter([search.x.plotted(trial.x)], [search.y.plotted(trial.y)], s=130, facecolors="none",
                            edgecolors=FRONT_COLOR, linewidths=1.4, zorder=4)
        ring.set_gid(f"front-{trial.number}")
    if search.chosen in by_number:
        trial = by_number[search.chosen]
        star = axes.scatter([search.x.plotted(trial.x)], [search.y.plotted(trial.y)], s=360, marker="*",
                            facecolors="none", edgecolors=CHOSEN_COLOR, linewidths=1.5, zorder=5)
        star.set_gid(f"chosen-{trial.number}")
    legend = [Line2D([], [], marker="o", linestyle="", color=FEASIBLE_COLOR, label="feasible"),
              Line2D([], [], marker="x", linestyle="", color=INFEASIBLE_COLOR, label="infeasible"),
              Line2D([], [], marker="o", color=FRONT_COLOR, markerfacecolor="none", label="Pareto front")]
    if search.bound is not None:
        line = axes.axhline(search.y.plotted(search.bound), color=CHOSEN_COLOR, linestyle="--", linewidth=1.1,
                            alpha=0.8)
        line.set_gid("bound")
        legend.append(Line2D([], [], color=CHOSEN_COLOR, linestyle="--", label=search.bound_text))
    if search.chosen in by_number:
        legend.append(Line2D([], [], marker="*", linestyle="", markersize=11, markerfacecolor="none",
                             markeredgecolor=CHOSEN_COLOR, label=f"chosen (trial {search.chosen})"))
    axes.legend(handles=legend, loc="best", fontsize=7.5, framealpha=0.9)
    axes.set_xlabel(search.x.label())
    axes.set_ylabel(search.y.label())
    axes.set_title(f"Trials of {search.stage}", fontsize=10)
    return figure_svg(figure, id_prefix("trials", search.stage), f"trials of {search.stage}")


# --------------------------------------------------------------------------- HTML and Markdown


def _tags(search: SearchTrials, trial: Trial) -> str:
    tags = "<span class='tag sel'>chosen</span>" if trial.number == search.chosen else ""
    return tags + ("<span class='tag front'>Pareto</span>" if trial.number in search.front else "")


def trials_html(search: SearchTrials, slots) -> str:
    """The section of one search stage; ``slots`` draws the plot (or leaves a note without matplotlib)."""
    feasible = sum(t.feasible for t in search.trials)
    sub = (f"{len(search.trials)} trials, {feasible} feasible"
           + (f"; chosen: trial <b>{search.chosen}</b>" if search.chosen is not None else "; none chosen")
           + f"; {escape(search.x.title)} against {escape(search.y.title)}"
           + (f", bound {escape(search.bound_text)}" if search.bound_text else ""))
    head = ("<tr><th class='n'>trial</th>" + "".join(f"<th>{escape(p)}</th>" for p in search.space)
            + f"<th class='n'>{escape(search.x.title)}</th><th class='n'>{escape(search.y.title)}</th>"
            + ("<th class='n'>accuracy</th>" if "accuracy" not in (search.x.key, search.y.key) else "")
            + "<th>feasible</th><th>how</th><th>why not</th></tr>")
    rows = []
    for trial in search.trials:
        params = "".join(f"<td>{escape(_param(trial.params.get(p)))}</td>" for p in search.space)
        accuracy = (f"<td class='n'>{'-' if trial.accuracy is None else f'{trial.accuracy * 100:.2f}%'}</td>"
                    if "accuracy" not in (search.x.key, search.y.key) else "")
        rows.append(f"<tr data-trial='{trial.number}' class='{'baseline' if trial.number == search.chosen else ''}'>"
                    f"<td class='n'><b>{trial.number}</b>{_tags(search, trial)}</td>{params}"
                    f"<td class='n'>{escape(search.x.text(trial.x))}</td>"
                    f"<td class='n'>{escape(search.y.text(trial.y))}</td>{accuracy}"
                    f"<td>{'yes' if trial.feasible else 'no'}</td><td>{escape(trial.how)}</td>"
                    f"<td class='err'>{escape(trial.why_not)}</td></tr>")
    plot = slots.img(trials_chart, f"trials of {search.stage}", search)
    notes = ["Pareto: no other trial is better on both axes. Chosen: the best feasible trial by the first "
             "objective, whose output the stage gives."]
    return (f"<section><h2>Search — {escape(search.stage)}</h2><p class='sub'>{sub}</p>"
            + (f"<div class='wide'>{plot}</div>" if plot else "")
            + f"<div class='scroll'><table class='trials'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
            + "</table></div><ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul></section>")


def _param(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_markdown(search: SearchTrials) -> list[str]:
    """One search stage's trials as a Markdown table (chosen ✔, Pareto ★)."""
    lines = [f"#### Search — {search.stage}", "",
             f"{len(search.trials)} trials, {sum(t.feasible for t in search.trials)} feasible; "
             + (f"chosen **trial {search.chosen}**" if search.chosen is not None else "none chosen")
             + "; ★ Pareto front", "",
             "| trial | " + " | ".join(search.space) + f" | {search.x.title} | {search.y.title} | feasible | how |",
             "|---:|" + "---|" * len(search.space) + "---:|---:|---|---|"]
    for trial in search.trials:
        marks = (" ✔" if trial.number == search.chosen else "") + (" ★" if trial.number in search.front else "")
        lines.append(f"| {trial.number}{marks} | " + " | ".join(_param(trial.params.get(p)) for p in search.space)
                     + f" | {search.x.text(trial.x)} | {search.y.text(trial.y)} | "
                     f"{'yes' if trial.feasible else 'no'} | {trial.how} |")
    return lines + [""]
