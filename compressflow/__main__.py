"""``python -m compressflow`` is the ``compressflow`` command."""

import sys

from compressflow.cli import main

sys.exit(main())
