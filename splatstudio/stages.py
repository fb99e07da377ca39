"""``python -m splatstudio.stages <stage> --project DIR``: one pipeline stage as its own process.

See :mod:`splatstudio.pipeline.entry` for the output contract.
"""

import sys

from splatstudio.pipeline.entry import main

if __name__ == "__main__":
    sys.exit(main())
