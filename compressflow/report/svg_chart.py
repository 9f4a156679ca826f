"""A matplotlib figure as an inline ``<svg>`` element whose ids are unique on the page.

The report draws most plots as PNG images; the per-layer numerics and search-trials charts are
inline SVG so that their marks (one bar per layer, one point per trial) keep the ``gid`` they
were drawn with: ``bar-3`` becomes ``id="<prefix>bar-3"``, which a reader (or a test) can find.
"""

from __future__ import annotations

import io
import re

_ID = re.compile(r"""(\bid=|href=)(["'])(#?)([^"']+)\2""")
_URL = re.compile(r"url\(#([^)]+)\)")


def id_prefix(kind: str, stage: str) -> str:
    """``numerics-int4-`` for stage ``int4``: a prefix of ids that no other chart of the page has."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_-]', '_', stage)}-"


def figure_svg(figure, prefix: str, title: str) -> str:
    """``figure`` (then closed) as an ``<svg>`` element: text kept as text, every id prefixed with ``prefix``."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        figure.tight_layout()
        figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.08, metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = _ID.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{prefix}{m.group(4)}{m.group(2)}"
                   if m.group(1) == "id=" or m.group(3) else m.group(0), text)
    text = _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", text)
    # NOTE: the drawn size stays in viewBox; the element itself scales with the page.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                  lambda m: f"<svg{m.group(1)} class=\"chart\" style=\"width:100%;height:auto;max-width:980px\"",
                  text, count=1)
    return text.replace(">", f"><title>{_escape(title)}</title>", 1).strip()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
