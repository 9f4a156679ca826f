"""The ``compressflow`` command line.

Exit status: 0 success, 1 a stage failed, 2 invalid pipeline or usage, 130 interrupted.
TensorFlow is imported only by stages that actually run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from compressflow import __version__
from compressflow.errors import CompressflowError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    p.add_argument("--cache", metavar="DIR",
                   help="cache folder (default: $COMPRESSFLOW_CACHE or .compressflow/cache beside the pipeline)")


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", action="append", default=[], metavar="STAGE",
                   help="run just this stage (pattern; repeatable); its inputs must be cached")
    p.add_argument("--from", dest="from_", action="append", default=[], metavar="STAGE",
                   help="run this stage and everything after it")
    p.add_argument("--until", action="append", default=[], metavar="STAGE",
                   help="run this stage and everything it needs")
    p.add_argument("--force", nargs="*", metavar="STAGE",
                   help="recompute these stages (all selected ones when none is named) even if cached")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="let paths in the pipeline point outside its folder")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="compressflow", description="Declarative, cached model-compression pipelines.")
    parser.add_argument("--version", action="version", version=f"compressflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a pipeline (cached stages are reused)")
    _add_pipeline_args(run)
    _add_cache_arg(run)
    _add_selection_args(run)
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                     help="run up to N independent stages at once in worker processes")
    run.add_argument("--keep-going", action="store_true", help="after a failure, finish independent branches")
    run.add_argument("--verify", action="store_true", help="rehash every cache entry read")
    run.add_argument("--quiet", "-q", action="store_true", help="print only failures and the final summary")
    run.add_argument("--verbose", "-v", action="store_true",
                     help="print tracebacks of failing stages and TensorFlow's own output "
                          "(otherwise kept in .compressflow/logs/)")

    plan = sub.add_parser("plan", help="show, per stage, cached or run and why")
    _add_pipeline_args(plan)
    _add_cache_arg(plan)
    _add_selection_args(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    validate = sub.add_parser("validate", help="check a pipeline file and report every problem")
    _add_pipeline_args(validate)

    dag = sub.add_parser("dag", help="print the stage graph")
    _add_pipeline_args(dag)

    sub.add_parser("schema", help="print the JSON Schema of pipeline files (for editors)")
    stages = sub.add_parser("stages", help="list stage types and their fields")
    stages.add_argument("type", nargs="?", help="show one stage type in detail")

    cache = sub.add_parser("cache", help="inspect or clean the cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    for name, text in (("ls", "list entries"), ("verify", "rehash every entry and report damage"),
                       ("gc", "remove entries no longer used by the given pipelines")):
        c = cache_sub.add_parser(name, help=text)
        c.add_argument("pipelines", nargs="*", help="pipeline files (gc keeps what they use)")
        _add_cache_arg(c)
        if name == "verify":
            c.add_argument("--remove", action="store_true", help="remove damaged entries")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from compressflow import commands

    try:
        return commands.dispatch(args, argv)
    except CompressflowError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted; stages that finished are cached. Resume with:\n  {resume_command(argv)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def resume_command(argv: list[str]) -> str:
    """The command that resumes this one: the same command (finished stages are cached)."""
    return shlex.join(["compressflow", *argv])


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def pipeline_label(path: str) -> str:
    return str(Path(path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
