"""``python -m kdcore`` works like the ``kdcore`` command."""

import sys

from .cli import main

sys.exit(main())
