"""``python -m splatstudio``: the same entry point as the ``splatstudio`` command."""

import sys

from splatstudio.cli import main

sys.exit(main())
