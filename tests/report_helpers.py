"""Reading a report page back in tests: its tables, images and titles."""

from __future__ import annotations

import struct
from html.parser import HTMLParser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ReportPage(HTMLParser):
    """Collects table rows (cell texts), model rows, image sources, section titles and SVGs."""

    def __init__(self, html: str = ""):
        super().__init__()
        self.rows: list[list[str]] = []
        self.models: dict[str, list[str]] = {}  # rows of the models tables, by model
        self.images: list[str] = []
        self.titles: list[str] = []
        self.svgs = 0
        self._cell: list[str] | None = None
        self._title: list[str] | None = None
        if html:
            self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
            model = dict(attrs).get("data-model")
            if model is not None:
                self.models[model] = self.rows[-1]
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "h2":
            self._title = []
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "h2" and self._title is not None:
            self.titles.append("".join(self._title).strip())
            self._title = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._title is not None:
            self._title.append(data)

    def header(self) -> list[str]:
        """The header row of the (first) models table."""
        return next(row for row in self.rows if row and row[0] == "model")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes; fails when they are not a PNG."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])
