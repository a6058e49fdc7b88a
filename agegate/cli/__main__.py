"""``python -m agegate.cli``: the same as the ``agegate`` console script."""

import sys

from . import main

sys.exit(main())
