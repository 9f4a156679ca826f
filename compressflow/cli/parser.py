"""The ``compressflow`` command line.

Exit status: 0 success, 1 a stage failed, 2 invalid pipeline or usage, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). TensorFlow is imported only by stages that actually run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from compressflow import __version__
from compressflow.errors import CompressflowError
from compressflow.runs.options import add_executor_args

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_STATUS_HELP = ("exit status: 0 success, 1 a stage failed, 2 invalid pipeline or usage, "
                    "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)")
_RUNS_HERE = (" (default: the pipeline whose runs are in .compressflow/runs here or one folder down; "
              "when there are several, they are listed)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: worker processes stopped, the run recorded as interrupted."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: status 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"error: {message}\n")


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pipeline", help="pipeline file (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value, e.g. --set params.sparsity=0.9 (repeatable; YAML typed)")
    p.add_argument("--params", dest="params_files", action="append", default=[], metavar="FILE",
                   help="YAML file of params overriding the pipeline's (repeatable)")


def _add_cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", metavar="DIR|URL",
                   help="cache folder or fsspec URL such as s3://bucket/prefix "
                        "(default: $COMPRESSFLOW_CACHE or .compressflow/cache beside the pipeline)")


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", action="append", default=[], metavar="STAGE",
                   help="run just this stage (pattern; repeatable); its inputs must be cached")
    p.add_argument("--from", dest="from_", action="append", default=[], metavar="STAGE",
                   help="run this stage and everything after it")
    p.add_argument("--until", action="append", default=[], metavar="STAGE",
                   help="run this stage and everything it needs")
    p.add_argument("--force", nargs="*", metavar="STAGE",
                   help="recompute these stages (all selected ones when none is named) even if cached")
    _add_outside_arg(p)


def _add_outside_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="let paths in the pipeline (includes, model files, datasets, export targets) "
                        "point outside its folder")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="compressflow", description="Declarative, cached model-compression pipelines.",
                     epilog=EXIT_STATUS_HELP)
    parser.add_argument("--version", action="version", version=f"compressflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a pipeline (cached stages are reused)", epilog=EXIT_STATUS_HELP)
    _add_pipeline_args(run)
    _add_cache_arg(run)
    _add_selection_args(run)
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                     help="run up to N independent stages at once in worker processes")
    run.add_argument("--keep-going", action="store_true", help="after a failure, finish independent branches")
    add_executor_args(run)
    run.add_argument("--verify", action="store_true", help="rehash every cache entry read")
    run.add_argument("--no-check", action="store_true",
                     help="skip the check, before the first stage runs, that no later stage would fail "
                          "(see `compressflow check`)")
    run.add_argument("--quiet", "-q", action="store_true", help="print only failures and the final summary")
    run.add_argument("--verbose", "-v", action="store_true",
                     help="print every line: stage logs, tracebacks of failing stages and TensorFlow's own "
                          "output (otherwise kept in .compressflow/logs/)")
    run.add_argument("--progress", choices=("auto", "live", "plain"), default="auto",
                     help="live: a live view of the stages (terminal); plain: one line per event; "
                          "auto (default): live in a terminal, plain otherwise")
    run.add_argument("--track", choices=("mlflow",), metavar="TRACKER",
                     help="log the run to an experiment tracker: mlflow (needs the [mlflow] extra; "
                          "$MLFLOW_TRACKING_URI, default .compressflow/mlflow.db beside the pipeline)")

    plan = sub.add_parser("plan", help="show, per stage, cached or run and why")
    _add_pipeline_args(plan)
    _add_cache_arg(plan)
    _add_selection_args(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    validate = sub.add_parser("validate", help="check a pipeline file and report every problem")
    _add_pipeline_args(validate)
    _add_outside_arg(validate)

    check = sub.add_parser("check", help="say, per stage, what will not work (layers skipped or refused, ops "
                                         "int8 keeps float, shape mismatches) without training anything",
                           epilog="exit status: 0 no stage would fail (warnings do not count), 1 a stage would "
                                  "fail, 2 invalid pipeline or usage")
    _add_pipeline_args(check)
    for flag, dest, text in (("--only", "only", "check just this stage (pattern; repeatable)"),
                             ("--from", "from_", "check this stage and everything after it"),
                             ("--until", "until", "check this stage and everything it needs")):
        check.add_argument(flag, dest=dest, action="append", default=[], metavar="STAGE", help=text)
    _add_outside_arg(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")

    dag = sub.add_parser("dag", help="print the stage graph (text, Mermaid or Graphviz dot)")
    _add_pipeline_args(dag)
    _add_cache_arg(dag)
    dag.add_argument("--format", "-f", choices=("text", "mermaid", "dot"), default="text",
                     help="text (default), mermaid (for Markdown) or dot (Graphviz)")
    dag.add_argument("--no-status", action="store_true",
                     help="leave out the cached/stale marks (which need the cache and a plan)")
    dag.add_argument("--allow-outside-paths", action="store_true",
                     help="let paths in the pipeline point outside its folder")

    runs = sub.add_parser("runs", help="list the recorded runs of a pipeline")
    runs.add_argument("pipeline", nargs="?", help="pipeline file (YAML)" + _RUNS_HERE)
    runs.add_argument("--limit", "-n", type=int, default=20, metavar="N", help="show the N latest (default 20)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")

    show = sub.add_parser("show", help="print a recorded run")
    show.add_argument("run", nargs="?", default="latest",
                      help="run id, a unique prefix of one, or latest (default)")
    show.add_argument("pipeline", nargs="?", help="pipeline file whose runs to look in" + _RUNS_HERE)
    show.add_argument("--json", action="store_true", help="the record as JSON")

    report = sub.add_parser("report", help="write an HTML (or Markdown) report of a run")
    report.add_argument("pipeline", nargs="?", help="pipeline file (YAML)" + _RUNS_HERE)
    report.add_argument("run", nargs="?", default="latest", help="run id, unique prefix or latest (default)")
    report.add_argument("--format", "-f", choices=("html", "markdown"), default="html",
                        help="html (default): a self-contained page; markdown: a summary for CI comments")
    report.add_argument("--output", "-o", metavar="FILE",
                        help="where to write it ('-' for standard output); default: "
                             ".compressflow/reports/<run>.html beside the pipeline (Markdown: standard output)")

    init = sub.add_parser("init", help="write a starter pipeline (for your own model file, or the built-in example)")
    init.add_argument("--model", metavar="FILE", help="your model file (.keras, .h5 or a SavedModel folder)")
    init.add_argument("--output", "-o", default="pipeline.yaml", metavar="FILE",
                      help="pipeline file to write (default: pipeline.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite the output file if it exists")

    sub.add_parser("schema", help="print the JSON Schema of pipeline files (for editors)")
    stages = sub.add_parser("stages", help="list stage and dataset types and their fields")
    stages.add_argument("type", nargs="?", help="show one stage or dataset type in detail")

    cache = sub.add_parser("cache", help="inspect or clean the cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    for name, text in (("ls", "list entries"), ("verify", "rehash every entry and report damage"),
                       ("gc", "remove entries no run remembers and the given pipelines do not use")):
        c = cache_sub.add_parser(name, help=text)
        c.add_argument("pipelines", nargs="*", help="pipeline files whose cache to use (gc keeps what they use; "
                                                    "default: the cache in .compressflow here or one folder down)")
        _add_cache_arg(c)
        if name == "verify":
            c.add_argument("--remove", action="store_true", help="remove damaged entries")
        if name == "gc":
            c.add_argument("--no-wait", action="store_true",
                           help="exit with status 2 instead of waiting while runs use the cache")
            c.add_argument("--dry-run", action="store_true",
                           help="list what would be removed (keys, stages, sizes) and remove nothing")
            c.add_argument("--scope", action="store_true",
                           help="forget what earlier runs of the given pipelines remember (their old --set "
                                "variants); keep their current plans and every other pipeline's entries")
            c.add_argument("--unreferenced", action="store_true",
                           help="remove only entries no run remembers (no pipeline needed with --cache)")
            c.add_argument("--only-given", action="store_true",
                           help="keep only what the given pipelines use now; every other pipeline's, "
                                "project's and variant's entries are removed")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        # NOTE: imported inside the try so that Ctrl-C while modules load is a clean interruption too.
        from compressflow.cli import commands

        return commands.dispatch(args, argv)
    except CompressflowError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        from compressflow.cli.failure_hints import resume_command

        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{what}; stages that finished are cached. Resume with:\n  {resume_command(argv)}",
              file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `compressflow dag P | head`: the reader has what it wanted
        # NOTE: point stdout at devnull so that flushing it at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
