"""``python -m agegate.cli``: the same as the ``agegate`` console script."""

import sys

from . import main

__all__: list[str] = []

sys.exit(main())
