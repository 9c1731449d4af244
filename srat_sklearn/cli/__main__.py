"""``python -m srat_sklearn.cli``."""

import sys

from . import main

sys.exit(main())
