"""``python -m agegate``: the same as the ``agegate`` console script."""

import sys

from .cli import main

__all__: list[str] = []

sys.exit(main())
