"""Run the benchmark suite and write BENCHMARKS.md.

    python bench/run.py [--smoke] [--out BENCHMARKS.md] [--repetitions N] [--no-dvc] [--keep]
                        [--sections outcome,search]

Measures, in one run on this machine, compressflow next to what a user would do instead
(a hand-written TensorFlow script, ``import tensorflow``, ``dvc repro``), plus the planner's
scale and the compression outcome of every technique. ``--smoke`` runs the smallest sizes,
one repetition and tiny epochs (a check that the suite works, not a measurement). All
figures and the raw measurements also go to ``results.json`` beside the plot. ``--sections``
measures only the sections named and merges them into the saved ``results.json`` (the other
sections keep their figures, and each section records the commit and time it was measured at).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits_runs  # noqa: E402
import dvc_compare  # noqa: E402
import image_stream  # noqa: E402
import machine  # noqa: E402
import outcome  # noqa: E402
import parallel  # noqa: E402
import real_size_latency  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
import search_vs_grid  # noqa: E402
import sweep_vs_scripts  # noqa: E402
from common import BENCH_DIR, REPO_DIR, log  # noqa: E402
from settings import Settings  # noqa: E402


# Sections in the order they run; dvc reuses the pipeline and cache of digits.
SECTIONS = {
    "digits": "sections 1-3: cold, cached and incremental runs against a script and import tensorflow",
    "dvc": "section 2: against dvc repro; needs digits in the same run",
    "parallel": "section 4: --jobs 2 against --jobs 1",
    "scale": "section 5: validate and plan 10,000 stages",
    "outcome": "section 6: every compression technique",
    "search": "section 7: TPE against a grid",
    "image_stream": "section 8: an image folder streamed at two sizes (peak memory, time per epoch)",
    "sweep_vs_scripts": "section 9: a sweep of 8 digits variants against one hand-written script per variant",
    "real_size_latency": "section 10: MobileNetV2 float32, int8 and int4 latency in LiteRT (batch 1/16, 1/2 threads)",
}


def parse_sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(unknown) or '(none)'}: choose from "
                                         + ", ".join(SECTIONS))
    if "dvc" in names and "digits" not in names:
        raise argparse.ArgumentTypeError("section dvc times the pipeline and cache of section digits: "
                                         "add digits (--sections digits,dvc)")
    return [name for name in SECTIONS if name in names]


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="smallest sizes, one repetition, tiny epochs")
    parser.add_argument("--out", type=Path, default=REPO_DIR / "BENCHMARKS.md", help="report file to write")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder for results.json and the plot (default: bench/results, or beside --out "
                             "in smoke mode)")
    parser.add_argument("--repetitions", type=int, default=None, help="repetitions of each timing (default 3)")
    parser.add_argument("--no-dvc", action="store_true", help="skip the comparison with DVC (and its install)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--sections", type=parse_sections, default=list(SECTIONS), metavar="NAME,...",
                        help="measure only these sections and merge them into the saved results.json: "
                             + ", ".join(f"{name} ({what})" for name, what in SECTIONS.items()))
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: write the report again from a results.json of an earlier run")
    return parser.parse_args(argv)


def render_again(results_json: Path, out: Path) -> int:
    """Rewrite the report from saved measurements (the figures stay those of that one run)."""
    from plot import plot_accuracy_vs_size

    results = json.loads(results_json.read_text())
    if "outcome" in results:
        results["outcome"]["plot"] = plot_accuracy_vs_size(results["outcome"]["rows"],
                                                           results_json.parent / "accuracy_vs_size.png")
    out.write_text(report.render(results, out_path=out.resolve(), results_dir=results_json.parent))
    log(f"wrote {out} from {results_json}")
    return 0


def save(results: dict, results_dir: Path) -> None:
    (results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))


def earlier_results(results_dir: Path, sections: list[str]) -> dict:
    """The saved results a partial run merges into (empty for a whole run or when there are none)."""
    path = results_dir / "results.json"
    if len(sections) == len(SECTIONS) or not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    for name in SECTIONS:  # NOTE: sections of a run before per-section records were measured by that run
        if name in earlier:
            earlier.setdefault("section_runs", {}).setdefault(name, run_info(earlier))
    return earlier


def run_info(results: dict) -> dict:
    """When, at which commit and by which command a section was measured."""
    return {"command": results["command"], "started": results["started"], "commit": results["machine"]["commit"],
            "smoke": results["smoke"], "load_average": results["machine"]["load_average"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render_again(args.render, args.out)
    command = "python bench/run.py" + "".join(f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="compressflow-bench-"))
    results_dir = args.results or (args.out.resolve().parent / "bench-results" if args.smoke
                                   else BENCH_DIR / "results")
    settings = Settings.make(workdir, results_dir, smoke=args.smoke, repetitions=args.repetitions,
                             dvc=not args.no_dvc)
    this_run = {"command": command, "smoke": args.smoke, "repetitions": settings.repetitions,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine.describe()}
    results: dict = earlier_results(results_dir, args.sections) or dict(this_run)
    started = time.perf_counter()
    results_dir.mkdir(parents=True, exist_ok=True)

    def section(name: str, measure) -> None:
        if name not in args.sections:
            return
        section_started = time.perf_counter()
        results[name] = measure()
        results.setdefault("section_seconds", {})[name] = time.perf_counter() - section_started
        results.setdefault("section_runs", {})[name] = run_info(this_run)
        save(results, results_dir)  # NOTE: partial results survive a failure in a later section

    try:
        section("digits", lambda: digits_runs.measure(settings))
        if "digits" in args.sections:
            pipeline, cache = Path(results["digits"]["pipeline"]), Path(results["digits"]["caches"][0])
        section("dvc", lambda: dvc_compare.measure(
            settings, lambda: digits_runs.run_compressflow(pipeline, cache, settings.digits_overrides).seconds))
        section("parallel", lambda: parallel.measure(settings))
        section("scale", lambda: scale.measure(settings))
        section("outcome", lambda: outcome.measure(settings))
        section("search", lambda: search_vs_grid.measure(settings))
        section("image_stream", lambda: image_stream.measure(settings))
        section("sweep_vs_scripts", lambda: sweep_vs_scripts.measure(settings))
        section("real_size_latency", lambda: real_size_latency.measure(settings))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(args.sections) == len(SECTIONS) or "seconds" not in results:
        results["seconds"] = time.perf_counter() - started
        results["load_average_end"] = os.getloadavg()
    save(results, results_dir)
    args.out.write_text(report.render(results, out_path=args.out.resolve(), results_dir=results_dir))
    log(f"wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
