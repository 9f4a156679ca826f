"""Load (validate) and plan one pipeline file in this fresh process; print the figures as JSON.

    python bench/scale_probe.py PIPELINE --cache DIR

Prints ``{"import_s", "validate_s", "plan_s", "cpu_s", "stages", "peak_rss_mb"}``: seconds to
import compressflow, to load and validate the file, to plan it against the cache, the CPU
time of validate + plan (less sensitive to other processes than wall time), the number of
stages, and the peak resident memory of the process (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

started = time.perf_counter()
from compressflow.dsl import load_pipeline  # noqa: E402
from compressflow.cache.local import Cache  # noqa: E402
from compressflow.executor.plan import make_plan  # noqa: E402

imported = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("--cache", required=True)
    args = parser.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    pipeline = load_pipeline(args.pipeline)
    t1 = time.perf_counter()
    plan = make_plan(pipeline, Cache(args.cache, log=lambda text: None))
    t2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({"import_s": imported - started, "validate_s": t1 - t0, "plan_s": t2 - t1,
                      "cpu_s": c2 - c0,
                      "stages": len(plan.stages),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
