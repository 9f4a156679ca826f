"""``compressflow check P`` and the check at the start of ``compressflow run``.

Exit status of ``check``: 0 when no stage would fail (warnings do not count), 1 when a stage
would fail (``run`` would stop there), 2 for an invalid pipeline or usage.
"""

from __future__ import annotations

import json
import sys

from compressflow.errors import CompressflowError
from compressflow.executor.capture import stderr_to_file

EXIT_OK, EXIT_WOULD_FAIL = 0, 1


class PreflightFailed(CompressflowError):
    """A stage to run would fail; found before anything ran (exit status 1)."""

    exit_code = 1

    def __init__(self, report, pipeline_file: str):
        self.report = report
        lines = [f"error: stage {name!r} would fail: {finding.message}" for name, finding in report.errors()]
        lines.append(f"nothing was run. `compressflow check {pipeline_file}` shows what every stage will do; "
                     "`--no-check` runs anyway")
        super().__init__("\n".join(lines))

    def render(self) -> str:
        return str(self)


def native_log(pipeline):
    """Where TensorFlow's and the converter's own output during a check goes (not the terminal)."""
    return pipeline.root / ".compressflow" / "logs" / "check.log"


def cmd_check(args, pipeline) -> int:
    """Check every stage of ``pipeline`` (or the selected ones) and print the report."""
    from compressflow.preflight.checker import check_pipeline
    from compressflow.preflight.render import print_report

    names = _selected(args, pipeline)
    with stderr_to_file(native_log(pipeline)):
        report = check_pipeline(pipeline, names=names, allow_outside_paths=args.allow_outside_paths)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_WOULD_FAIL


def _selected(args, pipeline):
    """The stages ``--only``/``--from``/``--until`` ask for (None: every stage)."""
    from compressflow.executor.graph import Selection, build_graph, requested_stages

    selection = Selection(only=args.only, from_=args.from_, until=args.until)
    if selection.is_empty():
        return None
    return requested_stages(build_graph(pipeline), selection)


def stages_to_check(plan) -> list[str]:
    """The stages of a run worth checking first: those to run after another stage to run.

    NOTE: a stage with nothing to run before it fails at once if it fails; checking it first
    would only add time (and a fully cached run imports no TensorFlow).
    """
    from compressflow.dsl.digraph import ancestors

    to_run = set(plan.to_run())
    return [name for name in to_run if ancestors(plan.graph, name) & to_run
            and plan.stages[name].stage.kind in CHECKED_TYPES]


CHECKED_TYPES = ("fine_tune", "prune", "cluster", "quantize", "distill", "evaluate")


def check_before_run(plan, pipeline_file: str) -> None:
    """Raise :class:`PreflightFailed` when a stage of the run would fail; do nothing when none would.

    The check runs in a process of its own: building the models it inspects imports TensorFlow,
    which keeps most of what it allocates until its process ends (about 1 GB for a MobileNetV2).
    In the run's process that memory would stay for the whole run, beside the worker that runs
    the stages; in a child it goes when the check is done, and the run's process imports no
    TensorFlow (with ``--jobs`` or Dask it never needs to).
    """
    names = stages_to_check(plan)
    if not names:
        return
    try:
        report = _in_child_process(_check, plan, names)
    except Exception as exc:  # noqa: BLE001 - the check only saves time: a failure of its own never stops a run
        print(f"note: the check before the run did not finish ({type(exc).__name__}: {exc}); running without it",
              file=sys.stderr)
        return
    if not report.ok:
        raise PreflightFailed(report, pipeline_file)


def _in_child_process(function, *args):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _check(plan, names: list[str]):
    """The check of ``names`` (in the child): the pipeline's folder first on the import path, as in a worker."""
    from compressflow.preflight.checker import check_pipeline
    from compressflow.user_modules import use_pipeline_folder

    use_pipeline_folder(plan.pipeline.root)
    with stderr_to_file(native_log(plan.pipeline)):
        return check_pipeline(plan.pipeline, names=names, plan=plan, thorough=False)
