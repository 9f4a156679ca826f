"""``compressflow report [PIPELINE] [RUN]``: write the HTML report or Markdown summary of a run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_OK = 0


def default_report_path(record: dict, pipeline_root: Path) -> Path:
    """``.compressflow/reports/<run id>.html`` beside the pipeline."""
    return pipeline_root / ".compressflow" / "reports" / f"{record['id']}.html"


def write_report(args) -> int:
    """Find the run and write its report where ``-o`` says (see the CLI help)."""
    from compressflow.runs.lookup import locate_run

    record, pipeline_root = locate_run(args.pipeline, args.run, command="report")
    if args.format == "markdown":
        from compressflow.report.markdown import render_markdown

        text = render_markdown(record)
        output = args.output or "-"
    else:
        from compressflow.report.html import render_html
        from compressflow.report.plots import INSTALL_HINT

        missing: list[str] = []
        text = render_html(record, missing_plots=missing)
        if missing:
            plots = "1 plot" if len(missing) == 1 else f"{len(missing)} plots"
            print(f"note: {plots} not drawn ({', '.join(missing)}): matplotlib cannot be imported; "
                  f"{INSTALL_HINT} draws them", file=sys.stderr)
        output = args.output or str(default_report_path(record, pipeline_root))
    if output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path} (run {record['id']}, {record.get('status')})")
    return EXIT_OK
