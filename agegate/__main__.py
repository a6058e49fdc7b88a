"""``python -m agegate``: the same as the ``agegate`` console script."""

import sys

from .cli import main

sys.exit(main())
