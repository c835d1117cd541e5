"""``python -m geoadapt.cli``: the ``geoadapt`` command line."""

import sys

from geoadapt.cli import main

if __name__ == "__main__":
    sys.exit(main())
