"""Reports of a recorded run: a self-contained HTML page, or a Markdown summary for CI comments.

Everything comes from the run record (see :mod:`compressflow.runs.records`): the stage graph and
statuses, the metrics of evaluate stages, the tables of select stages and the training
histories; the per-layer numerics of quantize stages and the trials of search stages are read
from those stages' cache entries (:mod:`compressflow.report.entry_files`). Plots are drawn with
matplotlib (in the ``[tf]`` and ``[report]`` extras), imported only here; without it the page is
written all the same, each plot replaced by a note saying how to get it. The stage graph needs
nothing (Graphviz's ``dot`` draws it when installed).

::

    from compressflow.report.html import render_html
    from compressflow.report.markdown import render_markdown
    html = render_html(record)
"""
