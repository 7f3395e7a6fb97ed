"""``python -m xbench.cli``: the same as the ``xbench`` console script."""

import sys

from xbench.cli.main import main

sys.exit(main())
