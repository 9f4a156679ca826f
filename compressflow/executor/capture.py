"""Keep native libraries' console noise (TensorFlow's C++ logs, converter chatter) in a log file."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def stderr_to_file(path: Path | None) -> Iterator[None]:
    """Send file descriptor 2 (what C++ code and Python warnings write to) into ``path``.

    With ``path`` None nothing is redirected (``--verbose``).
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
