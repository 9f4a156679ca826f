"""``python -m compressflow`` is the ``compressflow`` command."""

import sys

from compressflow.cli.parser import main

sys.exit(main())
